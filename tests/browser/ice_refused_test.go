package browser

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/media/mediatest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/protocol"
)

// The browser SDK restarts ICE by itself (roomlog.js _iceChanged). A restart
// the server refuses because the media node no longer has the connection
// (1907003 media_peer_not_found, 1907002 media_node_unreachable) is handled
// as a media_check after a resume that finds it gone: a player connects
// again, a publisher's media has ended. The SDK used to log "ICE restart
// failed" only, and the app's player or publisher stayed silent for good.
//
// The page's engine speaks to a scripted gateway whose media node is a Pion
// peer connection of the test, on loopback. The test closes that peer (the
// media node forgot the connection); Chrome's ICE hears nothing more, goes
// disconnected and then the SDK restarts ICE, which the test refuses.

// mediaReq is the next request of c other than the ICE candidates the
// browser trickles (an ICE restart's offer goes out before its candidates
// are gathered, and they follow it): the test's media node has no use for
// them, it learns the browser's address from its connectivity checks.
func mediaReq(c *clienttest.ScriptedConn, op protocol.Op) protocol.Request {
	return c.ReqSkipping(op, protocol.OpMediaCandidate)
}

// scriptedAlice opens a page whose engine a, alice, is logged in to r1
// through a scripted gateway, and returns the page, the gateway's
// connection and the test's media node.
func scriptedAlice(t *testing.T) (*Page, *clienttest.ScriptedConn, *clienttest.MediaNode) {
	t.Helper()
	p := openHarness(t, startNode(t, nil)) // the node serves the page and the SDK
	g := clienttest.StartScripted(t, "127.0.0.1:*")
	p.newEngine("a", g.URL(), nil)
	p.start("login", "a", "loginRoom", "r1", "tok", user{"alice", "Alice"})
	c := g.Next(t)
	c.Hello("s1", "rt-s1")
	c.ServeEntry(c.Req(protocol.OpLogin), "r1", 1)
	if r := p.outcome("login"); !r.OK {
		t.Fatalf("loginRoom: %+v", r)
	}
	return p, c, clienttest.NewMediaNode(t, mediatest.API())
}

// iceUp waits until the page's connection of the engine's entry (_players
// or _publishers) of stream cam is ICE-connected, and keeps it as T.first
// when first is set.
func (p *Page) iceUp(entries string, first bool) {
	p.t.Helper()
	pc := fmt.Sprintf(`T.engines.a.%s.get('cam').pc`, entries)
	p.Until(fmt.Sprintf(`['connected', 'completed'].includes(%s.iceConnectionState)`, pc), nil)
	if first {
		p.Eval(`T.first = `+pc+`; true`, nil)
	}
}

// mediaUpdate is a publisherStateUpdate's or playerStateUpdate's argument.
type mediaUpdate struct {
	StreamID     string `json:"streamID"`
	State        string `json:"state"`
	ErrorCode    int    `json:"errorCode"`
	ExtendedData string `json:"extendedData"`
}

// lastThing has the gateway send one more event (a barrage message) and
// waits for its callback, and returns who's media updates of cam (event:
// publisherStateUpdate or playerStateUpdate) from mark on: the engine
// handles frames in the order they came, so every frame sent before has
// been handled.
func (p *Page) lastThing(c *clienttest.ScriptedConn, event string, mark int) []mediaUpdate {
	p.t.Helper()
	c.Event(protocol.EvBarrageMessage, "r1", 0, 0, protocol.Message{MessageID: "last", Message: "last"})
	p.Wait(mark, `e => e.who === 'a' && e.event === 'IMRecvBarrageMessage'`)
	var out []mediaUpdate
	for _, e := range p.Events("a", event) {
		var u mediaUpdate
		if e.Index >= mark && json.Unmarshal(e.Args[0], &u) == nil && u.StreamID == "cam" {
			out = append(out, u)
		}
	}
	return out
}

// A player whose connection the media node forgot: the SDK's ICE restart
// is refused (media_peer_not_found), and the player connects again with a
// new connection, as after a resume that finds it gone. The app is told
// PLAY_REQUESTING (1907003, "gone"), never NO_PLAY, not even when the media
// node's own NO_PLAY of the old connection arrives while the new offer is
// out.
func TestSDKARefusedICERestartPlaysAgain(t *testing.T) {
	p, c, s, _, restart, mark := playingThenCut(t)
	c.Refuse(restart.ID, domain.ErrMediaPeerNotFound)
	again := mediaReq(c, protocol.OpMediaOffer) // plays again
	// The media node's own ending of the old connection, on its way.
	c.Event(protocol.EvPlayerStateUpdate, "", 0, 0, protocol.MediaStateUpdate{Stream: "cam", State: "NO_PLAY",
		Code: int(domain.ErrMediaPlayConnectionFailed.Code), Reason: "failed"})
	s.Answer(c, again, true)
	p.Until(`!T.engines.a._players.has('cam') || T.engines.a._players.get('cam').pc !== T.first`, nil)
	if st := p.entryState("a", "player", "cam"); st == "untracked" {
		t.Fatalf("the player ended; the app was told %+v", p.lastThing(c, "playerStateUpdate", mark))
	}
	p.iceUp("_players", false)
	var old string
	p.Eval(`T.first.connectionState`, &old)
	if old != "closed" {
		t.Errorf("the first connection is %s, not closed", old)
	}

	got := p.lastThing(c, "playerStateUpdate", mark)
	want := mediaUpdate{StreamID: "cam", State: "PLAY_REQUESTING", ErrorCode: int(domain.ErrMediaPeerNotFound.Code),
		ExtendedData: "gone"}
	if len(got) != 1 || got[0] != want {
		t.Errorf("the app was told %+v, want only %+v", got, want)
	}
	if st := p.entryState("a", "player", "cam"); st != "PLAY_REQUESTING" {
		t.Errorf("a's player of cam is %s, want PLAY_REQUESTING (until the media node says PLAYING)", st)
	}
}

// playingThenCut has alice's page play cam, answered by s through c, until
// its ICE is connected; then the media node's side of the connection goes
// (closed), and the SDK restarts ICE. It returns the first offer, the ICE
// restart, and the index of the events from before the cut.
func playingThenCut(t *testing.T) (p *Page, c *clienttest.ScriptedConn, s *clienttest.MediaNode, offer, restart protocol.Request, mark int) {
	t.Helper()
	p, c, s = scriptedAlice(t)
	p.start("play", "a", "startPlayingStream", "cam", map[string]string{"roomID": "r1"})
	c.Reply(mediaReq(c, protocol.OpPlay).ID, protocol.StreamReply{Room: "r1"})
	offer = mediaReq(c, protocol.OpMediaOffer)
	first := s.Answer(c, offer, true)
	if r := p.outcome("play"); !r.OK {
		t.Fatalf("startPlayingStream: %+v", r)
	}
	p.iceUp("_players", true)
	mark = p.Len()

	first.Close()
	restart = mediaReq(c, protocol.OpMediaICERestart)
	if clienttest.OfferUfrag(t, restart) == clienttest.OfferUfrag(t, offer) {
		t.Error("the ICE restart's offer has the first offer's credentials")
	}
	return p, c, s, offer, restart, mark
}

// refusedPublisher publishes alice's camera as cam through c, answered by
// s, and has the media node forget its connection; it refuses the SDK's ICE
// restart with why and returns the index of the events from before the
// refusal.
func refusedPublisher(t *testing.T, p *Page, c *clienttest.ScriptedConn, s *clienttest.MediaNode, why *domain.Error) int {
	t.Helper()
	p.Eval(`T.calls = T.calls || {}; T.calls.publish = T.publishCamera('a', 'cam', 'r1'); true`, nil)
	c.Reply(mediaReq(c, protocol.OpPublish).ID, protocol.StreamReply{Room: "r1"})
	first := s.Answer(c, mediaReq(c, protocol.OpMediaOffer), true)
	if r := p.outcome("publish"); !r.OK {
		t.Fatalf("startPublishingStream: %+v", r)
	}
	p.iceUp("_publishers", true)
	mark := p.Len()
	first.Close() // the media node forgets the connection
	c.Refuse(mediaReq(c, protocol.OpMediaICERestart).ID, why)
	e := p.Wait(mark, `e => e.who === 'a' && e.event === 'publisherStateUpdate' && e.args[0].state === 'NO_PUBLISH'`)
	var u mediaUpdate
	json.Unmarshal(e.Args[0], &u)
	if want := (mediaUpdate{StreamID: "cam", State: "NO_PUBLISH", ErrorCode: int(why.Code), ExtendedData: "gone"}); u != want {
		t.Errorf("the refused restart ended the publisher with %+v, want %+v", u, want)
	}
	var old string
	p.Eval(`T.first.connectionState`, &old)
	if old != "closed" {
		t.Errorf("the ended publisher's connection is %s, not closed", old)
	}
	return mark
}

// theServersEnding is the media node's own ending of the publisher's old
// connection.
func theServersEnding(c *clienttest.ScriptedConn) {
	c.Event(protocol.EvPublisherStateUpdate, "", 0, 0, protocol.MediaStateUpdate{Stream: "cam", State: "NO_PUBLISH",
		Code: int(domain.ErrMediaPublishConnectionFailed.Code), Reason: "failed"})
}

// noPublishes counts the NO_PUBLISH in us.
func noPublishes(us []mediaUpdate) int {
	n := 0
	for _, u := range us {
		if u.State == "NO_PUBLISH" {
			n++
		}
	}
	return n
}

// A publisher whose connection the media node forgot: the SDK's ICE
// restart is refused (media_node_unreachable), and its media has ended: the
// app gets NO_PUBLISH with the code and reason "gone", the connection is
// closed, and the media node's own NO_PUBLISH of it that follows is not
// told again.
func TestSDKARefusedICERestartEndsThePublisher(t *testing.T) {
	p, c, s := scriptedAlice(t)
	mark := refusedPublisher(t, p, c, s, domain.ErrMediaNodeUnreachable)
	if st := p.entryState("a", "publisher", "cam"); st != "untracked" {
		t.Errorf("a's ended publisher of cam is %s, want untracked", st)
	}
	theServersEnding(c)
	if got := p.lastThing(c, "publisherStateUpdate", mark); noPublishes(got) != 1 {
		t.Errorf("the app heard NO_PUBLISH %d times: %+v", noPublishes(got), got)
	}
}

// As TestSDKARefusedICERestartEndsThePublisher, but the app, told NO_PUBLISH
// gone, publishes the stream again at once; the media node's NO_PUBLISH of
// the old connection arrives while the new offer is out. It is neither told
// nor does it end the new publisher.
func TestSDKAnEndingToldBeforeARepublishIsNotToldAgain(t *testing.T) {
	p, c, s := scriptedAlice(t)
	mark := refusedPublisher(t, p, c, s, domain.ErrMediaPeerNotFound)
	p.Eval(`T.calls.again = T.publishCamera('a', 'cam', 'r1'); true`, nil)
	c.Reply(mediaReq(c, protocol.OpPublish).ID, protocol.StreamReply{Room: "r1"})
	offer := mediaReq(c, protocol.OpMediaOffer)
	theServersEnding(c) // of the old connection, arriving now
	s.Answer(c, offer, true)
	if r := p.outcome("again"); !r.OK {
		t.Fatalf("startPublishingStream again, right after NO_PUBLISH gone: %+v", r)
	}
	p.iceUp("_publishers", false)
	got := p.lastThing(c, "publisherStateUpdate", mark)
	if noPublishes(got) != 1 {
		t.Errorf("the app heard NO_PUBLISH %d times: %+v", noPublishes(got), got)
	}
	if st := p.entryState("a", "publisher", "cam"); st != "PUBLISH_REQUESTING" {
		t.Errorf("a's republished publisher of cam is %s, want PUBLISH_REQUESTING (until the media node says "+
			"PUBLISHING); told %+v", st, got)
	}
}
