package browser

import (
	"fmt"
	"testing"
	"time"

	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/netcut"
)

// userUpdatesOf returns the roomUserUpdate events who got in room from
// event index from on.
func (p *Page) userUpdatesOf(from int, who, room string) []Event {
	p.t.Helper()
	var out []Event
	for _, e := range p.since(from, who) {
		if e.Event == "roomUserUpdate" && e.Str(0) == room {
			out = append(out, e)
		}
	}
	return out
}

// ZEGO's room config in the browser: a member that logs in with
// isUserStatusNotify false (or the Web SDK's userUpdate false) hears of no
// other user, live, after a switchRoom that does not say, in the replay of
// a room it was kicked out of while its connection was down, and after a
// re-login on a new session; maxMemberCount caps a room the login creates.
// Before, the browser SDK sent neither and every member got every update.
func TestSDKQuietMemberHearsOfNoOtherUsers(t *testing.T) {
	n := startNode(t, func(o *clienttest.NodeOptions) {
		// 5 s: bob resumes within it after the first cut, and his
		// re-entered session heartbeats well inside it (through Chromium
		// and a -race server on a loaded machine); the second cut waits
		// for it to pass.
		o.Gateway.HeartbeatInterval, o.Gateway.HeartbeatTimeout = 250*time.Millisecond, 5*time.Second
	})
	proxy := netcut.Start(t, n.HTTPAddr())
	p := openHarness(t, n)
	ws := clienttest.URL(n.HTTPAddr())
	p.newEngine("a", ws, nil)
	p.newEngine("c", ws, nil)
	p.newEngine("b", clienttest.URL(proxy.Addr()), nil)
	for _, who := range []string{"a", "b"} {
		p.Eval(fmt.Sprintf(`T.engines[%q].enableMultiRoom(true)`, who), nil)
	}
	tokA, tokB := clienttest.Token(t, n, "alice"), clienttest.Token(t, n, "bob")
	alice, bob := user{"alice", "Alice"}, user{"bob", "Bob"}

	// Bob creates r1 for two, quietly; alice takes the second place, carol
	// finds it full.
	p.Must("b", "loginRoom", "r1", tokB, bob, map[string]any{"isUserStatusNotify": false, "maxMemberCount": 2})
	p.Must("a", "loginRoom", "r1", tokA, alice)
	if r := p.Run("c", "loginRoom", "r1", clienttest.Token(t, n, "carol"), user{"carol", "Carol"}); r.OK || r.Code != 1002034 {
		t.Errorf("a third login into a room created for two: %+v, want 1002034 room_full", r)
	}
	// A config of the wrong type is refused before anything is sent.
	for _, bad := range []map[string]any{{"maxMemberCount": -1}, {"maxMemberCount": 2.5}, {"isUserStatusNotify": "no"}} {
		if r := p.Run("c", "loginRoom", "r9", clienttest.Token(t, n, "carol"), user{"carol", "Carol"}, bad); r.OK || r.Code != 1906001 {
			t.Errorf("loginRoom with the config %v: %+v, want 1906001 invalid_argument", bad, r)
		}
	}
	// Quiet in r2 too (the Web SDK's name), and in r3, which bob switches
	// to from r2 without saying.
	p.Must("b", "loginRoom", "r2", tokB, bob, map[string]any{"userUpdate": false})
	p.Must("b", "switchRoom", "r2", "r3", map[string]any{"token": tokB})
	p.Must("a", "loginRoom", "r3", tokA, alice)
	p.Must("a", "sendBroadcastMessage", "r1", "in r1")
	p.Must("a", "sendBroadcastMessage", "r3", "in r3")
	p.Wait(0, `e => e.who === 'b' && e.event === 'IMRecvBroadcastMessage' && e.args[0] === 'r1'`)
	p.Wait(0, `e => e.who === 'b' && e.event === 'IMRecvBroadcastMessage' && e.args[0] === 'r3'`)
	for _, room := range []string{"r1", "r3"} {
		if got := p.userUpdatesOf(0, "b", room); len(got) > 0 {
			t.Errorf("a quiet member heard of other users in %s: %+v", room, got)
		}
	}

	// Bob's connection drops; meanwhile alice leaves r1 and the backend
	// kicks bob out of it. Bob resumes and is replayed r1 up to his kick:
	// without alice's DELETE, though the server no longer knows he was
	// quiet there (the SDK names its quiet rooms in the resume).
	mark := p.Len()
	proxy.Refuse(true)
	proxy.Cut()
	p.WaitState(mark, "b", "r1", "RECONNECTING")
	session := p.session("b")
	p.Must("a", "logoutRoom", "r1")
	kick(t, n, "r1", "bob")
	proxy.Refuse(false)
	p.WaitState(mark, "b", "r1", "KICKOUT")
	p.WaitState(mark, "b", "r3", "RECONNECTED")
	if got := p.session("b"); got != session {
		t.Fatalf("bob's session is %q after a short cut, want %s resumed", got, session)
	}
	if got := p.userUpdatesOf(mark, "b", "r1"); len(got) > 0 {
		t.Errorf("the resume replayed user updates to a member that was quiet in r1: %+v", got)
	}

	// Bob's connection drops past the timeout: he logs into r3 again on a
	// new session, still quietly (alice, there, is not ADDed to him).
	mark = p.Len()
	proxy.Refuse(true)
	proxy.Cut()
	p.WaitState(mark, "b", "r3", "RECONNECTING")
	p.Wait(mark, `e => e.who === 'a' && e.event === 'roomUserUpdate' && e.args[0] === 'r3' && e.args[1] === 'DELETE' && e.args[2][0].userID === 'bob'`)
	proxy.Refuse(false)
	p.WaitState(mark, "b", "r3", "LOGINED")
	if got := p.session("b"); got == session || got == "" {
		t.Fatalf("bob's session is %q after the timeout, want a new one", got)
	}
	p.Must("a", "sendBroadcastMessage", "r3", "after the re-login")
	p.Wait(mark, `e => e.who === 'b' && e.event === 'IMRecvBroadcastMessage' && e.args[1][0].message === 'after the re-login'`)
	if got := p.userUpdatesOf(mark, "b", "r3"); len(got) > 0 {
		t.Errorf("a member that was quiet in r3 heard of other users after its re-login: %+v", got)
	}
	p.noGaps()
}

// A ZEGO switchRoom out of a room entered with ZIM's calls, quietly and
// with a capacity: after a re-login on a new session (past the timeout,
// the room having ended meanwhile), the member is still quiet and the room
// created again has the same capacity. The target is entered again as a
// ZIM enter, which used to send neither (nor could the protocol's
// enter_room and join_room say quiet).
func TestSDKZEGOSwitchFromAZIMRoomKeepsItsConfigAcrossARelogin(t *testing.T) {
	n := startNode(t, func(o *clienttest.NodeOptions) {
		// 5 s: the live sessions heartbeat through Chromium and a -race
		// server on a loaded machine.
		o.Gateway.HeartbeatInterval, o.Gateway.HeartbeatTimeout = 250*time.Millisecond, 5*time.Second
	})
	proxy := netcut.Start(t, n.HTTPAddr())
	p := openHarness(t, n)
	ws := clienttest.URL(n.HTTPAddr())
	p.newEngine("a", ws, nil)
	p.newEngine("c", ws, nil)
	p.newEngine("b", clienttest.URL(proxy.Addr()), nil)
	tokA, tokB, tokC := clienttest.Token(t, n, "alice"), clienttest.Token(t, n, "bob"), clienttest.Token(t, n, "carol")
	alice, bob, carol := user{"alice", "Alice"}, user{"bob", "Bob"}, user{"carol", "Carol"}

	// Bob enters z1 with ZIM's calls, then ZEGO-switches to q2, quietly,
	// creating it for two.
	p.Must("b", "login", bob, tokB)
	p.Must("b", "enterRoom", map[string]string{"roomID": "z1"})
	p.Must("b", "switchRoom", "z1", "q2", map[string]any{"isUserStatusNotify": false, "maxMemberCount": 2})
	p.Must("a", "loginRoom", "q2", tokA, alice)
	if r := p.Run("c", "loginRoom", "q2", tokC, carol); r.OK || r.Code != 1002034 {
		t.Errorf("before the cut, a third login into q2: %+v, want 1002034", r)
	}
	p.Must("a", "sendBroadcastMessage", "q2", "before")
	p.Wait(0, `e => e.who === 'b' && e.event === 'IMRecvBroadcastMessage' && e.args[1][0].message === 'before'`)
	if got := p.userUpdatesOf(0, "b", "q2"); len(got) > 0 {
		t.Fatalf("quiet before the cut already broken: %+v", got)
	}

	// Bob's connection drops past the timeout; q2 ends once alice leaves.
	mark := p.Len()
	session := p.session("b")
	proxy.Refuse(true)
	proxy.Cut()
	p.WaitState(mark, "b", "q2", "RECONNECTING")
	p.Wait(mark, `e => e.who === 'a' && e.event === 'roomUserUpdate' && e.args[0] === 'q2' && e.args[1] === 'DELETE' && e.args[2][0].userID === 'bob'`)
	p.Must("a", "logoutRoom", "q2")
	proxy.Refuse(false)
	p.WaitState(mark, "b", "q2", "LOGINED")
	if got := p.session("b"); got == session || got == "" {
		t.Fatalf("bob's session is %q after the timeout, want a new one", got)
	}

	p.Must("a", "loginRoom", "q2", tokA, alice)
	p.Must("a", "sendBroadcastMessage", "q2", "after")
	p.Wait(mark, `e => e.who === 'b' && e.event === 'IMRecvBroadcastMessage' && e.args[1][0].message === 'after'`)
	if got := p.userUpdatesOf(mark, "b", "q2"); len(got) > 0 {
		t.Errorf("after the re-login, the member quiet in q2 heard of other users: %+v", got)
	}
	if r := p.Run("c", "loginRoom", "q2", tokC, carol); r.OK || r.Code != 1002034 {
		t.Errorf("after the re-login re-created q2, a third login: %+v, want 1002034 room_full", r)
	}
}
