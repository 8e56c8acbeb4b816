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
	s.Answer(c, again, true)

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

// A connection found gone after the stream's next answer came, but before
// that new media was registered, must not hide the new connection's own
// ending: the app switches camera (a second PublishMedia of cam) while the
// client is away; the check after the resume finds the first connection
// gone while the second is held between its answer and its registration
// (the answer hook), so the first publisher is ended and marked. The server
// later ends the second publisher (NO_PUBLISH): the app is told, and the
// client no longer follows it. Found by the second reader: the mark
// outlived the answer that should have cleared it, and swallowed the
// ending.
func TestAGoneMarkDoesNotHideTheNextPublishersEnding(t *testing.T) {
	path := newICEPath(t)
	s := path.node(t)
	m := &reviewMedia{}
	g := clienttest.StartScripted(t)
	a, c, _ := iceClient(t, g, m)
	api := path.appAPI(0)
	publishOn(t, a, c, s, api) // the first camera, answered by n1

	answered := make(chan struct{})
	release := make(chan struct{})
	client.OnMediaAnswered(a, func(stream, kind string) {
		close(answered)
		<-release
	})
	done := publish(t, a, api) // the second camera
	s.Answer(c, c.Req(protocol.OpMediaOffer), true)
	<-answered

	c.Drop()
	c2 := g.Next(t)
	c2.Hello("s1", "rt-s1b")
	c2.Reply(c2.Req(protocol.OpResume).ID, protocol.ResumeReply{Session: "s1", ResumeToken: "rt-s1c"})
	c2.Refuse(c2.Req(protocol.OpMediaCheck).ID, domain.ErrMediaPeerNotFound) // the first camera's
	if _, ok := m.waitState("cam", client.NoPublish, clienttest.Wait); !ok {
		t.Fatalf("the first publisher, found gone, was not ended: %+v", m.all())
	}
	close(release)
	if r := <-done; r.err != nil {
		t.Fatal(r.err)
	}
	if pubs, _ := client.TrackedMedia(a); !slices.Contains(pubs, "cam") {
		t.Fatalf("the second publisher is not followed: %v", pubs)
	}

	// The server ends the second publisher's media.
	c2.Event(protocol.EvPublisherStateUpdate, "", 0, 0, protocol.MediaStateUpdate{Stream: "cam", State: "NO_PUBLISH",
		Code: int(domain.ErrMediaPublishConnectionFailed.Code), Reason: "failed"})
	c2.Event(protocol.EvPlayerStateUpdate, "", 0, 0, protocol.MediaStateUpdate{Stream: "last", State: "PLAYING"})
	if _, ok := m.waitState("last", client.Playing, clienttest.Wait); !ok {
		t.Fatal("the last state event's callback never came")
	}
	n := 0
	for _, e := range m.all() {
		if e.publisher && e.stream == "cam" && e.state == client.NoPublish {
			n++
		}
	}
	pubs, _ := client.TrackedMedia(a)
	if n != 2 || slices.Contains(pubs, "cam") {
		t.Errorf("the second publisher's ending: the app heard NO_PUBLISH %d times (want 2: the first's gone, the "+
			"second's failed); the client still follows %v", n, pubs)
	}
}
