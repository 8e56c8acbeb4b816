package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections/consume"
	"github.com/roomlog/roomlog/projections/cursor"
)

// What retention means for auditors and consumers. The server removes
// expired messages from the start of a stream that has a retention limit; a
// purge up to a sequence removes the same ones without waiting for a clock.
func TestRetentionKeepsVerifyHonestAndTellsConsumersTheyFellOff(t *testing.T) {
	dir, pub := signedHistory(t)
	// The log: session s1 (1), room [created, joined] (2), s2 (3), room joined (4), ...
	withLog(t, dir, func(log *eventstore.Log) {
		js, done := rawJS(t, log)
		defer done()
		s, err := js.Stream(estest.Ctx(t), log.StreamName())
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		cfg.MaxAge = 30 * 24 * time.Hour
		if _, err := js.UpdateStream(estest.Ctx(t), cfg); err != nil {
			t.Fatal(err)
		}
		if err := s.Purge(estest.Ctx(t), jetstream.WithPurgeSequence(3)); err != nil {
			t.Fatal(err)
		}
	})
	out, code := roomctl(t, "verify", "-data", dir, "-pubkey", pub)
	if code != 0 || !strings.Contains(out, "stream sequences 3 to") || !strings.Contains(out, "matches its signed head") {
		t.Fatalf("verify of a log whose start expired: exit %d\n%s", code, out)
	}
	// A room whose start is gone cannot be replayed; say so.
	out, code = roomctl(t, "replay", "-data", dir, "-room", "class 1.A")
	if code == 0 || !strings.Contains(out, "removed by retention") {
		t.Fatalf("replay of a room whose start expired: exit %d\n%s", code, out)
	}
	// A consumer whose cursor fell off is told, unless it chooses to go on.
	withLog(t, dir, func(log *eventstore.Log) {
		c, err := consume.New(consume.Config{Log: log, Name: "late", After: cursor.Cursor{Seq: 1}, Logger: estest.Logger(t),
			Handle: func(context.Context, cursor.Event) error { return nil },
			Save:   func(context.Context, cursor.Cursor) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := c.Run(ctx); !errors.Is(err, consume.ErrCursorExpired) {
			t.Errorf("a consumer after cursor 1.0 of a log that starts at 3: %v, want ErrCursorExpired", err)
		}
	})
}

// A retention limit set by roomd survives tools opening the log, and a
// node, even one whose server is embedded, changes it only when told to
// (-update-stream): shortening it removes history at once, and a node
// started without -retention would lift it.
func TestRetentionLimitIsKeptByTools(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	for _, c := range []struct {
		maxAge  time.Duration
		update  bool
		refused bool
		want    time.Duration
	}{
		{maxAge: time.Hour, want: time.Hour},
		{maxAge: 0, want: time.Hour},
		{maxAge: eventstore.KeepForever, refused: true, want: time.Hour},
		{maxAge: 10 * time.Minute, refused: true, want: time.Hour},
		{maxAge: 10 * time.Minute, update: true, want: 10 * time.Minute},
		{maxAge: eventstore.KeepForever, update: true, want: 0},
	} {
		log, err := eventstore.Open(ctx, eventstore.Config{DataDir: dir, MaxAge: c.maxAge, UpdateStream: c.update,
			Logger: estest.Logger(t)})
		if c.refused {
			if !errors.Is(err, eventstore.ErrStreamMismatch) {
				t.Fatalf("opened with MaxAge %v over a stream keeping %v, without UpdateStream: %v, want ErrStreamMismatch",
					c.maxAge, c.want, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		js, done := rawJS(t, log)
		s, err := js.Stream(ctx, log.StreamName())
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.MaxAge; got != c.want {
			t.Errorf("opened with MaxAge %v (update %v): the stream keeps %v, want %v", c.maxAge, c.update, got, c.want)
		}
		done()
		log.Close()
	}
}
