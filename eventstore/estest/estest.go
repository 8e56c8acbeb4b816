// Package estest starts real logs for tests: an embedded NATS server with
// JetStream, storage in the test's temporary directory, stopped when the test
// ends. There is no mock of NATS anywhere in roomlog's tests.
package estest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomlog/roomlog/eventstore"
)

// Logger logs warnings and errors into the test's output.
func Logger(tb testing.TB) *slog.Logger {
	var w io.Writer = io.Discard
	if t, ok := tb.(*testing.T); ok {
		w = t.Output()
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// Ctx returns a context that ends well before the test binary's timeout, so
// a hang fails one test with a clear message.
func Ctx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// Open opens a log on a fresh embedded server (in-process connection) with
// storage in a temporary directory; edit may change the config first.
func Open(tb testing.TB, edit func(*eventstore.Config)) *eventstore.Log {
	tb.Helper()
	cfg := eventstore.Config{DataDir: tb.TempDir(), Logger: Logger(tb)}
	if edit != nil {
		edit(&cfg)
	}
	return Must(tb, cfg)
}

// Must opens cfg and closes the log when the test ends.
func Must(tb testing.TB, cfg eventstore.Config) *eventstore.Log {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := eventstore.Open(ctx, cfg)
	if err != nil {
		tb.Fatalf("open log: %v", err)
	}
	tb.Cleanup(func() {
		if err := l.Close(); err != nil {
			tb.Errorf("close log: %v", err)
		}
	})
	return l
}

// Password is the NATS password of test servers that listen.
const Password = "test-password-0123456789"

// Shared opens an embedded server listening on a random loopback port and a
// second log connected to it over TCP, as two roomd processes sharing one
// JetStream would be.
func Shared(tb testing.TB) (embedded, external *eventstore.Log) {
	tb.Helper()
	embedded = Open(tb, func(c *eventstore.Config) { c.Listen, c.Password = "127.0.0.1:-1", Password })
	cfg := embedded.ClientConfig()
	cfg.Logger = Logger(tb)
	external = Must(tb, cfg)
	return embedded, external
}

// Purge removes the log's records before stream sequence seq (all of them
// for 0), as retention (roomd -retention) does from the start of the
// stream. The log must have been opened after
// eventstore.AllowTamperingInTests.
func Purge(tb testing.TB, log *eventstore.Log, seq uint64) {
	tb.Helper()
	nc, err := log.NewConn("purge")
	if err != nil {
		tb.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := js.Stream(Ctx(tb), log.StreamName())
	if err != nil {
		tb.Fatal(err)
	}
	var opts []jetstream.StreamPurgeOpt
	if seq > 0 {
		opts = append(opts, jetstream.WithPurgeSequence(seq))
	}
	if err := s.Purge(Ctx(tb), opts...); err != nil {
		tb.Fatalf("purge the log before %d: %v", seq, err)
	}
}

// JetStream returns JetStream on a connection of the test's own to log's
// server (closed when the test ends), for what a test does behind the log's
// back: look at a consumer, remove one.
func JetStream(tb testing.TB, log *eventstore.Log) jetstream.JetStream {
	tb.Helper()
	nc, err := log.NewConn("test")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return js
}
