package timeline

import (
	"testing"
	"time"

	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// A message no engine wrote on a room's subject is passed over by the nodes
// (projections.Live skips it, the engine chains the next append past it),
// so the room goes on and its members see its state. A replay of that room
// (admin API state and diff, roomctl replay) must give that same state, and
// its history pages every event, rather than fail for good at every point
// after the bad message.
func TestReplayAndPagesPassOverAnUnreadableMessageAsTheNodesDo(t *testing.T) {
	log := estest.Open(t, nil)
	clock := estest.NewClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	e := estest.Engine(t, log, nil, clock)
	estest.Exec(t, e, estest.Login("s1", "u1", "r1"))
	ctx := estest.Ctx(t)
	subject := log.Subject(string(estest.App), "room", "r1")
	last, _, err := log.Last(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := log.Append(ctx, eventstore.Message{Subject: subject, MsgID: "junk", Expected: last.Seq,
		Data: []byte("garbage")}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	estest.Exec(t, e, estest.Login("s2", "u2", "r1")) // the room goes on past it
	r, err := Replay(ctx, log, estest.App, "r1", Point{}, nil, nil)
	if err != nil {
		t.Fatalf("replay of room r1, whose log holds one unreadable message the nodes passed over: %v", err)
	}
	if len(r.Members) != 2 {
		t.Fatalf("replayed %d members, want 2", len(r.Members))
	}
	for after := uint64(0); after < r.Seq; after++ {
		entries, _, err := Page(ctx, log, estest.App, "r1", after, time.Time{}, 100)
		if err != nil {
			t.Fatalf("history page of room r1 after seq %d: %v", after, err)
		}
		if len(entries) != int(r.Seq-after) || entries[0].Seq != after+1 {
			t.Fatalf("history page of room r1 after seq %d: %+v, want the %d events from seq %d",
				after, entries, r.Seq-after, after+1)
		}
	}
}
