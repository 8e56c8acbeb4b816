package gateway_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
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

// wedgedBus is a node's bus whose release requests are never answered: the
// node's NATS connection is up (the server still routes release.A to it)
// but the node does not answer (a frozen host whose TCP connection the NATS
// server has not yet timed out).
type wedgedBus struct{ *eventstore.Bus }

func (b wedgedBus) Serve(subject string, fn func(ctx context.Context, data []byte) []byte) (func() error, error) {
	if strings.HasPrefix(subject, "release.") {
		fn = func(ctx context.Context, _ []byte) []byte { <-ctx.Done(); return nil }
	}
	return b.Bus.Serve(subject, fn)
}

// A resume of a session whose previous node does not answer the release
// waits for it a moment (releaseWait, 2 s), not a command's time: the first
// version of the release made every such resume wait the whole
// CommandTimeout (10 s by default, 30 s here), most of the SDKs' request
// timeout, in exactly the failover resumes exist for.
func TestAResumeAwayFromANodeThatDoesNotAnswerIsNotHeldUp(t *testing.T) {
	shared, joined := estest.Shared(t)
	a := buildHandNode(t, shared, "A", nil, nil)
	addrA := a.serve(t, gateway.Config{Bus: wedgedBus{a.bus}}, nil)
	estest.RunLive(t, a.log, a.live)
	b := buildHandNode(t, joined, "B", nil, nil)
	const commandTimeout = 30 * time.Second
	addrB := b.serve(t, gateway.Config{CommandTimeout: commandTimeout}, nil)
	estest.RunLive(t, b.log, b.live)

	proxy := netcut.Start(t, addrA)
	alice := wire.Dial(t, proxy.Addr())
	tok := holdToken(t, a, "alice")
	snap := alice.Login("r1", "alice", tok)
	proxy.Drop()
	again := wire.Dial(t, addrB)
	start := time.Now()
	reply := again.Do("r", protocol.OpResume, protocol.ResumeRequest{ResumeToken: alice.Hello.ResumeToken, Token: tok,
		Rooms: map[string]uint64{"r1": snap.Seq}})
	if took := time.Since(start); took > commandTimeout/2 {
		t.Errorf("the resume on B took %v (reply code %d): it waited a command's time for a node that does not answer",
			took, reply.Code)
	}
}
