package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// syncBuf is a buffer written by roomstats and read by the test.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The NATS password from the environment is never printed as a flag
// default (nor a password inside ROOMLOG_NATS_URL): the help names the
// variable. It is still the password used when -nats-password is absent.
func TestHelpDoesNotPrintTheNATSPassword(t *testing.T) {
	const password, urlPassword = "2b771bec87d1f0a9-nats", "9f3c1e77aa-in-the-url"
	t.Setenv("ROOMLOG_NATS_PASSWORD", password)
	t.Setenv("ROOMLOG_NATS_URL", "nats://roomlog:"+urlPassword+"@127.0.0.1:4222")
	for _, args := range [][]string{{"-h"}, {"-no-such-flag"}} {
		var out, errOut bytes.Buffer
		exitCode(run(context.Background(), args, &out, &errOut), &errOut)
		all := out.String() + errOut.String()
		if strings.Contains(all, password) || strings.Contains(all, urlPassword) {
			t.Errorf("roomstats %s prints a password from the environment:\n%s", args[0], all)
		}
		if !strings.Contains(all, "(default $ROOMLOG_NATS_PASSWORD)") {
			t.Errorf("roomstats %s does not say -nats-password defaults to $ROOMLOG_NATS_PASSWORD:\n%s", args[0], all)
		}
	}

	// The variable is the password when the flag is absent; the flag,
	// even empty, wins.
	log := estest.Open(t, func(c *eventstore.Config) { c.Listen, c.Password = "127.0.0.1:-1", estest.Password })
	t.Setenv("ROOMLOG_NATS_PASSWORD", estest.Password)
	t.Setenv("ROOMLOG_NATS_URL", "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuf
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-nats", log.ClientURL(), "-http", "127.0.0.1:0", "-state",
			filepath.Join(t.TempDir(), "state.json"), "-log-level", "error"}, &out, &out)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "roomstats: serving") {
		select {
		case err := <-done:
			t.Fatalf("roomstats with ROOMLOG_NATS_PASSWORD stopped: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("roomstats with ROOMLOG_NATS_PASSWORD did not start serving:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("roomstats stopped: %v", err)
	}
	err := run(context.Background(), []string{"-nats", log.ClientURL(), "-nats-password", "", "-http", "off", "-state",
		filepath.Join(t.TempDir(), "state.json")}, &out, &out)
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("roomstats -nats-password \"\" with ROOMLOG_NATS_PASSWORD set: %v, want an authorization error", err)
	}
}
