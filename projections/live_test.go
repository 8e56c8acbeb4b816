package projections

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/roomlog/roomlog/domain"
)

// WaitFor returns only once the subscribers were told of the record, not as
// soon as it is folded: a gateway that waits for its own command's events
// relies on the hub having sent them (a switch's Logout from the old room
// before the new room's Logined).
func TestWaitForWaitsForTheSubscribers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLive(NewModel())
		release := make(chan struct{})
		l.Subscribe(func(Record) { <-release })
		go l.Apply(Record{Seq: 5, Events: []domain.Event{{Type: domain.RoomCreated, App: "app",
			Aggregate: domain.KindRoom, AggregateID: "r1", Seq: 1, Data: &domain.RoomCreatedData{}}}})
		synctest.Wait() // folded; the subscriber holds on
		if l.Cursor() != 5 {
			t.Fatalf("cursor %d after the fold, want 5", l.Cursor())
		}
		done := make(chan error, 1)
		go func() { done <- l.WaitFor(context.Background(), 5) }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("WaitFor returned (%v) while the subscriber was still busy", err)
		default:
		}
		close(release)
		synctest.Wait()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatal("WaitFor still waiting after the subscriber finished")
		}
		l.Close()
	})
}

func roomCreated(seq uint64, room string) Record {
	return Record{Seq: seq, Events: []domain.Event{{Type: domain.RoomCreated, App: "app",
		Aggregate: domain.KindRoom, AggregateID: room, Seq: 1, Data: &domain.RoomCreatedData{}}}}
}

// A snapshot holds the model only while it copies it: the fold (and the
// fan-out, the logins and the timekeeper that wait for it) goes on while the
// copy is serialized, and the snapshot is the model as it was copied.
func TestSnapshotDoesNotHoldTheFoldWhileItSerializes(t *testing.T) {
	l := NewLive(NewModel())
	l.Apply(roomCreated(1, "r1"))
	serializing, folded := make(chan struct{}), make(chan struct{})
	afterClone = func() {
		close(serializing)
		<-folded
	}
	defer func() { afterClone = nil }()
	type result struct {
		snap Snapshot
		err  error
	}
	done := make(chan result, 1)
	go func() {
		s, err := l.Snapshot("test")
		done <- result{s, err}
	}()
	<-serializing
	applied := make(chan struct{})
	go func() {
		l.Apply(roomCreated(2, "r2"))
		close(applied)
	}()
	select {
	case <-applied:
	case <-time.After(10 * time.Second):
		t.Fatal("the fold waited for the snapshot's serialization")
	}
	close(folded)
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	m, err := Unmarshal(res.snap.Data)
	if err != nil {
		t.Fatal(err)
	}
	if res.snap.Cursor != 1 || m.Cursor != 1 || m.Apps["app"].Rooms["r2"] != nil || m.Apps["app"].Rooms["r1"] == nil {
		t.Fatalf("the snapshot is at cursor %d (%d in its data), want the model as copied, at 1", res.snap.Cursor, m.Cursor)
	}
	if l.Cursor() != 2 {
		t.Fatalf("live cursor %d, want 2", l.Cursor())
	}
}

// An engine loading an aggregate from the model waits for the fold, not for
// the fan-out: a subscriber that is behind (a hub with a burst to send)
// does not hold up the commands that need a room's state.
func TestStateWaitsForTheFoldNotTheSubscribers(t *testing.T) {
	l := NewLive(NewModel())
	release := make(chan struct{})
	l.Subscribe(func(Record) { <-release })
	defer func() { close(release); l.Close() }()
	l.Apply(roomCreated(1, "r1"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	state, cursor, ok, err := l.State(ctx, domain.RoomKey("app", "r1"), 1)
	if err != nil || !ok || cursor != 1 {
		t.Fatalf("State with a subscriber behind = %v, cursor %d, ok %v, err %v; want the folded room at once", state, cursor, ok, err)
	}
	short, stop := context.WithTimeout(ctx, 20*time.Millisecond)
	defer stop()
	if err := l.WaitFor(short, 1); err == nil {
		t.Fatal("WaitFor returned with its subscriber still busy")
	}
}
