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
