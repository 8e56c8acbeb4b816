package browser

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/protocol"
)

// start calls method on engine who with args (JSON) without waiting: the
// outcome is read with outcome(name).
func (p *Page) start(name, who, method string, args ...any) {
	p.t.Helper()
	js := fmt.Sprintf("T.calls = T.calls || {}; T.calls[%q] = T.run(%q, %q", name, who, method)
	for _, a := range args {
		b, err := json.Marshal(a)
		if err != nil {
			p.t.Fatal(err)
		}
		js += ", " + string(b)
	}
	p.Eval(js+"); true", nil)
}

// outcome awaits the call start named name.
func (p *Page) outcome(name string) Result {
	p.t.Helper()
	var r Result
	p.Eval(fmt.Sprintf("T.calls[%q]", name), &r)
	return r
}

// stateInfo decodes a roomStateChanged's extendedData.
func stateInfo(e Event) (reason, zimState, zimEvent string) {
	var d struct{ Reason, ZimState, ZimEvent string }
	json.Unmarshal(e.Args[3], &d)
	return d.Reason, d.ZimState, d.ZimEvent
}

// A resume reply that leaves out a room the engine named (protocol.md: the
// session was not in it at that seq, and is not now): nothing more comes for
// the room, and the app, told RECONNECTING, gets its final state. A room
// the session was in gets LOGIN_FAILED with 1002002 (not_in_room, reason
// not_resumed): the app must enter it again. A room the app had logged out
// of (the reply came, the departure not yet) gets the LOGOUT its departure
// would have brought. Neither stays in engine.rooms. Both used to be
// dropped with a warning in the log only, r2 left in RECONNECTING for good.
// The gateway is scripted: a real node leaves a room out only when the log
// no longer holds the session's departure.
func TestSDKARoomAResumeLeavesOutGetsAFinalState(t *testing.T) {
	n := startNode(t, nil)
	p := openHarness(t, n)
	g := clienttest.StartScripted(t, "127.0.0.1:*")
	p.newEngine("b", g.URL(), nil)
	bob := user{"bob", "Bob"}

	p.start("r1", "b", "loginRoom", "r1", "tok", bob)
	c1 := g.Next(t)
	c1.Hello("s1", "rt-s1")
	for i, room := range []string{"r1", "r2", "r3"} {
		if i > 0 {
			p.start(room, "b", "loginRoom", room, "tok", bob)
		}
		c1.ServeEntry(c1.Req(protocol.OpLogin), room, uint64(3+i))
		if r := p.outcome(room); !r.OK {
			t.Fatalf("loginRoom(%s): %+v", room, r)
		}
		// Logined comes after the reply: recorded before the mark below,
		// it is not taken for a room's state after the reconnection.
		p.WaitState(0, "b", room, "LOGINED")
	}
	p.start("logout", "b", "logoutRoom", "r3")
	c1.Reply(c1.Req(protocol.OpLogout).ID, protocol.RoomsReply{Rooms: []string{"r3"}})
	if r := p.outcome("logout"); !r.OK {
		t.Fatalf("logoutRoom(r3): %+v", r)
	}
	mark := p.Len()
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
		Rooms: map[string]protocol.ResumedRoom{"r1": {Status: "resumed", Seq: 3}}}) // nothing of r2 and r3

	p.WaitState(mark, "b", "r1", "RECONNECTED")
	e := p.Wait(mark, `e => e.who === 'b' && e.event === 'roomStateChanged' && e.args[0] === 'r2' && e.args[1] !== 'RECONNECTING'`)
	if reason, zs, ze := stateInfo(e); e.Str(1) != "LOGIN_FAILED" || e.Num(2) != 1002002 || reason != "not_resumed" ||
		zs != "Disconnected" || ze != "LoginFailed" {
		t.Errorf("r2, left out of the resume, got %s; want LOGIN_FAILED 1002002, reason not_resumed (ZIM Disconnected, "+
			"LoginFailed)", e.Args)
	}
	e = p.Wait(mark, `e => e.who === 'b' && e.event === 'roomStateChanged' && e.args[0] === 'r3'`)
	if reason, _, _ := stateInfo(e); e.Str(1) != "LOGOUT" || e.Num(2) != 0 || reason != "logout" {
		t.Errorf("r3, logged out and left out of the resume, got %s; want LOGOUT 0, reason logout", e.Args)
	}
	var rooms []string
	p.Eval(`T.engines.b.rooms`, &rooms)
	if !slices.Equal(rooms, []string{"r1"}) {
		t.Errorf("b's rooms = %v, want [r1]", rooms)
	}
}
