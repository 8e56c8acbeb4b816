package client_test

import (
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/client"
)

// Alice's phone loses its network; she logs in to the same room from her
// laptop, which kicks the phone's session out (duplicate login); then the
// phone's session times out. When the phone's network comes back, its
// resume is refused, and the refusal names r1 as a room its session was
// kicked out of: the phone reports the KickOut it missed and does not log
// in again. Before, it logged in to r1 again by itself (Logined) and the
// laptop got KickOut 1002050 for a login nobody asked for.
func TestAKickedSessionThatTimedOutDoesNotTakeTheRoomBack(t *testing.T) {
	t.Parallel()
	n, clock, p := awayNode(t)
	rp, rl := newRec(t, "phone"), newRec(t, "laptop")
	rp.AllowReconnects()
	phone := dial(t, clienttest.URL(p.Addr()), rp, fastRetry)
	login(t, n, phone, rp, "r1", "alice")
	old := phone.Session()
	p.Refuse(true)
	p.Cut()
	rp.WaitState("r1", client.StateReconnecting)

	laptop := dial(t, wsURL(n), rl, nil)
	login(t, n, laptop, rl, "r1", "alice")
	clock.Advance(59 * time.Second)
	if _, err := laptop.QueryRoom(ctx(t), "r1"); err != nil { // the laptop is heard from
		t.Fatal(err)
	}
	waitTracked(t, n.Presence, 2)
	clock.Advance(2 * time.Second) // the phone's minute is up
	waitTracked(t, n.Presence, 1)

	p.Refuse(false)
	e := rp.WaitFor("r1's final state", func(e ev) bool {
		return e.Kind == "state" && e.Room == "r1" && e.State != client.StateReconnecting
	})
	if e.State != client.StateKickOut || e.Code != domain.ErrKickedDuplicate.Code || e.Info.BySession != laptop.Session() {
		t.Fatalf("the phone, kicked out of r1 while away, got %v; want KickOut %d by %s", e, domain.ErrKickedDuplicate.Code,
			laptop.Session())
	}
	// The phone is on a new session, in no room; the laptop is still in r1.
	if _, err := phone.QueryRoom(ctx(t), "r1"); err == nil {
		t.Error("the phone may query r1: it logged in to it again")
	}
	if phone.Session() == old {
		t.Errorf("the phone kept its timed-out session %s", old)
	}
	if _, err := laptop.QueryRoom(ctx(t), "r1"); err != nil {
		t.Errorf("the laptop lost r1: %v", err)
	}
}

// waitTracked waits until presence on n has a timer for want sessions.
func waitTracked(t *testing.T, n interface{ Tracked() int }, want int) {
	t.Helper()
	for deadline := time.Now().Add(clienttest.Wait); n.Tracked() != want; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("presence tracks %d sessions, want %d", n.Tracked(), want)
		}
	}
}
