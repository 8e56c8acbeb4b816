package browser

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/roomlog/roomlog/tests/clienttest"
)

// startLogout calls logoutRoom(room) on who without waiting for it: the
// outcome is read later with logoutOutcome.
func (p *Page) startLogout(who, room string) {
	p.t.Helper()
	p.Eval(fmt.Sprintf(`(() => { T.logout = T.run(%q, 'logoutRoom', %q); return true; })()`, who, room), nil)
}

// logoutOutcome awaits the call startLogout made.
func (p *Page) logoutOutcome() Result {
	p.t.Helper()
	var r Result
	p.Eval(`T.logout`, &r)
	return r
}

// statesIn returns the room states who was told in room from index from on.
func (p *Page) statesIn(from int, who, room string) []string {
	p.t.Helper()
	var out []string
	for _, e := range p.since(from, who) {
		if e.Event == "roomStateChanged" && e.Str(0) == room {
			out = append(out, e.Str(1))
		}
	}
	return out
}

// members returns the user IDs of room, as queried by who.
func (p *Page) members(who, room string) []string {
	p.t.Helper()
	var snap struct {
		UserList []struct{ UserID string }
	}
	json.Unmarshal(p.Must(who, "queryRoom", room), &snap)
	var ids []string
	for _, u := range snap.UserList {
		ids = append(ids, u.UserID)
	}
	return ids
}

// checkLeft fails the test unless, as far as the app and the server can
// tell, bob (engine b) left r1 and stayed in r2: the logout resolved with
// [r1], the app was told Logout in r1 and never Logined there again, the
// engine's rooms are [r2], and the server says bob is not in r1.
func checkLeft(t *testing.T, p *Page, mark int) {
	t.Helper()
	if r := p.logoutOutcome(); !r.OK {
		t.Errorf("logoutRoom(r1) failed with %d %s (%s); the room was left, so it should resolve", r.Code, r.Name, r.Message)
	} else {
		var left []string
		json.Unmarshal(r.Value, &left)
		if !slices.Equal(left, []string{"r1"}) {
			t.Errorf("logoutRoom(r1) resolved with %v, want [r1]", left)
		}
	}
	states := p.statesIn(mark, "b", "r1")
	if slices.Contains(states, "LOGINING") || slices.Contains(states, "LOGINED") || slices.Contains(states, "RECONNECTED") {
		t.Errorf("after logoutRoom(r1), b was told %v in r1: it is back in the room it left", states)
	}
	if n := len(slices.DeleteFunc(slices.Clone(states), func(s string) bool { return s != "LOGOUT" })); n != 1 {
		t.Errorf("b was told %v in r1 after logoutRoom(r1), want LOGOUT once", states)
	}
	if slices.Contains(states, "LOGOUT_FAILED") {
		t.Errorf("b was told %v in r1: a repeated logout was refused", states)
	}
	var rooms []string
	p.Eval(`T.engines.b.rooms`, &rooms)
	if !slices.Equal(rooms, []string{"r2"}) {
		t.Errorf("b's rooms = %v, want [r2]", rooms)
	}
	if r := p.Run("b", "queryRoom", "r1"); r.OK {
		t.Errorf("the server still counts b's session in r1 (queryRoom succeeded)")
	}
	if ids := p.members("a", "r1"); slices.Contains(ids, "bob") {
		t.Errorf("r1's members are %v: bob is back in the room he left", ids)
	}
	// b's session lives on in r2.
	p.Must("b", "sendBroadcastMessage", "r2", "still in r2")
}

// The app logs out of r1, the logout reaches the server, its reply is lost
// with the connection, and the session times out before the SDK is back:
// the SDK logs into its rooms again on a new session, but not into r1,
// which the app left. The app's logoutRoom resolves and it is told Logout
// in r1, as it would have been without the network failure.
func TestSDKLogoutWhoseReplyWasLostIsNotUndoneByTheRelogin(t *testing.T) {
	p, proxy, n := reconnectingPair(t, func(o *clienttest.NodeOptions) {
		// A short timeout, and heartbeats often enough to keep alice's and
		// carol's sessions, and bob's re-entered one, well inside it.
		o.Gateway.HeartbeatInterval, o.Gateway.HeartbeatTimeout = 500*time.Millisecond, 4*time.Second
	}, nil)
	// carol, in r2 only, sees bob's old session time out.
	p.newEngine("c", clienttest.URL(n.HTTPAddr()), nil)
	p.Must("c", "loginRoom", "r2", clienttest.Token(t, n, "carol"), user{"carol", "Carol"})
	session := p.session("b")
	mark := p.Len()

	// No reconnection until the session has timed out; the logout reaches
	// the server, its reply never reaches bob.
	proxy.Refuse(true)
	proxy.MuteServer()
	p.startLogout("b", "r1")
	p.Wait(mark, `e => e.who === 'a' && e.event === 'roomUserUpdate' && e.args[0] === 'r1' && e.args[1] === 'DELETE' && e.args[2][0].userID === 'bob'`)
	proxy.Cut()
	p.Wait(mark, `e => e.who === 'c' && e.event === 'roomUserUpdate' && e.args[0] === 'r2' && e.args[1] === 'DELETE' && e.args[2][0].userID === 'bob'`)
	proxy.Refuse(false)

	// bob is back in r2 on a new session (r1, entered first, would have
	// been entered again before it).
	p.WaitState(mark, "b", "r2", "LOGINED")
	p.Wait(mark, `e => e.who === 'c' && e.event === 'roomUserUpdate' && e.args[0] === 'r2' && e.args[1] === 'ADD' && e.args[2][0].userID === 'bob'`)
	if got := p.session("b"); got == session || got == "" {
		t.Fatalf("the session is %q after a timeout, want a new one (was %s)", got, session)
	}
	checkLeft(t, p, mark)
}

// The same lost reply when the session is resumed: resume says the session
// left r1, and the departure is replayed. The app's logoutRoom resolves,
// and r1 is neither reported RECONNECTED nor kept half-tracked.
func TestSDKLogoutWhoseReplyWasLostOnAResumedSession(t *testing.T) {
	p, proxy, _ := reconnectingPair(t, nil, nil)
	session := p.session("b")
	mark := p.Len()
	proxy.MuteServer()
	p.startLogout("b", "r1")
	p.Wait(mark, `e => e.who === 'a' && e.event === 'roomUserUpdate' && e.args[0] === 'r1' && e.args[1] === 'DELETE' && e.args[2][0].userID === 'bob'`)
	proxy.Cut()
	p.WaitState(mark, "b", "r2", "RECONNECTED")
	p.WaitState(mark, "b", "r1", "LOGOUT")
	if got := p.session("b"); got != session {
		t.Fatalf("the session changed from %s to %s: it was not resumed", session, got)
	}
	checkLeft(t, p, mark)
}

// A logout lost on the way to the server, then a resumed session: resume
// says the session is still in r1, and the SDK sends the logout again
// there rather than failing the app's call and staying in the room.
func TestSDKLogoutLostBeforeTheServerIsSentAgainOnTheResumedSession(t *testing.T) {
	p, proxy, _ := reconnectingPair(t, nil, nil)
	session := p.session("b")
	mark := p.Len()
	proxy.Drop()
	p.startLogout("b", "r1")
	// The request is on the dropped connection, waiting for its reply.
	deadline := time.Now().Add(clienttest.Wait)
	for sent := false; !sent; {
		p.Eval(`(() => { const l = T.engines.b._link; return !!l && [...l.pending.values()].some((c) => c.op === 'logout'); })()`, &sent)
		if !sent && time.Now().After(deadline) {
			t.Fatal("the logout was never sent")
		}
	}
	proxy.Cut()
	p.WaitState(mark, "b", "r2", "RECONNECTED")
	p.WaitState(mark, "b", "r1", "LOGOUT")
	p.Wait(mark, `e => e.who === 'a' && e.event === 'roomUserUpdate' && e.args[0] === 'r1' && e.args[1] === 'DELETE' && e.args[2][0].userID === 'bob'`)
	if got := p.session("b"); got != session {
		t.Fatalf("the session changed from %s to %s: it was not resumed", session, got)
	}
	// Resumed in r1 first (RECONNECTED), then left: what follows is a
	// plain logout's.
	reconnected := p.WaitState(mark, "b", "r1", "RECONNECTED")
	checkLeft(t, p, reconnected.Index+1)
}
