package gateway_test

import (
	"encoding/json"
	"testing"

	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/protocol"
)

// protocol.md's room_attributes_update ("a plain write, with who made it",
// "keys that left with their owner") names the writer with its name, as
// every other update names its user (room_extra_info_update's update_user,
// room_member_attributes_update's by). The name used to be left out: the
// event did not record it.
func TestRoomAttributesUpdateNamesTheWriter(t *testing.T) {
	n := startNode(t, gateway.Config{})
	alice, bob := dial(t, n), dial(t, n)
	login := func(w *wire.Conn, id, name string) {
		w.Do("login", protocol.OpLogin, protocol.LoginRequest{Room: "r1", User: protocol.User{ID: id, Name: name},
			Token: token(t, n, id)})
	}
	login(bob, "bob", "Bob")
	login(alice, "alice", "Alice")
	alice.Do("set", protocol.OpSetRoomAttributes, protocol.RoomAttributesRequest{Room: "r1",
		Attributes: map[string]string{"seat-1": "alice"}, DeleteAfterOwnerLeft: true})
	byOf := func(f protocol.Frame) protocol.User {
		var u protocol.RoomAttributesUpdate
		if err := json.Unmarshal(f.Data, &u); err != nil || u.By == nil {
			t.Fatalf("update %s: %v", f.Data, err)
		}
		return *u.By
	}
	isAttrs := func(f protocol.Frame) bool { return f.Event == protocol.EvRoomAttributesUpdate }
	if by := byOf(bob.Until(isAttrs)); by.ID != "alice" || by.Name != "Alice" {
		t.Errorf("a plain write: by = %+v, want {alice Alice}", by)
	}
	alice.Do("logout", protocol.OpLogout, protocol.LogoutRequest{Room: "r1"})
	f := bob.Until(isAttrs)
	if by := byOf(f); by.ID != "alice" || by.Name != "Alice" {
		t.Errorf("keys that left with their owner: by = %+v, want {alice Alice} (%s)", by, f.Data)
	}
}
