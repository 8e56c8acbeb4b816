package main

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomlog/roomlog/eventstore"
)

// roomstats is a reader of the log ("connects to the NATS port as verify
// does"; "no node and no tool changes the stream's configuration behind the
// operator's back"). Started against a NATS server whose ROOMLOG stream does
// not exist yet (an external cluster where roomstats happens to start before
// the first roomd), it creates the stream itself, with one replica: a roomd
// started afterwards with -replicas 3 then refuses to start
// ("num_replicas 1 (this node wants 3)").
func TestRoomstatsDoesNotCreateTheStream(t *testing.T) {
	const password = "roomstats-password-0123456789"
	opts := &natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Users: []*natsserver.User{{Username: eventstore.DefaultUser, Password: password}}}
	srv, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = run(ctx, []string{"-nats", srv.ClientURL(), "-nats-password", password, "-http", "off",
		"-state", filepath.Join(t.TempDir(), "state.json"), "-log-level", "error"}, io.Discard, io.Discard)
	t.Logf("roomstats: %v", err)

	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(eventstore.DefaultUser, password))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(context.Background(), eventstore.DefaultStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return // good: roomstats left the server as it found it
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Errorf("roomstats created stream %s (replicas %d) on a server that had none",
		eventstore.DefaultStream, s.CachedInfo().Config.Replicas)
}
