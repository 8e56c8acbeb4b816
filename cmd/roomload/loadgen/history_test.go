package loadgen_test

import (
	"context"
	"testing"

	"github.com/roomlog/roomlog/cmd/roomload/loadgen"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/eventstore/history"
)

// The history measurements page through every message once, in order.
func TestHistoryMeasurementsCountWhatHappened(t *testing.T) {
	log := estest.Open(t, nil)
	e := newEngine(t, log)
	ctx := estest.Ctx(t)
	key, err := loadgen.FillHistory(ctx, e, 500, 2)
	if err != nil {
		t.Fatal(err)
	}
	r, err := history.New(history.Config{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	res, err := loadgen.HistoryPages(ctx, r, key, 20, 500)
	if err != nil || res.Ops != 25 {
		t.Fatalf("paged %d pages: %v", res.Ops, err)
	}
	raw, err := loadgen.RawSubjectRead(ctx, log, log.Subject(string(key.App), string(key.Kind), key.ID))
	if err != nil || raw.Ops != 501 { // the login's message, then the broadcasts
		t.Fatalf("raw read %d messages: %v", raw.Ops, err)
	}
}

// BenchmarkHistoryPages reports the pages of 20 read per second paging back
// through a room of 20,000 broadcasts interleaved with as many of another
// room's.
func BenchmarkHistoryPages(b *testing.B) {
	log := estest.Open(b, nil)
	e := newEngine(b, log)
	ctx := context.Background()
	key, err := loadgen.FillHistory(ctx, e, 20_000, 1)
	if err != nil {
		b.Fatal(err)
	}
	r, err := history.New(history.Config{Log: log})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var rate float64
	for b.Loop() {
		res, err := loadgen.HistoryPages(ctx, r, key, 20, 20_000)
		if err != nil {
			b.Fatal(err)
		}
		rate = res.Rate()
	}
	b.ReportMetric(rate, "pages/s")
}
