package gateway_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections"
	"github.com/roomlog/roomlog/tests/netcut"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/protocol"
)

// The same race as TestAResumeWaitsForTheCommandItsOldConnectionWasRunning,
// across two nodes: alice's login to r2 is in flight on node A when her
// network drops, and she resumes on node B. B's takeover notice is
// published after B has read the log; here A's login goes on between the
// two (the test lets it go when B publishes), as a command whose append is
// already on its way does. Before, B answered without r2 while the log had
// alice in r2: a member the client was never told of, who got none of the
// room's events and stayed in the room (her session alive on B) until she
// left. B now asks A to let go of the session first, and reads the log once
// A's command has ended: r2 is in the reply if the login landed, and not if
// it was cancelled.
func TestAResumeOnAnotherNodeWaitsForTheCommandRunningThere(t *testing.T) {
	shared, joined := estest.Shared(t)
	a, src, addrA := startHoldNodeOn(t, shared)
	b := buildHandNode(t, joined, "B", nil, nil)
	busB := &hookedBus{Bus: b.bus}
	addrB := b.serve(t, gateway.Config{Bus: busB}, nil)
	estest.RunLive(t, b.log, b.live)

	proxy := netcut.Start(t, addrA)
	alice := wire.Dial(t, proxy.Addr())
	sid := domain.SessionID(alice.Hello.Session)
	tok, snap := loginHeldOnR2(t, a, src, alice)

	inR2 := func() (in bool) {
		estest.Sync(t, b.log, b.live)
		b.live.Read(func(m *projections.Model) {
			if app := m.App("dev"); app != nil && app.Rooms["r2"] != nil {
				_, in = app.Rooms["r2"].MemberBySession("alice", sid)
			}
		})
		return in
	}
	// When B publishes its takeover notice, A's held login goes on; if it
	// was not cancelled before, its appends land before the notice leaves.
	hook := func() {
		src.let()
		select {
		case err := <-src.outcome:
			if err == nil {
				estest.Eventually(t, "alice's login to r2 is stored", inR2)
			}
		case <-time.After(30 * time.Second):
			t.Error("the held login neither went on nor was cancelled")
		}
	}
	busB.hook.Store(&hook)

	proxy.Drop()
	again := wire.Dial(t, addrB)
	reply := again.Do("r", protocol.OpResume, protocol.ResumeRequest{ResumeToken: alice.Hello.ResumeToken, Token: tok,
		Rooms: map[string]uint64{"r1": snap.Seq}})
	var rr protocol.ResumeReply
	if reply.Code != 0 || json.Unmarshal(reply.Data, &rr) != nil {
		t.Fatalf("resume on B: %+v", reply)
	}
	st, named := rr.Rooms["r2"]
	landed := inR2()
	t.Logf("the login to r2 landed: %v; the resume reply names rooms %+v", landed, rr.Rooms)
	if !landed {
		if named && st.Status != "left" {
			t.Errorf("the log does not have alice in r2, yet the resume says %q", st.Status)
		}
		return
	}
	if !named || st.Status == "left" {
		t.Fatalf("the log has alice in r2, but the resume on B names rooms %+v: she was never told she is in r2",
			rr.Rooms)
	}
	// And she gets r2's events on B.
	bob := wire.Dial(t, addrB)
	bob.Login("r2", "bob", holdToken(t, b, "bob"))
	bob.Do("b", protocol.OpBroadcast, protocol.MessageRequest{Room: "r2", Message: "to r2"})
	again.Until(func(f protocol.Frame) bool { return f.Room == "r2" && f.Event == protocol.EvBroadcastMessage })
}
