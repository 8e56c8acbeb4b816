package tests

import (
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/client"
)

// SEMANTICS.md section 5 (LogoutFailed: logout of a room the session is not
// in, 1002002) and seed 003 (LogoutFailed: "[switchRoom] internally logging
// out of the current room failing, enter this status"; "the reason for the
// error may be incorrect logout room ID or does not exist"): a switch whose
// leaving half fails because the session is not in `from` reports
// LogoutFailed (1002002) for `from`, not Logining and LoginFailed for a
// target it never tried to enter.
func TestASwitchFromARoomNotInIsLogoutFailedThere(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, clienttest.NodeOptions{})
	alice, ra := dialMember(t, n, "r1", "alice")
	_, err := alice.SwitchRoom(clienttest.Ctx(t), "r9", "r2", client.SwitchOptions{})
	refusedWith(t, "switch from a room alice is not in", err, domain.ErrNotInRoom)
	e := ra.WaitFor("a state change", func(e clienttest.Event) bool { return e.Kind == "state" })
	if e.Room != "r9" || e.State != client.StateLogoutFailed || e.Code != domain.ErrNotInRoom.Code {
		t.Errorf("first state change after the switch: %s; want LogoutFailed (1002002) in r9, the room the switch could not "+
			"leave, and nothing for r2, which it did not try to enter", e)
	}
	// Still in r1, and nothing announced for r2.
	if _, err := alice.SendBroadcastMessage(clienttest.Ctx(t), "r1", "still here"); err != nil {
		t.Fatalf("alice after the refused switch: %v", err)
	}
}
