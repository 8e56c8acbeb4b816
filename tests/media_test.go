package tests

import (
	"bytes"
	"errors"
	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/media"
	"github.com/roomlog/roomlog/media/mediatest"
	"slices"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/client"
)

// A publisher's media reaches a player in its room and one in another room
// (cross-room co-hosting), through the Go SDK and a real node; none of the
// signalling is in the log.
func TestMediaFlowsToPlayersInAnyRoom(t *testing.T) {
	n := clienttest.StartNode(t, clienttest.NodeOptions{})
	url := clienttest.URL(n.HTTPAddr())
	alice, bob, carol := dialMedia(t, n, url, "alice", nil), dialMedia(t, n, url, "bob", nil), dialMedia(t, n, url, "carol", nil)
	alice.login("stage")
	bob.login("stage")
	carol.login("hall")
	alice.publish("alice-cam", "stage")
	_, bs := bob.play("alice-cam", "stage")
	_, cs := carol.play("alice-cam", "hall") // the play is in carol's room; the stream in alice's

	// A session that does not play the stream is refused its media.
	dave := dialMedia(t, n, url, "dave", nil)
	dave.login("hall")
	if _, err := dave.c.PlayMedia(clienttest.Ctx(t), "alice-cam", nil, client.MediaOptions{}); !errors.Is(err, domain.ErrMediaNotPlaying) {
		t.Errorf("dave's media without a play: %v, want %v", err, domain.ErrMediaNotPlaying)
	}
	if _, err := dave.c.PublishMedia(clienttest.Ctx(t), "alice-cam", nil, client.MediaOptions{}); !errors.Is(err, domain.ErrMediaNotPublishing) {
		t.Errorf("dave publishing alice's stream: %v, want %v", err, domain.ErrMediaNotPublishing)
	}
	flowing(t, "bob", bs)
	flowing(t, "carol", cs)

	// SDP and candidates hold ICE passwords and addresses: never stored.
	var scanned int
	if _, err := n.Log.Read(clienttest.Ctx(t), []string{n.Log.Prefix() + ".>"}, 1, func(rec eventstore.Record) error {
		scanned++
		for _, secret := range []string{"ice-pwd", "a=candidate", "ice-ufrag", "fingerprint"} {
			if bytes.Contains(rec.Data, []byte(secret)) {
				t.Errorf("the log holds %q at %d: %s", secret, rec.Seq, rec.Data)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if scanned < 10 {
		t.Fatalf("only %d log messages scanned", scanned)
	}
}

// Two nodes, one log: alice publishes through node A (A's SFU hosts her
// stream, as the publish records), bob plays through node B. B's gateway
// forwards bob's signalling to A over core NATS request/reply; A's state
// events reach bob through B. A stream not yet published is hosted where
// the player is; when it is published on the other node the player is told
// it moved and the SDK follows it there.
func TestMediaAcrossTwoNodes(t *testing.T) {
	nodeA := clienttest.StartNode(t, clienttest.NodeOptions{NATSListen: "127.0.0.1:0"})
	nodeB := clienttest.StartNode(t, clienttest.NodeOptions{Join: nodeA})
	alice := dialMedia(t, nodeA, clienttest.URL(nodeA.HTTPAddr()), "alice", nil)
	bob := dialMedia(t, nodeB, clienttest.URL(nodeB.HTTPAddr()), "bob", nil)
	carol := dialMedia(t, nodeB, clienttest.URL(nodeB.HTTPAddr()), "carol", nil)
	alice.login("stage")
	bob.login("stage")
	carol.login("stage")

	// carol plays before anything is published: her peer is on B.
	if _, err := carol.c.StartPlayingStream(clienttest.Ctx(t), "alice-cam", "stage"); err != nil {
		t.Fatal(err)
	}
	early := mediatest.NewSink()
	if _, err := carol.c.PlayMedia(clienttest.Ctx(t), "alice-cam", early.OnTrack, client.MediaOptions{API: mediatest.API()}); err != nil {
		t.Fatal(err)
	}
	alice.publish("alice-cam", "stage")
	node, published := media.HostOf(nodeB.Live, clienttest.App, "alice-cam")
	if !published || node != nodeA.SFU.Node() {
		t.Fatalf("alice-cam is hosted on %q (published %v), want node A %s", node, published, nodeA.SFU.Node())
	}
	_, sink := bob.play("alice-cam", "stage")
	flowing(t, "bob, through node B", sink)
	if st := nodeA.SFU.Stats(); st.Players < 1 {
		t.Errorf("node A serves %+v: bob's peer is not on the hosting node", st)
	}
	if st := nodeB.SFU.Stats(); st.Publishers != 0 {
		t.Errorf("node B hosts %+v", st)
	}
	// carol's early peer on B was moved: she plays from A now.
	if e := carol.states.wait(t, "alice-cam", client.NoPlay); e.Code != domain.ErrMediaPlayMoved.Code {
		t.Errorf("carol's first peer ended with %+v, want play_media_moved", e)
	}
	flowing(t, "carol, after following the stream to node A", early)
	waitFor(t, "carol's peer on node B to go", func() bool { return nodeB.SFU.Stats().Players == 0 })
}

// Media nodes apart from gateways, and the death of one: a media-only node
// hosts alice's stream (published through gateway G1) and bob's play
// (through gateway G2). When it dies, a survivor stops its streams in the
// log with reason media_node_lost, exactly once although both gateways
// notice; alice and bob are told (1003004, 1004004).
func TestMediaNodeDeath(t *testing.T) {
	// Real time: the timeout is generous enough that a stall on a loaded
	// machine never declares the live media node dead before it is killed.
	quick := func(c *node.Config) { c.MediaNodeBeat, c.MediaNodeTimeout = time.Second, 8*time.Second }
	g1 := clienttest.StartNode(t, clienttest.NodeOptions{NATSListen: "127.0.0.1:0", Edit: func(c *node.Config) {
		quick(c)
		c.NoMedia = true
	}})
	m := clienttest.StartNode(t, clienttest.NodeOptions{Join: g1, Edit: func(c *node.Config) {
		quick(c)
		c.NoGateway = true
	}})
	g2 := clienttest.StartNode(t, clienttest.NodeOptions{Join: g1, Edit: func(c *node.Config) {
		quick(c)
		c.NoMedia = true
	}})
	for _, g := range []*node.Node{g1, g2} {
		waitFor(t, "the gateways to see the media node", func() bool {
			return slices.Equal(g.MediaNodes.Alive(), []string{m.SFU.Node()})
		})
	}
	alice := dialMedia(t, g1, clienttest.URL(g1.HTTPAddr()), "alice", nil)
	bob := dialMedia(t, g2, clienttest.URL(g2.HTTPAddr()), "bob", nil)
	alice.login("stage")
	bob.login("stage")
	alice.publish("alice-cam", "stage")
	_, sink := bob.play("alice-cam", "stage")
	if st := m.SFU.Stats(); st.Publishers != 1 || st.Players != 1 {
		t.Fatalf("the media node serves %+v", st)
	}

	m.Close()
	stopped(t, "bob", sink)
	waitMediaCode(t, alice, "alice-cam", client.NoPublish, domain.ErrMediaPublishNodeLost.Code)
	waitMediaCode(t, bob, "alice-cam", client.NoPlay, domain.ErrMediaPlayNodeLost.Code)
	bob.r.WaitStreams("stage", client.UpdateDelete, "alice-cam")
	var lost int
	for _, e := range roomEvents(t, g1, "stage") {
		if d, ok := e.Data.(*domain.StreamStoppedData); ok && d.Reason == domain.ReasonMediaNodeLost {
			lost++
		}
	}
	if lost != 1 {
		t.Errorf("%d stream_stopped events with media_node_lost, want 1", lost)
	}
	// The stream is gone from the log: stopping it finds nothing.
	if err := alice.c.StopPublishingStream(clienttest.Ctx(t), "alice-cam"); !errors.Is(err, domain.ErrStreamNotFound) {
		t.Errorf("stopping the lost stream: %v, want %v", err, domain.ErrStreamNotFound)
	}
}

// waitMediaCode waits for a media state with a given code.
func waitMediaCode(t *testing.T, u *mediaUser, stream string, st client.MediaState, code domain.Code) {
	t.Helper()
	deadline := time.Now().Add(clienttest.Wait)
	for time.Now().Before(deadline) {
		u.states.mu.Lock()
		for _, e := range u.states.evs {
			if e.Stream == stream && e.State == st && e.Code == code {
				u.states.mu.Unlock()
				return
			}
		}
		u.states.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	u.states.mu.Lock()
	defer u.states.mu.Unlock()
	t.Fatalf("%s: no %s with code %d for %s; got %+v", u.id, st, code, stream, u.states.evs)
}
