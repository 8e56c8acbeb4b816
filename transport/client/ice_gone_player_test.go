package client_test

import (
	"slices"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/protocol"
)

// As TestICERestartRefusedPlaysAgain, but the media node's own ending of
// the player's old connection (NO_PLAY failed: its ICE timed out on that
// side too) arrives while the player's new offer is out. The client found
// that connection gone and connects again: the late ending is not the new
// connection's. It used to end the player (forgetMedia closed it under its
// new offer) and tell the app NO_PLAY, as the browser SDK no longer did
// (its _goneTold covers players).
func TestALateEndingOfAPlayerFoundGoneEndsNothing(t *testing.T) {
	g := refusedPlayer(t)
	path, s, m, a, c, p, first, again := g.path, g.s, g.m, g.a, g.c, g.p, g.first, g.again
	// The media node's ending of the old connection, on its way.
	c.Event(protocol.EvPlayerStateUpdate, "", 0, 0, protocol.MediaStateUpdate{Stream: "cam", State: "NO_PLAY",
		Code: int(domain.ErrMediaPlayConnectionFailed.Code), Reason: "failed"})
	path.cut.Store(false)
	s.answer(c, again, true)

	// The client hands callbacks over in the order their frames came: once
	// that of a state event sent last has come, the ending's would have.
	c.Event(protocol.EvPlayerStateUpdate, "", 0, 0, protocol.MediaStateUpdate{Stream: "last", State: "PLAYING"})
	if _, ok := m.waitState("last", client.Playing, clienttest.Wait); !ok {
		t.Fatal("the last state event's callback never came")
	}
	for _, e := range m.all() {
		if e.stream == "cam" {
			t.Errorf("the app was told %+v", e)
		}
	}
	if _, players := client.TrackedMedia(a); !slices.Contains(players, "cam") {
		t.Fatalf("the player of cam was ended (the client follows players %v)", players)
	}
	iceState(t, "the new connection", p.PeerConnection, webrtc.ICEConnectionStateConnected)
	if p.PeerConnection() == first {
		t.Error("the player kept its connection")
	}
	if st := first.ConnectionState(); st != webrtc.PeerConnectionStateClosed {
		t.Errorf("the first connection is %s, not closed", st)
	}
	marker(t, a, c) // nothing more was asked of the server
}
