package tests

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/media/mediatest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/protocol"
)

// ask sends a request and returns its reply, whatever its code.
func ask(c *wire.Conn, id string, op protocol.Op, data any) protocol.Frame {
	c.Send(id, op, data)
	return c.Reply(id)
}

// Bad media signalling gets a coded reply and disturbs nothing: the
// connection keeps working, and no peer is left behind.
func TestMediaBadInput(t *testing.T) {
	n := clienttest.StartNode(t, clienttest.NodeOptions{})
	c := wire.Dial(t, n.HTTPAddr())
	if f := ask(c, "0", protocol.OpMediaOffer, protocol.MediaOfferRequest{Stream: "cam", Kind: "publish", SDP: "v=0"}); f.Code != domain.ErrNotLoggedIn.Code {
		t.Errorf("an offer before any login: %d %s", f.Code, f.Error)
	}
	c.Login("stage", "alice", clienttest.Token(t, n, "alice"))
	c.Do("p", protocol.OpPublish, protocol.PublishRequest{Stream: "cam"})
	for _, tc := range []struct {
		op   protocol.Op
		data any
		want domain.Code
	}{
		{protocol.OpMediaOffer, json.RawMessage(`{"stream": 7}`), protocol.ErrMalformedRequest.Code},
		{protocol.OpMediaOffer, protocol.MediaOfferRequest{Stream: "cam", Kind: "watch", SDP: "v=0"}, domain.ErrMediaBadSignal.Code},
		{protocol.OpMediaOffer, protocol.MediaOfferRequest{Stream: "cam", Kind: "publish"}, domain.ErrMediaBadSignal.Code},
		{protocol.OpMediaOffer, protocol.MediaOfferRequest{Stream: "cam", Kind: "publish", SDP: "not an offer"}, domain.ErrMediaPublishBadOffer.Code},
		{protocol.OpMediaOffer, protocol.MediaOfferRequest{Stream: "cam", Kind: "play", SDP: "v=0"}, domain.ErrMediaNotPlaying.Code},
		{protocol.OpMediaOffer, protocol.MediaOfferRequest{Stream: "", Kind: "publish", SDP: "v=0"}, domain.ErrMediaBadSignal.Code},
		{protocol.OpMediaICERestart, protocol.MediaOfferRequest{Stream: "cam", Kind: "publish", SDP: "v=0"}, domain.ErrMediaPeerNotFound.Code},
		{protocol.OpMediaCandidate, protocol.MediaCandidateRequest{Stream: "cam", Kind: "publish",
			Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host"}, domain.ErrMediaPeerNotFound.Code},
		{protocol.OpMediaClose, protocol.MediaCloseRequest{Stream: "cam", Kind: "publish"}, 0},
	} {
		if f := ask(c, "m", tc.op, tc.data); f.Code != tc.want {
			t.Errorf("%s %v: %d %s %s, want %d", tc.op, tc.data, f.Code, f.Error, f.Message, tc.want)
		}
	}
	if f := c.Do("q", protocol.OpQueryRoom, protocol.RoomRequest{Room: "stage"}); f.Code != 0 {
		t.Errorf("the connection no longer works: %d %s", f.Code, f.Error)
	}
	if st := n.SFU.Stats(); st.Publishers != 0 || st.Players != 0 {
		t.Errorf("refused signalling left peers: %+v", st)
	}
}

// A cluster without any media node answers media_unavailable.
func TestNoMediaNode(t *testing.T) {
	n := clienttest.StartNode(t, clienttest.NodeOptions{Edit: func(c *node.Config) { c.NoMedia = true }})
	c := wire.Dial(t, n.HTTPAddr())
	c.Login("stage", "alice", clienttest.Token(t, n, "alice"))
	c.Do("p", protocol.OpPublish, protocol.PublishRequest{Stream: "cam"})
	if f := ask(c, "m", protocol.OpMediaOffer, protocol.MediaOfferRequest{Stream: "cam", Kind: "publish", SDP: "v=0"}); f.Code != domain.ErrMediaUnavailable.Code {
		t.Errorf("an offer with no media node: %d %s", f.Code, f.Error)
	}
}

// A media connection's state events come after its offer's reply: a client
// learns of its connection from the answer, and one that heard of the
// connection's ending first would lose it (the Go SDK registers media once
// the answer comes). The events the gateway held while the offer was being
// answered (PLAY_REQUESTING, most often, when the media node is another
// node: its answer and its event race over NATS) used to go out before the
// reply. The order depends on timing, so the test offers many times.
func TestMediaStateEventsFollowTheOffersReply(t *testing.T) {
	nodeA := clienttest.StartNode(t, clienttest.NodeOptions{NATSListen: "127.0.0.1:0"})
	nodeB := clienttest.StartNode(t, clienttest.NodeOptions{Join: nodeA})
	alice := wire.Dial(t, nodeA.HTTPAddr())
	alice.Login("stage", "alice", clienttest.Token(t, nodeA, "alice"))
	alice.Do("p", protocol.OpPublish, protocol.PublishRequest{Stream: "cam"}) // hosted on A
	bob := wire.Dial(t, nodeB.HTTPAddr())
	bob.Login("stage", "bob", clienttest.Token(t, nodeB, "bob"))
	bob.Do("play", protocol.OpPlay, protocol.PlayRequest{Stream: "cam", Room: "stage"})
	const rounds = 40
	early := 0
	for i := range rounds {
		pc, err := mediatest.API().NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
			if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				t.Fatal(err)
			}
		}
		offer, err := pc.CreateOffer(nil)
		if err != nil {
			t.Fatal(err)
		}
		gathered := webrtc.GatheringCompletePromise(pc)
		if err := pc.SetLocalDescription(offer); err != nil {
			t.Fatal(err)
		}
		<-gathered
		id := fmt.Sprint("offer-", i)
		bob.Send(id, protocol.OpMediaOffer, protocol.MediaOfferRequest{Stream: "cam", Kind: "play",
			SDP: pc.LocalDescription().SDP})
		for {
			f := bob.Next()
			if f.Type == protocol.TypeReply && f.ID == id {
				if f.Code != 0 {
					t.Fatalf("offer %d: %d %s %s", i, f.Code, f.Error, f.Message)
				}
				break
			}
			if f.Event == protocol.EvPlayerStateUpdate {
				early++
				t.Logf("offer %d: %s before the reply", i, f.Data)
			}
		}
		if early == 0 { // this connection's PLAY_REQUESTING, after the reply
			bob.Until(func(f protocol.Frame) bool {
				return f.Event == protocol.EvPlayerStateUpdate && strings.Contains(string(f.Data), "PLAY_REQUESTING")
			})
		}
		pc.Close()
	}
	if early > 0 {
		t.Errorf("%d state events of a player's connection came before its offer's reply (%d offers)", early, rounds)
	}
}
