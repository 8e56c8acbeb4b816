package domain

import "testing"

// SEMANTICS.md section 4: "createRoom(roomInfo{roomID, roomName}, config)
// creates and joins; fails if the room exists." A session that is already a
// member of the room asks to create it again: the room exists, so the
// create must be refused (1902003), not acknowledged as if it had created
// the room. (A retry of the very command that created it may still succeed:
// this test issues a new command.)
func TestCreateRoomFailsWhenTheSessionIsAlreadyInIt(t *testing.T) {
	w := newWorld(t, multiPolicy())
	w.must(zim("s1", "u1", "r1", ViaCreate))
	if !w.room("r1").Exists {
		t.Fatal("r1 was not created")
	}
	d, err := w.try(zim("s1", "u1", "r1", ViaCreate))
	expectError(t, err, ErrRoomAlreadyExists)
	expectEvents(t, d)
}
