package projections

import (
	"context"
	"testing"
	"testing/synctest"

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
	})
}
