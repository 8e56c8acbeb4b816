package tests

import (
	"encoding/json"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/media"
	"github.com/roomlog/roomlog/media/mediatest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/protocol"
)

// A player's peer connection on node A, signalled through node B, is
// replaced by a new one (bob's first connection closed, his second offered).
// A state event of the first peer that reaches node B only after the second
// offer was answered (state events travel on the bus, answers by
// request/reply: nothing orders them) is about a peer bob no longer has. It
// must not reach bob as a NO_PLAY of his live connection, nor make node B
// forget that the connection is on node A: once the stream stops (bob's
// player waits on A), his media_close must still close the peer on A. It
// used to go to B's own media plane, which answered OK and closed nothing.
func TestMediaALateEndOfAReplacedPeerLeavesTheLiveConnectionAlone(t *testing.T) {
	nodeA := clienttest.StartNode(t, clienttest.NodeOptions{NATSListen: "127.0.0.1:0"})
	nodeB := clienttest.StartNode(t, clienttest.NodeOptions{Join: nodeA})
	alice := dialMedia(t, nodeA, clienttest.URL(nodeA.HTTPAddr()), "alice", nil)
	alice.login("stage")
	alice.publish("alice-cam", "stage") // hosted on node A

	bob := wire.Dial(t, nodeB.HTTPAddr())
	bob.Login("stage", "bob", clienttest.Token(t, nodeB, "bob"))
	bob.Do("play", protocol.OpPlay, protocol.PlayRequest{Stream: "alice-cam", Room: "stage"})
	sid := bob.Hello.Session

	// What the media nodes tell of bob's media, as the bus carries it.
	bus, err := nodeA.Log.OpenBus("test-media-observer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)
	told := make(chan []byte, 64)
	stop, err := bus.Subscribe(media.StateSubject, func(_ string, data []byte) {
		var e media.StateEvent
		if json.Unmarshal(data, &e) == nil && string(e.Session) == sid && e.State == media.NoPlay {
			select {
			case told <- data:
			default:
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop() })
	if err := bus.Flush(clienttest.Ctx(t)); err != nil {
		t.Fatal(err)
	}

	// bob's first peer connection, answered by node A, and closed.
	first := newWirePlayer(t)
	if a := first.offer(t, bob, "offer-1", protocol.OpMediaOffer, nil); a.Node != nodeA.SFU.Node() {
		t.Fatalf("bob's first offer answered by %q, want node A %q", a.Node, nodeA.SFU.Node())
	}
	closeWirePlayer(t, bob, "close-1")()
	var late []byte
	select {
	case late = <-told:
	case <-clienttest.Ctx(t).Done():
		t.Fatal("node A's NO_PLAY of bob's first peer was not seen on the bus")
	}
	first.pc.Close()

	// His second connection, answered by node A too: the stream flows.
	second := newWirePlayer(t)
	if a := second.offer(t, bob, "offer-2", protocol.OpMediaOffer, nil); a.Node != nodeA.SFU.Node() {
		t.Fatalf("bob's second offer answered by %q, want node A %q", a.Node, nodeA.SFU.Node())
	}
	flowing(t, "bob's second connection", second.sink)

	// The first peer's NO_PLAY reaches node B again, late. A state event
	// published after it on the same connection reaches node B after it:
	// whatever bob is sent before that one is all the late event caused.
	if err := bus.Publish(media.StateSubject, late); err != nil {
		t.Fatal(err)
	}
	marker, _ := json.Marshal(media.StateEvent{App: clienttest.App, Session: domain.SessionID(sid), Stream: "marker-cam",
		Kind: media.Play, State: media.PlayRequesting})
	if err := bus.Publish(media.StateSubject, marker); err != nil {
		t.Fatal(err)
	}
	bob.Until(func(f protocol.Frame) bool {
		if isMediaState(f, "alice-cam", "NO_PLAY") {
			t.Errorf("bob was told his live connection ended: %s", f.Data)
		}
		return isMediaState(f, "marker-cam", "PLAY_REQUESTING")
	})

	// The stream stops: bob's live player waits on node A, and his
	// media_close goes there and closes it.
	if err := alice.c.StopPublishingStream(clienttest.Ctx(t), "alice-cam"); err != nil {
		t.Fatal(err)
	}
	stopped(t, "bob", second.sink)
	if got := nodeA.SFU.Stats().Players; got != 1 {
		t.Fatalf("node A holds %d players, want bob's waiting one", got)
	}
	ended := closeWirePlayer(t, bob, "close-2")
	waitFor(t, "bob's media_close to close his peer on node A", func() bool { return nodeA.SFU.Stats().Players == 0 })
	ended()
}

// protocol.md: a second media_offer on the same stream and kind from the
// same peer connection acts as an ICE restart. A player waiting on node A
// (the stream it plays, hosted there, stopped) and signalling through node
// B makes one: it goes to node A, which renegotiates the connection it
// holds, and the player gets the stream there when it is published again.
// It used to go to the stream's host, none now, so to node B's own media
// plane, which opened a second peer for a connection that has one on A.
func TestMediaASecondOfferOfAWaitingPlayerGoesToTheNodeThatHoldsIt(t *testing.T) {
	nodeA := clienttest.StartNode(t, clienttest.NodeOptions{NATSListen: "127.0.0.1:0"})
	nodeB := clienttest.StartNode(t, clienttest.NodeOptions{Join: nodeA})
	alice := dialMedia(t, nodeA, clienttest.URL(nodeA.HTTPAddr()), "alice", nil)
	alice.login("stage")
	alice.publish("alice-cam", "stage") // hosted on node A

	bob := wire.Dial(t, nodeB.HTTPAddr())
	bob.Login("stage", "bob", clienttest.Token(t, nodeB, "bob"))
	bob.Do("play", protocol.OpPlay, protocol.PlayRequest{Stream: "alice-cam", Room: "stage"})
	player := newWirePlayer(t)
	if a := player.offer(t, bob, "offer-1", protocol.OpMediaOffer, nil); a.Node != nodeA.SFU.Node() {
		t.Fatalf("bob's offer answered by %q, want node A %q", a.Node, nodeA.SFU.Node())
	}
	flowing(t, "bob", player.sink)
	if err := alice.c.StopPublishingStream(clienttest.Ctx(t), "alice-cam"); err != nil {
		t.Fatal(err)
	}
	stopped(t, "bob", player.sink)

	a := player.offer(t, bob, "offer-2", protocol.OpMediaOffer, &webrtc.OfferOptions{ICERestart: true})
	if a.Node != nodeA.SFU.Node() {
		t.Fatalf("bob's second offer answered by %q, want node A %q, which holds his connection (node A players %d, node B players %d)",
			a.Node, nodeA.SFU.Node(), nodeA.SFU.Stats().Players, nodeB.SFU.Stats().Players)
	}
	if a, b := nodeA.SFU.Stats().Players, nodeB.SFU.Stats().Players; a != 1 || b != 0 {
		t.Fatalf("node A holds %d players and node B %d, want bob's one on A", a, b)
	}
	alice.publish("alice-cam", "stage") // on node A again
	flowing(t, "bob, once alice-cam is published again", player.sink)
}

// wirePlayer is a player's peer connection signalled on a raw connection.
type wirePlayer struct {
	pc   *webrtc.PeerConnection
	sink *mediatest.Sink
}

func newWirePlayer(t *testing.T) *wirePlayer {
	t.Helper()
	pc, err := mediatest.API().NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	for _, k := range []webrtc.RTPCodecType{videoKind, audioKind} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	p := &wirePlayer{pc: pc, sink: mediatest.NewSink()}
	pc.OnTrack(p.sink.OnTrack)
	return p
}

// offer makes an offer of alice-cam's player (gathered in full), sends it
// with op and applies the answer.
func (p *wirePlayer) offer(t *testing.T, c *wire.Conn, id string, op protocol.Op, opts *webrtc.OfferOptions) protocol.MediaAnswer {
	t.Helper()
	o, err := p.pc.CreateOffer(opts)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(o); err != nil {
		t.Fatal(err)
	}
	<-gathered
	f := c.Do(id, op, protocol.MediaOfferRequest{Stream: "alice-cam", Kind: protocol.MediaPlay, SDP: p.pc.LocalDescription().SDP})
	var a protocol.MediaAnswer
	if err := json.Unmarshal(f.Data, &a); err != nil {
		t.Fatal(err)
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: a.SDP}); err != nil {
		t.Fatal(err)
	}
	return a
}

// closeWirePlayer closes alice-cam's player with media_close. It returns
// once the reply came, with a function that waits for the NO_PLAY (reason
// closed), which comes before or after the reply.
func closeWirePlayer(t *testing.T, c *wire.Conn, id string) (ended func()) {
	t.Helper()
	closed := func(f protocol.Frame) bool {
		if !isMediaState(f, "alice-cam", "NO_PLAY") {
			return false
		}
		var u protocol.MediaStateUpdate
		if err := json.Unmarshal(f.Data, &u); err != nil || u.Reason != "closed" {
			t.Fatalf("the player ended with %s, want reason closed", f.Data)
		}
		return true
	}
	c.Send(id, protocol.OpMediaClose, protocol.MediaCloseRequest{Stream: "alice-cam", Kind: protocol.MediaPlay})
	var seen bool
	c.Until(func(f protocol.Frame) bool {
		seen = seen || closed(f)
		if f.Type == protocol.TypeReply && f.ID == id && f.Code != 0 {
			t.Fatalf("media_close: %d %s %s", f.Code, f.Error, f.Message)
		}
		return f.Type == protocol.TypeReply && f.ID == id
	})
	return func() {
		t.Helper()
		if !seen {
			c.Until(closed)
		}
	}
}

// isMediaState reports whether f is a media state event of stream in state.
func isMediaState(f protocol.Frame, stream, state string) bool {
	if f.Event != protocol.EvPlayerStateUpdate && f.Event != protocol.EvPublisherStateUpdate {
		return false
	}
	var u protocol.MediaStateUpdate
	return json.Unmarshal(f.Data, &u) == nil && u.Stream == stream && u.State == state
}
