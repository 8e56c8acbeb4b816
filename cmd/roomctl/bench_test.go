package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections/consume"
	"github.com/roomlog/roomlog/projections/cursor"
	"github.com/roomlog/roomlog/projections/stats"
)

// The auditors' and analysts' read rates over one room's history of
// 1,000,000 events (ROOMLOG_BENCH_EVENTS to change it), each against a raw
// ordered-consumer read of the same log in the same run. The log is served
// by an embedded server on a loopback port, as a running roomd serves it;
// every reader connects over TCP (roomctl with -nats):
//
//	go test ./cmd/roomctl -run '^$' -bench ReadRates -benchtime 1x -count 5
var (
	benchOnce   sync.Once
	benchURL    string
	benchEvents int
)

func benchLog(b *testing.B) string {
	benchOnce.Do(func() {
		n := 1_000_000
		if v := os.Getenv("ROOMLOG_BENCH_EVENTS"); v != "" {
			n, _ = strconv.Atoi(v)
		}
		dir, err := os.MkdirTemp("", "roomlog-bench-")
		if err != nil {
			b.Fatal(err)
		}
		// Kept open for the whole benchmark binary; the folder is removed
		// by the OS's temporary-file cleaning, not here.
		log, err := eventstore.Open(context.Background(), eventstore.Config{DataDir: dir, Listen: "127.0.0.1:-1", Logger: quiet()})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		benchEvents, _ = estest.WriteRooms(b, log, estest.RoomsConfig{Rooms: 1, Users: 2000, Events: n, Seed: 1})
		b.Logf("wrote %d events in %v", benchEvents, time.Since(start).Round(time.Millisecond))
		benchURL = log.ClientURL()
	})
	if benchURL == "" {
		b.Fatal("no benchmark log")
	}
	return benchURL
}

func BenchmarkReadRates(b *testing.B) {
	url := benchLog(b)
	rate := func(b *testing.B, start time.Time) {
		b.ReportMetric(float64(benchEvents)*float64(b.N)/time.Since(start).Seconds(), "events/s")
	}
	open := func(b *testing.B) *eventstore.Log {
		log, err := eventstore.Open(context.Background(), eventstore.Config{URL: url, Logger: quiet()})
		if err != nil {
			b.Fatal(err)
		}
		return log
	}
	b.Run("raw-ordered-consumer", func(b *testing.B) {
		log := open(b)
		defer log.Close()
		nc, err := log.NewConn("bench")
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		start := time.Now()
		for range b.N {
			ctx := context.Background()
			last, _ := log.LastSeq(ctx)
			cons, err := js.OrderedConsumer(ctx, log.StreamName(), jetstream.OrderedConsumerConfig{})
			if err != nil {
				b.Fatal(err)
			}
			it, err := cons.Messages(jetstream.PullMaxMessages(4096))
			if err != nil {
				b.Fatal(err)
			}
			for {
				m, err := it.Next()
				if err != nil {
					b.Fatal(err)
				}
				md, _ := m.Metadata()
				if md.Sequence.Stream == last {
					break
				}
			}
			it.Stop()
		}
		rate(b, start)
	})
	b.Run("verify", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			if code := run(context.Background(), []string{"verify", "-nats", url}, io.Discard, io.Discard); code != 0 {
				b.Fatalf("verify: exit %d", code)
			}
		}
		rate(b, start)
	})
	b.Run("replay-with-progress-bar", func(b *testing.B) {
		progressTo = io.Discard
		defer func() { progressTo = nil }()
		start := time.Now()
		for range b.N {
			if code := run(context.Background(), []string{"replay", "-nats", url, "-app", "app", "-room", "room 0"}, io.Discard, os.Stderr); code != 0 {
				b.Fatalf("replay: exit %d", code)
			}
		}
		rate(b, start)
	})
	b.Run("roomstats-catch-up", func(b *testing.B) {
		log := open(b)
		defer log.Close()
		start := time.Now()
		for i := range b.N {
			ctx, cancel := context.WithCancel(context.Background())
			st := stats.New()
			var n atomic.Int64
			var saved cursor.Cursor
			c, err := consume.New(consume.Config{Log: log, Name: fmt.Sprint("bench", i), Logger: quiet(),
				Handle: func(_ context.Context, e cursor.Event) error {
					st.Apply(e.Cursor, e.Event)
					if n.Add(1) == int64(benchEvents) {
						cancel()
					}
					return nil
				},
				Save: func(_ context.Context, c cursor.Cursor) error { saved = c; return nil }})
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Run(ctx); err != nil {
				b.Fatal(err)
			}
			if st.Events != uint64(benchEvents) || saved != st.Cursor {
				b.Fatalf("caught up %d of %d events (saved at %s, state at %s)", st.Events, benchEvents, saved, st.Cursor)
			}
		}
		rate(b, start)
	})
}
