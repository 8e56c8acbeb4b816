package tests

import (
	"fmt"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/domain/domaintest"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections"
)

// Thousands of random commands over many rooms and users, through a real
// engine on a real JetStream: the state folded live while they ran, the state
// of a cold replay, and the state of a replay from a snapshot taken half-way
// are byte-identical.
func TestReplayIsDeterministic(t *testing.T) {
	seeds, commands := []uint64{1, 2, 3, 4}, 1500
	if testing.Short() {
		seeds, commands = seeds[:1], 500
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			t.Parallel()
			p := domain.DefaultPolicy()
			p.MultiRoom = true
			p.MaxRooms = 3
			log := estest.Open(t, nil)
			live := runLive(t, log)
			clock := estest.NewClock(time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC))
			e := newEngine(t, log, p, clock.Now, live)
			gen := domaintest.New(domaintest.Config{Users: 30, SessionsPerUser: 2, Rooms: 20, Streams: 15,
				MultiRoom: seed%2 == 0, Weird: seed%2 == 1}, seed)
			store := projections.NewMemStore()
			types := map[domain.EventType]int{}
			accepted := 0
			for i := range commands {
				clock.Advance(gen.Advance())
				events, err := execute(t, e, "app", gen.Next())
				if err == nil {
					accepted++
				}
				gen.Observe(events)
				for _, ev := range events {
					types[ev.Type]++
				}
				if i == commands/2 {
					caughtUp(t, log, live)
					var snap projections.Snapshot
					var serr error
					live.Read(func(m *projections.Model) { snap, serr = projections.TakeSnapshot("proj.rooms.v1", m) })
					if serr != nil {
						t.Fatal(serr)
					}
					if err := store.Save(estest.Ctx(t), snap); err != nil {
						t.Fatal(err)
					}
				}
			}
			caughtUp(t, log, live)
			var liveHash string
			live.Read(func(m *projections.Model) { liveHash = hashOf(t, m) })

			cold := projections.NewModel()
			if err := projections.Rebuild(estest.Ctx(t), log, allFilter(log), cold); err != nil {
				t.Fatal(err)
			}
			fromSnap, err := projections.Restore(estest.Ctx(t), store, "proj.rooms.v1")
			if err != nil {
				t.Fatal(err)
			}
			if fromSnap.Cursor == 0 {
				t.Fatal("the half-way snapshot is empty")
			}
			if err := projections.Rebuild(estest.Ctx(t), log, allFilter(log), fromSnap); err != nil {
				t.Fatal(err)
			}
			if h := hashOf(t, cold); h != liveHash {
				t.Errorf("cold replay hash %s, live %s", h, liveHash)
			}
			if h := hashOf(t, fromSnap); h != liveHash {
				t.Errorf("replay from the snapshot at %d: hash %s, live %s", fromSnap.Cursor, h, liveHash)
			}
			// Replaying the same records again changes nothing.
			if err := projections.Rebuild(estest.Ctx(t), log, allFilter(log), cold); err != nil {
				t.Fatal(err)
			}
			if h := hashOf(t, cold); h != liveHash {
				t.Errorf("a second replay changed the state")
			}
			a := auditLog(t, log, p)
			t.Logf("%d commands, %d accepted, %d events in %d messages, %d event types", commands, accepted, a.Events,
				a.Messages, len(types))
			if accepted < commands/3 || len(types) < 15 {
				t.Errorf("the generator exercised too little: %d accepted, event types %v", accepted, types)
			}
		})
	}
}
