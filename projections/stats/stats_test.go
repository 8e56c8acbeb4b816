package stats

import (
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/projections/cursor"
)

func TestStatsFoldOnceByCursor(t *testing.T) {
	at := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	ev := func(seq uint64, after time.Duration, p domain.Payload) *domain.Event {
		return &domain.Event{Type: p.EventType(), App: "app", Aggregate: domain.KindRoom, AggregateID: "r1", Seq: seq,
			Time: at.Add(after), Data: p}
	}
	s := New()
	events := []*domain.Event{
		ev(1, 0, &domain.MemberJoinedData{User: "a", Session: "sa"}),
		ev(2, time.Second, &domain.MemberJoinedData{User: "b", Session: "sb"}),
		ev(3, 2*time.Second, &domain.BroadcastSentData{From: "a", Body: "hi"}),
		ev(4, 3*time.Second, &domain.StreamPublishedData{Stream: "cam", User: "a"}),
		ev(5, 45*time.Second, &domain.MemberLeftData{User: "a", Session: "sa", Reason: domain.ReasonKickedByBackend}),
		ev(6, 90*time.Second, &domain.RoomDestroyedData{Reason: domain.DestroyBackend}),
	}
	for i, e := range events {
		c := cursor.Cursor{Seq: uint64(10 + i)}
		if !s.Apply(c, e) {
			t.Fatalf("event %d not counted", i)
		}
		// A redelivery of anything up to the cursor counts nothing.
		if s.Apply(c, e) || s.Apply(cursor.Cursor{Seq: 10}, events[0]) {
			t.Fatalf("event %d counted twice", i)
		}
	}
	r := s.Rooms["app/r1"]
	if s.Events != 6 || r.Joins != 2 || r.Leaves != 2 || r.Peak != 2 || len(r.Members) != 0 || r.Messages != 1 || r.Streams != 1 {
		t.Fatalf("room figures %+v, events %d", r, s.Events)
	}
	if s.Leaves[domain.ReasonKickedByBackend] != 1 || s.Leaves[domain.ReasonRoomDestroyed] != 1 {
		t.Errorf("leaves by reason %v", s.Leaves)
	}
	// a stayed 45 s (≤ 60 s bucket), b 89 s (≤ 300 s bucket).
	if s.Durations[2] != 1 || s.Durations[3] != 1 || s.DurationSum != 45+89 {
		t.Errorf("durations %v, sum %v", s.Durations, s.DurationSum)
	}
	if m := s.Minutes[at.Unix()/60]; m.Joins != 2 || m.Messages != 1 || m.Leaves != 1 {
		t.Errorf("first minute %+v", m)
	}
}
