package consume_test

import (
	"bytes"
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections/consume"
	"github.com/roomlog/roomlog/projections/cursor"
)

// sink is an application: the events it folded and the cursor it saved.
type sink struct {
	mu     sync.Mutex
	seen   []cursor.Cursor
	saved  cursor.Cursor
	parked []consume.Parked
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// consumer makes a consumer of log, configured by cfg, that folds into s
// every event fail (if set) has no error for, saves the cursor in s, and
// lists in s what it parks.
func (s *sink) consumer(t *testing.T, log *eventstore.Log, cfg consume.Config,
	fail func(cursor.Event) error) *consume.Consumer {
	t.Helper()
	cfg.Log = log
	if cfg.Logger == nil {
		cfg.Logger = estest.Logger(t)
	}
	cfg.Handle = func(_ context.Context, e cursor.Event) error {
		if fail != nil {
			if err := fail(e); err != nil {
				return err
			}
		}
		s.mu.Lock()
		s.seen = append(s.seen, e.Cursor)
		s.mu.Unlock()
		return nil
	}
	cfg.Save = func(_ context.Context, c cursor.Cursor) error {
		s.mu.Lock()
		s.saved = c
		s.mu.Unlock()
		return nil
	}
	cfg.Parked = func(p consume.Parked) {
		s.mu.Lock()
		s.parked = append(s.parked, p)
		s.mu.Unlock()
	}
	c, err := consume.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// inOrder fails the test unless s folded each event once, in log order.
func (s *sink) inOrder(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 1; i < len(s.seen); i++ {
		if !s.seen[i-1].Less(s.seen[i]) {
			t.Fatalf("event %d at %s after %s: out of order or repeated", i, s.seen[i], s.seen[i-1])
		}
	}
}

func (s *sink) run(t *testing.T, log *eventstore.Log, after cursor.Cursor) (stop func()) {
	t.Helper()
	c := s.consumer(t, log, consume.Config{Name: "test", After: after, MaxAttempts: 3, SaveEvery: 1}, nil)
	halt := start(t, c)
	return func() {
		if err := halt(); err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// start runs c until the returned function (or the test's end) stops it;
// that function returns what Run returned.
func start(t *testing.T, c *consume.Consumer) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var res error
	stop = func() error {
		once.Do(func() { cancel(); res = <-done })
		return res
	}
	t.Cleanup(func() { stop() })
	return stop
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	waitWithin(t, what, 20*time.Second, ok)
}

// waitWithin waits until ok, failing the test after d.
func waitWithin(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Live delivery goes through the watermill subscription: events written
// after the consumer caught up arrive in order, a poison message is parked
// after its attempts and the next one still arrives, and a consumer
// restarted from its saved cursor gets only what came after it.
func TestLiveDeliveryParksPoisonAndResumesFromTheSavedCursor(t *testing.T) {
	log := estest.Open(t, nil)
	first, _ := estest.WriteRooms(t, log, estest.RoomsConfig{Rooms: 3, Events: 50, Seed: 1})
	var s sink
	stop := s.run(t, log, cursor.Cursor{})
	waitFor(t, "the catch-up", func() bool { return s.count() >= first })
	// Written while the consumer follows the log.
	n, _ := estest.WriteRooms(t, log, estest.RoomsConfig{App: "live", Rooms: 2, Events: 20, Seed: 2})
	if _, err := log.Append(estest.Ctx(t), eventstore.Message{Subject: log.Subject("live", "room", "junk"),
		MsgID: ulid.Make().String(), Data: []byte("not json")}); err != nil {
		t.Fatal(err)
	}
	m, _ := estest.WriteRooms(t, log, estest.RoomsConfig{App: "after", Rooms: 1, Events: 5, Seed: 3})
	total := first + n + m
	waitFor(t, "the live events", func() bool { return s.count() >= total })
	stop()
	s.mu.Lock()
	for i := 1; i < len(s.seen); i++ {
		if !s.seen[i-1].Less(s.seen[i]) {
			t.Fatalf("event %d at %s after %s: out of order or repeated", i, s.seen[i], s.seen[i-1])
		}
	}
	if len(s.parked) != 1 || s.parked[0].Tries != 3 {
		t.Errorf("parked %+v, want the one undecodable message after 3 attempts", s.parked)
	}
	saved, seen := s.saved, len(s.seen)
	s.mu.Unlock()
	if seen != total || saved != cursor.End(s.seen[seen-1].Seq) {
		t.Fatalf("saw %d events, want %d; saved %s, last %s", seen, total, saved, s.seen[seen-1])
	}

	// Restarted from the saved cursor, it gets exactly what is new.
	var again sink
	stop = again.run(t, log, saved)
	k, _ := estest.WriteRooms(t, log, estest.RoomsConfig{App: "later", Rooms: 1, Events: 3, Seed: 4})
	waitFor(t, "the events after the restart", func() bool { return again.count() >= k })
	time.Sleep(100 * time.Millisecond) // anything repeated would show up by now
	stop()
	if again.count() != k || !saved.Less(again.seen[0]) {
		t.Errorf("after a restart at %s the consumer saw %v, want the %d new events only", saved, again.seen, k)
	}
}

// recorder is an application that records every cursor it is handed and
// every cursor it saves; if block is set, its first Handle waits for it to
// close.
type recorder struct {
	mu    sync.Mutex
	seen  []cursor.Cursor
	saves []cursor.Cursor
	block chan struct{}
}

func (a *recorder) last() (seen, saved cursor.Cursor, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.seen) > 0 {
		seen = a.seen[len(a.seen)-1]
	}
	if len(a.saves) > 0 {
		saved = a.saves[len(a.saves)-1]
	}
	return seen, saved, len(a.seen)
}

// run runs consumer name after cursor after with the given AckWait; stop
// ends it and returns what Run returned.
func (a *recorder) run(t *testing.T, log *eventstore.Log, name string, after cursor.Cursor, ackWait time.Duration) (stop func() error) {
	t.Helper()
	return start(t, a.consumer(t, log, name, after, ackWait))
}

// handed returns the cursors handed over so far.
func (a *recorder) handed() []cursor.Cursor {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]cursor.Cursor(nil), a.seen...)
}

// consumer is the consumer run runs.
func (a *recorder) consumer(t *testing.T, log *eventstore.Log, name string, after cursor.Cursor,
	ackWait time.Duration) *consume.Consumer {
	t.Helper()
	c, err := consume.New(consume.Config{Log: log, Name: name, After: after, SaveEvery: 1, AckWait: ackWait,
		Logger: estest.Logger(t),
		Handle: func(ctx context.Context, e cursor.Event) error {
			a.mu.Lock()
			first := len(a.seen) == 0
			a.seen = append(a.seen, e.Cursor)
			a.mu.Unlock()
			if first && a.block != nil {
				select {
				case <-a.block:
				case <-ctx.Done():
				}
			}
			return nil
		},
		Save: func(_ context.Context, c cursor.Cursor) error {
			a.mu.Lock()
			a.saves = append(a.saves, c)
			a.mu.Unlock()
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A consumer following the log live gets a burst of messages and is slow
// on the first one, past its AckWait: the server delivers again what was
// not acknowledged, after the consumer went past it. Those copies are
// acknowledged and skipped: every event is handed over once, in order, the
// cursor saved is never behind what was handed over, and a consumer
// started again from it is handed only what is new.
func TestRedeliveriesAreSkippedAndTheSavedCursorNeverMovesBack(t *testing.T) {
	const ackWait = 2 * time.Second
	log := estest.Open(t, nil)
	js := estest.JetStream(t, log)
	info := func() *jetstream.ConsumerInfo { return consumerInfo(js, log.StreamName(), "slow") }

	app := &recorder{block: make(chan struct{})}
	stop := app.run(t, log, "slow", cursor.Cursor{}, ackWait)
	// Caught up with the empty log, it follows the log live.
	waitWithin(t, "the durable consumer", 30*time.Second, func() bool { return info() != nil })
	events, messages := estest.WriteRooms(t, log, estest.RoomsConfig{Rooms: 3, Events: 40, Seed: 11})
	// The server delivers again what it delivered AckWait ago (the first
	// message, held by the slow Handle, first); then the Handle returns.
	waitWithin(t, "a redelivery", 60*time.Second, func() bool {
		i := info()
		return i != nil && i.NumRedelivered > 0
	})
	close(app.block)
	waitWithin(t, "every message acknowledged", 60*time.Second, func() bool {
		i := info()
		return i != nil && i.AckFloor.Stream >= uint64(messages) && i.NumAckPending == 0
	})
	// One more event, delivered after every copy the server sent again:
	// once it is handed over and acknowledged, nothing is left in flight
	// when Run stops (watermill-nats races a message it is still delivering
	// with the close of its channel).
	marker, markerMessages := estest.WriteRooms(t, log, estest.RoomsConfig{App: "marker", Rooms: 1, Events: 1, Seed: 13})
	events, messages = events+marker, messages+markerMessages
	waitWithin(t, "the event written last", 60*time.Second, func() bool {
		s, _, _ := app.last()
		i := info()
		return s.Seq >= uint64(messages) && i != nil && i.AckFloor.Stream >= uint64(messages) && i.NumAckPending == 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	lastSeen, saved, n := app.last()
	app.mu.Lock()
	t.Logf("%d events in %d messages written; handed over %d, last %s; saved cursors %v", events, messages, n, lastSeen, app.saves)
	for i := 1; i < len(app.seen); i++ {
		if !app.seen[i-1].Less(app.seen[i]) {
			t.Errorf("event %d at %s handed over after %s: out of order or repeated", i, app.seen[i], app.seen[i-1])
			break
		}
	}
	for i := 1; i < len(app.saves); i++ {
		if app.saves[i].Less(app.saves[i-1]) {
			t.Errorf("saved cursor %s after %s: the cursor moved back", app.saves[i], app.saves[i-1])
			break
		}
	}
	app.mu.Unlock()
	if n != events {
		t.Errorf("handed over %d events in the first run, want %d", n, events)
	}
	if saved.Less(lastSeen) {
		t.Errorf("Run stopped having handed over %s, but the cursor it saved last is %s: a restart repeats what lies between",
			lastSeen, saved)
	}

	// Started again from the saved cursor, with one new event after the
	// rest: that event is all it may hand over.
	again := &recorder{}
	stop = again.run(t, log, "slow", saved, ackWait)
	more, _ := estest.WriteRooms(t, log, estest.RoomsConfig{App: "later", Rooms: 1, Events: 1, Seed: 12})
	waitWithin(t, "the new event after the restart", 60*time.Second, func() bool {
		s, _, _ := again.last()
		return s.Seq > uint64(messages)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	again.mu.Lock()
	defer again.mu.Unlock()
	if len(again.seen) != more {
		t.Fatalf("restarted after saved cursor %s: handed over %d events, want the %d new one(s): %d events counted twice (first %v)",
			saved, len(again.seen), more, len(again.seen)-more, again.seen[:min(3, len(again.seen))])
	}
}

// Config.Save "is called every SaveEvery events, every SaveInterval, and
// when Run ends". A consumer far behind catches up with a plain read; with
// a Handle that takes a few milliseconds an event (a write to a database),
// SaveInterval bounds the work a crash repeats during the catch-up too.
func TestSaveIntervalIsHonouredDuringTheCatchUp(t *testing.T) {
	log := estest.Open(t, nil)
	events, _ := estest.WriteRooms(t, log, estest.RoomsConfig{Rooms: 5, Events: 400, Seed: 21})
	var mu sync.Mutex
	handled := 0
	var savedAt []int // events handled when each save came
	c, err := consume.New(consume.Config{Log: log, Name: "interval", SaveEvery: 1 << 30, SaveInterval: 100 * time.Millisecond,
		Logger: estest.Logger(t),
		Handle: func(context.Context, cursor.Event) error {
			time.Sleep(2 * time.Millisecond) // the application's own work
			mu.Lock()
			handled++
			mu.Unlock()
			return nil
		},
		Save: func(context.Context, cursor.Cursor) error {
			mu.Lock()
			savedAt = append(savedAt, handled)
			mu.Unlock()
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, c)
	waitWithin(t, "the catch-up", 120*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return handled >= events })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// 2 ms an event: 150 events take at least 300 ms, three SaveIntervals.
	mu.Lock()
	defer mu.Unlock()
	prev := 0
	for _, at := range append(savedAt, events) {
		if at-prev > 150 {
			t.Fatalf("catch-up of %d events at >= 2 ms each with SaveInterval 100 ms: saves came after %v events handed over, "+
				"want one at least every 150 (300 ms); a crash during the catch-up repeats everything since the last save", events, savedAt)
		}
		if at >= events {
			break
		}
		prev = at
	}
}

// Every event is handed over with its message's record as the log has it
// (eventstore.Record: "the same whichever way the record was read"),
// whether it was read in the catch-up or delivered live: its storage time
// (the log's own clock, which stats.Fold keeps time by), ID and headers.
// Found by the second reader: live records came with Subject, Seq and Data
// only, so roomstats kept time by the writing nodes' clocks for them, and
// by the log's for the catch-up.
func TestEveryRecordIsHandedOverAsTheLogHasIt(t *testing.T) {
	log := estest.Open(t, nil)
	first, _ := estest.WriteRooms(t, log, estest.RoomsConfig{Rooms: 1, Events: 5, Seed: 1})
	var mu sync.Mutex
	got := map[uint64]eventstore.Record{}
	var s sink
	stop := start(t, s.consumer(t, log, consume.Config{Name: "records"}, func(e cursor.Event) error {
		mu.Lock()
		got[e.Record.Seq] = *e.Record
		mu.Unlock()
		return nil
	}))
	waitFor(t, "the catch-up", func() bool { return s.count() >= first })
	live, _ := estest.WriteRooms(t, log, estest.RoomsConfig{App: "live", Rooms: 1, Events: 5, Seed: 2})
	waitFor(t, "the live events", func() bool { return s.count() >= first+live })
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	n := 0
	if _, err := log.Read(estest.Ctx(t), nil, 1, func(rec eventstore.Record) error {
		n++
		h := got[rec.Seq]
		if !h.Time.Equal(rec.Time) || h.MsgID != rec.MsgID || rec.MsgID == "" || !reflect.DeepEqual(h.Header, rec.Header) ||
			h.Subject != rec.Subject || !bytes.Equal(h.Data, rec.Data) {
			t.Errorf("message %d handed over stored at %v, ID %q, headers %v, subject %q; the log has %v, %q, %v, %q",
				rec.Seq, h.Time, h.MsgID, h.Header, h.Subject, rec.Time, rec.MsgID, rec.Header, rec.Subject)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != len(got) || n == 0 {
		t.Errorf("%d messages in the log, %d handed over", n, len(got))
	}
}
