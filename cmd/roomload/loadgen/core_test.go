package loadgen_test

import (
	"context"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomload/loadgen"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
)

func newEngine(tb testing.TB, log *eventstore.Log) *engine.Engine {
	tb.Helper()
	d, err := domain.NewDecider(domain.Config{Default: loadgen.Policy()})
	if err != nil {
		tb.Fatal(err)
	}
	e, err := engine.New(engine.Config{Log: log, Decider: d, Logger: estest.Logger(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// The measurements measure: every op they count happened, and a rebuild of
// what Fill wrote gives the same state each time.
func TestMeasurementsCountWhatHappened(t *testing.T) {
	log := estest.Open(t, nil)
	e := newEngine(t, log)
	ctx := context.Background()
	raw, err := loadgen.RawAppends(ctx, log, 50, 200*time.Millisecond)
	if err != nil || raw.Ops == 0 || raw.Failures != 0 {
		t.Fatalf("raw appends: %v, %v", raw, err)
	}
	perRoom, err := loadgen.RawAppendsPerRoom(ctx, log, 50, 200*time.Millisecond)
	if err != nil || perRoom.Ops == 0 || perRoom.Failures != 0 {
		t.Fatalf("raw appends per room: %v, %v", perRoom, err)
	}
	before, _ := log.LastSeq(ctx)
	if before != uint64(raw.Ops+perRoom.Ops) {
		t.Errorf("the log holds %d messages, the raw measurements counted %d", before, raw.Ops+perRoom.Ops)
	}
	sessions, err := loadgen.Setup(ctx, e, 50)
	if err != nil {
		t.Fatal(err)
	}
	cmds := loadgen.EngineCommands(ctx, e, sessions, 200*time.Millisecond)
	if cmds.Ops == 0 || cmds.Failures != 0 {
		t.Fatalf("engine commands: %v", cmds)
	}
	events, msgs, err := loadgen.Fill(ctx, e, 20, 2000)
	if err != nil || events < 2000 || msgs == 0 {
		t.Fatalf("fill: %d events in %d messages, %v", events, msgs, err)
	}
	read, err := loadgen.RawRead(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	last, _ := log.LastSeq(ctx)
	if read.Ops != int64(last) {
		t.Errorf("the raw read counted %d messages of %d", read.Ops, last)
	}
	rb1, h1, err := loadgen.Rebuild(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	_, h2, err := loadgen.Rebuild(ctx, log)
	if err != nil || h1 != h2 || rb1.Ops != int64(last) {
		t.Fatalf("rebuilds: %v %s %s %v", rb1, h1, h2, err)
	}
}

// BenchmarkEngineVsRawAppends reports engine commands/s and its ratio to raw
// appends with the same headers, measured in the same run, for each
// durability mode. roomload core does the same with medians of rounds.
func BenchmarkEngineVsRawAppends(b *testing.B) {
	for _, mode := range []eventstore.SyncMode{eventstore.SyncModeInterval, eventstore.SyncModeAlways} {
		b.Run(string(mode), func(b *testing.B) {
			log := estest.Open(b, func(c *eventstore.Config) { c.Sync = mode })
			e := newEngine(b, log)
			ctx := context.Background()
			sessions, err := loadgen.Setup(ctx, e, 1000)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			var raw, eng float64
			for b.Loop() {
				r, err := loadgen.RawAppends(ctx, log, 1000, time.Second)
				if err != nil {
					b.Fatal(err)
				}
				c := loadgen.EngineCommands(ctx, e, sessions, time.Second)
				raw, eng = r.Rate(), c.Rate()
			}
			b.ReportMetric(raw, "raw-appends/s")
			b.ReportMetric(eng, "engine-cmds/s")
			b.ReportMetric(eng/raw, "engine/raw")
		})
	}
}

// BenchmarkRebuildVsRawRead reports a projection rebuild's rate and its
// ratio to a raw read of the same stream, over 200,000 events.
func BenchmarkRebuildVsRawRead(b *testing.B) {
	log := estest.Open(b, nil)
	e := newEngine(b, log)
	ctx := context.Background()
	if _, _, err := loadgen.Fill(ctx, e, 1000, 200_000); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var raw, rb float64
	for b.Loop() {
		r, err := loadgen.RawRead(ctx, log)
		if err != nil {
			b.Fatal(err)
		}
		m, _, err := loadgen.Rebuild(ctx, log)
		if err != nil {
			b.Fatal(err)
		}
		raw, rb = r.Rate(), m.Rate()
	}
	b.ReportMetric(raw, "raw-msgs/s")
	b.ReportMetric(rb, "rebuild-msgs/s")
	b.ReportMetric(rb/raw, "rebuild/raw")
}
