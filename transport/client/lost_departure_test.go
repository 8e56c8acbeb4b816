package client_test

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/protocol"
)

// leaveScripted makes a leave r1 the way how says (LogoutRoom, LeaveRoom,
// or SwitchRoom to r2), served by c: the reply comes, the departure (a room
// event) does not yet.
func leaveScripted(t *testing.T, a *client.Client, c *clienttest.ScriptedConn, how string) {
	t.Helper()
	errc := make(chan error, 1)
	switch how {
	case "logout":
		go func() { errc <- a.LogoutRoom(ctx(t), "r1") }()
		c.Reply(c.Req(protocol.OpLogout).ID, protocol.RoomsReply{Rooms: []string{"r1"}})
	case "leave":
		go func() { errc <- a.LeaveRoom(ctx(t), "r1") }()
		c.Reply(c.Req(protocol.OpLeaveRoom).ID, protocol.RoomsReply{Rooms: []string{"r1"}})
	case "switch":
		go func() {
			_, err := a.SwitchRoom(ctx(t), "r1", "r2", client.SwitchOptions{})
			errc <- err
		}()
		c.ServeEntry(c.Req(protocol.OpSwitchRoom), "r2", 9)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// The app leaves r1 (logout, leave or switch) and the reply comes, but the
// connection drops before the departure event, and the session times out
// before the client is back: the departure went with the old session. The
// app is told Logout for r1 (code 0, the leave's reason), as the departure
// would have told it, and r1 is not entered again. The Go SDK used to drop
// the room silently; the JS SDK (_adopt) reported it.
func TestALeaveWhoseDepartureWasLostWithItsSessionIsReported(t *testing.T) {
	for _, how := range []string{"logout", "leave", "switch"} {
		t.Run(how, func(t *testing.T) {
			g := clienttest.StartScripted(t)
			r := newRec(t, "alice")
			r.AllowReconnects()
			a, c1 := dialScripted(t, g, r, "s1")
			scriptedLogin(t, c1, a, "r1", 5)
			leaveScripted(t, a, c1, how)
			settle(t, a, c1, r) // what came so far
			c1.Drop()

			c2 := g.Next(t)
			c2.Hello("s2", "rt-s2")
			c2.Refuse(c2.Req(protocol.OpResume).ID, protocol.ErrResumeFailed) // the session timed out
			if how == "switch" {
				c2.ServeEntry(c2.Req(protocol.OpLogin), "r2", 9) // r2, not r1, is entered again
			}
			// settle fails the test if the client sends anything else first
			// (a login into r1).
			seen := settle(t, a, c2, r)
			var told []ev
			for _, e := range seen {
				if e.Kind == "state" && e.Room == "r1" {
					told = append(told, e)
				}
			}
			if len(told) != 1 || told[0].State != client.StateLogout || told[0].Code != 0 || told[0].Info.Reason != how ||
				told[0].Info.ZIMState != "Disconnected" || told[0].Info.ZIMEvent != "Success" {
				t.Errorf("the app left r1 (%s succeeded), its departure was lost with the session; r1 then got %v, "+
					"want Logout, code 0, reason %s (ZIM Disconnected, Success), once", how, told, how)
			}
			if how == "switch" {
				if last := finalStates(seen)["r2"]; last.State != client.StateLogined {
					t.Errorf("r2 ended in %v, want Logined", last)
				}
			}
		})
	}
}

// A resume reply that leaves out a room the client named (protocol.md: the
// session was not in it at that seq, and is not now): nothing more comes for
// the room, and the app, told Reconnecting, gets a final state for it. A
// room it was in gets LoginFailed with 1002002 (not_in_room, reason
// not_resumed): the session could not be brought back, as when a re-login
// is refused, and the app must enter it again. A room it had left (the
// reply came, the departure not yet) gets the Logout its departure would
// have brought. The client forgets both: the next resume names neither.
// Both used to be forgotten silently, r2 left in Reconnecting for good.
func TestARoomAResumeLeavesOutGetsAFinalState(t *testing.T) {
	g := clienttest.StartScripted(t)
	r := newRec(t, "alice")
	r.AllowReconnects()
	a, c1 := dialScripted(t, g, r, "s1")
	scriptedLogin(t, c1, a, "r1", 5)
	scriptedLogin(t, c1, a, "r2", 3)
	scriptedLogin(t, c1, a, "r3", 7)
	errc := make(chan error, 1)
	go func() { errc <- a.LogoutRoom(ctx(t), "r3") }()
	c1.Reply(c1.Req(protocol.OpLogout).ID, protocol.RoomsReply{Rooms: []string{"r3"}})
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	c1.Drop() // before r3's departure

	c2 := g.Next(t)
	c2.Hello("s1b", "rt-s1b")
	rs := c2.Req(protocol.OpResume)
	var sent protocol.ResumeRequest
	if err := json.Unmarshal(rs.Data, &sent); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(sent.Rooms)); !slices.Equal(got, []string{"r1", "r2", "r3"}) {
		t.Fatalf("the resume named %v, want r1, r2, r3", got)
	}
	c2.Reply(rs.ID, protocol.ResumeReply{Session: "s1", ResumeToken: "rt2",
		Rooms: map[string]protocol.ResumedRoom{"r1": {Status: "resumed", Seq: 5}}}) // nothing of r2 and r3
	seen := settle(t, a, c2, r)
	last := finalStates(seen)
	if e := last["r1"]; e.State != client.StateReconnected {
		t.Errorf("r1 ended in %v, want Reconnected", e)
	}
	if e := last["r2"]; e.State != client.StateLoginFailed || e.Code != domain.ErrNotInRoom.Code ||
		e.Info.Reason != "not_resumed" || e.Info.ZIMState != "Disconnected" || e.Info.ZIMEvent != "LoginFailed" {
		t.Errorf("r2, left out of the resume, ended in %v; want LoginFailed %d, reason not_resumed (ZIM Disconnected, "+
			"LoginFailed); callbacks: %v", e, domain.ErrNotInRoom.Code, seen)
	}
	if e := last["r3"]; e.State != client.StateLogout || e.Code != 0 || e.Info.Reason != "logout" {
		t.Errorf("r3, logged out and left out of the resume, ended in %v; want Logout 0, reason logout; callbacks: %v",
			e, seen)
	}

	// The client forgot r2 and r3: the next resume names r1 alone, and only
	// r1 is told Reconnecting.
	c2.Drop()
	c3 := g.Next(t)
	c3.Hello("s1c", "rt-s1c")
	rs = c3.Req(protocol.OpResume)
	sent = protocol.ResumeRequest{}
	if err := json.Unmarshal(rs.Data, &sent); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(sent.Rooms)); !slices.Equal(got, []string{"r1"}) {
		t.Errorf("the next resume named %v, want r1 alone", got)
	}
	c3.Reply(rs.ID, protocol.ResumeReply{Session: "s1", ResumeToken: "rt3",
		Rooms: map[string]protocol.ResumedRoom{"r1": {Status: "resumed", Seq: 5}}})
	for _, e := range settle(t, a, c3, r) {
		if e.Kind == "state" && e.Room != "r1" {
			t.Errorf("after the rooms were forgotten: %v", e)
		}
	}
}
