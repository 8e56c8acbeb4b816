package gateway_test

import (
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/protocol"
)

// A session's first login whose reply was an error although the log stored
// it (the command timed out: uncertain) leaves the session open in the log
// as alice, in r0, while the gateway never bound it (s.user is empty). A
// switch out of r0 then succeeds in the log (the domain takes the user
// from the log's session), but the gateway enters r1 as user "" and
// s.id: the snapshot has no member "" and the entry is refused with
// not_in_room, although the session IS a member of r1. The client is told
// it is not in r1, the hub never sends it r1's events, and others see it
// there (a ghost kept alive by the session's heartbeats).
//
// The stored-but-unanswered login is written here by another node's
// engine; renew_token gives the gateway session its app, as the failed
// login would.
func TestASwitchAfterAnUncertainFirstLoginIsNotRefused(t *testing.T) {
	n := startPausableNode(t, gateway.Config{})
	alice := wire.Dial(t, n.addr)
	sid := domain.SessionID(alice.Hello.Session)
	tok := n.token(t, "alice")
	if f := alice.Do("tok", protocol.OpRenewToken, protocol.TokenRequest{Token: tok}); f.Code != 0 {
		t.Fatalf("renew_token: %+v", f)
	}
	other := estest.Engine(t, n.log, nil, nil)
	login := domain.JoinRoom{Session: sid, User: domain.User{ID: "alice", Name: "alice"}, Mode: domain.SingleRoom,
		Room: "r0", Role: domain.Anchor, Grant: domain.Grant{User: "alice", AllRooms: true, CanPublish: true},
		Create: domain.CreateIfMissing, Via: domain.ViaLogin}
	if _, err := other.Execute(estest.Ctx(t), domain.Meta{App: "dev"}, login); err != nil {
		t.Fatal(err)
	}
	estest.Eventually(t, "alice in r0 on this node", func() bool {
		var in bool
		n.live.Read(func(m *projections.Model) {
			if a := m.App("dev"); a != nil && a.Rooms["r0"] != nil {
				_, in = a.Rooms["r0"].MemberBySession("alice", sid)
			}
		})
		return in
	})

	alice.Send("sw", protocol.OpSwitchRoom, protocol.SwitchRoomRequest{From: "r0", To: "r1", Token: tok})
	sw := alice.Reply("sw")

	var inR1 bool
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		state, ok, err := projections.ReadState(estest.Ctx(t), n.log, domain.RoomKey("dev", "r1"))
		if err == nil && ok {
			_, inR1 = state.(*domain.Room).MemberBySession("alice", sid)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if sw.Code != 0 && inR1 {
		t.Errorf("the switch into r1 was refused (%d %s: %s) although the log has the session in r1", sw.Code, sw.Error,
			sw.Message)
	}
}

// A session's first login that timed out (the engine waited for a
// projection that was stalled) may have been stored after all: its
// presence record is kept so that it times out of the room. Before, a
// later login refused for good (a room that does not exist) forgot that
// record: the session, in r0 in the log, had nothing left that would ever
// time it out once its client went, a ghost for good. The login stored
// after all is written here by another node's engine.
func TestARefusedLoginAfterAnUncertainOneKeepsTheSessionsPresence(t *testing.T) {
	// The login waits for the stalled projection for 3 s; the rest, with
	// it running, never comes near that.
	n := startPausableNode(t, gateway.Config{CommandTimeout: 3 * time.Second})
	n.pause()
	other := estest.Engine(t, n.log, nil, nil)
	if _, err := other.Execute(estest.Ctx(t), domain.Meta{App: "dev"}, estest.Login("sb", "bob", "r0")); err != nil {
		t.Fatal(err)
	}
	alice := wire.Dial(t, n.addr)
	sid := domain.SessionID(alice.Hello.Session)
	tok := n.token(t, "alice")
	// The room is not folded yet: the login waits for it, and times out.
	alice.Send("l", protocol.OpLogin, protocol.LoginRequest{Room: "r0", User: protocol.User{ID: "alice", Name: "alice"}, Token: tok})
	if f := alice.Reply("l"); f.Code != domain.ErrTimeout.Code {
		t.Fatalf("a login with the projection stalled: %d %s, want %d", f.Code, f.Error, domain.ErrTimeout.Code)
	}
	n.unpause()
	login := domain.JoinRoom{Session: sid, User: domain.User{ID: "alice", Name: "alice"}, Mode: domain.SingleRoom,
		Room: "r0", Role: domain.Anchor, Grant: domain.Grant{User: "alice", AllRooms: true, CanPublish: true},
		Create: domain.CreateIfMissing, Via: domain.ViaLogin}
	if _, err := other.Execute(estest.Ctx(t), domain.Meta{App: "dev"}, login); err != nil {
		t.Fatal(err)
	}

	alice.Send("j", protocol.OpJoinRoom, protocol.JoinRoomRequest{Room: "nowhere", User: &protocol.User{ID: "alice", Name: "alice"}, Token: tok})
	if f := alice.Reply("j"); f.Code != domain.ErrRoomNotExist.Code {
		t.Fatalf("join_room of a room that does not exist: %d %s", f.Code, f.Error)
	}
	if _, alive, err := n.presence.Lookup(estest.Ctx(t), sid); err != nil || !alive {
		t.Fatalf("after a refused login, the presence record of a session whose earlier login may be stored: alive %v (%v); "+
			"want it kept, so that the session times out of r0", alive, err)
	}
}
