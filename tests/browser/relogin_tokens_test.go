package browser

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/netcut"
	"github.com/roomlog/roomlog/transport/protocol"
)

// docs/sdk-js.md: "The rooms are entered again with the engine's latest
// token", and loginRoom's token becomes the engine's current one. bob logs
// into r1 with a short-lived token, then into r2 with a fresh one (the
// session's token from then on: the one token_will_expire warns about).
// His session times out while he is away; the re-login of r1 used r1's
// first token, expired meanwhile, and r1 was lost (LOGIN_FAILED 1002033).
// It now uses the latest.
func TestSDKReloginUsesTheEnginesLatestToken(t *testing.T) {
	clock := estest.NewClock(time.Now())
	n := startNode(t, func(o *clienttest.NodeOptions) {
		o.Clock = clock
		o.Gateway.HeartbeatTimeout = time.Minute
	})
	proxy := netcut.Start(t, n.HTTPAddr())
	p := openHarness(t, n)
	p.newEngine("a", clienttest.URL(n.HTTPAddr()), nil)
	p.newEngine("b", clienttest.URL(proxy.Addr()), nil)
	p.Eval(`T.engines.b.enableMultiRoom(true)`, nil)
	p.Must("b", "loginRoom", "r1", bobToken(t, n, 30*time.Second), user{"bob", "Bob"})
	p.Must("b", "loginRoom", "r2", bobToken(t, n, time.Hour), user{"bob", "Bob"})
	p.Must("a", "loginRoom", "r1", clienttest.Token(t, n, "alice"), user{"alice", "Alice"})
	p.WaitState(0, "b", "r1", "LOGINED")
	p.WaitState(0, "b", "r2", "LOGINED")
	session := p.session("b")
	mark := p.Len()

	proxy.Refuse(true)
	proxy.Cut()
	p.WaitState(mark, "b", "r1", "RECONNECTING")
	clock.Advance(59 * time.Second)
	p.Must("a", "queryRoom", "r1")
	clock.Advance(2 * time.Second)
	p.Wait(mark, `e => e.who === 'a' && e.event === 'roomUserUpdate' && e.args[1] === 'DELETE' && e.args[2][0].userID === 'bob'`)
	proxy.Refuse(false)

	for _, room := range []string{"r2", "r1"} {
		e := p.Wait(mark, `e => e.who === 'b' && e.event === 'roomStateChanged' && e.args[0] === '`+room+`' && (e.args[1] === 'LOGINED' || e.args[1] === 'LOGIN_FAILED')`)
		if e.Str(1) != "LOGINED" {
			t.Errorf("%s after the re-login: %s; want LOGINED with the engine's latest token", room, e.Args)
		}
	}
	if got := p.session("b"); got == session {
		t.Errorf("the session was resumed; the test meant it to time out")
	}
}

// reloggingIn logs engine b (bob) into r1 with token tok1 and r2 with
// tok2 through a scripted gateway, drops the connection, refuses the
// resume on the next one, and returns that connection with b's first
// re-login on it (r1's), and the page's event count at the drop. What the
// page's WebSockets send is recorded in T.sent.
func reloggingIn(t *testing.T, tok1, tok2 string) (*Page, *clienttest.ScriptedConn, protocol.Request, int) {
	t.Helper()
	n := startNode(t, nil)
	p := openHarness(t, n)
	g := clienttest.StartScripted(t, "127.0.0.1:*")
	p.newEngine("b", g.URL(), nil)
	p.Eval(`(() => { const send = WebSocket.prototype.send; T.sent = [];
		WebSocket.prototype.send = function (d) { T.sent.push(JSON.parse(d)); return send.call(this, d); }; return true; })()`, nil)
	bob := user{"bob", "Bob"}
	p.start("r1", "b", "loginRoom", "r1", tok1, bob)
	c1 := g.Next(t)
	c1.Hello("s1", "rt-s1")
	c1.ServeEntry(c1.Req(protocol.OpLogin), "r1", 3)
	if r := p.outcome("r1"); !r.OK {
		t.Fatalf("loginRoom(r1): %+v", r)
	}
	p.start("r2", "b", "loginRoom", "r2", tok2, bob)
	c1.ServeEntry(c1.Req(protocol.OpLogin), "r2", 4)
	if r := p.outcome("r2"); !r.OK {
		t.Fatalf("loginRoom(r2): %+v", r)
	}
	p.WaitState(0, "b", "r2", "LOGINED")
	mark := p.Len()
	c1.Drop()
	c2 := g.Next(t)
	c2.Hello("s2", "rt-s2")
	c2.Refuse(c2.Req(protocol.OpResume).ID, protocol.ErrResumeFailed)
	return p, c2, c2.Req(protocol.OpLogin), mark
}

// docs/sdk-js.md: "a room the app asked to leave (logoutRoom, leaveRoom,
// ...) is never entered again by a re-login". bob's session timed out; the
// engine logs into r1 and r2 again on a new session, one after the other.
// While r1's re-login is on its way, the app logs out of r2. The engine
// logged into r2 all the same (the others saw bob come back), and only
// afterwards sent the logout. Now r2 is not entered again: it gets LOGOUT
// and the logout resolves. The scripted gateway makes the order certain.
func TestSDKALogoutDuringTheReloginsIsNotUndone(t *testing.T) {
	p, c2, relogin, mark := reloggingIn(t, "tok", "tok") // r1's re-login, first
	// The app leaves r2 now, while r1 is being entered again.
	p.start("out", "b", "logoutRoom", "r2")
	var sentAt int
	p.Eval(`T.sent.length`, &sentAt)
	c2.ServeEntry(relogin, "r1", 1)
	p.WaitState(mark, "b", "r1", "LOGINED")
	time.Sleep(time.Second)
	var sent []protocol.Request
	p.Eval(fmt.Sprintf(`T.sent.slice(%d)`, sentAt), &sent)
	for _, r := range sent {
		if r.Op == protocol.OpLogin && strings.Contains(string(r.Data), `"r2"`) {
			t.Errorf("the engine logged into r2 again after the app asked to leave it: %s %s", r.Op, r.Data)
		}
	}
	if r := p.outcome("out"); !r.OK || string(r.Value) != `["r2"]` {
		t.Errorf("logoutRoom(r2) during the re-logins: %+v, want [\"r2\"]", r)
	}
	if got := p.statesIn(mark, "b", "r2"); len(got) == 0 || got[len(got)-1] != "LOGOUT" {
		t.Errorf("r2's states since the drop: %v, want LOGOUT last", got)
	}
}

// A room the app asks to leave while its own re-login (with the latest
// token) is on its way, refused with 1002033: it is not tried again with
// its own token (the first version of the fallback did, entering the room
// the app had left), it gets LOGOUT, and the logout resolves.
func TestSDKALogoutDuringARefusedReloginIsNotUndone(t *testing.T) {
	p, c2, first, mark := reloggingIn(t, "tok-r1", "tok-latest") // r1's, with the latest token
	if !strings.Contains(string(first.Data), `"r1"`) || !strings.Contains(string(first.Data), "tok-latest") {
		t.Fatalf("first re-login: %s, want r1 with the latest token", first.Data)
	}
	// The app leaves r1 while its re-login is on its way.
	p.start("out", "b", "logoutRoom", "r1")
	p.Eval(`true`, nil) // the call has run
	c2.Refuse(first.ID, domain.ErrTokenInvalid)
	next := c2.Req(protocol.OpLogin)
	if strings.Contains(string(next.Data), `"r1"`) {
		t.Errorf("after logoutRoom(r1), the engine logged into r1 again with its own token: %s", next.Data)
		c2.ServeEntry(next, "r1", 1)
		next = c2.Req(protocol.OpLogin)
	}
	c2.ServeEntry(next, "r2", 1)
	p.WaitState(mark, "b", "r2", "LOGINED")
	if r := p.outcome("out"); !r.OK || string(r.Value) != `["r1"]` {
		t.Errorf("logoutRoom(r1) during its refused re-login: %+v, want [\"r1\"]", r)
	}
	if got := p.statesIn(mark, "b", "r1"); len(got) == 0 || got[len(got)-1] != "LOGOUT" {
		t.Errorf("r1's states since the drop: %v, want LOGOUT last", got)
	}
}

// A room the app asks to leave while its re-login is on its way, and the
// re-login is answered with an error after which the login may still have
// been stored (1002053: the log did not answer in time). The session may be
// in the room: the engine still sends the leave. (A first version of the
// drop of rooms left during the re-logins marked this one left too, and
// the leave resolved without a request: the session could stay in the room
// the app had left.)
func TestSDKALogoutDuringAnUncertainReloginIsStillSent(t *testing.T) {
	p, c2, first, mark := reloggingIn(t, "tok-r1", "tok-latest")
	if !strings.Contains(string(first.Data), `"r1"`) {
		t.Fatalf("first re-login: %s, want r1", first.Data)
	}
	p.start("out", "b", "logoutRoom", "r1")
	p.Eval(`true`, nil)
	// As the gateway answers a login the log did not confirm in time.
	c2.State("r1", "LoginFailed")
	c2.Refuse(first.ID, domain.ErrTimeout)
	c2.ServeEntry(c2.Req(protocol.OpLogin), "r2", 1)
	p.WaitState(mark, "b", "r2", "LOGINED")
	out := c2.Req(protocol.OpLogout) // fails the test if none comes
	if !strings.Contains(string(out.Data), `"r1"`) {
		t.Errorf("logout sent: %s, want r1's", out.Data)
	}
	c2.Reply(out.ID, protocol.RoomsReply{Rooms: []string{"r1"}})
	if r := p.outcome("out"); !r.OK {
		t.Errorf("logoutRoom(r1): %+v", r)
	}
}

// A logoutRoom made while the room's own login is on its way, whose reply is
// then lost with the connection; the session times out meanwhile. The room
// is not entered again on the new session: the login's reply (which came
// after the logout was sent) cleared the leave's mark, and the re-login
// entered the room the app had left before the logout was sent again (the
// others saw the user come back). It now gets LOGOUT and the call resolves.
func TestSDKALogoutOfARoomBeingEnteredIsNotUndone(t *testing.T) {
	n := startNode(t, nil)
	p := openHarness(t, n)
	g := clienttest.StartScripted(t, "127.0.0.1:*")
	p.newEngine("b", g.URL(), nil)
	p.Eval(`T.engines.b.enableMultiRoom(true)`, nil)
	p.Eval(`(() => { const send = WebSocket.prototype.send; T.sent = [];
		WebSocket.prototype.send = function (d) { T.sent.push(JSON.parse(d)); return send.call(this, d); }; return true; })()`, nil)
	bob := user{"bob", "Bob"}
	p.start("r1", "b", "loginRoom", "r1", "tok", bob)
	c1 := g.Next(t)
	c1.Hello("s1", "rt-s1")
	c1.Reply(c1.Req(protocol.OpSetRoomMode).ID, nil) // multi-room mode, asked before the first entry
	c1.ServeEntry(c1.Req(protocol.OpLogin), "r1", 3)
	if r := p.outcome("r1"); !r.OK {
		t.Fatalf("loginRoom(r1): %+v", r)
	}
	// loginRoom(r2), then at once logoutRoom(r2): both are sent, in turn.
	p.start("in", "b", "loginRoom", "r2", "tok", bob)
	login := c1.Req(protocol.OpLogin)
	p.start("out", "b", "logoutRoom", "r2")
	c1.Req(protocol.OpLogout) // sent; its reply will be lost
	c1.ServeEntry(login, "r2", 4)
	if r := p.outcome("in"); !r.OK {
		t.Fatalf("loginRoom(r2): %+v", r)
	}
	mark := p.Len()
	var sentAt int
	p.Eval(`T.sent.length`, &sentAt)
	c1.Drop()
	c2 := g.Next(t)
	c2.Hello("s2", "rt-s2")
	c2.Refuse(c2.Req(protocol.OpResume).ID, protocol.ErrResumeFailed)
	c2.Reply(c2.Req(protocol.OpSetRoomMode).ID, nil)
	relogin := c2.Req(protocol.OpLogin)
	if !strings.Contains(string(relogin.Data), `"r1"`) {
		t.Errorf("first re-login: %s, want r1's (r2 was left)", relogin.Data)
	}
	c2.ServeEntry(relogin, "r1", 1)
	p.WaitState(mark, "b", "r1", "LOGINED")
	if r := p.outcome("out"); !r.OK {
		t.Errorf("logoutRoom(r2): %+v", r)
	}
	var sent []protocol.Request
	p.Eval(fmt.Sprintf(`T.sent.slice(%d)`, sentAt), &sent)
	for _, r := range sent {
		if r.Op == protocol.OpLogin && strings.Contains(string(r.Data), `"r2"`) {
			t.Errorf("the engine logged into r2 again after the app asked to leave it: %s %s", r.Op, r.Data)
		}
	}
	if got := p.statesIn(mark, "b", "r2"); len(got) == 0 || got[len(got)-1] != "LOGOUT" {
		t.Errorf("r2's states since the drop: %v, want LOGOUT last", got)
	}
}
