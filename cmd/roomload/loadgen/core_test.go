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

func TestQuickCore(t *testing.T) {
	for _, mode := range []eventstore.SyncMode{eventstore.SyncModeInterval, eventstore.SyncModeAlways} {
		log := estest.Open(t, func(c *eventstore.Config) { c.Sync = mode })
		d, _ := domain.NewDecider(domain.Config{Default: loadgen.Policy()})
		e, _ := engine.New(engine.Config{Log: log, Decider: d, Logger: estest.Logger(t)})
		ctx := context.Background()
		raw, err := loadgen.RawAppends(ctx, log, 1000, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		raw2, err := loadgen.RawAppendsPerRoom(ctx, log, 1000, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %v", mode, raw2)
		s, err := loadgen.Setup(ctx, e, 1000)
		if err != nil {
			t.Fatal(err)
		}
		eng := loadgen.EngineCommands(ctx, e, s, 3*time.Second)
		t.Logf("%s: %v | %v | ratio %.2f", mode, raw, eng, eng.Rate()/raw.Rate())
	}
}

func TestQuickRebuild(t *testing.T) {
	log := estest.Open(t, nil)
	d, _ := domain.NewDecider(domain.Config{Default: loadgen.Policy()})
	e, _ := engine.New(engine.Config{Log: log, Decider: d, Logger: estest.Logger(t)})
	ctx := context.Background()
	start := time.Now()
	ev, msgs, err := loadgen.Fill(ctx, e, 1000, 200_000)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("filled %d events in %d messages in %v", ev, msgs, time.Since(start))
	for range 3 {
		raw, err := loadgen.RawRead(ctx, log)
		if err != nil {
			t.Fatal(err)
		}
		rb, h, err := loadgen.Rebuild(ctx, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%v | %v | ratio %.2f | hash %s", raw, rb, rb.Rate()/raw.Rate(), h[:12])
	}
}
