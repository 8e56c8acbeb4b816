package eventstore

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"
)

// testLogger logs warnings and errors into the test's output, so a server
// complaint shows up next to the failure it explains.
func testLogger(tb testing.TB) *slog.Logger {
	var w io.Writer = io.Discard
	if t, ok := tb.(*testing.T); ok {
		w = t.Output()
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// openEmbedded opens a log on a fresh embedded server with storage in a
// temporary directory; edit may change the config first. The log is closed
// in tb.Cleanup.
func openEmbedded(tb testing.TB, edit func(*Config)) *Log {
	tb.Helper()
	cfg := Config{DataDir: tb.TempDir(), Logger: testLogger(tb)}
	if edit != nil {
		edit(&cfg)
	}
	return mustOpen(tb, cfg)
}

// mustOpen opens cfg and closes the log in tb.Cleanup.
func mustOpen(tb testing.TB, cfg Config) *Log {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := Open(ctx, cfg)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := l.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return l
}

// testPassword is the NATS password of test servers that listen.
const testPassword = "test-password-0123456789"

// openTCPPair starts an embedded server that listens on a random loopback
// port and returns a second log opened by URL to it: external mode over
// real TCP.
func openTCPPair(tb testing.TB, edit func(*Config)) (embedded, external *Log) {
	tb.Helper()
	embedded = openEmbedded(tb, func(c *Config) {
		c.Listen = "127.0.0.1:-1"
		c.Password = testPassword
		if edit != nil {
			edit(c)
		}
	})
	url := embedded.ClientURL()
	if url == "" {
		tb.Fatal("ClientURL is empty for an embedded server with Listen")
	}
	external = mustOpen(tb, embedded.ClientConfig())
	return embedded, external
}

// testCtx returns a context that ends well before the test binary's
// timeout, so a hang fails one test with a clear message.
func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// appendChain appends n messages to subject, each expecting the previous
// one, with data "0".."n-1" offset by first, and returns their sequences.
func appendChain(tb testing.TB, l *Log, subject string, n, first int) []uint64 {
	tb.Helper()
	ctx := testCtx(tb)
	last, _, err := l.Last(ctx, subject)
	if err != nil {
		tb.Fatalf("Last(%s): %v", subject, err)
	}
	expected := last.Seq
	seqs := make([]uint64, 0, n)
	for i := range n {
		k := strconv.Itoa(first + i)
		ack, err := l.Append(ctx, Message{Subject: subject, MsgID: subject + "#" + k, Expected: expected, Data: []byte(k)})
		if err != nil {
			tb.Fatalf("Append(%s, %s): %v", subject, k, err)
		}
		expected = ack.Seq
		seqs = append(seqs, ack.Seq)
	}
	return seqs
}

// readAll reads every record matching filters from from.
func readAll(tb testing.TB, l *Log, filters []string, from uint64) ([]Record, uint64) {
	tb.Helper()
	var recs []Record
	last, err := l.Read(testCtx(tb), filters, from, func(r Record) error {
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		tb.Fatalf("Read(%v, %d): %v", filters, from, err)
	}
	return recs, last
}

// dataInt decodes the decimal payload the tests append.
func dataInt(tb testing.TB, r Record) int {
	tb.Helper()
	k, err := strconv.Atoi(string(r.Data))
	if err != nil {
		tb.Fatalf("record %d: data %q: %v", r.Seq, r.Data, err)
	}
	return k
}
