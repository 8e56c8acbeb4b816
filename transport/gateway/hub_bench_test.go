package gateway

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/projections"
)

// BenchmarkHubDestroy fans out the destroy of a room of 20,000 members, all
// on this node, as the decider records it: in steps (more than one 1 MiB
// message can list; 5,555 members sent away first) and, for comparison, as
// one room.destroyed. The hub holds its one lock, every room of the node
// waiting, for as long.
//
//	go test -run '^$' -bench HubDestroy -benchtime 20x ./transport/gateway/
func BenchmarkHubDestroy(b *testing.B) {
	const members = 20_000
	key := domain.RoomKey("app", "big")
	room := &domain.Room{Head: domain.Head{Seq: 3, Time: time.Now()}, Exists: true,
		Members: map[domain.UserID]*domain.Member{}}
	var sessions []*session
	for i := range members {
		u := domain.UserID(fmt.Sprintf("user-%06d", i))
		s := domain.SessionID(fmt.Sprintf("01JABCDEFGHJKMNPQRST%06d", i))
		room.Members[u] = &domain.Member{User: u, UserName: "name", Session: s, Claim: 1}
		sessions = append(sessions, &session{id: s, user: domain.User{ID: u}, rooms: map[domain.RoomID]bool{"big": true}})
	}
	d, err := domain.NewDecider(domain.Config{Default: domain.DefaultPolicy()})
	if err != nil {
		b.Fatal(err)
	}
	v := domain.NewView()
	v.Rooms["big"] = room
	steps, err := d.Decide(v, domain.Meta{App: "app", ID: "01JCMD", Correlation: "01JCMD"}, domain.DestroyRoom{Room: "big"},
		time.Now())
	if err != nil {
		b.Fatal(err)
	}
	var records []projections.Record
	for i, st := range steps.Steps {
		records = append(records, projections.Record{Seq: uint64(100 + i), Events: st.Events})
	}
	one := []projections.Record{{Seq: 100, Events: []domain.Event{{Type: domain.RoomDestroyed, App: "app",
		Aggregate: domain.KindRoom, AggregateID: "big", Seq: 4, Data: &domain.RoomDestroyedData{Reason: domain.DestroyBackend}}}}}
	for _, c := range []struct {
		name    string
		records []projections.Record
	}{{"steps", records}, {"one_event", one}} {
		b.Run(c.name, func(b *testing.B) {
			h := newHub(projections.NewLive(projections.NewModel()), slog.New(slog.DiscardHandler))
			for b.Loop() {
				b.StopTimer()
				h.rooms[key] = map[*session]*membership{}
				for _, s := range sessions {
					s.rooms["big"] = true
					h.rooms[key][s] = &membership{last: 3, prev: 3, base: 3, told: true}
				}
				b.StartTimer()
				for _, rec := range c.records {
					h.dispatch(rec)
				}
				if len(h.rooms[key]) != 0 {
					b.Fatalf("%d sessions still in the room", len(h.rooms[key]))
				}
			}
		})
	}
}
