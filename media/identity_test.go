package media

import (
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/media/mediatest"
)

// Every peer has an identity, minted by its node when it opens the peer,
// that the answer to its offer and every state event of it carry: a gateway
// tells an event of the peer its session's connection has from a late one
// of a peer that an offer replaced. A renegotiation (an ICE restart, or a
// second offer of the same peer connection) keeps the peer and its
// identity, and media_check names it; an offer from a new peer connection
// replaces the peer with one of another identity.
func TestMediaPeersAreNamedInAnswersAndStateEvents(t *testing.T) {
	w := newWorld(t)
	w.aliceCamToBob()
	s, st := startSFU(t, w, "n1", nil)
	bob := Signal{App: app, Session: "s-bob", Stream: "cam", Kind: Play}

	first := newPlayerPC(t)
	a1 := answerOffer(t, s, first, bob, OpOffer, nil)
	if a1.Peer == "" {
		t.Fatal("the answer names no peer")
	}
	if e := st.wait(t, "s-bob", "cam", PlayRequesting); e.Peer != a1.Peer {
		t.Fatalf("PLAY_REQUESTING of peer %q, want %q (the answer's)", e.Peer, a1.Peer)
	}
	for _, op := range []SignalOp{OpRestart, OpOffer} {
		if a := answerOffer(t, s, first, bob, op, &webrtc.OfferOptions{ICERestart: true}); a.Peer != a1.Peer {
			t.Fatalf("an ICE restart (%s) of the same connection answered as peer %q, want %q", op, a.Peer, a1.Peer)
		}
	}
	check := bob
	check.Op = OpCheck
	if a, err := s.Handle(t.Context(), check); err != nil || a.Peer != a1.Peer {
		t.Fatalf("media_check: %+v, %v; want peer %q", a, err, a1.Peer)
	}

	second := newPlayerPC(t)
	a2 := answerOffer(t, s, second, bob, OpOffer, nil)
	if a2.Peer == "" || a2.Peer == a1.Peer {
		t.Fatalf("the new connection's peer is %q, the replaced one's %q: want a new identity", a2.Peer, a1.Peer)
	}
	closing := bob
	closing.Op = OpClose
	if _, err := s.Handle(t.Context(), closing); err != nil {
		t.Fatal(err)
	}
	if e := st.wait(t, "s-bob", "cam", NoPlay); e.Peer != a2.Peer {
		t.Fatalf("NO_PLAY of peer %q, want %q (the live one's)", e.Peer, a2.Peer)
	}
	for _, e := range st.all() {
		if e.Peer != a1.Peer && e.Peer != a2.Peer {
			t.Errorf("a state event of no peer answered: %+v", e)
		}
	}
}

// newPlayerPC is a peer connection that receives audio and video.
func newPlayerPC(t *testing.T) *webrtc.PeerConnection {
	t.Helper()
	pc, err := mediatest.API().NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	return pc
}

// answerOffer sends pc's offer (made with opts) to the SFU as op and applies
// the answer.
func answerOffer(t *testing.T, s *SFU, pc *webrtc.PeerConnection, sig Signal, op SignalOp, opts *webrtc.OfferOptions) Answer {
	t.Helper()
	o, err := pc.CreateOffer(opts)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(o); err != nil {
		t.Fatal(err)
	}
	<-gathered
	sig.Op, sig.SDP = op, pc.LocalDescription().SDP
	a, err := s.Handle(t.Context(), sig)
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: a.SDP}); err != nil {
		t.Fatal(err)
	}
	return a
}
