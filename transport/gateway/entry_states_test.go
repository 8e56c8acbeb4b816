package gateway_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/protocol"
)

// entryStates reads frames until the reply to id, then for a while after,
// and returns the room_state_changed states seen (room:state) in order,
// and the reply.
func entryStates(t *testing.T, c *wire.Conn, id string, until func([]string) bool) ([]string, protocol.Frame) {
	t.Helper()
	var seen []string
	var reply protocol.Frame
	got, marked := false, false
	for {
		if got && !marked && until == nil {
			// A marker: what the session got before its reply.
			c.Send("marker-"+id, protocol.OpHeartbeat, nil)
			marked = true
		}
		f := c.Next()
		if f.Type == protocol.TypeReply {
			if f.ID == "marker-"+id {
				return seen, reply
			}
			seen = append(seen, "reply "+f.ID)
			if f.ID == id {
				reply, got = f, true
			}
		}
		if f.Event == protocol.EvRoomStateChanged {
			var sc protocol.RoomStateChanged
			json.Unmarshal(f.Data, &sc)
			seen = append(seen, f.Room+":"+sc.State)
		}
		if got && until != nil && until(seen) {
			return seen, reply
		}
	}
}

// Whether a session is already in a room is the log's view as this node
// knows it, not what the session was told, which lags until the hub has
// sent its departure: a login pipelined right after a logout of the same
// room, and refused by the log, gets Logining and LoginFailed like the same
// login sent a moment later.
func TestARefusedLoginRightAfterALogoutIsLoginFailed(t *testing.T) {
	n := startNode(t, gateway.Config{})
	alice := dial(t, n)
	tok := token(t, n, "alice")
	alice.Login("r1", "alice", tok)
	alice.Until(func(f protocol.Frame) bool { return f.Event == protocol.EvRoomStateChanged })
	missing := 0
	const rounds = 10
	for i := range rounds {
		out, in := fmt.Sprint("out-", i), fmt.Sprint("in-", i)
		alice.Send(out, protocol.OpLogout, protocol.LogoutRequest{Room: "r1"})
		// Another user name than the session's: refused by the log (1002018).
		alice.Send(in, protocol.OpLogin, protocol.LoginRequest{Room: "r1", User: protocol.User{ID: "alice", Name: "someone else"}, Token: tok})
		seen, reply := entryStates(t, alice, in, nil)
		if reply.Code == 0 {
			t.Fatalf("round %d: the mismatched login succeeded: %q", i, seen)
		}
		has := false
		for _, s := range seen {
			if s == "r1:LoginFailed" {
				has = true
			}
		}
		if !has {
			missing++
			t.Logf("round %d: login refused with %d %s, states %q: no LoginFailed", i, reply.Code, reply.Error, seen)
		}
		// Back in for the next round.
		alice.Send("back", protocol.OpLogin, protocol.LoginRequest{Room: "r1", User: protocol.User{ID: "alice", Name: "alice"}, Token: tok})
		if f := alice.Reply("back"); f.Code != 0 {
			t.Fatalf("back in: %+v", f)
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d logins refused by the log right after a logout got no room_state_changed LoginFailed", missing, rounds)
	}
}

// The same: a login pipelined after a logout, which succeeds, is announced
// (Logout, Logining, Logined).
func TestALoginRightAfterALogoutIsAnnounced(t *testing.T) {
	n := startNode(t, gateway.Config{})
	alice := dial(t, n)
	tok := token(t, n, "alice")
	alice.Login("r1", "alice", tok)
	alice.Until(func(f protocol.Frame) bool { return f.Event == protocol.EvRoomStateChanged })
	missing := 0
	const rounds = 10
	for i := range rounds {
		out, in := fmt.Sprint("out-", i), fmt.Sprint("in-", i)
		alice.Send(out, protocol.OpLogout, protocol.LogoutRequest{Room: "r1"})
		alice.Send(in, protocol.OpLogin, protocol.LoginRequest{Room: "r1", User: protocol.User{ID: "alice", Name: "alice"}, Token: tok})
		seen, _ := entryStates(t, alice, in, func(seen []string) bool { return seen[len(seen)-1] == "r1:Logined" })
		logining := false
		for _, s := range seen {
			if s == "r1:Logining" {
				logining = true
			}
		}
		if !logining {
			missing++
			t.Logf("round %d: %q", i, seen)
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d logins right after a logout (a new membership: Logout was sent) had no Logining", missing, rounds)
	}
}

// A switch out of a room the session is not in is LogoutFailed there: so
// for a session that never logged in (1002002, as its logout gets), not
// LoginFailed for the target with not_logged_in.
func TestASwitchBeforeAnyLoginIsLogoutFailedInFrom(t *testing.T) {
	n := startNode(t, gateway.Config{})
	w := dial(t, n)
	w.Send("sw", protocol.OpSwitchRoom, protocol.SwitchRoomRequest{From: "r9", To: "r2", Token: token(t, n, "alice")})
	seen, reply := entryStates(t, w, "sw", nil)
	t.Logf("reply %d %s; states %q", reply.Code, reply.Error, seen)
	if reply.Code != domain.ErrNotInRoom.Code || len(seen) < 1 || seen[0] != "r9:LogoutFailed" {
		t.Errorf("switch before any login: reply %d %s, states %q; want 1002002 and LogoutFailed in r9, as logout "+
			"gives, and nothing for r2", reply.Code, reply.Error, seen)
	}
}

// A member of r1 calling create_room r1 with a token the gateway refuses
// (here: malformed) is not told LoginFailed for r1: it stays in r1.
func TestAMemberCreatingItsRoomWithABadTokenIsNotLoginFailed(t *testing.T) {
	n := startNode(t, gateway.Config{})
	w := dial(t, n)
	w.Login("r1", "alice", token(t, n, "alice"))
	w.Until(func(f protocol.Frame) bool { return f.Event == protocol.EvRoomStateChanged })
	w.Send("c", protocol.OpCreateRoom, protocol.CreateRoomRequest{Room: protocol.RoomInfo{ID: "r1"}, Token: "not-a-token"})
	seen, reply := entryStates(t, w, "c", nil)
	t.Logf("reply %d %s; states %q", reply.Code, reply.Error, seen)
	for _, s := range seen {
		if s == "r1:LoginFailed" {
			t.Errorf("alice, still in r1, was told LoginFailed in r1 (%q)", seen)
		}
	}
	w.Do("still", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "still here"})
}
