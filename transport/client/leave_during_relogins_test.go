package client_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/protocol"
)

// A leave whose reply was lost keeps its rooms marked until the server says
// where the session is: the re-logins on a new session do not enter them
// again. (leave_during_relogin_test.go covers the leaves made while away or
// during the re-logins; these, the marks that were cleared too early.) Two
// ways the mark used to go, as the browser SDK's notes warn:
//   - the client was still reconnecting when the leave's request timeout
//     came: the leave failed with 1002053, as if it had never been sent, and
//     its mark was cleared;
//   - the app tried the leave again while away and that try failed before it
//     was sent: it cleared the mark the lost one had kept.
// Either way the room was entered again after the session timed out, and
// the others saw the user come back to the room the app had left.

// leaveOp is the request a leave made the way how says sends.
func leaveOp(how string) protocol.Op {
	if how == "leave" {
		return protocol.OpLeaveRoom
	}
	return protocol.OpLogout
}

// startLeave makes the app leave r1 the way how says (logout: LogoutRoom,
// leave: LeaveRoom, logout_all: LogoutAllRooms; leave_r2: LogoutRoom of
// r2), in the background.
func startLeave(ctx context.Context, a *client.Client, how string) <-chan leaveResult {
	done := make(chan leaveResult, 1)
	go func() {
		var res leaveResult
		switch how {
		case "logout":
			res.err = a.LogoutRoom(ctx, "r1")
		case "leave_r2":
			res.err = a.LogoutRoom(ctx, "r2")
		case "leave":
			res.err = a.LeaveRoom(ctx, "r1")
		case "logout_all":
			res.rooms, res.err = a.LogoutAllRooms(ctx)
		}
		done <- res
	}()
	return done
}

// alice is in r1 and r2, on a scripted gateway, on a clock of the test's
// (requests time out after an hour of it). The app leaves r1 (or every
// room); the request goes out and the connection drops before its reply.
// The client dials again and the gateway holds that connection (no hello
// yet): the client is away. Then either
//   - times_out: the leave's request timeout comes: it fails as lost
//     (1002051: it may have taken effect), not as a timeout (1002053), and
//     keeps its mark; or
//   - retried: the app gives up on the leave (its context ends: 1002051)
//     and tries again, and that try times out before it can be sent;
//   - given_up: the app gave up on the leave (its context ended) before
//     the connection dropped: the leave fails with the context's error, and
//     may have taken effect all the same (its mark used to be cleared then).
//
// The session timed out meanwhile: the resume is refused. The client must
// not log into the room(s) left (settle fails the test if it sends any
// other request than the one it expects), and each gets Logout.
func TestALostLeaveKeepsItsMarkWhileAway(t *testing.T) {
	for _, way := range []string{"times_out", "retried", "given_up"} {
		for _, how := range []string{"logout", "leave", "logout_all"} {
			t.Run(way+"/"+how, func(t *testing.T) {
				g, r, clock, a, c1 := inTwoRooms(t)

				lctx, giveUp := context.WithCancel(ctx(t))
				defer giveUp()
				done := startLeave(lctx, a, how)
				c1.Req(leaveOp(how)) // sent; its reply is lost
				if way == "given_up" {
					giveUp()
					if err := result(t, done).err; !errors.Is(err, context.Canceled) {
						t.Errorf("the %s given up while its reply was awaited: %v, want the context's end", how, err)
					}
				}
				c1.Drop()
				r.WaitState("r2", client.StateReconnecting) // the client knows the reply is lost
				c2 := g.Next(t)                             // and dials again: held, no hello yet

				switch way {
				case "times_out":
					clock.Advance(time.Hour + time.Second)
				case "retried":
					giveUp()
				}
				if way != "given_up" {
					first := result(t, done)
					if code, _ := domain.CodeOf(first.err); code != domain.ErrReconnecting.Code {
						t.Errorf("the %s whose reply was lost, still away when it gave up: %v (code %d), want 1002051 "+
							"(it may have taken effect)", how, first.err, code)
					}
				}
				if way == "retried" {
					// The app tries again; the client is still away, and
					// this try times out before it can be sent.
					waitPending(t, clock, 0)
					again := startLeave(ctx(t), a, how)
					waitPending(t, clock, 1) // its timeout: it was made
					clock.Advance(time.Hour + time.Second)
					if res := result(t, again); res.err == nil {
						t.Errorf("the %s tried again while away returned no error", how)
					}
				}

				// The old session timed out.
				c2.Hello("s2", "rt-s2")
				c2.Refuse(c2.Req(protocol.OpResume).ID, protocol.ErrResumeFailed)
				if how != "logout_all" {
					in := c2.Req(protocol.OpLogin)
					if strings.Contains(string(in.Data), `"r1"`) {
						t.Errorf("the client logged into r1 again after the app's %s of it: %s", how, in.Data)
						c2.ServeEntry(in, "r1", 1)
						in = c2.Req(protocol.OpLogin)
					}
					c2.ServeEntry(in, "r2", 1)
				}
				seen := settle(t, a, c2, r)
				why := "logout"
				if how == "leave" {
					why = "leave"
				}
				loggedOutOnce(t, seen, "r1", why)
				if how == "logout_all" {
					loggedOutOnce(t, seen, "r2", why)
				} else if last := finalStates(seen)["r2"]; last.State != client.StateLogined {
					t.Errorf("r2 ended in %v, want Logined", last)
				}
			})
		}
	}
}

// What the others see, on a real node (as the browser SDK's
// TestRetriedLogoutThatTimesOutKeepsTheLostOnesMark): alice and bob are in
// r1 and r2. alice's app logs out of r1; the logout takes effect (bob sees
// her go) but its reply is lost, and her client is still away when the
// logout's request timeout comes: LogoutRoom fails with 1002051. The app
// tries again, and that try fails too (its context is done before the
// network is back). alice's session then times out. When she is back, the
// client enters r2 again, not r1: r1 gets Logout, and bob never sees her
// come back to r1 (he used to see her ADDed there).
func TestALostLogoutRetriedWhileAwayIsNotUndoneForTheOthers(t *testing.T) {
	t.Parallel()
	n, serverClock, p := awayNode(t)
	clock := estest.NewClock(time.Now()) // alice's
	ra, rb, rc := newRec(t, "alice"), newRec(t, "bob"), newRec(t, "carol")
	ra.AllowReconnects()
	a := dial(t, clienttest.URL(p.Addr()), ra, func(o *client.Options) {
		fastRetry(o)
		o.Clock = clienttest.ClientClock(clock)
		o.RequestTimeout = time.Minute
	})
	b := dial(t, wsURL(n), rb, nil)
	for _, c := range []*client.Client{a, b} {
		if err := c.SetRoomMode(ctx(t), client.MultiRoom); err != nil {
			t.Fatal(err)
		}
	}
	login(t, n, a, ra, "r1", "alice")
	login(t, n, a, ra, "r2", "alice")
	login(t, n, b, rb, "r1", "bob")
	login(t, n, b, rb, "r2", "bob")

	p.MuteServer()
	done := startLeave(ctx(t), a, "logout")
	rb.WaitUsers("r1", client.UpdateDelete, "alice") // the logout took effect
	timeOut(t, serverClock, p, ra, b, rb, "r2", "alice")
	clock.Advance(time.Minute + time.Second) // LogoutRoom's timeout, still away
	first := result(t, done)
	if code, _ := domain.CodeOf(first.err); code != domain.ErrReconnecting.Code {
		t.Errorf("LogoutRoom(r1), its reply lost, still away at its timeout: %v (code %d), want 1002051", first.err, code)
	}
	// The app tries again; it gives up before the network is back.
	gone, cancel := context.WithCancel(ctx(t))
	cancel()
	if err := a.LogoutRoom(gone, "r1"); err == nil {
		t.Errorf("LogoutRoom(r1) with a done context returned no error")
	}

	p.Refuse(false)
	var r1 []ev
	r2 := ra.PumpUntil(clock, "r2 entered again", func(e ev) bool {
		if e.Kind == "state" && e.Room == "r1" && e.State != client.StateReconnecting {
			r1 = append(r1, e)
		}
		return e.Kind == "state" && e.Room == "r2" && (e.State == client.StateLogined || e.State == client.StateLoginFailed)
	})
	if r2.State != client.StateLogined {
		t.Errorf("r2 after the timeout: %v, want Logined", r2)
	}
	// r1 comes first in the re-logins: what it got is all there is.
	loggedOutOnce(t, r1, "r1", "logout")

	notBack(t, n, b, rb, rc, "r1", "alice's app logged out of r1 (twice), and her session timed out")
}

// A leave whose reply was lost, then a resume that says the session is
// still in the room (r1 resumed, Reconnected told), and only then, before
// the leave could be sent again, its request timeout (the client is held
// between the resume reply and the link's install, here by a stray room's
// logout). The leave did not take effect and is not sent again: the room
// is not being left. At the next session loss r1 is entered again. Found
// by the second reader: the lost leave marked r1 unsure after the resume,
// and r1 got Logout on the new session though no leave went to it after
// the resume.
func TestALeaveLostBeforeAResumeThatKeptTheRoomLeavesNoMark(t *testing.T) {
	g, r, clock, a, c1 := inTwoRooms(t)

	done := startLeave(ctx(t), a, "logout")
	c1.Req(protocol.OpLogout) // sent; its reply is lost
	c1.Drop()
	r.WaitState("r2", client.StateReconnecting)
	c2 := g.Next(t)
	clock.Advance(59 * time.Minute) // most of the leave's timeout, away

	c2.Hello("s1", "rt-s1b")
	rs := c2.Req(protocol.OpResume)
	c2.Reply(rs.ID, protocol.ResumeReply{Session: "s1", ResumeToken: "rt2", Rooms: map[string]protocol.ResumedRoom{
		"r1": {Status: "resumed", Seq: 5}, "r2": {Status: "resumed", Seq: 6}, "stray": {Status: "unknown"}}})
	stray := c2.Req(protocol.OpLogout) // dropStrays: resumed() has run
	clock.Advance(2 * time.Minute)     // the leave's timeout, not the stray logout's
	first := result(t, done)
	code, _ := domain.CodeOf(first.err)
	t.Logf("the leave returned %v (code %d)", first.err, code)
	c2.Reply(stray.ID, protocol.RoomsReply{Rooms: []string{"stray"}})
	settle(t, a, c2, r)

	// The session is lost later (timed out): a new one enters the rooms again.
	c2.Drop()
	c3 := g.Next(t)
	c3.Hello("s2", "rt-s2")
	c3.Refuse(c3.Req(protocol.OpResume).ID, protocol.ErrResumeFailed)
	rooms := map[string]bool{}
	for range 2 {
		in := c3.Req(protocol.OpLogin)
		var req protocol.LoginRequest
		if err := in.Decode(&req); err != nil {
			t.Fatal(err)
		}
		rooms[req.Room] = true
		c3.ServeEntry(in, req.Room, 1)
		if req.Room == "r2" && !rooms["r1"] {
			break // r1 comes first: it was not entered again
		}
	}
	seen := settle(t, a, c3, r)
	if !rooms["r1"] {
		t.Errorf("r1, which the resume said the session was in (Reconnected) and which no leave went to after it, "+
			"was not entered again on the new session; told %v", statesOf(seen, "r1"))
	}
}

// inTwoRooms has alice's client, on a fake clock with an hour's request
// timeout, in r1 (seq 5) and r2 (seq 6) through the scripted gateway g on
// its connection c1 (session s1).
func inTwoRooms(t *testing.T) (*clienttest.ScriptedGateway, *rec, *estest.Clock, *client.Client, *clienttest.ScriptedConn) {
	t.Helper()
	g := clienttest.StartScripted(t)
	r := newRec(t, "alice")
	r.AllowReconnects()
	clock := estest.NewClock(time.Now())
	a, c1 := dialScriptedWith(t, g, "s1", client.Options{Handlers: r.Handlers(),
		Logger: clienttest.Logger(t), Clock: clienttest.ClientClock(clock), RequestTimeout: time.Hour,
		ReconnectWindow: 24 * time.Hour})
	scriptedLogin(t, c1, a, "r1", 5)
	scriptedLogin(t, c1, a, "r2", 6)
	settle(t, a, c1, r)
	return g, r, clock, a, c1
}

// A SwitchRoom whose reply was lost leaves its from room as a lost leave
// does (the browser SDK's switchRoom marks it too): the switch may have
// taken effect, so if the session then times out, r1 is not entered again
// on the new one but gets Logout (reason switch), and r3 is not entered
// either (the client never heard it was). Two ways:
//   - lost: the connection drops while the switch waits for its reply; it
//     fails with 1002051 (it may have taken effect);
//   - given_up: the app stopped waiting for the reply (its context ended)
//     before the connection dropped.
//
// Either way the client used to enter r1 again: the others saw the user
// come back to the room the app had switched away from.
func TestALostSwitchDoesNotEnterItsFromRoomAgain(t *testing.T) {
	for _, way := range []string{"lost", "given_up"} {
		t.Run(way, func(t *testing.T) {
			g, r, _, a, c1 := inTwoRooms(t)
			sctx, giveUp := context.WithCancel(ctx(t))
			defer giveUp()
			done := startSwitch(sctx, a, "r1", "r3")
			c1.Req(protocol.OpSwitchRoom) // sent; its reply is lost
			want := domain.ErrReconnecting.Code
			if way == "given_up" {
				giveUp()
				if err := result(t, done).err; !errors.Is(err, context.Canceled) {
					t.Errorf("the switch given up: %v, want the context's end", err)
				}
			}
			c1.Drop()
			r.WaitState("r2", client.StateReconnecting)
			if way == "lost" {
				if code, _ := domain.CodeOf(result(t, done).err); code != want {
					t.Errorf("the switch whose reply was lost: code %d, want %d (it may have taken effect)", code, want)
				}
			}

			c2 := g.Next(t)
			c2.Hello("s2", "rt-s2")
			c2.Refuse(c2.Req(protocol.OpResume).ID, protocol.ErrResumeFailed) // the session timed out
			in := c2.Req(protocol.OpLogin)
			var req protocol.LoginRequest
			if err := in.Decode(&req); err != nil {
				t.Fatal(err)
			}
			if req.Room != "r2" {
				t.Errorf("the client logged into %s again on the new session, after the app's switch from r1 to r3 "+
					"whose reply was lost; want r2 alone", req.Room)
				c2.ServeEntry(in, req.Room, 1)
				in = c2.Req(protocol.OpLogin)
			}
			c2.ServeEntry(in, "r2", 1)
			seen := settle(t, a, c2, r)
			loggedOutOnce(t, seen, "r1", "switch")
			if got := statesOf(seen, "r3"); len(got) != 0 {
				t.Errorf("r3, never entered as far as the client knows, was told %v", got)
			}
			if last := finalStates(seen)["r2"]; last.State != client.StateLogined {
				t.Errorf("r2 ended in %v, want Logined", last)
			}
		})
	}
}

// The other side of the mark: a SwitchRoom whose reply was lost, then a
// resume that says the session is still in r1 (the switch did not take
// effect). r1 was not left: at the next session loss it is entered again.
func TestALostSwitchAResumeSaysDidNotTakeEffectLeavesNoMark(t *testing.T) {
	g, r, _, a, c1 := inTwoRooms(t)
	done := startSwitch(ctx(t), a, "r1", "r3")
	c1.Req(protocol.OpSwitchRoom)
	c1.Drop()
	if code, _ := domain.CodeOf(result(t, done).err); code != domain.ErrReconnecting.Code {
		t.Errorf("the switch whose reply was lost: code %d, want 1002051", code)
	}
	c2 := g.Next(t)
	c2.Hello("s1", "rt-s1b")
	c2.Reply(c2.Req(protocol.OpResume).ID, protocol.ResumeReply{Session: "s1", ResumeToken: "rt2",
		Rooms: map[string]protocol.ResumedRoom{"r1": {Status: "resumed", Seq: 5}, "r2": {Status: "resumed", Seq: 6}}})
	settle(t, a, c2, r)

	c2.Drop()
	c3 := g.Next(t)
	c3.Hello("s2", "rt-s2")
	c3.Refuse(c3.Req(protocol.OpResume).ID, protocol.ErrResumeFailed)
	var rooms []string
	for range 2 {
		in := c3.Req(protocol.OpLogin)
		var req protocol.LoginRequest
		if err := in.Decode(&req); err != nil {
			t.Fatal(err)
		}
		rooms = append(rooms, req.Room)
		c3.ServeEntry(in, req.Room, 1)
	}
	seen := settle(t, a, c3, r)
	if !slices.Equal(rooms, []string{"r1", "r2"}) {
		t.Errorf("the new session entered %v, want r1 and r2: the resume said the switch from r1 did not take effect; "+
			"r1 was told %v", rooms, statesOf(seen, "r1"))
	}
}

// A SwitchRoom made while its from room is still being entered (the app's
// LoginRoom(r4) is on its way). The login is answered (r4 entered), then
// the switch's reply is lost and the session times out. The switch may
// have taken effect (the server runs a connection's requests in turn: the
// login, then the switch), so r4 is not entered again on the new session:
// it gets Logout (reason switch), as r1 does in
// TestALostSwitchDoesNotEnterItsFromRoomAgain. Found by the second reader:
// the room was looked up when the switch was made, when it was not tracked
// yet.
func TestALostSwitchFromARoomBeingEnteredDoesNotEnterItAgain(t *testing.T) {
	g, r, _, a, c1 := inTwoRooms(t)
	loginErr := make(chan error, 1)
	go func() {
		_, err := a.LoginRoom(ctx(t), "r4", client.User{ID: "alice", Name: "Alice"}, client.LoginOptions{Token: "tok"})
		loginErr <- err
	}()
	login := c1.Req(protocol.OpLogin) // r4 being entered
	done := startSwitch(ctx(t), a, "r4", "r3")
	c1.Req(protocol.OpSwitchRoom) // sent after the login: the server would run it after
	c1.ServeEntry(login, "r4", 1) // r4 entered
	if err := <-loginErr; err != nil {
		t.Fatal(err)
	}
	c1.Drop() // the switch's reply is lost
	r.WaitState("r2", client.StateReconnecting)
	if code, _ := domain.CodeOf(result(t, done).err); code != domain.ErrReconnecting.Code {
		t.Errorf("the switch whose reply was lost: code %d, want 1002051", code)
	}

	c2 := g.Next(t)
	c2.Hello("s2", "rt-s2")
	c2.Refuse(c2.Req(protocol.OpResume).ID, protocol.ErrResumeFailed) // the session timed out
	// r1 and r2 are entered again; r4 would come after them.
	for _, want := range []string{"r1", "r2"} {
		in := c2.Req(protocol.OpLogin)
		var req protocol.LoginRequest
		if err := in.Decode(&req); err != nil {
			t.Fatal(err)
		}
		if req.Room != want {
			t.Fatalf("re-login into %s, want %s", req.Room, want)
		}
		c2.ServeEntry(in, req.Room, 1)
	}
	// r4 is not entered again: the next request is settle's query (settle
	// fails on a login).
	seen := settle(t, a, c2, r)
	loggedOutOnce(t, seen, "r4", "switch")
}

// A SwitchRoom that the server refuses for certain (its target is a room the
// session is in, with no leave of it under way: already_in_room; or the
// target is the from room itself: invalid_argument) leaves no mark when its
// reply is lost: after a session timeout r1 is entered again. Found by the
// second reader: r1 got Logout (reason switch), though the app never left
// it.
func TestALostSwitchTheServerMustRefuseLeavesNoMark(t *testing.T) {
	for _, to := range []string{"r2", "r1"} {
		t.Run("to_"+to, func(t *testing.T) {
			g, r, _, a, c1 := inTwoRooms(t)
			done := startSwitch(ctx(t), a, "r1", to)
			c1.Req(protocol.OpSwitchRoom)
			c1.Drop()
			r.WaitState("r2", client.StateReconnecting)
			if code, _ := domain.CodeOf(result(t, done).err); code != domain.ErrReconnecting.Code {
				t.Errorf("the switch whose reply was lost: code %d, want 1002051", code)
			}
			c2 := g.Next(t)
			c2.Hello("s2", "rt-s2")
			c2.Refuse(c2.Req(protocol.OpResume).ID, protocol.ErrResumeFailed)
			in := c2.Req(protocol.OpLogin)
			var req protocol.LoginRequest
			if err := in.Decode(&req); err != nil {
				t.Fatal(err)
			}
			first := req.Room
			c2.ServeEntry(in, req.Room, 1)
			if first == "r1" {
				in = c2.Req(protocol.OpLogin)
				c2.ServeEntry(in, "r2", 1)
			}
			seen := settle(t, a, c2, r)
			if first != "r1" {
				t.Errorf("SwitchRoom(r1, %s), which the server refuses (already_in_room, or a switch to itself), lost with "+
					"the connection: r1 was not entered again on the new session; it was told %v", to, statesOf(seen, "r1"))
			}
		})
	}
}

// A lost SwitchRoom(r1, r2) made while in r2, and a lost LogoutRoom(r2):
// whether the switch may have taken effect depends on which the server ran
// first, which is the order they were sent in, then the session times out.
//   - leave_after: the logout was sent after the switch. The server refused
//     the switch (already in r2), then ran the logout: the session is in r1
//     alone, and r1 is entered again.
//   - given_up_before: the logout was sent before the switch, and the app
//     stopped waiting for it. The server may have run the logout, then the
//     switch: r1 is not entered again (Logout, reason switch).
//
// Found by the second reader: the switch looked at the leaves of r2 under
// way when the connection was found dead (one sent after it counted; one
// given up did not), not at those sent before it.
func TestALostSwitchAndALostLeaveOfItsTargetGoInTheOrderSent(t *testing.T) {
	for _, way := range []string{"leave_after", "given_up_before"} {
		t.Run(way, func(t *testing.T) {
			g, r, _, a, c1 := inTwoRooms(t)
			if way == "given_up_before" {
				lctx, giveUp := context.WithCancel(ctx(t))
				done := startLeave(lctx, a, "leave_r2")
				c1.Req(protocol.OpLogout)
				giveUp()
				if err := result(t, done).err; !errors.Is(err, context.Canceled) {
					t.Fatalf("the logout given up: %v", err)
				}
			}
			switched := startSwitch(ctx(t), a, "r1", "r2")
			c1.Req(protocol.OpSwitchRoom)
			if way == "leave_after" {
				startLeave(ctx(t), a, "leave_r2")
				c1.Req(protocol.OpLogout)
			}
			c1.Drop() // every reply is lost
			r.WaitState("r1", client.StateReconnecting)
			result(t, switched)

			c2 := g.Next(t)
			c2.Hello("s2", "rt-s2")
			c2.Refuse(c2.Req(protocol.OpResume).ID, protocol.ErrResumeFailed) // the session timed out
			if way == "leave_after" {
				in := c2.Req(protocol.OpLogin)
				var req protocol.LoginRequest
				if err := in.Decode(&req); err != nil || req.Room != "r1" {
					t.Fatalf("re-login into %q (%v), want r1: the switch from it was refused", req.Room, err)
				}
				c2.ServeEntry(in, "r1", 1)
			}
			// settle fails on any other request (a login).
			seen := settle(t, a, c2, r)
			loggedOutOnce(t, seen, "r2", "logout")
			if way == "given_up_before" {
				loggedOutOnce(t, seen, "r1", "switch")
			} else if last := finalStates(seen)["r1"]; last.State != client.StateLogined {
				t.Errorf("r1 ended in %v, want Logined", last)
			}
		})
	}
}

// Requests reach the server in the order they are numbered, even when two
// goroutines make them at once: the link runs the lost hooks of a dead
// connection in that order, taking it for the order the server ran them in
// (TestALostSwitchAndALostLeaveOfItsTargetGoInTheOrderSent). Found by the
// second reader: the number was taken before the frame was written, with
// nothing ordering the writes, and about one pair in a thousand reached
// the server the other way round.
func TestRequestsReachTheServerInTheOrderTheyAreNumbered(t *testing.T) {
	g := clienttest.StartScripted(t)
	r := newRec(t, "alice")
	a, c1 := dialScripted(t, g, r, "s1")
	for i := range 3000 {
		gate := make(chan struct{})
		done := make(chan struct{}, 2)
		for range 2 {
			go func() {
				<-gate
				a.QueryRoom(ctx(t), "r") //nolint:errcheck
				done <- struct{}{}
			}()
		}
		close(gate)
		first, second := c1.Req(protocol.OpQueryRoom), c1.Req(protocol.OpQueryRoom)
		c1.Refuse(first.ID, domain.ErrNotInRoom)
		c1.Refuse(second.ID, domain.ErrNotInRoom)
		<-done
		<-done
		f, _ := strconv.ParseUint(first.ID, 10, 64)
		s, _ := strconv.ParseUint(second.ID, 10, 64)
		if f > s {
			t.Fatalf("pair %d: the server got request %s before request %s", i, first.ID, second.ID)
		}
	}
}

// startSwitch makes the app switch from one room to another in the
// background.
func startSwitch(ctx context.Context, a *client.Client, from, to string) <-chan leaveResult {
	done := make(chan leaveResult, 1)
	go func() {
		_, err := a.SwitchRoom(ctx, from, to, client.SwitchOptions{})
		done <- leaveResult{err: err}
	}()
	return done
}
