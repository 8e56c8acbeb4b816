package gateway

import (
	"log/slog"
	"testing"

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
			s := &session{id: "s-u2"}
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
