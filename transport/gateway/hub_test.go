package gateway

import (
	"log/slog"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/projections"
)

// joined is the record of user u's session joining room r1 as the room's
// seq-th event, at stream sequence 10*seq.
func joined(seq uint64, u domain.UserID) projections.Record {
	return projections.Record{Seq: 10 * seq, Events: []domain.Event{{Type: domain.RoomMemberJoined, App: "app",
		Aggregate: domain.KindRoom, AggregateID: "r1", Seq: seq,
		Data: &domain.MemberJoinedData{User: u, Session: domain.SessionID("s-" + u), Role: domain.Anchor}}}}
}

// A session enters a room with the newer of two states: the engine's (the
// projection has not folded the session's own join yet) or the
// projection's (another node wrote since, and the hub may have sent that to
// others already). It hears events only after the state it got.
func TestHubEntersWithTheNewerState(t *testing.T) {
	key := domain.RoomKey("app", "r1")
	fold := func(recs ...projections.Record) *domain.Room {
		r := &domain.Room{}
		for _, rec := range recs {
			for i := range rec.Events {
				r.Apply(&rec.Events[i])
			}
		}
		return r
	}
	for _, c := range []struct {
		name         string
		live, engine []projections.Record
		wantSeq      uint64
		wantMembers  int
	}{
		{"the projection is behind", []projections.Record{joined(1, "u1")},
			[]projections.Record{joined(1, "u1"), joined(2, "u2")}, 2, 2},
		{"the projection is ahead", []projections.Record{joined(1, "u1"), joined(2, "u2"), joined(3, "u3")},
			[]projections.Record{joined(1, "u1"), joined(2, "u2")}, 3, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			live := projections.NewLive(projections.NewModel())
			for _, rec := range c.live {
				live.Apply(rec)
			}
			h := newHub(live, slog.New(slog.DiscardHandler))
			s := &session{id: "s-u2", user: domain.User{ID: "u2"}}
			var got *domain.Room
			h.enter(s, key, fold(c.engine...), 0, false, func(r *domain.Room, _ bool) { got = r })
			if got.Seq != c.wantSeq || len(got.Members) != c.wantMembers {
				t.Fatalf("entered with seq %d and %d members, want %d and %d", got.Seq, len(got.Members),
					c.wantSeq, c.wantMembers)
			}
			if last := h.rooms[key][s].last; last != c.wantSeq {
				t.Fatalf("the session's fan-out starts after seq %d, want %d", last, c.wantSeq)
			}
		})
	}
}

// A resume reads what the room got since the session's replay from the log
// without holding the hub: a slow read stalls neither the fan-out of other
// rooms nor of this one.
func TestAResumeReadsTheLogOutsideTheHub(t *testing.T) {
	live := projections.NewLive(projections.NewModel())
	live.Apply(joined(1, "u1"))
	h := newHub(live, slog.New(slog.DiscardHandler))
	s := &session{id: "s-u1", user: domain.User{ID: "u1"}, rooms: map[domain.RoomID]bool{}}
	reading, unblock, resumed := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		resumed <- h.resume(s, domain.RoomKey("app", "r1"), 0, func(uint64) ([]projections.Record, error) {
			close(reading)
			<-unblock // the log is slow
			return []projections.Record{joined(1, "u1")}, nil
		})
	}()
	<-reading
	dispatched := make(chan struct{})
	go func() {
		defer close(dispatched)
		rec := joined(2, "u2")
		live.Apply(rec)
		h.dispatch(rec)
	}()
	select {
	case <-dispatched:
	case <-time.After(10 * time.Second):
		t.Error("the hub's fan-out waited for a resume's log read")
	}
	close(unblock)
	if err := <-resumed; err != nil {
		t.Fatal(err)
	}
	<-dispatched
	h.mu.Lock()
	m := h.rooms[domain.RoomKey("app", "r1")][s]
	h.mu.Unlock()
	if m == nil || m.last != 2 {
		t.Fatalf("after the resume the session's membership is %+v, want one that has seq 2", m)
	}
}

// A session the hub let go (its connection ended, or a resume elsewhere
// took it over) is registered in no room by a command of it still running:
// nothing would ever remove it, and the room's events would go on being
// built for it.
func TestAForgottenSessionEntersNoRoom(t *testing.T) {
	live := projections.NewLive(projections.NewModel())
	live.Apply(joined(1, "u1"))
	h := newHub(live, slog.New(slog.DiscardHandler))
	key := domain.RoomKey("app", "r1")
	s := &session{id: "s-u1", user: domain.User{ID: "u1"}, rooms: map[domain.RoomID]bool{}}
	h.forget(s)
	entered := false
	h.enter(s, key, nil, 0, false, func(*domain.Room, bool) { entered = true })
	if err := h.resume(s, key, 1, func(uint64) ([]projections.Record, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if m := h.rooms[key][s]; m != nil || entered {
		t.Fatalf("a forgotten session was registered in r1 (%+v; told it entered: %v)", m, entered)
	}
}
