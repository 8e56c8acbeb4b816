package client_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/protocol"
)

// renewWhileReconnecting calls RenewToken(token) on a, which waits for the
// connection, and returns once the client has taken the call in: its
// outcome comes on the channel.
func renewWhileReconnecting(t *testing.T, a *client.Client, token string) <-chan error {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- a.RenewToken(ctx(t), token) }()
	for deadline := time.Now().Add(wait); client.RenewingToken(a) != token; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("RenewToken never started")
		}
	}
	return errc
}

// A token the app renews while the client is reconnecting goes with that
// reconnection: the resume carries it, and when the session cannot be
// resumed the rooms are entered again with it, not with the token they were
// entered with (which may have expired meanwhile). The renew_token request
// itself follows once the connection is restored. Before, the renewed token
// was recorded only when that request's reply came, after the resume and
// the re-logins.
func TestATokenRenewedWhileReconnectingGoesWithTheResumeAndTheRelogins(t *testing.T) {
	for _, resumed := range []bool{true, false} {
		name := map[bool]string{true: "resumed", false: "timed out"}[resumed]
		t.Run(name, func(t *testing.T) {
			g := clienttest.StartScripted(t)
			r := newRec(t, "alice")
			r.AllowReconnects()
			a, c1 := dialScripted(t, g, r, "s1")
			scriptedLogin(t, c1, a, "r1", 5) // with "tok"
			c1.Drop()

			c2 := g.Next(t) // the client waits for its hello
			errc := renewWhileReconnecting(t, a, "fresh")
			c2.Hello("s1b", "rt-s1b")
			rs := c2.Req(protocol.OpResume)
			var res protocol.ResumeRequest
			if err := json.Unmarshal(rs.Data, &res); err != nil {
				t.Fatal(err)
			}
			if res.Token != "fresh" {
				t.Errorf("the resume carried token %q, want the one renewed meanwhile, %q", res.Token, "fresh")
			}
			if resumed {
				c2.Reply(rs.ID, protocol.ResumeReply{Session: "s1", ResumeToken: "rt2",
					Rooms: map[string]protocol.ResumedRoom{"r1": {Status: "resumed", Seq: 5}}})
			} else {
				c2.Refuse(rs.ID, protocol.ErrResumeFailed)
				lr := c2.Req(protocol.OpLogin)
				var login protocol.LoginRequest
				if err := json.Unmarshal(lr.Data, &login); err != nil {
					t.Fatal(err)
				}
				if login.Token != "fresh" {
					t.Errorf("r1 was entered again with token %q, want the one renewed meanwhile, %q", login.Token, "fresh")
				}
				c2.ServeEntry(lr, "r1", 6)
			}
			rt := c2.Req(protocol.OpRenewToken)
			c2.Reply(rt.ID, nil)
			if err := <-errc; err != nil {
				t.Errorf("RenewToken: %v", err)
			}
			if client.RenewingToken(a) != "" {
				t.Errorf("a RenewToken that returned is still in flight")
			}
		})
	}
}

// The same on a real node: alice's token expires while she is away and her
// session times out; the app renews the token before the client is back,
// and r1 is entered again with it (Logined), not refused with the expired
// one (LoginFailed 1002033, the room lost).
func TestATokenRenewedWhileReconnectingEntersTheRoomsAgain(t *testing.T) {
	t.Parallel()
	n, clock, p := awayNode(t)
	ra, rb := newRec(t, "alice"), newRec(t, "bob")
	ra.AllowReconnects()
	a := dial(t, clienttest.URL(p.Addr()), ra, fastRetry)
	b := dial(t, wsURL(n), rb, nil)
	first := tokenFor(t, n, "alice", 30*time.Second) // the server's clock passes it while alice is away
	if _, err := a.LoginRoom(ctx(t), "r1", clienttest.User("alice"), client.LoginOptions{Token: first}); err != nil {
		t.Fatal(err)
	}
	ra.WaitState("r1", client.StateLogined)
	login(t, n, b, rb, "r1", "bob")
	session := a.Session()

	timeOut(t, clock, p, ra, b, rb, "r1", "alice") // 61 s on the server's clock
	errc := renewWhileReconnecting(t, a, tokenFor(t, n, "alice", time.Hour))
	p.Refuse(false)
	e := ra.WaitFor("r1 entered again or refused", func(e ev) bool {
		return e.Kind == "state" && e.Room == "r1" && (e.State == client.StateLogined || e.State == client.StateLoginFailed)
	})
	if e.State != client.StateLogined {
		t.Fatalf("the app renewed the token while reconnecting, yet r1 got %v: entered again with the expired one", e)
	}
	if err := <-errc; err != nil {
		t.Errorf("RenewToken: %v", err)
	}
	if a.Session() == session {
		t.Errorf("session %s kept: the test meant it to time out", session)
	}
	rb.WaitUsers("r1", client.UpdateAdd, "alice")
}

// The rooms are entered again after a timeout with the client's latest
// token: alice logged into r1 with a short-lived token, then into r2 with
// a fresh one (the session's from then on). Her session times out while
// she is away, past r1's token's expiry; r1 used to be entered again with
// its own expired token and lost (LoginFailed 1002033).
func TestAReloginUsesTheLatestToken(t *testing.T) {
	t.Parallel()
	n, clock, p := awayNode(t)
	ra, rb := newRec(t, "alice"), newRec(t, "bob")
	ra.AllowReconnects()
	a := dial(t, clienttest.URL(p.Addr()), ra, fastRetry)
	if err := a.SetRoomMode(ctx(t), client.MultiRoom); err != nil {
		t.Fatal(err)
	}
	if _, err := a.LoginRoom(ctx(t), "r1", clienttest.User("alice"), client.LoginOptions{Token: tokenFor(t, n, "alice", 30*time.Second)}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.LoginRoom(ctx(t), "r2", clienttest.User("alice"), client.LoginOptions{Token: tokenFor(t, n, "alice", time.Hour)}); err != nil {
		t.Fatal(err)
	}
	b := dial(t, wsURL(n), rb, nil)
	login(t, n, b, rb, "r1", "bob")

	timeOut(t, clock, p, ra, b, rb, "r1", "alice") // 61 s: r1's token has expired
	p.Refuse(false)
	for _, room := range []string{"r1", "r2"} {
		e := ra.WaitFor(room+" entered again or not", func(e ev) bool {
			return e.Kind == "state" && e.Room == room && (e.State == client.StateLogined || e.State == client.StateLoginFailed)
		})
		if e.State != client.StateLogined {
			t.Errorf("%s after the re-login: %v, want Logined with the latest token", room, e)
		}
	}
}
