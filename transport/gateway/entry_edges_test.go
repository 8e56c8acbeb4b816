package gateway_test

import (
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/netcut"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/protocol"
)

// A logout followed at once by a login to the same room (sent without
// waiting, or quickly after the reply) must still deliver the logout's own
// room_state_changed Logout before the new login's Logined. Run many times:
// the loss depends on the hub lagging the engine.
func TestALogoutThenALoginKeepsTheLogout(t *testing.T) {
	n := startNode(t, gateway.Config{})
	alice := dial(t, n)
	tok := token(t, n, "alice")
	alice.Login("r1", "alice", tok)
	alice.Until(func(f protocol.Frame) bool { return f.Event == protocol.EvRoomStateChanged })
	lost := 0
	for i := range 40 {
		out, in := fmt.Sprint("out-", i), fmt.Sprint("in-", i)
		alice.Send(out, protocol.OpLogout, protocol.LogoutRequest{Room: "r1"})
		alice.Send(in, protocol.OpLogin, protocol.LoginRequest{Room: "r1", User: protocol.User{ID: "alice", Name: "alice"}, Token: tok})
		var seen []string
		for {
			f := alice.Next()
			if f.Type == protocol.TypeReply {
				seen = append(seen, "reply "+f.ID)
				if f.Code != 0 {
					t.Fatalf("%s: %+v", f.ID, f)
				}
			}
			if f.Event == protocol.EvRoomStateChanged {
				var sc protocol.RoomStateChanged
				json.Unmarshal(f.Data, &sc)
				seen = append(seen, sc.State)
				if sc.State == "Logined" {
					break
				}
			}
		}
		if !slices.Contains(seen, "Logout") {
			lost++
			t.Logf("round %d: %q: no Logout for the logout", i, seen)
		}
	}
	if lost > 0 {
		t.Errorf("%d of 40 logouts acknowledged with code 0 never got their room_state_changed Logout", lost)
	}
}

// A logout followed at once by a login to another room (single-room mode:
// ZEGO's way of changing rooms without switchRoom) tells the session it left
// the old room before it tells it that it is in the new one, as a switch does
// (TestASwitchSaysLogoutBeforeTheNewRoom). The order depends on timing, so
// the test runs many rounds: before the fix, a few of every 100 got Logined
// first.
func TestALogoutThenALoginElsewhereSaysLogoutFirst(t *testing.T) {
	n := startNode(t, gateway.Config{RequestsPerSecond: 10000, RequestBurst: 10000})
	alice := dial(t, n)
	tok := token(t, n, "alice")
	// bob keeps both rooms alive, so that entering has members to report.
	bob := dial(t, n)
	bob.Do("mode", protocol.OpSetRoomMode, protocol.SetRoomModeRequest{Mode: "multi"})
	bob.Login("ra", "bob", token(t, n, "bob"))
	bob.Login("rb", "bob", token(t, n, "bob"))
	from := "ra"
	alice.Login(from, "alice", tok)
	alice.Until(func(f protocol.Frame) bool { return f.Event == protocol.EvRoomStateChanged && f.Room == from })
	const rounds = 150
	bad := 0
	for i := range rounds {
		to := map[string]string{"ra": "rb", "rb": "ra"}[from]
		alice.Send(fmt.Sprint("out-", i), protocol.OpLogout, protocol.LogoutRequest{Room: from})
		alice.Send(fmt.Sprint("in-", i), protocol.OpLogin, protocol.LoginRequest{Room: to,
			User: protocol.User{ID: "alice", Name: "alice"}, Token: tok})
		var seen []string
		for !slices.Contains(seen, "Logout "+from) || !slices.Contains(seen, "Logined "+to) {
			f := alice.Next()
			if f.Type == protocol.TypeReply && f.Code != 0 {
				t.Fatalf("%s: %+v", f.ID, f)
			}
			if f.Event == protocol.EvRoomStateChanged {
				var sc protocol.RoomStateChanged
				json.Unmarshal(f.Data, &sc)
				seen = append(seen, sc.State+" "+f.Room)
			}
		}
		if slices.Index(seen, "Logined "+to) < slices.Index(seen, "Logout "+from) {
			bad++
			t.Logf("round %d, %s to %s: %q", i, from, to, seen)
		}
		from = to
	}
	if bad > 0 {
		t.Errorf("%d of %d logout-then-login rounds said Logined in the new room before Logout in the old one", bad, rounds)
	}
}

// quietAliceAway logs alice into r1 with user_status_notify false through
// a proxy, then cuts her connection and waits until the node has let it go;
// it returns her hello (its resume token) and her login's snapshot.
func quietAliceAway(t *testing.T) (*node.Node, *netcut.Proxy, protocol.Hello, protocol.RoomSnapshot) {
	t.Helper()
	n := startNode(t, gateway.Config{})
	proxy := netcut.Start(t, n.HTTPAddr())
	alice := wire.Dial(t, proxy.Addr())
	off := false
	alice.Send("in", protocol.OpLogin, protocol.LoginRequest{Room: "r1", User: protocol.User{ID: "alice", Name: "alice"},
		Token: token(t, n, "alice"), UserStatusNotify: &off})
	f := alice.Reply("in")
	var snap protocol.RoomSnapshot
	if f.Code != 0 || json.Unmarshal(f.Data, &snap) != nil {
		t.Fatalf("quiet login: %+v", f)
	}
	proxy.Cut()
	waitSessions(t, n, 0)
	return n, proxy, alice.Hello, snap
}

// A member that logged in with user_status_notify false hears of no other
// user, live or replayed when it resumes.
func TestAQuietSessionResumesWithoutUserUpdates(t *testing.T) {
	n, proxy, hello, snap := quietAliceAway(t)
	bob := dial(t, n)
	bob.Login("r1", "bob", token(t, n, "bob"))
	bob.Do("b", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "while alice was away"})
	bob.Do("bye", protocol.OpLogout, protocol.LogoutRequest{Room: "r1"})

	again := wire.Dial(t, proxy.Addr())
	reply, rr, frames := resumeAndRead(t, again, protocol.ResumeRequest{ResumeToken: hello.ResumeToken,
		Rooms: map[string]uint64{"r1": snap.Seq}})
	if reply.Code != 0 || rr.Rooms["r1"].Status != "resumed" {
		t.Fatalf("resume: %+v %+v", reply, rr)
	}
	got := false
	for _, f := range frames {
		if f.Event == protocol.EvRoomUserUpdate {
			t.Errorf("a member that logged in with user_status_notify false was replayed a user update: %s", f.Data)
		}
		if f.Event == protocol.EvBroadcastMessage {
			got = true
		}
	}
	if !got {
		t.Errorf("the missed broadcast was not replayed: %+v", frames)
	}
}

// The same for a quiet member removed from the room while away (kicked):
// the server no longer holds its quiet flag, so the client names the rooms
// it entered quietly (quiet in the resume). Before, the replay up to the
// kick carried the ADD of the user who came meanwhile.
func TestAQuietSessionKickedWhileAwayIsReplayedNoUserUpdate(t *testing.T) {
	n, proxy, hello, snap := quietAliceAway(t)
	bob := dial(t, n)
	bob.Login("r1", "bob", token(t, n, "bob"))
	if _, err := n.Engine.Execute(estest.Ctx(t), domain.Meta{App: "dev"}, domain.KickUser{Room: "r1", User: "alice"}); err != nil {
		t.Fatal(err)
	}

	again := wire.Dial(t, proxy.Addr())
	reply, rr, frames := resumeAndRead(t, again, protocol.ResumeRequest{ResumeToken: hello.ResumeToken,
		Rooms: map[string]uint64{"r1": snap.Seq}, Quiet: []string{"r1"}})
	if reply.Code != 0 || rr.Rooms["r1"].Status != "left" {
		t.Fatalf("resume: %+v %+v", reply, rr)
	}
	kicked := false
	for _, f := range frames {
		if f.Event == protocol.EvRoomUserUpdate {
			t.Errorf("a quiet member kicked while away was replayed a user update: %s", f.Data)
		}
		if f.Event == protocol.EvRoomStateChanged && strings.Contains(string(f.Data), `"KickOut"`) {
			kicked = true
		}
	}
	if !kicked {
		t.Errorf("the kick was not replayed: %+v", frames)
	}
}

// Every operation naming a room checks the room ID before anything else
// (docs/protocol.md, "Limits and bad input"): the queries answer a room ID
// over 128 bytes, empty or with a control character with invalid_argument,
// not room_not_exist.
func TestQueriesRefuseAnInvalidRoomID(t *testing.T) {
	n := startNode(t, gateway.Config{})
	w := dial(t, n)
	w.Login("r1", "alice", token(t, n, "alice"))
	long := strings.Repeat("x", domain.MaxRoomIDBytes+1)
	for i, op := range []protocol.Op{protocol.OpQueryRoom, protocol.OpQueryOnlineCount, protocol.OpQueryMemberList,
		protocol.OpQueryRoomAttributes, protocol.OpQueryMemberAttributes, protocol.OpQueryHistory} {
		for j, room := range []string{long, "", `bad\u0001room`} {
			id := fmt.Sprint(i, "-", j)
			w.SendRaw(`{"id":"` + id + `","op":"` + string(op) + `","data":{"room":"` + room + `"}}`)
			if f := w.Reply(id); f.Code != domain.ErrInvalidArgument.Code {
				t.Errorf("%s with room ID %.20q (%d bytes): %d %s %s, want invalid_argument", op, room, len(room),
					f.Code, f.Error, f.Message)
			}
		}
	}
}

// A query must leave nothing behind for the room ID it names: were the
// engine to cache an entry under each (kept until 100,000 others push it
// out), a client sending queries with 48 KB room IDs would pin 48 KB each.
func TestQueriesWithJunkRoomIDsPinNoMemory(t *testing.T) {
	n := startNode(t, gateway.Config{RequestsPerSecond: 1e6, RequestBurst: 1e6})
	w := dial(t, n)
	w.Login("r1", "alice", token(t, n, "alice"))
	heap := func() uint64 {
		var ms runtime.MemStats
		for range 3 {
			runtime.GC()
		}
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	const count, size = 1000, 48 << 10
	before := heap()
	for i := range count {
		room := fmt.Sprintf("%06d", i) + strings.Repeat("x", size)
		id := fmt.Sprint("q", i)
		w.SendRaw(`{"id":"` + id + `","op":"query_online_count","data":{"room":"` + room + `"}}`)
		w.Reply(id)
	}
	after := heap()
	grew := int64(after) - int64(before)
	t.Logf("heap %d → %d bytes (%+d) after %d queries with %d-byte room IDs", before, after, grew, count, size)
	if grew > count*size/2 {
		t.Errorf("the heap grew by %d MB after %d refused queries (%d MB of room IDs sent): the node keeps them",
			grew>>20, count, count*size>>20)
	}
}
