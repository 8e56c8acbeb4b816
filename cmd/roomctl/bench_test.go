package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
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
//	go test ./cmd/roomctl -run '^$' -bench ReadRates -benchtime 5x
var (
	benchOnce   sync.Once
	benchURL    string
	benchEvents int
	benchDone   func() // closes the benchmark's log and removes its folder
)

func TestMain(m *testing.M) {
	// The tamper tests delete and purge what the stream denies to any
	// client: they stand for someone who edits the data folder's files.
	eventstore.AllowTamperingInTests()
	code := m.Run()
	if benchDone != nil {
		benchDone()
	}
	os.Exit(code)
}

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
		// Kept open for the whole benchmark binary (TestMain closes it).
		log, err := eventstore.Open(context.Background(), eventstore.Config{DataDir: dir, Listen: "127.0.0.1:-1",
			Password: estest.Password, Logger: quiet()})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		benchEvents, _ = estest.WriteRooms(b, log, estest.RoomsConfig{Rooms: 1, Users: 2000, Events: n, Seed: 1})
		b.Logf("wrote %d events in %v", benchEvents, time.Since(start).Round(time.Millisecond))
		benchURL = log.ClientURL()
		benchDone = func() {
			log.Close()
			os.RemoveAll(dir)
		}
	})
	if benchURL == "" {
		b.Fatal("no benchmark log")
	}
	return benchURL
}

// BenchmarkReadRates runs b.N rounds; each round reads the whole log once
// raw, then with verify, replay (with its progress bar drawn) and the
// roomstats consumer, and the reported figures are medians of the rounds:
// the raw rate, and each reader's rate as a ratio of the same round's raw
// rate (the machine's load swings between rounds, far less within one).
func BenchmarkReadRates(b *testing.B) {
	url := benchLog(b)
	log, err := eventstore.Open(context.Background(), eventstore.Config{URL: url, Password: estest.Password, Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	defer log.Close()
	readers := []struct {
		name string
		read func(b *testing.B, round int)
	}{
		{"raw", func(b *testing.B, _ int) { rawRead(b, log) }},
		{"verify", func(b *testing.B, _ int) {
			if code := run(context.Background(), []string{"verify", "-nats", url, "-nats-password", estest.Password}, io.Discard, io.Discard); code != 0 {
				b.Fatalf("verify: exit %d", code)
			}
		}},
		{"replay", func(b *testing.B, _ int) {
			progressTo = io.Discard
			defer func() { progressTo = nil }()
			if code := run(context.Background(), []string{"replay", "-nats", url, "-nats-password", estest.Password, "-app", "app", "-room", "room 0"}, io.Discard, os.Stderr); code != 0 {
				b.Fatalf("replay: exit %d", code)
			}
		}},
		{"roomstats", func(b *testing.B, round int) { catchUp(b, log, round) }},
	}
	rates := make([][]float64, len(readers))
	b.ResetTimer()
	for round := range b.N {
		for i, r := range readers {
			start := time.Now()
			r.read(b, round)
			rate := float64(benchEvents) / time.Since(start).Seconds()
			rates[i] = append(rates[i], rate)
			b.Logf("round %d: %-9s %8.0f events/s", round, r.name, rate)
		}
	}
	b.ReportMetric(median(rates[0]), "raw-events/s")
	for i, r := range readers[1:] {
		ratios := make([]float64, b.N)
		for round := range b.N {
			ratios[round] = rates[i+1][round] / rates[0][round]
		}
		b.ReportMetric(median(rates[i+1]), r.name+"-events/s")
		b.ReportMetric(median(ratios), r.name+"/raw")
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// rawRead reads the whole log through a bare ordered consumer, on a plain
// connection: no decoding, no hashing, nothing folded.
func rawRead(b *testing.B, log *eventstore.Log) {
	ctx := context.Background()
	nc, err := log.NewConn("bench-raw")
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	last, _ := log.LastSeq(ctx)
	cons, err := js.OrderedConsumer(ctx, log.StreamName(), jetstream.OrderedConsumerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		b.Fatal(err)
	}
	defer it.Stop()
	for {
		m, err := it.Next()
		if err != nil {
			b.Fatal(err)
		}
		if md, _ := m.Metadata(); md.Sequence.Stream == last {
			return
		}
	}
}

// catchUp runs the roomstats consumer (stats fold, a durable consumer
// named per round) from the beginning until it has every event.
func catchUp(b *testing.B, log *eventstore.Log, round int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := stats.New()
	var n atomic.Int64
	var saved cursor.Cursor
	c, err := consume.New(consume.Config{Log: log, Name: fmt.Sprint("bench", round), Logger: quiet(),
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
