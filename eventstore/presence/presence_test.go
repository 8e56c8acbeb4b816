package presence_test

import (
	"context"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/eventstore/presence"
)

func open(t *testing.T, log *eventstore.Log, e presence.Executor, clock *estest.Clock) *presence.Presence {
	t.Helper()
	return openMarked(t, log, e, clock, 0)
}

// openMarked is open with a bucket whose deletion markers expire after
// markerTTL (0: never).
func openMarked(t *testing.T, log *eventstore.Log, e presence.Executor, clock *estest.Clock, markerTTL time.Duration) *presence.Presence {
	t.Helper()
	records, err := log.OpenRecords(estest.Ctx(t), eventstore.RecordsConfig{Bucket: presence.DefaultBucket, MarkerTTL: markerTTL})
	if err != nil {
		t.Fatal(err)
	}
	p, err := presence.New(presence.Config{Records: records, Engine: e, Clock: clock, Timeout: 90 * time.Second,
		Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs p until the test ends and waits until it has read the records.
func run(t *testing.T, p *presence.Presence) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("presence: %v", err)
		}
	})
	select {
	case <-p.Ready():
	case <-estest.Ctx(t).Done():
		t.Fatal("presence never read its records")
	}
}

// A session whose last heartbeat is the timeout old is timed out for
// Lookup, even while its record is still there: the timeout is recorded in
// the log before the record is forgotten, and a resume in between must be
// refused (seed case 2). No watcher runs here, so nothing fires.
func TestPresenceLookupCountsAnExpiredRecordAsTimedOut(t *testing.T) {
	log := estest.Open(t, nil)
	clock := estest.NewClock(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	p := open(t, log, estest.Engine(t, log, nil, nil), clock)
	if _, ok, err := p.Lookup(estest.Ctx(t), "s1"); err != nil || ok {
		t.Fatalf("a session never heard from: alive %v, %v", ok, err)
	}
	if err := p.Beat(estest.Ctx(t), estest.App, "s1"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(89 * time.Second)
	if r, ok, err := p.Lookup(estest.Ctx(t), "s1"); err != nil || !ok || r.App != estest.App {
		t.Fatalf("89 s after a heartbeat: %+v, alive %v, %v", r, ok, err)
	}
	clock.Advance(time.Second)
	if r, ok, err := p.Lookup(estest.Ctx(t), "s1"); err != nil || ok || r.Session != "s1" {
		t.Fatalf("90 s after a heartbeat: %+v, alive %v, %v; want the record, timed out", r, ok, err)
	}
}

// A silent session is timed out when its timeout runs out, once, even with
// two nodes watching; one heard from meanwhile is left alone; a timed-out
// session's record is forgotten.
func TestSilentSessionsTimeOutOnceAndOthersAreLeftAlone(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	clock := estest.NewClock(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	e := estest.Engine(t, log, l, clock)
	a, b := open(t, log, e, clock), open(t, log, estest.Engine(t, log, l, clock), clock)
	run(t, a)
	run(t, b)
	for _, s := range []domain.SessionID{"quiet", "talker"} {
		estest.Exec(t, e, estest.Login(s, domain.UserID(s), "r1"))
		if err := a.Beat(estest.Ctx(t), estest.App, s); err != nil {
			t.Fatal(err)
		}
	}
	estest.Eventually(t, "both nodes track both sessions", func() bool { return a.Tracked() == 2 && b.Tracked() == 2 })
	clock.Advance(60 * time.Second)
	if err := b.Beat(estest.Ctx(t), estest.App, "talker"); err != nil {
		t.Fatal(err)
	}
	// Wait until both watchers saw the new beat (its revision), so the old
	// timer cannot fire for it.
	estest.Eventually(t, "the beat reaches both nodes", func() bool {
		r, _, _ := a.Lookup(estest.Ctx(t), "talker")
		return r.LastSeen.Equal(clock.Now().UTC())
	})
	clock.Advance(30 * time.Second) // quiet's timeout; talker has 60 s left
	estest.Eventually(t, "the quiet session leaves its room", func() bool {
		_, in := estest.Room(l, "r1").Members["quiet"]
		return !in
	})
	if _, in := estest.Room(l, "r1").Members["talker"]; !in {
		t.Fatal("a session heard from 30 s ago was timed out")
	}
	estest.Eventually(t, "the timed-out session is forgotten", func() bool { return a.Tracked() == 1 && b.Tracked() == 1 })
	estest.Sync(t, log, l)
	timeouts := 0
	_, err := log.Read(estest.Ctx(t), []string{log.Subject(string(estest.App), string(domain.KindSession), "quiet")}, 1,
		func(rec eventstore.Record) error {
			evs, err := domain.DecodeEvents(rec.Data)
			for _, ev := range evs {
				if ev.Type == domain.SessionTimedOut {
					timeouts++
				}
			}
			return err
		})
	if err != nil {
		t.Fatal(err)
	}
	if timeouts != 1 {
		t.Errorf("the session's history holds %d timeouts, want 1", timeouts)
	}
}
