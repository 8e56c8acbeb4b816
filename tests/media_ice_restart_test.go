package tests

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/media/mediatest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/client"
)

// The path between a Go SDK player, or publisher, and its media node
// breaks long enough for its ICE to fail, then comes back. The media node
// keeps its side (its connect timeout is long), so an ICE restart brings
// the media back: the SDK restarts ICE by itself, as the browser SDK does
// (roomlog.js _iceChanged), and the player receives the stream again
// without the app calling RestartICE, on the same peer connection, the app
// told of no ending.
func TestGoSDKPlayerRestartsICEAfterItsConnectionFailed(t *testing.T) {
	iceFailsAndComesBack(t, false)
}

func TestGoSDKPublisherRestartsICEAfterItsConnectionFailed(t *testing.T) {
	iceFailsAndComesBack(t, true)
}

// iceFailsAndComesBack cuts the path of alice's publisher (publisher) or
// bob's player until its peer connection fails, restores it, and expects
// bob's media back.
func iceFailsAndComesBack(t *testing.T, publisher bool) {
	router, nets := mediatest.VNet(t, map[string]string{"sfu": "10.0.0.1", "pub": "10.0.0.2", "play": "10.0.0.3"})
	victim := net.ParseIP("10.0.0.3")
	if publisher {
		victim = net.ParseIP("10.0.0.2")
	}
	var cut atomic.Bool
	router.AddChunkFilter(func(c vnet.Chunk) bool {
		if !cut.Load() {
			return true
		}
		src, dst := c.SourceAddr().(*net.UDPAddr), c.DestinationAddr().(*net.UDPAddr)
		return !src.IP.Equal(victim) && !dst.IP.Equal(victim)
	})
	if err := router.Start(); err != nil {
		t.Fatal(err)
	}

	n := clienttest.StartNode(t, clienttest.NodeOptions{Edit: func(c *node.Config) {
		c.Media.Net, c.Media.IPs = nets["sfu"], []string{"0.0.0.0"}
		c.Media.ConnectTimeout = 10 * time.Minute // the node keeps its side while the path is down
	}})
	url := clienttest.URL(n.HTTPAddr())
	// Only a failed connection restarts here: one merely disconnected
	// would wait an hour.
	noGrace := func(o *client.Options) { o.ICEDisconnectedGrace = time.Hour }
	alice, bob := dialMedia(t, n, url, "alice", noGrace), dialMedia(t, n, url, "bob", noGrace)
	alice.login("stage")
	bob.login("stage")
	ctx := clienttest.Ctx(t)

	pubAPI, playAPI := mediatest.APIOn(nets["pub"]), mediatest.APIOn(nets["play"])
	if publisher {
		pubAPI = mediatest.APIWith(nets["pub"], mediatest.QuickICE(2*time.Second, 4*time.Second))
	} else {
		playAPI = mediatest.APIWith(nets["play"], mediatest.QuickICE(2*time.Second, 4*time.Second))
	}
	if _, err := alice.c.StartPublishingStream(ctx, "alice-cam", client.PublishOptions{Room: "stage"}); err != nil {
		t.Fatal(err)
	}
	v, a := mediatest.Tracks("alice-cam")
	pub, err := alice.c.PublishMedia(ctx, "alice-cam", []webrtc.TrackLocal{v, a}, client.MediaOptions{API: pubAPI})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	t.Cleanup(func() { stop(); pub.PeerConnection().Close() })
	mediatest.Send(sctx, v, a, 10*time.Millisecond)
	alice.states.wait(t, "alice-cam", client.Publishing)

	if _, err := bob.c.StartPlayingStream(ctx, "alice-cam", "stage"); err != nil {
		t.Fatal(err)
	}
	sink := mediatest.NewSink()
	pl, err := bob.c.PlayMedia(ctx, "alice-cam", sink.OnTrack, client.MediaOptions{API: playAPI})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pl.PeerConnection().Close() })
	flowing(t, "bob", sink)

	who, pc := "bob's player", pl.PeerConnection()
	if publisher {
		who, pc = "alice's publisher", pub.PeerConnection()
	}
	// The SDK watches the ICE connection state; the test, the peer
	// connection's. The SDK restarts ICE as soon as it fails, so the test is
	// told rather than polls.
	failed := make(chan struct{})
	var once atomic.Bool
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed && once.CompareAndSwap(false, true) {
			close(failed)
		}
	})
	cut.Store(true)
	select {
	case <-failed:
	case <-time.After(clienttest.Wait):
		t.Fatalf("%s's connection did not fail: %s", who, pc.ConnectionState())
	}
	cut.Store(false)
	t.Logf("%s's connection failed; the path is back", who)

	if !sink.WaitMore(videoKind, 10, clienttest.Wait) {
		t.Fatalf("the path is back for %v, and %s did not restart ICE: its connection is %s, "+
			"%d video packets received in all; media states: alice %+v, bob %+v", clienttest.Wait, who,
			pc.ConnectionState(), sink.Count(videoKind), iceStates(alice), iceStates(bob))
	}
	if !publisher && pl.PeerConnection() != pc {
		t.Error("bob's player made a new connection rather than restart ICE")
	}
	for _, u := range []*mediaUser{alice, bob} {
		for _, e := range iceStates(u) {
			if e.State == client.NoPlay || e.State == client.NoPublish {
				t.Errorf("%s was told %+v", u.id, e)
			}
		}
	}
}

// iceStates copies u's media state callbacks so far.
func iceStates(u *mediaUser) []mediaEvent {
	u.states.mu.Lock()
	defer u.states.mu.Unlock()
	return append([]mediaEvent(nil), u.states.evs...)
}
