package browser

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/netcut"
)

// Alice's phone loses its network; she logs in to the same room from her
// laptop, which kicks the phone's session out; then the phone's session
// times out. When the phone is back, its resume is refused and names r1 as
// a room its session was kicked out of: the engine reports the KICKOUT it
// missed (1002050, by the laptop's session) and does not log in to r1
// again. Before, it did, and the laptop was kicked out in turn.
func TestSDKAKickedSessionThatTimedOutDoesNotTakeTheRoomBack(t *testing.T) {
	clock := estest.NewClock(time.Now()) // the server's
	n := startNode(t, func(o *clienttest.NodeOptions) {
		o.Clock = clock
		o.Gateway.HeartbeatTimeout = time.Minute
	})
	proxy := netcut.Start(t, n.HTTPAddr())
	p := openHarness(t, n)
	p.newEngine("phone", clienttest.URL(proxy.Addr()), nil)
	p.newEngine("laptop", clienttest.URL(n.HTTPAddr()), nil)
	alice := user{"alice", "Alice"}
	p.Must("phone", "loginRoom", "r1", clienttest.Token(t, n, "alice"), alice)
	// Logined comes after the login's reply: wait for it, or it may be
	// taken below for the state after the reconnection.
	p.WaitState(0, "phone", "r1", "LOGINED")
	mark := p.Len()
	proxy.Refuse(true)
	proxy.Cut()
	p.WaitState(mark, "phone", "r1", "RECONNECTING")

	p.Must("laptop", "loginRoom", "r1", clienttest.Token(t, n, "alice"), alice)
	laptop := p.session("laptop")
	clock.Advance(59 * time.Second)
	p.Must("laptop", "queryRoom", "r1") // the laptop is heard from on time
	clock.Advance(2 * time.Second)      // the phone's minute is up
	for deadline := time.Now().Add(clienttest.Wait); n.Presence.Tracked() != 1; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("presence tracks %d sessions, want the laptop's only", n.Presence.Tracked())
		}
	}

	proxy.Refuse(false)
	e := p.Wait(mark, `e => e.who === 'phone' && e.event === 'roomStateChanged' && e.args[0] === 'r1' && e.args[1] !== 'RECONNECTING'`)
	var info struct{ Reason, BySession string }
	json.Unmarshal(e.Args[3], &info)
	if e.Str(1) != "KICKOUT" || e.Num(2) != 1002050 || info.BySession != laptop {
		t.Fatalf("the phone, kicked out of r1 while away, got %s; want KICKOUT 1002050 by %s", e.Args, laptop)
	}
	// The laptop keeps r1.
	p.Must("laptop", "queryRoom", "r1")
}
