package consume_test

import (
	"context"
	"sync"
	"testing"
	"time"

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

func (s *sink) run(t *testing.T, log *eventstore.Log, after cursor.Cursor) (stop func()) {
	t.Helper()
	c, err := consume.New(consume.Config{Log: log, Name: "test", After: after, MaxAttempts: 3, SaveEvery: 1,
		Logger: estest.Logger(t),
		Handle: func(_ context.Context, e cursor.Event) error {
			s.mu.Lock()
			s.seen = append(s.seen, e.Cursor)
			s.mu.Unlock()
			return nil
		},
		Save: func(_ context.Context, c cursor.Cursor) error {
			s.mu.Lock()
			s.saved = c
			s.mu.Unlock()
			return nil
		},
		Parked: func(p consume.Parked) {
			s.mu.Lock()
			s.parked = append(s.parked, p)
			s.mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20 s", what)
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
