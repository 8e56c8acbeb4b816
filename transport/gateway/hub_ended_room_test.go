package gateway

import (
	"log/slog"
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/projections"
)

// A session's login lands (its engine's cache holds the room with
// the session in it, at stream sequence 20), then the room is destroyed by
// another node (a backend destroy at stream sequence 30). This node's
// projection folds both before the gateway registers the session: the
// destroyed room leaves the projection (it holds what is live only). The
// hub then has nothing newer than the engine's stale copy, enters the
// session into a room that no longer exists, and the destroy, already
// dispatched to nobody, never reaches it: the client was told Logined in a
// room it is not in, for good. A room the projection no longer holds once it
// has folded past the session's command has ended: the hub does not enter it.
func TestTheHubDoesNotEnterASessionIntoARoomDestroyedMeanwhile(t *testing.T) {
	key := domain.RoomKey("app", "r1")
	created := projections.Record{Seq: 10, Events: []domain.Event{
		{Type: domain.RoomCreated, App: "app", Aggregate: domain.KindRoom, AggregateID: "r1", Seq: 1,
			Data: &domain.RoomCreatedData{By: "u1", Session: "s-u1"}},
		{Type: domain.RoomMemberJoined, App: "app", Aggregate: domain.KindRoom, AggregateID: "r1", Seq: 2,
			Data: &domain.MemberJoinedData{User: "u1", Session: "s-u1", Role: domain.Anchor}}}}
	joinedU2 := projections.Record{Seq: 20, Events: []domain.Event{
		{Type: domain.RoomMemberJoined, App: "app", Aggregate: domain.KindRoom, AggregateID: "r1", Seq: 3,
			Data: &domain.MemberJoinedData{User: "u2", Session: "s-u2", Role: domain.Anchor}}}}
	destroyed := projections.Record{Seq: 30, Events: []domain.Event{
		{Type: domain.RoomDestroyed, App: "app", Aggregate: domain.KindRoom, AggregateID: "r1", Seq: 4,
			Data: &domain.RoomDestroyedData{Reason: domain.DestroyReason("backend")}}}}

	// The engine's cache: the room right after u2's own join (stream seq 20).
	engineRoom := &domain.Room{}
	for _, rec := range []projections.Record{created, joinedU2} {
		for i := range rec.Events {
			engineRoom.Apply(&rec.Events[i])
		}
	}

	live := projections.NewLive(projections.NewModel())
	h := newHub(live, slog.New(slog.DiscardHandler))
	live.Subscribe(h.dispatch)
	for _, rec := range []projections.Record{created, joinedU2, destroyed} {
		live.Apply(rec)
	}
	if err := live.WaitFor(t.Context(), 30); err != nil {
		t.Fatal(err)
	}
	live.Read(func(m *projections.Model) {
		if a := m.App("app"); a != nil && a.Rooms["r1"] != nil {
			t.Fatalf("setup: the destroyed room is still in the projection")
		}
	})

	s := &session{id: "s-u2", user: domain.User{ID: "u2"}, rooms: map[domain.RoomID]bool{"r1": true}}
	var told *domain.Room
	m, _, in := h.enter(s, key, engineRoom, 20, false, func(r *domain.Room, _ bool) { told = r })
	if in || m != nil || told != nil {
		members := 0
		if told != nil {
			members = len(told.Members)
		}
		t.Fatalf("entered a room destroyed (stream seq 30, folded) after the session's join (stream seq 20): "+
			"in %v, membership %+v, told it is in a room of %d members (exists %v)", in, m, members, told != nil && told.Exists)
	}
}
