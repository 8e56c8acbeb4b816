package clienttest

import (
	"strings"
	"sync"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/media/mediatest"
	"github.com/roomlog/roomlog/transport/protocol"
)

// MediaNode is a scripted gateway's media node: it answers a client's
// offers with Pion peer connections made by its API, closed when the test
// ends.
type MediaNode struct {
	t   testing.TB
	api *webrtc.API
	mu  sync.Mutex
	pcs []*webrtc.PeerConnection
}

// NewMediaNode returns a media node whose peer connections api makes.
func NewMediaNode(t testing.TB, api *webrtc.API) *MediaNode {
	s := &MediaNode{t: t, api: api}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, pc := range s.pcs {
			pc.Close()
		}
	})
	return s
}

// Answer answers the offer of r (a media_offer or media_ice_restart) on c,
// with a new peer connection if fresh, else with the last one, and returns
// that connection.
func (s *MediaNode) Answer(c *ScriptedConn, r protocol.Request, fresh bool) *webrtc.PeerConnection {
	s.t.Helper()
	var req protocol.MediaOfferRequest
	if err := r.Decode(&req); err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	if fresh || len(s.pcs) == 0 {
		pc, err := s.api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			s.mu.Unlock()
			s.t.Fatal(err)
		}
		s.pcs = append(s.pcs, pc)
	}
	pc := s.pcs[len(s.pcs)-1]
	s.mu.Unlock()
	sdp, err := mediatest.Answer(pc, req.SDP)
	if err != nil {
		s.t.Fatal(err)
	}
	c.Reply(r.ID, protocol.MediaAnswer{SDP: sdp, Node: "n1"})
	return pc
}

// OfferUfrag is the ICE username fragment of a media offer (or ICE
// restart) request.
func OfferUfrag(t testing.TB, r protocol.Request) string {
	t.Helper()
	var req protocol.MediaOfferRequest
	if err := r.Decode(&req); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(req.SDP, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "a=ice-ufrag:"); ok {
			return v
		}
	}
	t.Fatal("an offer without ice-ufrag")
	return ""
}
