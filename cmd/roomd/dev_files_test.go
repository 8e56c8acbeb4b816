package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// lockedBuffer is a bytes.Buffer safe for roomd's goroutines and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// operations.md: "a password inside a NATS URL is shown, and logged, as
// xxxxx". A development node (no -secret) on an external NATS whose URL
// carries the password used to print its roomctl hint with that URL as it
// is, password and all, on stdout, and pointed at a password file that
// does not exist in that mode.
func TestADevelopmentNodeOnANATSURLDoesNotPrintItsPassword(t *testing.T) {
	srv := estest.Open(t, func(c *eventstore.Config) { c.Listen, c.Password = "127.0.0.1:-1", estest.Password })
	url := "nats://" + eventstore.DefaultUser + ":" + estest.Password + "@" + strings.TrimPrefix(srv.ClientURL(), "nats://")
	addr := freeAddr(t)
	o, err := parse([]string{"-data", t.TempDir(), "-nats-url", url, "-no-media", "-http", addr}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out, logs lockedBuffer
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, o, slog.New(slog.NewTextHandler(&logs, nil)), &out) }()
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(out.String(), "development mode"); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("roomd stopped: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("roomd did not start within a minute:\n%s", logs.String())
		}
	}
	stop()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("roomd did not stop within a minute")
	}
	if strings.Contains(out.String(), estest.Password) {
		t.Errorf("roomd printed the NATS password of -nats-url on stdout:\n%s", out.String())
	}
	if strings.Contains(logs.String(), estest.Password) {
		t.Errorf("roomd logged the NATS password of -nats-url:\n%s", logs.String())
	}
}

// Development mode keeps its generated secret and NATS password in the data
// folder. Written by an older roomd (neither fsynced nor renamed into place),
// a power loss right after the first start could leave one empty, and an
// empty file was taken for the secret: roomd refused to start, blaming "the
// secret" and "Listen ... Password", which the operator never gave. An empty
// file is made anew now, and the files are written atomically.
func TestAnEmptyDevelopmentFileIsMadeAnew(t *testing.T) {
	for _, name := range []string{devSecretFile, natsPasswordFile} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, name), []byte("\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			addr := freeAddr(t)
			o, err := parse([]string{"-data", dir, "-no-media", "-http", addr, "-nats-listen", "127.0.0.1:0"}, env(nil), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			done := make(chan error, 1)
			go func() { done <- run(ctx, o, discardLogger(), io.Discard) }()
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				select {
				case err := <-done:
					t.Fatalf("development mode with an empty %s: roomd stopped: %v", name, err)
				default:
				}
				if res, err := http.Get("http://" + addr + "/healthz"); err == nil {
					res.Body.Close()
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("roomd did not start within a minute")
				}
			}
			stop()
			<-done
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil || len(strings.TrimSpace(string(b))) < 32 {
				t.Errorf("%s after the start: %q, %v; want a new secret", name, b, err)
			}
		})
	}
}
