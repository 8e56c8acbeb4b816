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

// Node A died while bob played cam there. His gateway moved him
// (MediaNodeLost: its projection no longer placed cam on A, the node that
// stopped A's streams having stored the stop); that node's own NO_PLAY
// node_lost for cam then comes on the bus. Bob is told once: the second
// would end the player the SDK is connecting again. Once his next offer is
// answered by node B, events of B reach him again, and A's still do not.
func TestAConnectionMovedOffADeadNodeIsNotToldOfItAgain(t *testing.T) {
	mc := mediaConn{"cam", media.Play}
	s := &session{}
	b := &s.mediaConns
	b.at = map[mediaConn]mediaPeer{mc: {node: "A", peer: "p1"}}
	moved := media.StateEvent{App: "app", Session: "s-bob", Stream: "cam", Kind: media.Play, State: media.NoPlay,
		Code: media.ErrPlayMoved.Code, Reason: "moved", Node: "A", Peer: "p1"}
	lost := media.StateEvent{App: "app", Session: "s-bob", Stream: "cam", Kind: media.Play, State: media.NoPlay,
		Code: media.ErrPlayNodeLost.Code, Reason: "node_lost", Node: "A"}
	b.mu.Lock()
	first, second := b.endLostLocked(mc, moved), b.deliverLocked(lost)
	b.mu.Unlock()
	if !first || second {
		t.Fatalf("moved told %v, then node_lost told %v: want moved only", first, second)
	}
	s.noteMedia(mc, media.OpOffer, media.Answer{Node: "B", Peer: "p2"}, nil)
	playing := media.StateEvent{App: "app", Session: "s-bob", Stream: "cam", Kind: media.Play, State: media.Playing,
		Node: "B", Peer: "p2"}
	b.mu.Lock()
	late, onB := b.deliverLocked(lost), b.deliverLocked(playing)
	b.mu.Unlock()
	if late || !onB {
		t.Fatalf("after the offer answered by B: A's node_lost told %v, B's PLAYING told %v", late, onB)
	}
}
