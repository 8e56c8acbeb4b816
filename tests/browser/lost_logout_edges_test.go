package browser

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/tests/clienttest"
)

// The app logs out of r1; the logout reaches the server, its reply is lost,
// and the engine is still reconnecting at requestTimeout: logoutRoom fails
// with 1002051 (it may have taken effect). The app tries again; that second
// logoutRoom, never sent, times out while the network is still down. The
// session timed out meanwhile: the re-login on the new session must not
// enter r1 again, which the app asked twice to leave (and which the first
// logout did leave). The second, failed, try must not erase the first's
// mark.
func TestRetriedLogoutThatTimesOutKeepsTheLostOnesMark(t *testing.T) {
	p, proxy, n := reconnectingPair(t, func(o *clienttest.NodeOptions) {
		o.Gateway.HeartbeatInterval, o.Gateway.HeartbeatTimeout = 500*time.Millisecond, 4*time.Second
	}, map[string]any{"requestTimeout": 3000})
	p.newEngine("c", clienttest.URL(n.HTTPAddr()), nil)
	p.Must("c", "loginRoom", "r2", clienttest.Token(t, n, "carol"), user{"carol", "Carol"})
	mark := p.Len()

	proxy.Refuse(true)
	proxy.MuteServer()
	p.startLogout("b", "r1")
	p.Wait(mark, `e => e.who === 'a' && e.event === 'roomUserUpdate' && e.args[0] === 'r1' && e.args[1] === 'DELETE' && e.args[2][0].userID === 'bob'`)
	proxy.Cut()
	if r := p.logoutOutcome(); r.OK || r.Code != 1002051 {
		t.Fatalf("the first logoutRoom(r1), reply lost, still reconnecting at requestTimeout: %+v, want 1002051", r)
	}
	// The app tries again; the network is still down.
	if r := p.Run("b", "logoutRoom", "r1"); r.OK {
		t.Fatalf("the second logoutRoom(r1), with the network down, resolved: %s", r.Value)
	} else {
		t.Logf("the second logoutRoom(r1) failed with %d %s", r.Code, r.Name)
	}
	// The old session times out (carol sees bob leave r2), then the network
	// comes back.
	p.Wait(mark, `e => e.who === 'c' && e.event === 'roomUserUpdate' && e.args[0] === 'r2' && e.args[1] === 'DELETE' && e.args[2][0].userID === 'bob'`)
	proxy.Refuse(false)
	p.WaitState(mark, "b", "r2", "LOGINED")
	p.Wait(mark, `e => e.who === 'c' && e.event === 'roomUserUpdate' && e.args[0] === 'r2' && e.args[1] === 'ADD' && e.args[2][0].userID === 'bob'`)

	states := p.statesIn(mark, "b", "r1")
	if slices.Contains(states, "LOGINING") || slices.Contains(states, "LOGINED") {
		t.Errorf("b was told %v in r1: the re-login entered the room the app left", states)
	}
	if ids := p.members("a", "r1"); slices.Contains(ids, "bob") {
		t.Errorf("r1's members are %v: bob is back in the room he left", ids)
	}
	var rooms []string
	p.Eval(`T.engines.b.rooms`, &rooms)
	if !slices.Equal(rooms, []string{"r2"}) {
		t.Errorf("b's rooms = %v, want [r2]", rooms)
	}
}

// The app calls loginRoom(r3) and then logoutRoom() (every room). The
// server runs them in that order (one connection's requests run in turn):
// the login's reply arrives, then the logout leaves r1, r2 and r3, and its
// reply is lost with the connection. Had it arrived, the engine would have
// marked r3 left (the reply lists it). The session times out: the re-login
// on the new session must not enter r3 again, which the logout left.
func TestLogoutOfEveryRoomRacingALoginIsNotUndoneByTheRelogin(t *testing.T) {
	p, proxy, n := reconnectingPair(t, func(o *clienttest.NodeOptions) {
		o.Gateway.HeartbeatInterval, o.Gateway.HeartbeatTimeout = 500*time.Millisecond, 4*time.Second
	}, nil)
	p.newEngine("c", clienttest.URL(n.HTTPAddr()), nil)
	p.Must("c", "loginRoom", "r3", clienttest.Token(t, n, "carol"), user{"carol", "Carol"})
	mark := p.Len()
	session := p.session("b")
	proxy.Refuse(true)
	// The connection loses everything from the logout's reply or first
	// departure on (as if it died right after the login's reply).
	p.Eval(fmt.Sprintf(`(() => { const l = T.engines.b._link; const frame = l.frame.bind(l); let dead = false;
		l.frame = (text) => {
			const f = JSON.parse(text);
			if (f.type === 'reply' && l.pending.has(f.id) && l.pending.get(f.id).op === 'logout') T.lostReply = f;
			if (dead) return;
			if ((f.type === 'reply' && l.pending.has(f.id) && l.pending.get(f.id).op === 'logout') ||
				(f.type === 'event' && f.event === 'room_state_changed' && f.data.state === 'Logout')) { dead = true; return; }
			frame(text);
		};
		T.login3 = T.run('b', 'loginRoom', 'r3', %q, { userID: 'bob', userName: 'Bob' });
		T.logout = T.run('b', 'logoutRoom');
		return true; })()`, clienttest.Token(t, n, "bob")), nil)
	var login Result
	p.Eval(`T.login3`, &login)
	if !login.OK {
		t.Fatalf("loginRoom(r3): %+v", login)
	}
	// The logout ran: carol sees bob join r3, then leave it.
	p.Wait(mark, `e => e.who === 'c' && e.event === 'roomUserUpdate' && e.args[0] === 'r3' && e.args[1] === 'DELETE' && e.args[2][0].userID === 'bob'`)
	p.Wait(mark, `e => e.who === 'a' && e.event === 'roomUserUpdate' && e.args[0] === 'r1' && e.args[1] === 'DELETE' && e.args[2][0].userID === 'bob'`)
	// The server's logout left r3 too (its lost reply says so).
	var lost struct {
		Code int
		Data struct{ Rooms []string }
	}
	deadline := time.Now().Add(clienttest.Wait)
	for lost.Data.Rooms == nil && time.Now().Before(deadline) {
		p.Eval(`T.lostReply || {}`, &lost)
	}
	if !slices.Contains(lost.Data.Rooms, "r3") {
		t.Fatalf("the logout's (lost) reply is %+v: it did not run after the login", lost)
	}
	proxy.Cut()
	cut := p.Len()
	// Wait out the old session's timeout, then let the engine back in.
	timedOut(t, n, session)
	proxy.Refuse(false)
	if r := p.logoutOutcome(); !r.OK {
		t.Logf("logoutRoom() failed with %d %s", r.Code, r.Name)
	}
	// Wait for the reconnection (and its re-logins) to end.
	deadline = time.Now().Add(clienttest.Wait)
	for {
		var reconnecting bool
		p.Eval(`T.engines.b._reconnecting || !T.engines.b._link`, &reconnecting)
		if !reconnecting || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := p.session("b"); got == session || got == "" {
		t.Fatalf("the session is %q after the timeout, want a new one (was %s)", got, session)
	}
	var evs []string
	for _, e := range p.since(mark, "b") {
		if e.Event == "roomStateChanged" {
			evs = append(evs, fmt.Sprintf("%d:%s/%s", e.Index, e.Str(0), e.Str(1)))
		}
	}
	t.Logf("cut at %d; b's room states since the logout: %v", cut, evs)
	states := p.statesIn(cut, "b", "r3")
	if slices.Contains(states, "LOGINING") || slices.Contains(states, "LOGINED") {
		t.Errorf("b was told %v in r3 after logoutRoom(): the re-login entered a room the logout left", states)
	}
	var rooms []string
	p.Eval(`T.engines.b.rooms`, &rooms)
	if len(rooms) != 0 {
		t.Errorf("b's rooms = %v after logoutRoom() of every room, want none", rooms)
	}
}

// timedOut waits until session s has timed out: the cluster no longer
// counts it alive, so that it cannot be resumed (generous: a loaded machine
// may be slow to get there). Not its session_timed_out in the log: a session
// in no room, as here after the logout, times out without one.
func timedOut(t *testing.T, n *node.Node, s string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, alive, err := n.Presence.Lookup(clienttest.Ctx(t), domain.SessionID(s))
		if err != nil {
			t.Fatal(err)
		}
		if !alive {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s has not timed out", s)
		}
	}
}
