package gateway

import (
	"testing"

	"github.com/roomlog/roomlog/media"
)

// Node A died; bob's player connection failed, and his next offer was
// answered by node B (peer p2). The teller of A's streams then sends
// NO_PLAY node_lost for bob's stream, without a peer identity (it knows no
// peers of A). Events without an identity go by node: one about node A
// must not reach bob, whose connection is on node B, or he is told his live
// connection ended. The first version of the peer identities sent it.
func TestAnEventWithoutIdentityAboutAnotherNodeIsNotSent(t *testing.T) {
	mc := mediaConn{"cam", media.Play}
	b := &mediaBook{at: map[mediaConn]mediaPeer{mc: {node: "B", peer: "p2"}}}
	e := media.StateEvent{App: "app", Session: "s-bob", Stream: "cam", Kind: media.Play, State: media.NoPlay,
		Reason: "node_lost", Node: "A"}
	b.mu.Lock()
	sent := b.deliverLocked(e)
	b.mu.Unlock()
	if sent {
		t.Fatalf("NO_PLAY node_lost of node A (no peer identity) sent to a session whose connection is on node B, peer p2")
	}
	if b.at[mc] != (mediaPeer{node: "B", peer: "p2"}) {
		t.Fatalf("the connection's record changed: %+v", b.at[mc])
	}
}

// Node A died while bob played cam there. His gateway ended the connection
// (MediaNodeLost); the node that stops A's streams then tells of it too
// (NO_PLAY node_lost on the bus, no peer identity). Bob is told once. Once
// his next offer is answered by node B, events of B reach him again, and
// A's still do not.
func TestAConnectionEndedOnADeadNodeIsNotToldOfItAgain(t *testing.T) {
	mc := mediaConn{"cam", media.Play}
	s := &session{}
	b := &s.mediaConns
	b.at = map[mediaConn]mediaPeer{mc: {node: "A", peer: "p1"}}
	b.mu.Lock()
	first, second := b.endLostLocked(mc, nodeLost("A", "p1")), b.deliverLocked(nodeLost("A", ""))
	b.mu.Unlock()
	if !first || second {
		t.Fatalf("the gateway's node_lost told %v, then the stopping node's told %v: want the first only", first, second)
	}
	s.noteMedia(mc, media.OpOffer, media.Answer{Node: "B", Peer: "p2"}, nil)
	playing := media.StateEvent{App: "app", Session: "s-bob", Stream: "cam", Kind: media.Play, State: media.Playing,
		Node: "B", Peer: "p2"}
	b.mu.Lock()
	late, onB := b.deliverLocked(nodeLost("A", "")), b.deliverLocked(playing)
	b.mu.Unlock()
	if late || !onB {
		t.Fatalf("after the offer answered by B: A's node_lost told %v, B's PLAYING told %v", late, onB)
	}
}

// Node A was found dead (its beats stalled past the timeout) but lives on
// under the same name. Bob's connection there was ended; his next offer is
// answered by A again (new peer p2): A's events about p2 reach him, its late
// word about the old connection does not.
func TestANewPeerOnANodeFoundDeadIsToldItsEvents(t *testing.T) {
	mc := mediaConn{"cam", media.Play}
	s := &session{}
	b := &s.mediaConns
	b.at = map[mediaConn]mediaPeer{mc: {node: "A", peer: "p1"}}
	b.mu.Lock()
	b.endLostLocked(mc, nodeLost("A", "p1"))
	b.mu.Unlock()
	s.noteMedia(mc, media.OpOffer, media.Answer{Node: "A", Peer: "p2"}, nil)
	playing := media.StateEvent{App: "app", Session: "s-bob", Stream: "cam", Kind: media.Play, State: media.Playing,
		Node: "A", Peer: "p2"}
	ended := media.StateEvent{App: "app", Session: "s-bob", Stream: "cam", Kind: media.Play, State: media.NoPlay,
		Reason: "stopped", Node: "A", Peer: "p2"}
	b.mu.Lock()
	old, p, e := b.deliverLocked(nodeLost("A", "")), b.deliverLocked(playing), b.deliverLocked(ended)
	b.mu.Unlock()
	if old || !p || !e {
		t.Errorf("new peer p2 on A: the old connection's node_lost told %v, PLAYING told %v, NO_PLAY told %v; "+
			"want false, true, true", old, p, e)
	}
}

// What a resume on this node takes over of the session's book includes the
// connections ended on a dead node: the stopping node's node_lost that
// arrives after the resume is not told again.
func TestAResumeKeepsWhatADeadNodeEnded(t *testing.T) {
	mc := mediaConn{"cam", media.Play}
	old := &session{}
	old.mediaConns.at = map[mediaConn]mediaPeer{mc: {node: "A", peer: "p1"}}
	old.mediaConns.mu.Lock()
	old.mediaConns.endLostLocked(mc, nodeLost("A", "p1"))
	old.mediaConns.mu.Unlock()
	s := &session{}
	s.mediaConns.takeOver(old.mediaConns.carry())
	s.mediaConns.mu.Lock()
	told := s.mediaConns.deliverLocked(nodeLost("A", ""))
	s.mediaConns.mu.Unlock()
	if told {
		t.Errorf("after a resume on this node, A's node_lost is told again")
	}
}

// nodeLost is a NO_PLAY node_lost of bob's cam from node (about peer; "":
// the stopping node's, which knows no peers of the dead one).
func nodeLost(node, peer string) media.StateEvent {
	return media.StateEvent{App: "app", Session: "s-bob", Stream: "cam", Kind: media.Play, State: media.NoPlay,
		Code: media.ErrPlayNodeLost.Code, Reason: "node_lost", Node: node, Peer: peer}
}
