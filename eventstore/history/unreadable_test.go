package history_test

import (
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/eventstore/history"
)

// A message no engine wrote on a room's subject is passed over by the nodes,
// the replays and the admin API's history pages; so it is by the members'
// own message history (query_history, a login with history), which would
// otherwise fail at that message for good.
func TestMessageHistoryPassesOverAnUnreadableMessage(t *testing.T) {
	log := estest.Open(t, nil)
	e := estest.Engine(t, log, nil, nil)
	estest.Exec(t, e, estest.Login("s1", "u1", "r1"))
	estest.Exec(t, e, domain.SendBroadcast{Session: "s1", Room: "r1", Body: "before"})
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
	estest.Exec(t, e, domain.SendBroadcast{Session: "s1", Room: "r1", Body: "after"}) // the room goes on
	r, err := history.New(history.Config{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Read(ctx, history.Query{Room: domain.RoomKey(estest.App, "r1"), For: "u1", Count: 10})
	if err != nil {
		t.Fatalf("message history of r1, whose log holds one unreadable message the nodes passed over: %v", err)
	}
	if len(p.Messages) != 2 {
		t.Fatalf("history holds %d messages, want both broadcasts", len(p.Messages))
	}
}
