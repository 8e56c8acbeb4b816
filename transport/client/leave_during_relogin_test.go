package client_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/protocol"
)

// A room the app leaves while its session is lost and the rooms are being
// entered again on a new one is not entered again: the app gets Logout and
// its leave returns, and the others never see the user come back. (The SDK
// used to mark a room as being left only once the leave's reply came, and
// the leave waited behind the re-logins: the room was entered again, then
// left. The browser SDK does the same as this one now.)

// waitPending waits until clock has n timers scheduled. Every request a
// client makes schedules its timeout on the client's clock as it starts, so
// a request's timer says the call was made, and has marked what it marks
// before it is sent.
func waitPending(t *testing.T, clock *estest.Clock, n int) {
	t.Helper()
	for deadline := time.Now().Add(wait); clock.Pending() != n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the client's clock has %d timers, want %d", clock.Pending(), n)
		}
	}
}

// pump moves clock on in small steps, in the background, until the test
// calls the function it returns (the backoff between reconnection attempts
// runs on it).
func pump(clock *estest.Clock) (stop func()) {
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
				clock.Advance(50 * time.Millisecond)
			}
		}
	}()
	return func() { close(done) }
}

// dialClocked dials alice, on a clock of the test's (requests never time
// out on it), through a scripted gateway that says hello on session s1; it
// returns that first connection.
func dialClocked(t *testing.T) (*client.Client, *rec, *estest.Clock, *clienttest.ScriptedGateway,
	*clienttest.ScriptedConn) {
	t.Helper()
	g := clienttest.StartScripted(t)
	r := newRec(t, "alice")
	r.AllowReconnects()
	clock := estest.NewClock(time.Now())
	a, c1 := dialScriptedWith(t, g, "s1", client.Options{Handlers: r.Handlers(), Logger: clienttest.Logger(t),
		Clock: clienttest.ClientClock(clock), RequestTimeout: time.Hour})
	return a, r, clock, g, c1
}

// reloggingIn dials alice, on a clock of the test's, through a scripted
// gateway, logs her into r1 with token tok1 and r2 with tok2 (the latest,
// the session's from then on), drops the connection and refuses the resume
// on the next one (the session timed out). It returns that connection with
// the client's first re-login on it, r1's, not answered yet.
func reloggingIn(t *testing.T, tok1, tok2 string) (*client.Client, *rec, *estest.Clock, *clienttest.ScriptedGateway,
	*clienttest.ScriptedConn, protocol.Request) {
	t.Helper()
	a, r, clock, g, c1 := dialClocked(t)
	for i, room := range []string{"r1", "r2"} {
		errc := make(chan error, 1)
		go func() {
			_, err := a.LoginRoom(ctx(t), room, clienttest.User("alice"), client.LoginOptions{Token: []string{tok1, tok2}[i]})
			errc <- err
		}()
		c1.ServeEntry(c1.Req(protocol.OpLogin), room, uint64(5+i))
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	settle(t, a, c1, r) // what came so far
	c1.Drop()
	c2 := g.Next(t)
	c2.Hello("s2", "rt-s2")
	c2.Refuse(c2.Req(protocol.OpResume).ID, protocol.ErrResumeFailed)
	first := c2.Req(protocol.OpLogin)
	if !strings.Contains(string(first.Data), `"r1"`) || !strings.Contains(string(first.Data), tok2) {
		t.Fatalf("first re-login: %s, want r1's with the latest token, %s", first.Data, tok2)
	}
	return a, r, clock, g, c2, first
}

// leaveResult is the outcome of a leave made in the background.
type leaveResult struct {
	rooms []string
	err   error
}

// leaveWhileRelogging makes the app leave room the way how says (logout:
// LogoutRoom, leave: LeaveRoom, logout_all: LogoutAllRooms) while the
// client re-logs into its rooms, or waits to reconnect, and returns once the
// call was made. The client has one timer on its clock then (a re-login's
// timeout, or the backoff before its next attempt), once the requests
// before have seen their timers stopped.
func leaveWhileRelogging(t *testing.T, a *client.Client, clock *estest.Clock, how, room string) <-chan leaveResult {
	t.Helper()
	waitPending(t, clock, 1)
	done := make(chan leaveResult, 1)
	go func() {
		var res leaveResult
		switch how {
		case "logout":
			res.err = a.LogoutRoom(ctx(t), room)
		case "leave":
			res.err = a.LeaveRoom(ctx(t), room)
		case "logout_all":
			res.rooms, res.err = a.LogoutAllRooms(ctx(t))
		}
		done <- res
	}()
	waitPending(t, clock, 2) // the leave's timeout: it was made
	return done
}

// result waits for a leave made in the background.
func result(t *testing.T, done <-chan leaveResult) leaveResult {
	t.Helper()
	select {
	case res := <-done:
		return res
	case <-time.After(wait):
		t.Fatal("the leave did not return")
		return leaveResult{}
	}
}

// statesOf returns the states room was told of in evs, in order,
// Reconnecting aside.
func statesOf(evs []ev, room string) []ev {
	var out []ev
	for _, e := range evs {
		if e.Kind == "state" && e.Room == room && e.State != client.StateReconnecting {
			out = append(out, e)
		}
	}
	return out
}

// loggedOutOnce checks that the only state room got among evs, Reconnecting
// aside, is Logout, code 0, with reason why: it was not entered again.
func loggedOutOnce(t *testing.T, evs []ev, room, why string) {
	t.Helper()
	got := statesOf(evs, room)
	if len(got) != 1 || got[0].State != client.StateLogout || got[0].Code != 0 || got[0].Info.Reason != why ||
		got[0].Info.ZIMState != "Disconnected" || got[0].Info.ZIMEvent != "Success" {
		t.Errorf("%s, left during the re-logins, got %v; want Logout, code 0, reason %s (ZIM Disconnected, Success), "+
			"and nothing else", room, got, why)
	}
}

// The user's session timed out while she was away; the client logs into r1
// and r2 again on a new session, one after the other. While r1's re-login
// is on its way, the app leaves r2. The client used to log into r2 all the
// same and only then send the leave; r2 is now not entered again: it gets
// Logout and the leave returns (a leave of every room is sent for r1, which
// was entered meanwhile). settle fails the test if the client logs into r2.
func TestALeaveDuringTheReloginsIsNotUndone(t *testing.T) {
	for _, how := range []string{"logout", "leave", "logout_all"} {
		t.Run(how, func(t *testing.T) {
			a, r, clock, _, c2, first := reloggingIn(t, "tok", "tok")
			done := leaveWhileRelogging(t, a, clock, how, "r2")
			c2.ServeEntry(first, "r1", 1)
			if how == "logout_all" {
				// r1 was entered again before the leave could be sent: it is
				// left now; r2 is not entered first.
				out := c2.Req(protocol.OpLogout)
				var req protocol.LogoutRequest
				if len(out.Data) > 0 && string(out.Data) != "null" {
					if err := json.Unmarshal(out.Data, &req); err != nil {
						t.Fatal(err)
					}
				}
				if req.Room != "" {
					t.Errorf("LogoutAllRooms sent a logout of %q, want every room", req.Room)
				}
				c2.Reply(out.ID, protocol.RoomsReply{Rooms: []string{"r1"}})
			}
			seen := settle(t, a, c2, r)
			res := result(t, done)
			if res.err != nil {
				t.Errorf("the app's %s during the re-logins: %v", how, res.err)
			}
			if how == "logout_all" {
				if slices.Sort(res.rooms); !slices.Equal(res.rooms, []string{"r1", "r2"}) {
					t.Errorf("LogoutAllRooms returned %v, want r1 and r2", res.rooms)
				}
			} else if last := finalStates(seen)["r1"]; last.State != client.StateLogined {
				t.Errorf("r1 ended in %v, want Logined", last)
			}
			why := "logout"
			if how == "leave" {
				why = "leave"
			}
			loggedOutOnce(t, seen, "r2", why)
		})
	}
}

// The app leaves r1 while r1's own re-login, with the latest token, is on
// its way, and the server refuses it for good (1002033): it is not tried
// again with r1's own token, which would enter the room the app left; r1
// gets Logout and LogoutRoom returns.
func TestALeaveDuringARefusedReloginIsNotTriedAgain(t *testing.T) {
	a, r, clock, _, c2, first := reloggingIn(t, "tok-r1", "tok-latest")
	done := leaveWhileRelogging(t, a, clock, "logout", "r1")
	c2.Refuse(first.ID, domain.ErrTokenInvalid)
	next := c2.Req(protocol.OpLogin)
	if strings.Contains(string(next.Data), `"r1"`) {
		t.Errorf("after LogoutRoom(r1), the client logged into r1 again with its own token: %s", next.Data)
		c2.ServeEntry(next, "r1", 1)
		next = c2.Req(protocol.OpLogin)
	}
	c2.ServeEntry(next, "r2", 1)
	seen := settle(t, a, c2, r)
	if res := result(t, done); res.err != nil {
		t.Errorf("LogoutRoom(r1) during its refused re-login: %v", res.err)
	}
	loggedOutOnce(t, seen, "r1", "logout")
	if last := finalStates(seen)["r2"]; last.State != client.StateLogined {
		t.Errorf("r2 ended in %v, want Logined", last)
	}
}

// The app leaves r1 while its re-login is on its way, and the re-login is
// answered with an error after which the login may have been stored
// (1002053: the log did not answer in time). The session may be in the
// room: the leave is still sent.
func TestALeaveDuringAnUncertainReloginIsStillSent(t *testing.T) {
	a, _, clock, _, c2, first := reloggingIn(t, "tok-r1", "tok-latest")
	done := leaveWhileRelogging(t, a, clock, "logout", "r1")
	c2.State("r1", "LoginFailed") // as the gateway answers a login the log did not confirm in time
	c2.Refuse(first.ID, domain.ErrTimeout)
	c2.ServeEntry(c2.Req(protocol.OpLogin), "r2", 1)
	out := c2.Req(protocol.OpLogout)
	if !strings.Contains(string(out.Data), `"r1"`) {
		t.Errorf("logout sent: %s, want r1's", out.Data)
	}
	c2.Reply(out.ID, protocol.RoomsReply{Rooms: []string{"r1"}})
	if res := result(t, done); res.err != nil {
		t.Errorf("LogoutRoom(r1): %v", res.err)
	}
}

// The app leaves r1 while its re-login is on its way, and the connection is
// lost before the reply: the login may have been stored. The next
// connection resumes the new session, whose reply says the session is in
// r1 (unknown: the client did not name it). The leave must reach the
// server then, or the session would stay in the room the app left: r1 is
// entered again (harmless, the session is in it) and the leave is sent.
func TestALeaveDuringAReloginLostWithItsConnectionIsSent(t *testing.T) {
	a, _, clock, g, c2, _ := reloggingIn(t, "tok", "tok")
	done := leaveWhileRelogging(t, a, clock, "logout", "r1")
	c2.Drop()
	stop := pump(clock)
	c3 := g.Next(t)
	stop()
	c3.Hello("s2", "rt-s2b")
	rs := c3.Req(protocol.OpResume)
	c3.Reply(rs.ID, protocol.ResumeReply{Session: "s2", ResumeToken: "rt-s2c",
		Rooms: map[string]protocol.ResumedRoom{"r1": {Status: "unknown"}}})
	for _, room := range []string{"r1", "r2"} {
		req := c3.Req(protocol.OpLogin)
		if !strings.Contains(string(req.Data), `"`+room+`"`) {
			t.Fatalf("re-login %s, want %s's", req.Data, room)
		}
		c3.ServeEntry(req, room, 2)
	}
	out := c3.Req(protocol.OpLogout)
	if !strings.Contains(string(out.Data), `"r1"`) {
		t.Errorf("logout sent: %s, want r1's", out.Data)
	}
	c3.Reply(out.ID, protocol.RoomsReply{Rooms: []string{"r1"}})
	if res := result(t, done); res.err != nil {
		t.Errorf("LogoutRoom(r1): %v", res.err)
	}
}

// What the others see, on a real node: alice is in r1 and r2 with bob in
// r2; her session times out while she is away, and her app logs out of r2
// before she is back. The client enters r1 again on a new session, not r2:
// bob never sees her come back to r2 (he used to see her ADDed, then
// DELETEd), her LogoutRoom returns, and r2 gets Logout.
func TestALogoutWhileAwayIsNotUndoneForTheOthers(t *testing.T) {
	t.Parallel()
	n, serverClock, p := awayNode(t)
	clock := estest.NewClock(time.Now()) // alice's
	ra, rb, rc := newRec(t, "alice"), newRec(t, "bob"), newRec(t, "carol")
	ra.AllowReconnects()
	a := dial(t, clienttest.URL(p.Addr()), ra, func(o *client.Options) {
		fastRetry(o)
		o.Clock = clienttest.ClientClock(clock)
	})
	if err := a.SetRoomMode(ctx(t), client.MultiRoom); err != nil {
		t.Fatal(err)
	}
	login(t, n, a, ra, "r1", "alice")
	login(t, n, a, ra, "r2", "alice")
	b := dial(t, wsURL(n), rb, nil)
	login(t, n, b, rb, "r2", "bob")

	timeOut(t, serverClock, p, ra, b, rb, "r2", "alice") // bob saw alice go
	// The client waits to try again (its backoff, on its clock); the app
	// logs out of r2 meanwhile.
	done := leaveWhileRelogging(t, a, clock, "logout", "r2")
	p.Refuse(false)
	stop := pump(clock)
	res := result(t, done)
	stop()
	if res.err != nil {
		t.Errorf("LogoutRoom(r2) while away: %v", res.err)
	}
	var r2 []ev
	r1Back, r2Out := false, false
	ra.WaitFor("r1 entered again and r2 left", func(e ev) bool {
		if e.Kind == "state" && e.Room == "r2" && e.State != client.StateReconnecting {
			r2 = append(r2, e)
			r2Out = r2Out || e.State == client.StateLogout
		}
		if e.Kind == "state" && e.Room == "r1" && e.State == client.StateLogined {
			r1Back = true
		}
		return r1Back && r2Out
	})
	loggedOutOnce(t, r2, "r2", "logout")

	notBack(t, n, b, rb, rc, "r2", "alice's app logged out of r2 while she was away")
}

// notBack checks that bob (b, recording in rb) never saw alice come back to
// room after what her app did there (did): carol (recording in rc) logs
// into room and broadcasts a marker, which comes to bob after whatever
// alice's client did there; alice is not in room's member list either.
func notBack(t *testing.T, n *node.Node, b *client.Client, rb, rc *rec, room, did string) {
	t.Helper()
	c := dial(t, wsURL(n), rc, nil)
	login(t, n, c, rc, room, "carol")
	if _, err := c.SendBroadcastMessage(ctx(t), room, "marker"); err != nil {
		t.Fatal(err)
	}
	var back []string
	rb.WaitFor("carol's message", func(e ev) bool {
		if e.Kind == "user" && e.Room == room && e.Type == client.UpdateAdd && clienttest.HasUser(e.Users, "alice") {
			back = append(back, e.String())
		}
		return e.Kind == "broadcast" && e.Room == room && e.Msgs[0].Message == "marker"
	})
	if len(back) > 0 {
		t.Errorf("%s; bob then saw her come back to %s: %v", did, room, back)
	}
	users, _, err := b.QueryRoomMemberList(ctx(t), room, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if clienttest.HasUser(users, "alice") {
		t.Errorf("alice is in %s after her app logged out of it: %v", room, users)
	}
}

// LoginRoom(r2), then at once LogoutRoom(r2), both sent in turn; the login's
// reply comes, the logout's is lost with the connection, and the session
// timed out meanwhile. r2 is not entered again on the new session (the
// login's reply used to clear the leave's mark): it gets Logout, no login of
// r2 is sent, and LogoutRoom returns. (As the browser SDK's
// TestSDKALogoutOfARoomBeingEnteredIsNotUndone.)
func TestALogoutOfARoomBeingEnteredIsNotUndone(t *testing.T) {
	a, r, _, g, c1 := dialClocked(t)
	errc := make(chan error, 1)
	go func() {
		_, err := a.LoginRoom(ctx(t), "r1", clienttest.User("alice"), client.LoginOptions{Token: "tok"})
		errc <- err
	}()
	c1.ServeEntry(c1.Req(protocol.OpLogin), "r1", 5)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// LoginRoom(r2), then at once LogoutRoom(r2).
	go func() {
		_, err := a.LoginRoom(ctx(t), "r2", clienttest.User("alice"), client.LoginOptions{Token: "tok"})
		errc <- err
	}()
	in := c1.Req(protocol.OpLogin)
	out := make(chan error, 1)
	go func() { out <- a.LogoutRoom(ctx(t), "r2") }()
	c1.Req(protocol.OpLogout) // sent; its reply will be lost
	c1.ServeEntry(in, "r2", 6)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	settle(t, a, c1, r)
	c1.Drop()
	c2 := g.Next(t)
	c2.Hello("s2", "rt-s2")
	c2.Refuse(c2.Req(protocol.OpResume).ID, protocol.ErrResumeFailed)
	first := c2.Req(protocol.OpLogin)
	if !strings.Contains(string(first.Data), `"r1"`) {
		t.Fatalf("first re-login: %s, want r1's", first.Data)
	}
	c2.ServeEntry(first, "r1", 1)
	// settle fails the test if the client logs into r2 again.
	seen := settle(t, a, c2, r)
	select {
	case err := <-out:
		if err != nil {
			t.Errorf("LogoutRoom(r2): %v", err)
		}
	case <-time.After(wait):
		t.Error("LogoutRoom(r2) did not return")
	}
	loggedOutOnce(t, seen, "r2", "logout")
}
