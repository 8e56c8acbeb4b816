package loadgen_test

import (
	"context"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomload/loadgen"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/eventstore/history"
	"github.com/roomlog/roomlog/projections/timeline"
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

// BenchmarkAuditPagesVsRawRead pages through a room of 2,000 broadcasts
// (interleaved with as many of another room's) as the admin API's /history
// does, 100 events a page, checking every hash-chain link from the message
// before each page; the raw baseline reads the same subject's messages
// from the log, undecoded. Both report nanoseconds per event.
func BenchmarkAuditPagesVsRawRead(b *testing.B) {
	log := estest.Open(b, nil)
	e := newEngine(b, log)
	ctx := context.Background()
	key, err := loadgen.FillHistory(ctx, e, 2_000, 1)
	if err != nil {
		b.Fatal(err)
	}
	subject := log.Subject(string(key.App), string(key.Kind), key.ID)
	b.Run("pages", func(b *testing.B) {
		events := 0
		for b.Loop() {
			var after uint64
			for {
				page, more, err := timeline.Page(ctx, log, key.App, domain.RoomID(key.ID), after, time.Time{}, 100)
				if err != nil {
					b.Fatal(err)
				}
				events += len(page)
				if len(page) > 0 {
					after = page[len(page)-1].Seq
				}
				if !more {
					break
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events), "ns/event")
	})
	b.Run("raw", func(b *testing.B) {
		events := 0
		for b.Loop() {
			n, err := loadgen.RawSubjectRead(ctx, log, subject)
			if err != nil {
				b.Fatal(err)
			}
			events += int(n.Ops)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events), "ns/event")
	})
}
