package client_test

import (
	"testing"

	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/netcut"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/gateway"
)

// A message no engine wrote lands on a room's subject while a member's
// connection is down, and is the room's last message when it comes back.
// The nodes pass over it; so does the resume, which reads what the member
// missed: the member resumes (Reconnected, the same session), it is not
// made to log in again.
func TestAResumePassesOverAnUnreadableMessage(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	p := netcut.Start(t, n.HTTPAddr())
	ra, rb := newRec(t, "alice"), newRec(t, "bob")
	ra.AllowReconnects()
	a := dial(t, clienttest.URL(p.Addr()), ra, fastRetry)
	mustResume(t, a)
	b := dial(t, wsURL(n), rb, nil)
	login(t, n, a, ra, "r1", "alice")
	login(t, n, b, rb, "r1", "bob")
	ra.WaitUsers("r1", client.UpdateAdd, "bob")
	session := a.Session()

	p.Refuse(true)
	p.Cut()
	ra.WaitState("r1", client.StateReconnecting)
	if _, err := b.SendBroadcastMessage(ctx(t), "r1", "m1"); err != nil {
		t.Fatal(err)
	}
	subject := n.Log.Subject(clienttest.App, "room", "r1")
	last, _, err := n.Log.Last(estest.Ctx(t), subject)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Log.Append(estest.Ctx(t), eventstore.Message{Subject: subject, MsgID: "junk", Expected: last.Seq,
		Data: []byte("junk")}); err != nil {
		t.Fatal(err)
	}
	p.Refuse(false)
	if e := ra.WaitState("r1", client.StateReconnected); e.Code != 0 {
		t.Errorf("Reconnected %+v", e)
	}
	if e := ra.Next(); e.Kind != "broadcast" || e.Msgs[0].Message != "m1" {
		t.Fatalf("after Reconnected: %v, want broadcast m1", e)
	}
	if a.Session() != session {
		t.Errorf("session %s after resuming %s: it logged in again", a.Session(), session)
	}
}
