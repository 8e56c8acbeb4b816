package gateway_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/protocol"
)

// A switch the log stores but the node cannot complete in time (its
// projection is stalled for longer than the command timeout) fails with
// 1002053. The session must be told LoginFailed for the room it was
// switching to, and must not be left in that room in the log: before, the
// others saw it added, while it got none of the room's events.
func TestATimedOutSwitchSaysLoginFailedAndLeavesNoGhost(t *testing.T) {
	// The switch times out while the projection is paused, however long
	// that is; the logins before it must not (generous: a loaded machine).
	n := startPausableNode(t, gateway.Config{CommandTimeout: 5 * time.Second})
	alice := wire.Dial(t, n.addr)
	alice.Login("r1", "alice", n.token(t, "alice"))
	bob := wire.Dial(t, n.addr)
	bob.Login("r2", "bob", n.token(t, "bob"))

	n.pause()
	alice.Send("sw", protocol.OpSwitchRoom, protocol.SwitchRoomRequest{From: "r1", To: "r2"})
	var states []protocol.RoomStateChanged
	var reply protocol.Frame
	for reply.ID != "sw" {
		f := alice.Next()
		switch {
		case f.Event == protocol.EvRoomStateChanged && f.Room == "r2":
			var st protocol.RoomStateChanged
			if err := json.Unmarshal(f.Data, &st); err != nil {
				t.Fatal(err)
			}
			states = append(states, st)
		case f.Type == protocol.TypeReply && f.ID == "sw":
			reply = f
		}
	}
	n.unpause()
	if reply.Code != domain.ErrTimeout.Code {
		t.Fatalf("switch with the projection stalled: reply %d %s, want %d (%s)", reply.Code, reply.Error,
			domain.ErrTimeout.Code, domain.ErrTimeout.Name)
	}
	if len(states) == 0 || states[len(states)-1].State != string(domain.StateLoginFailed) ||
		states[len(states)-1].Code != int(domain.ErrTimeout.Code) {
		t.Fatalf("r2's states before the reply: %+v; want the last to be LoginFailed with %d", states, domain.ErrTimeout.Code)
	}

	// Bob sees alice come and go, and then only himself in r2.
	bob.Until(userUpdate("ADD", "alice"))
	bob.Until(userUpdate("DELETE", "alice"))
	count := bob.Do("c", protocol.OpQueryOnlineCount, protocol.RoomRequest{Room: "r2"})
	var oc protocol.OnlineUserCount
	if err := json.Unmarshal(count.Data, &oc); err != nil || oc.Count != 1 {
		t.Fatalf("r2's online count after alice's failed switch: %s (%v), want 1", count.Data, err)
	}
	bob.Do("m", protocol.OpBroadcast, protocol.MessageRequest{Room: "r2", Message: "to r2"})
	for {
		f, err := alice.TryNext(time.Second)
		if err != nil {
			break
		}
		if f.Room == "r2" && f.Event != protocol.EvRoomStateChanged {
			t.Fatalf("alice, whose switch to r2 failed, got %s %s of r2", f.Event, f.Data)
		}
	}
}

// userUpdate matches a room_user_update of kind (ADD or DELETE) naming user.
func userUpdate(kind, user string) func(protocol.Frame) bool {
	return func(f protocol.Frame) bool {
		if f.Event != protocol.EvRoomUserUpdate {
			return false
		}
		var u protocol.UserUpdate
		if json.Unmarshal(f.Data, &u) != nil || u.UpdateType != kind {
			return false
		}
		for _, x := range u.Users {
			if x.ID == user {
				return true
			}
		}
		return false
	}
}
