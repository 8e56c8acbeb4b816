package gateway

import (
	"testing"

	"github.com/roomlog/roomlog/domain"
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
	first, second := b.deliverLocked(nodeLost("A", "p1")), b.deliverLocked(nodeLost("A", ""))
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
	b.deliverLocked(nodeLost("A", "p1"))
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
	old.mediaConns.deliverLocked(nodeLost("A", "p1"))
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

// serverWith is a gateway with one session, sess.
func serverWith(sess *session) *Server {
	s := &Server{sessions: map[domain.SessionID]*session{sess.id: sess}}
	sess.srv = s
	return s
}

// bobEvent is a state event of bob's cam from node about peer.
func bobEvent(node, peer string, st media.State, reason string) media.StateEvent {
	return media.StateEvent{App: "app", Session: "s-bob", Stream: "cam", Kind: media.Play, State: st,
		Reason: reason, Node: node, Peer: peer}
}

// A node of an earlier version (it mints no peer identity) is found dead
// but lives on (or restarts under its name). Bob's connection there is
// ended by MediaNodeLost; his next offer is answered by A again: the new
// connection's events reach him (the first mark, {A, ""}, swallowed them).
func TestANewConnectionOnANodeWithoutIdentitiesFoundDeadIsTold(t *testing.T) {
	mc := mediaConn{"cam", media.Play}
	sess := newSession(nil, "s-bob")
	sess.app = "app"
	sess.mediaConns.at = map[mediaConn]mediaPeer{mc: {node: "A"}}
	srv := serverWith(sess)
	srv.MediaNodeLost("A")
	sess.noteMedia(mc, media.OpOffer, media.Answer{Node: "A"}, nil)
	b := &sess.mediaConns
	b.mu.Lock()
	p := b.deliverLocked(bobEvent("A", "", media.Playing, ""))
	e := b.deliverLocked(bobEvent("A", "", media.NoPlay, "ended"))
	b.mu.Unlock()
	if !p || !e {
		t.Errorf("new connection on identity-less node A: PLAYING told %v, NO_PLAY told %v; want both told", p, e)
	}
}

// A media_check (after a resume) answered by A with the very peer p1
// MediaNodeLost ended: A was wrongly found dead and the connection lives, so
// its later genuine NO_PLAY reaches bob (the first mark swallowed it).
func TestAConnectionANodeFoundDeadStillHasIsToldItsEnding(t *testing.T) {
	mc := mediaConn{"cam", media.Play}
	sess := newSession(nil, "s-bob")
	sess.app = "app"
	sess.mediaConns.at = map[mediaConn]mediaPeer{mc: {node: "A", peer: "p1"}}
	srv := serverWith(sess)
	srv.MediaNodeLost("A")
	sess.noteMedia(mc, media.OpCheck, media.Answer{Node: "A", Peer: "p1", State: media.Playing}, nil)
	b := &sess.mediaConns
	b.mu.Lock()
	e := b.deliverLocked(bobEvent("A", "p1", media.NoPlay, "ended"))
	b.mu.Unlock()
	if !e {
		t.Errorf("after media_check answered {A,p1}: A's NO_PLAY of p1 not told")
	}
}

// The stopping node's node_lost comes first (no peer), then MediaNodeLost
// (finds nothing), then A, found dead but alive, ends p1 itself: bob is told
// once, as with the other order (the first mark was set by MediaNodeLost
// only).
func TestANodeLostWordFirstIsNotFollowedByTheNodesOwnEnding(t *testing.T) {
	mc := mediaConn{"cam", media.Play}
	sess := newSession(nil, "s-bob")
	sess.app = "app"
	sess.mediaConns.at = map[mediaConn]mediaPeer{mc: {node: "A", peer: "p1"}}
	srv := serverWith(sess)
	b := &sess.mediaConns
	b.mu.Lock()
	first := b.deliverLocked(nodeLost("A", ""))
	b.mu.Unlock()
	srv.MediaNodeLost("A")
	b.mu.Lock()
	second := b.deliverLocked(bobEvent("A", "p1", media.NoPlay, "ended"))
	b.mu.Unlock()
	if !first || second {
		t.Errorf("stopping node's node_lost told %v, then A's own NO_PLAY of p1 told %v: want first only", first, second)
	}
}
