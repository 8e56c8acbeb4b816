package consume_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections/consume"
	"github.com/roomlog/roomlog/projections/cursor"
)

// The logs of this package may be purged (as retention or an operator
// would), so that the consumer's expiry check can be exercised.
func TestMain(m *testing.M) {
	eventstore.AllowTamperingInTests()
	os.Exit(m.Run())
}

func rawStream(t *testing.T, log *eventstore.Log) (jetstream.Stream, func()) {
	t.Helper()
	nc, err := log.NewConn("expiry")
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(estest.Ctx(t), log.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	return s, nc.Close
}

// runFor runs a consumer after cursor after for at most d and returns what
// Run returned and the cursors it handed over.
func runFor(t *testing.T, log *eventstore.Log, after cursor.Cursor, d time.Duration) (error, []cursor.Cursor) {
	t.Helper()
	var mu sync.Mutex
	var seen []cursor.Cursor
	c, err := consume.New(consume.Config{Log: log, Name: "expiry", After: after, Logger: estest.Logger(t),
		Handle: func(_ context.Context, e cursor.Event) error {
			mu.Lock()
			seen = append(seen, e.Cursor)
			mu.Unlock()
			return nil
		},
		Save: func(context.Context, cursor.Cursor) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	err = c.Run(ctx)
	mu.Lock()
	defer mu.Unlock()
	return err, seen
}

// A consumer saved at cursor 5 of a 20-message log; then every message is
// removed (a purge, or retention removing everything because the log was
// idle longer than the max age). Events 6..20 were never seen: Run must say
// ErrCursorExpired, as it does when a single message is kept.
func TestACursorIntoALogWhoseMessagesWereAllRemovedHasExpired(t *testing.T) {
	log := estest.Open(t, nil)
	_, messages := estest.WriteRooms(t, log, estest.RoomsConfig{Rooms: 2, Events: 30, Seed: 7})
	if messages < 10 {
		t.Fatalf("only %d messages", messages)
	}
	s, done := rawStream(t, log)
	defer done()
	if err := s.Purge(estest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	err, seen := runFor(t, log, cursor.Cursor{Seq: 5, Index: 1<<31 - 1}, 30*time.Second) // Run returns early: generous for a loaded machine
	if !errors.Is(err, consume.ErrCursorExpired) {
		t.Fatalf("cursor 5 of a %d-message log whose messages were all removed: Run returned %v (handled %d events), "+
			"want ErrCursorExpired: events after the cursor were lost without a word", messages, err, len(seen))
	}
}

// A consumer stopped between the two events of one message (cursor k.0,
// with k.1 not yet handled). Retention then removes message k (the log now
// starts at k+1). Event k.1 is lost: Run must say ErrCursorExpired, not
// carry on from k+1 as if the cursor's message had been finished.
func TestACursorWithinAMessageThatWasRemovedHasExpired(t *testing.T) {
	log := estest.Open(t, nil)
	estest.WriteRooms(t, log, estest.RoomsConfig{Rooms: 2, Events: 30, Seed: 7})
	// Find a message with at least two events, past the first one.
	var k uint64
	_, err := cursor.Read(estest.Ctx(t), log, nil, cursor.Cursor{}, func(e cursor.Event) error {
		if k == 0 && e.Cursor.Seq > 1 && e.Cursor.Index == 1 {
			k = e.Cursor.Seq
		}
		return nil
	})
	if err != nil || k == 0 {
		t.Fatalf("no message with two events (%v)", err)
	}
	s, done := rawStream(t, log)
	defer done()
	if err := s.Purge(estest.Ctx(t), jetstream.WithPurgeSequence(k+1)); err != nil {
		t.Fatal(err)
	}
	err, seen := runFor(t, log, cursor.Cursor{Seq: k, Index: 0}, 30*time.Second) // Run returns early: generous for a loaded machine
	if !errors.Is(err, consume.ErrCursorExpired) {
		first := "none"
		if len(seen) > 0 {
			first = seen[0].String()
		}
		t.Fatalf("after cursor %d.0, with message %d (which held event %d.1) removed: Run returned %v and handed over "+
			"%d events starting at %s, want ErrCursorExpired: event %d.1 was lost without a word", k, k, k, err, len(seen), first, k)
	}
}

// The other way round: a consumer that finished every message it saw, whose
// last message retention then removed, has lost nothing, and carries on.
func TestACursorPastAFinishedMessageThatWasRemovedHasNotExpired(t *testing.T) {
	log := estest.Open(t, nil)
	estest.WriteRooms(t, log, estest.RoomsConfig{Rooms: 2, Events: 30, Seed: 7})
	var mu sync.Mutex
	var saved cursor.Cursor
	var seen int
	c, err := consume.New(consume.Config{Log: log, Name: "expiry", Logger: estest.Logger(t),
		Handle: func(context.Context, cursor.Event) error { mu.Lock(); seen++; mu.Unlock(); return nil },
		Save:   func(_ context.Context, c cursor.Cursor) error { mu.Lock(); saved = c; mu.Unlock(); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	estest.Eventually(t, "the consumer handles all 30 events", func() bool { mu.Lock(); defer mu.Unlock(); return seen == 30 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s, closeConn := rawStream(t, log)
	defer closeConn()
	if err := s.Purge(estest.Ctx(t), jetstream.WithPurgeSequence(saved.Seq+1)); err != nil {
		t.Fatal(err)
	}
	err, again := runFor(t, log, saved, 500*time.Millisecond)
	if err != nil || len(again) != 0 {
		t.Fatalf("after saved cursor %s, with every message up to it removed: Run returned %v and handed over %d events, "+
			"want nothing lost and nothing to do", saved, err, len(again))
	}
}

// The default consumer reads room subjects only, but the stream also holds
// session and stream-registry messages, and a leave ends with one (the
// session's room_released after the room's member_left). A consumer that
// handled every room event, whose log retention then empties (an idle
// deployment past max age), lost nothing: it saved a cursor past those
// other messages too, and starts again without a word.
func TestACaughtUpConsumerOfALogThatWasEmptiedHasNotExpired(t *testing.T) {
	log := estest.Open(t, nil)
	e := estest.Engine(t, log, nil, nil)
	estest.Exec(t, e, estest.Login("s1", "u1", "r1"))
	estest.Exec(t, e, estest.Login("s2", "u2", "r1"))
	estest.Exec(t, e, domain.LeaveRoom{Session: "s1", Room: "r1"}) // ends with a session message

	var mu sync.Mutex
	var saved cursor.Cursor
	var seen int
	want := 0
	if _, err := cursor.Read(estest.Ctx(t), log, []string{log.KindFilter(string(domain.KindRoom))}, cursor.Cursor{},
		func(cursor.Event) error { want++; return nil }); err != nil {
		t.Fatal(err)
	}
	c, err := consume.New(consume.Config{Log: log, Name: "expiry", Logger: estest.Logger(t),
		Handle: func(context.Context, cursor.Event) error { mu.Lock(); seen++; mu.Unlock(); return nil },
		Save:   func(_ context.Context, c cursor.Cursor) error { mu.Lock(); saved = c; mu.Unlock(); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	estest.Eventually(t, "the consumer handles every room event", func() bool { mu.Lock(); defer mu.Unlock(); return seen == want })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	last, err := log.LastSeq(estest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("saved %s, last stream seq %d", saved, last)
	s, closeConn := rawStream(t, log)
	defer closeConn()
	if err := s.Purge(estest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	err, again := runFor(t, log, saved, 500*time.Millisecond)
	if errors.Is(err, consume.ErrCursorExpired) {
		t.Fatalf("caught-up room consumer (saved %s; stream's last message %d is not a room's) refused after the log "+
			"was emptied: %v (nothing it reads was lost)", saved, last, err)
	}
	if err != nil || len(again) != 0 {
		t.Fatalf("Run: %v, %d events", err, len(again))
	}
}

// A Run that fails with ErrCursorExpired saves nothing past the removed
// messages: started again from what it saved, it fails the same way. (A
// first version of saving before returning an error moved the cursor over
// the hole, and the second start went on without a word.)
func TestAnExpiredCursorIsNotSavedPastTheHole(t *testing.T) {
	log := estest.Open(t, nil)
	_, messages := estest.WriteRooms(t, log, estest.RoomsConfig{Rooms: 2, Events: 30, Seed: 7})
	if messages < 12 {
		t.Fatalf("only %d messages", messages)
	}
	s, done := rawStream(t, log)
	defer done()
	if err := s.Purge(estest.Ctx(t), jetstream.WithPurgeSequence(10)); err != nil { // keeps 10..
		t.Fatal(err)
	}
	run := func(after cursor.Cursor) (error, []cursor.Cursor, int) {
		var mu sync.Mutex
		var saves []cursor.Cursor
		handed := 0
		c, err := consume.New(consume.Config{Log: log, Name: "expiry2", After: after, Logger: estest.Logger(t),
			Handle: func(context.Context, cursor.Event) error { mu.Lock(); handed++; mu.Unlock(); return nil },
			Save: func(_ context.Context, c cursor.Cursor) error {
				mu.Lock()
				saves = append(saves, c)
				mu.Unlock()
				return nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = c.Run(ctx)
		mu.Lock()
		defer mu.Unlock()
		return err, saves, handed
	}
	after := cursor.End(5)
	err, saves, _ := run(after)
	if !errors.Is(err, consume.ErrCursorExpired) {
		t.Fatalf("first run: %v, want ErrCursorExpired", err)
	}
	if len(saves) > 0 {
		after = saves[len(saves)-1]
	}
	err, _, handed := run(after)
	if !errors.Is(err, consume.ErrCursorExpired) {
		t.Fatalf("Run returned ErrCursorExpired for cursor 5 (messages 6..9 removed) and saved %v; started again from "+
			"the saved cursor %s it returned %v and handed over %d events: messages 6..9 lost without ErrCursorExpired",
			saves, after, err, handed)
	}
}

// A Save that keeps failing: Run returns the save's error, once, and does
// not try to save again on its way out.
func TestAFailingSaveIsReportedOnce(t *testing.T) {
	log := estest.Open(t, nil)
	estest.WriteRooms(t, log, estest.RoomsConfig{Rooms: 1, Events: 5, Seed: 3})
	var mu sync.Mutex
	calls := 0
	c, err := consume.New(consume.Config{Log: log, Name: "savefail", SaveInterval: 100 * time.Millisecond,
		Logger: estest.Logger(t),
		Handle: func(context.Context, cursor.Event) error { return nil },
		Save: func(context.Context, cursor.Cursor) error {
			mu.Lock()
			calls++
			mu.Unlock()
			return errors.New("disk full")
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = c.Run(ctx)
	mu.Lock()
	defer mu.Unlock()
	if err == nil || strings.Count(err.Error(), "disk full") != 1 {
		t.Fatalf("Run with a Save that fails: %q (Save called %d times), want the failure reported once", err, calls)
	}
}

// Retention removes messages a running consumer has not reached yet (its
// Handle blocked for that long): at its next save Run fails with
// ErrCursorExpired, as a start would, and what it saved is before the hole.
// Before, the watermark moved the cursor over the hole: the removed events
// were skipped without a word, then and at every later start.
func TestRetentionOvertakingARunningConsumerIsSeen(t *testing.T) {
	log := estest.Open(t, nil)
	// More than a read buffers ahead of a blocked Handle.
	_, messages := estest.WriteRooms(t, log, estest.RoomsConfig{Rooms: 5, Events: 20000, Seed: 9})
	blocked, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var saves []cursor.Cursor
	c, err := consume.New(consume.Config{Log: log, Name: "overtaken", SaveInterval: 100 * time.Millisecond,
		Logger: estest.Logger(t),
		Handle: func(_ context.Context, e cursor.Event) error {
			if e.Cursor.Seq == 1 && e.Cursor.Index == 0 {
				close(blocked)
				<-release
			}
			return nil
		},
		Save: func(_ context.Context, c cursor.Cursor) error {
			mu.Lock()
			saves = append(saves, c)
			mu.Unlock()
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(estest.Ctx(t)) }()
	<-blocked
	s, closeStream := rawStream(t, log)
	defer closeStream()
	keep := uint64(messages - 1000)
	if err := s.Purge(estest.Ctx(t), jetstream.WithPurgeSequence(keep)); err != nil {
		t.Fatal(err)
	}
	// Blocked for longer than a SaveInterval: what the consumer knew of
	// the log's start is old by then (it asks at most once an interval).
	time.Sleep(300 * time.Millisecond)
	close(release)
	if err := <-done; !errors.Is(err, consume.ErrCursorExpired) {
		t.Fatalf("Run with messages up to %d removed while its Handle blocked: %v, want ErrCursorExpired", keep-1, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := len(saves); n > 0 && !saves[n-1].Less(cursor.Cursor{Seq: keep - 1}) {
		t.Fatalf("saved %s, past the removed messages (up to %d)", saves[n-1], keep-1)
	}
}

// A saved cursor past the log's last message is not of this log (the log
// was reset, or the state file is another deployment's). Run used to take
// it as it was: the durable consumer started at that stream sequence, and
// every event appended until the log grew past it was skipped without a
// word. It now fails with ErrCursorAhead, whatever Expired says (no event
// was removed). A cursor at the last message is the end, not ahead.
func TestACursorPastTheLogsEndIsRefused(t *testing.T) {
	log := estest.Open(t, nil)
	estest.WriteRooms(t, log, estest.RoomsConfig{Rooms: 2, Events: 10, Seed: 1})
	last, err := log.LastSeq(estest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	err, seen := runFor(t, log, cursor.End(last+1000), 30*time.Second) // Run returns early: generous for a loaded machine
	if !errors.Is(err, consume.ErrCursorAhead) || !strings.Contains(err.Error(), cursor.End(last+1000).String()) {
		t.Errorf("cursor %d on a log whose last message is %d: Run returned %v (handled %d events), want ErrCursorAhead "+
			"naming the cursor", last+1000, last, err, len(seen))
	}
	if err, _ := runFor(t, log, cursor.End(last), time.Second); err != nil {
		t.Errorf("cursor at the log's last message (%d): Run returned %v, want it to run until stopped", last, err)
	}
}
