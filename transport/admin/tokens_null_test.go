package admin_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/admin"
)

// docs/admin.md: "only an absent field or ["*"] means every room". A Go
// backend's empty selection (a nil []string) marshals as "rooms": null,
// which is neither, and must not mint an all-rooms token.
func TestATokenForANullRoomListIsNotAnAllRoomsToken(t *testing.T) {
	n := start(t)
	adm := admin_(t, n)
	var tr admin.TokenReply
	code := rawCall(t, n, adm, "POST", "/tokens", []byte(`{"user":"alice","rooms":null}`), &tr)
	if code != http.StatusBadRequest {
		c, _ := n.Signer.Verify(tr.Token)
		t.Errorf(`"rooms": null: HTTP %d (claims %+v); want 400 as for "rooms": []`, code, c)
	}
	// Left out, it still means every room.
	if code := rawCall(t, n, adm, "POST", "/tokens", []byte(`{"user":"alice"}`), &tr); code != http.StatusOK {
		t.Fatalf("rooms left out: HTTP %d", code)
	}
	if c, err := n.Signer.Verify(tr.Token); err != nil || !c.AllRooms {
		t.Errorf("rooms left out: claims %+v (%v), want every room", c, err)
	}
}

// Requests whose points are in order, of either kind, are answered.
func TestDiffsInOrderAreAnswered(t *testing.T) {
	n, adm := historyNode(t) // seqs 1,2 at 09:00:00; 3..9 at 09:00:01..07
	at := func(sec int) string { return time.Date(2026, 11, 21, 9, 0, sec, 0, time.UTC).Format(time.RFC3339) }
	for _, q := range []string{"from=3&to=" + at(1), "from=" + at(1) + "&to=3", "from=" + at(3) + "&to=9", "from=2&to=" + at(7),
		"from=" + at(0) + "&to=2", "from=" + at(30), "from=9", "from=" + at(2) + "&to=" + at(2)} {
		var d admin.RoomDiff
		if code := call(t, n, adm, "GET", "/rooms/class%201.A/diff?"+q, nil, &d); code != 200 {
			t.Errorf("diff?%s: HTTP %d", q, code)
		}
	}
	var r domain.Room
	if code := call(t, n, adm, "GET", "/rooms/class%201.A/state?at="+at(30), nil, &r); code != 200 || r.Seq != 9 {
		t.Errorf("state at a time after the end: HTTP %d seq %d", code, r.Seq)
	}
}
