package client_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/media/mediatest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/protocol"
)

// The Go SDK restarts ICE by itself, against a scripted gateway whose media
// node is a Pion peer connection of the test, on a virtual network whose
// path between the app and that "media node" the test cuts.

// icePath is a virtual network with the app at 10.0.0.2 and the media node
// at 10.0.0.1; cut breaks the path between them.
type icePath struct {
	app, sfu *vnet.Net
	cut      atomic.Bool
}

func newICEPath(t *testing.T) *icePath {
	t.Helper()
	router, nets := mediatest.VNet(t, map[string]string{"sfu": "10.0.0.1", "app": "10.0.0.2"})
	p := &icePath{sfu: nets["sfu"], app: nets["app"]}
	router.AddChunkFilter(func(vnet.Chunk) bool { return !p.cut.Load() })
	if err := router.Start(); err != nil {
		t.Fatal(err)
	}
	return p
}

// appAPI is the app's: quick ICE timeouts (disconnected after 1 s, failed
// after failed more; 0: never), so that a cut shows soon.
func (p *icePath) appAPI(failed time.Duration) *webrtc.API {
	return mediatest.APIWith(p.app, mediatest.QuickICE(time.Second, failed))
}

// node is the test's media node beyond the path: it answers the offers the
// scripted gateway gets, one peer connection per stream, renegotiated by an
// ICE restart.
func (p *icePath) node(t *testing.T) *clienttest.MediaNode {
	return clienttest.NewMediaNode(t, mediatest.APIOn(p.sfu))
}

// iceState waits until pc's ICE connection state is st.
func iceState(t *testing.T, what string, pc func() *webrtc.PeerConnection, st webrtc.ICEConnectionState) {
	t.Helper()
	for deadline := time.Now().Add(clienttest.Wait); pc().ICEConnectionState() != st; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: ICE is %s, not %s", what, pc().ICEConnectionState(), st)
		}
	}
}

// iceClient dials a client on a clock the test moves to the scripted
// gateway g.
func iceClient(t *testing.T, g *clienttest.ScriptedGateway, m *reviewMedia) (*client.Client, *clienttest.ScriptedConn,
	*estest.Clock) {
	t.Helper()
	clock := estest.NewClock(time.Now())
	o := client.Options{Handlers: newRec(t, "alice").Handlers(), Logger: clienttest.Logger(t),
		Clock: clienttest.ClientClock(clock)}
	m.handlers(&o)
	a, c := dialScriptedWith(t, g, "s1", o)
	return a, c, clock
}

// playOn has a play stream through c, answered by s, and waits until its
// ICE is connected.
func playOn(t *testing.T, a *client.Client, c *clienttest.ScriptedConn, s *clienttest.MediaNode, api *webrtc.API) (*client.MediaPlayer,
	protocol.Request) {
	t.Helper()
	type played struct {
		p   *client.MediaPlayer
		err error
	}
	done := make(chan played, 1)
	go func() {
		p, err := a.PlayMedia(ctx(t), "cam", nil, client.MediaOptions{API: api})
		done <- played{p, err}
	}()
	offer := c.Req(protocol.OpMediaOffer)
	s.Answer(c, offer, true)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	iceState(t, "the player's connection", r.p.PeerConnection, webrtc.ICEConnectionStateConnected)
	return r.p, offer
}

// marker has the client send a query_room and checks that it is the next
// request c gets: no other request (an ICE restart) came before it.
func marker(t *testing.T, a *client.Client, c *clienttest.ScriptedConn) {
	t.Helper()
	go a.QueryRoom(ctx(t), "marker") //nolint:errcheck
	c.Refuse(c.Req(protocol.OpQueryRoom).ID, domain.ErrNotInRoom)
}

// A connection that stays disconnected is restarted once
// ICEDisconnectedGrace has passed on the client's clock, not sooner; one
// that comes back within it is not restarted. The restart brings the
// connection back once the path is.
func TestICERestartAfterTheDisconnectedGrace(t *testing.T) {
	path := newICEPath(t)
	s := path.node(t)
	m := &reviewMedia{}
	a, c, clock := iceClient(t, clienttest.StartScripted(t), m)
	// Its ICE never fails: it stays disconnected while the path is cut.
	p, offer := playOn(t, a, c, s, path.appAPI(0))
	first := p.PeerConnection()

	// A disconnection that heals within the grace period: no restart.
	path.cut.Store(true)
	iceState(t, "the cut", p.PeerConnection, webrtc.ICEConnectionStateDisconnected)
	path.cut.Store(false)
	iceState(t, "the path back", p.PeerConnection, webrtc.ICEConnectionStateConnected)
	clock.Advance(time.Minute)
	marker(t, a, c)

	// One that lasts: the restart comes at the end of the grace period.
	path.cut.Store(true)
	iceState(t, "the second cut", p.PeerConnection, webrtc.ICEConnectionStateDisconnected)
	clock.Advance(3*time.Second - time.Millisecond)
	marker(t, a, c)
	clock.Advance(time.Millisecond)
	restart := c.Req(protocol.OpMediaICERestart)
	if clienttest.OfferUfrag(t, restart) == clienttest.OfferUfrag(t, offer) {
		t.Error("the ICE restart's offer has the first offer's credentials")
	}
	path.cut.Store(false)
	s.Answer(c, restart, false)
	iceState(t, "the restarted connection", p.PeerConnection, webrtc.ICEConnectionStateConnected)
	if p.PeerConnection() != first {
		t.Error("the player made a new connection rather than restart ICE")
	}
	if evs := m.all(); len(evs) != 0 {
		t.Errorf("the app was told %+v", evs)
	}
}

// A player whose ICE failed restarts it at once; told that the media node
// no longer has its connection (media_peer_not_found), it plays again with
// a new one, and the app is told no ending.
func TestICERestartRefusedPlaysAgain(t *testing.T) {
	g := refusedPlayer(t)
	path, s, c, p, first, again, m := g.path, g.s, g.c, g.p, g.first, g.again, g.m
	path.cut.Store(false)
	s.Answer(c, again, true)
	iceState(t, "the new connection", p.PeerConnection, webrtc.ICEConnectionStateConnected)
	if p.PeerConnection() == first {
		t.Error("the player kept its connection")
	}
	if st := first.ConnectionState(); st != webrtc.PeerConnectionStateClosed {
		t.Errorf("the first connection is %s, not closed", st)
	}
	if evs := m.all(); len(evs) != 0 {
		t.Errorf("the app was told %+v", evs)
	}
}

// refused is a player whose ICE restart was refused as gone: its client
// plays again (again, its new offer, not answered yet).
type refused struct {
	path  *icePath
	s     *clienttest.MediaNode
	m     *reviewMedia
	a     *client.Client
	c     *clienttest.ScriptedConn
	p     *client.MediaPlayer
	first *webrtc.PeerConnection
	again protocol.Request
}

// refusedPlayer plays cam, answered by a media node on a virtual network,
// cuts the path until the client restarts ICE, and refuses the restart
// with media_peer_not_found; the path stays cut.
func refusedPlayer(t *testing.T) refused {
	t.Helper()
	g := refused{path: newICEPath(t), m: &reviewMedia{}}
	g.s = g.path.node(t)
	g.a, g.c, _ = iceClient(t, clienttest.StartScripted(t), g.m)
	g.p, _ = playOn(t, g.a, g.c, g.s, g.path.appAPI(2*time.Second))
	g.first = g.p.PeerConnection()

	g.path.cut.Store(true)
	g.c.Refuse(g.c.Req(protocol.OpMediaICERestart).ID, domain.ErrMediaPeerNotFound)
	g.again = g.c.Req(protocol.OpMediaOffer) // plays again
	return g
}

// published is the outcome of a PublishMedia.
type published struct {
	p   *client.MediaPublisher
	err error
}

// publish starts a's PublishMedia of cam over api; its outcome comes on
// the channel.
func publish(t *testing.T, a *client.Client, api *webrtc.API) <-chan published {
	done := make(chan published, 1)
	go func() {
		v, au := mediatest.Tracks("cam")
		p, err := a.PublishMedia(ctx(t), "cam", []webrtc.TrackLocal{v, au}, client.MediaOptions{API: api})
		done <- published{p, err}
	}()
	return done
}

// publishOn publishes cam, answered by s, and returns the publisher once
// its connection is up.
func publishOn(t *testing.T, a *client.Client, c *clienttest.ScriptedConn, s *clienttest.MediaNode, api *webrtc.API) *client.MediaPublisher {
	t.Helper()
	done := publish(t, a, api)
	s.Answer(c, c.Req(protocol.OpMediaOffer), true)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	iceState(t, "the publisher's connection", r.p.PeerConnection, webrtc.ICEConnectionStateConnected)
	return r.p
}

// refusedAsGone cuts the path until the publisher restarts ICE, refuses the
// restart with why, and returns the ending the app is told.
func refusedAsGone(t *testing.T, path *icePath, c *clienttest.ScriptedConn, m *reviewMedia, why *domain.Error) reviewMediaEvent {
	t.Helper()
	path.cut.Store(true)
	c.Refuse(c.Req(protocol.OpMediaICERestart).ID, why)
	e, ok := m.waitState("cam", client.NoPublish, clienttest.Wait)
	if !ok {
		t.Fatalf("no NO_PUBLISH; got %+v", m.all())
	}
	return e
}

// serverFailed is the media node's own ending of the publisher's
// connection.
func serverFailed(c *clienttest.ScriptedConn) {
	c.Event(protocol.EvPublisherStateUpdate, "", 0, 0, protocol.MediaStateUpdate{Stream: "cam", State: "NO_PUBLISH",
		Code: int(domain.ErrMediaPublishConnectionFailed.Code), Reason: "failed"})
}

// toldOnce checks that the app heard of the publisher's ending once. It
// waits for the callback of a state event sent after everything else: the
// client hands callbacks over in the order their frames came.
func toldOnce(t *testing.T, a *client.Client, c *clienttest.ScriptedConn, m *reviewMedia) {
	t.Helper()
	marker(t, a, c) // no request of the client's came before it
	c.Event(protocol.EvPlayerStateUpdate, "", 0, 0, protocol.MediaStateUpdate{Stream: "last", State: "PLAYING"})
	if _, ok := m.waitState("last", client.Playing, clienttest.Wait); !ok {
		t.Fatal("the last state event's callback never came")
	}
	n := 0
	for _, e := range m.all() {
		if e.publisher && e.state == client.NoPublish {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the app heard NO_PUBLISH %d times: %+v", n, m.all())
	}
}

// A publisher whose ICE failed restarts it at once; told that the media
// node is gone (media_node_unreachable), its media has ended: the app gets
// NO_PUBLISH with the code, reason "gone", and the connection is closed.
func TestICERestartRefusedEndsThePublisher(t *testing.T) {
	path := newICEPath(t)
	s := path.node(t)
	m := &reviewMedia{}
	a, c, _ := iceClient(t, clienttest.StartScripted(t), m)
	p := publishOn(t, a, c, s, path.appAPI(2*time.Second))
	pc := p.PeerConnection()
	e := refusedAsGone(t, path, c, m, domain.ErrMediaNodeUnreachable)
	if !e.publisher || e.code != domain.ErrMediaNodeUnreachable.Code || e.reason != "gone" {
		t.Errorf("got %+v, want NO_PUBLISH %d gone", e, domain.ErrMediaNodeUnreachable.Code)
	}
	iceState(t, "the ended publisher", p.PeerConnection, webrtc.ICEConnectionStateClosed)
	if pc.ConnectionState() != webrtc.PeerConnectionStateClosed {
		t.Errorf("the publisher's connection is %s", pc.ConnectionState())
	}
	// Nothing more is asked of the server.
	marker(t, a, c)
}

// Both ends' ICE time out together: the media node closes the publisher's
// peer (NO_PUBLISH failed, 1003003, on the bus) while the SDK's automatic
// restart reaches it and is refused (media_peer_not_found). The reply and
// the event travel apart; when the reply comes first the app hears of the
// ending once ("gone"), not again when the server's "failed" follows. The
// first version of the automatic restarts told it twice.
func TestARefusedRestartThenTheServersEndingIsToldOnce(t *testing.T) {
	path := newICEPath(t)
	s := path.node(t)
	m := &reviewMedia{}
	a, c, _ := iceClient(t, clienttest.StartScripted(t), m)
	publishOn(t, a, c, s, path.appAPI(2*time.Second))
	if e := refusedAsGone(t, path, c, m, domain.ErrMediaPeerNotFound); e.reason != "gone" {
		t.Fatalf("the refused restart ended the publisher with %+v, want NO_PUBLISH gone", e)
	}
	serverFailed(c) // later on its way
	toldOnce(t, a, c, m)
}

// As TestARefusedRestartThenTheServersEndingIsToldOnce, but the app, told
// NO_PUBLISH gone, publishes the stream again at once; the server's late
// NO_PUBLISH failed of the old connection arrives while the new offer is in
// flight. It is not told either (the first version forgot what it had told
// as soon as the new PublishMedia began).
func TestAnEndingToldBeforeARepublishIsNotToldAgain(t *testing.T) {
	path := newICEPath(t)
	s := path.node(t)
	m := &reviewMedia{}
	a, c, _ := iceClient(t, clienttest.StartScripted(t), m)
	api := path.appAPI(2 * time.Second)
	publishOn(t, a, c, s, api)
	if e := refusedAsGone(t, path, c, m, domain.ErrMediaPeerNotFound); e.reason != "gone" {
		t.Fatalf("the refused restart ended the publisher with %+v, want NO_PUBLISH gone", e)
	}
	path.cut.Store(false)
	done := publish(t, a, api) // the app publishes again at once
	offer := c.Req(protocol.OpMediaOffer)
	serverFailed(c) // of the old connection, arriving now
	s.Answer(c, offer, true)
	if r := <-done; r.err != nil {
		t.Fatal(r.err)
	}
	toldOnce(t, a, c, m)
}
