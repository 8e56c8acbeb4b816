package media

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/media/mediatest"
)

// pliPublisher connects a publisher whose encoder behaves as a browser's
// does: one keyframe at its start, then delta frames only, and a keyframe
// again only when asked (PLI/FIR).
func pliPublisher(t *testing.T, s *SFU, sid domain.SessionID, st domain.StreamID) *client {
	t.Helper()
	pc, err := mediatest.API().NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	vt, _ := mediatest.Tracks(string(st))
	sender, err := pc.AddTrack(vt)
	if err != nil {
		t.Fatal(err)
	}
	var want atomic.Bool
	want.Store(true)
	go func() {
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			for _, p := range pkts {
				if isKeyframeRequest(p) {
					want.Store(true)
				}
			}
		}
	}()
	c := &client{pc: pc}
	t.Cleanup(c.close)
	if err := offer(context.Background(), s, pc, Signal{App: app, Session: sid, Stream: st, Kind: Publish}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var seq uint16
		var ts uint32
		payload := make([]byte, 200)
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			payload[0], payload[1] = 0x10, 0x01 // VP8, S=1, delta frame
			if want.Swap(false) {
				payload[1] = 0x00 // keyframe
			}
			seq++
			ts += 3000
			_ = vt.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, Marker: true, SequenceNumber: seq, Timestamp: ts},
				Payload: payload})
		}
	}()
	return c
}

// A player that joins a stream already flowing gets a keyframe once its
// connection is up, even when the connection takes longer than the
// keyframe interval to come up (any real network: ICE checks, DTLS, and the
// answer's trip to the client). Here the client applies the answer 1.5 s
// after it gets it. Before, both join requests (at attach, and at Bind, which
// Pion runs in the answer's SetLocalDescription, before DTLS) were sent
// while the player could not receive: the keyframe they bring is dropped by
// Pion's SRTP writer (no session yet), and a publisher that sends
// keyframes only on request (every browser) leaves the player without a
// picture until the player itself asks.
func TestLatePlayerGetsAKeyframe(t *testing.T) {
	w := newWorld(t)
	s, _ := startSFU(t, w, "n1", nil)
	w.aliceCamToBob()
	pliPublisher(t, s, "s-alice", "cam")
	// The publisher's track is in the router before the player joins.
	waitUntil(t, "the publisher's video track", func() bool {
		r := camRouterOrNil(s)
		if r == nil {
			return false
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.ups[video] != nil
	})

	pc, err := mediatest.API().NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(video, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	var frames, keyframes atomic.Int64
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		buf := make([]byte, 1500)
		var p rtp.Packet
		for {
			n, _, err := tr.Read(buf)
			if err != nil {
				return
			}
			if p.Unmarshal(buf[:n]) != nil || len(p.Payload) < 2 {
				continue
			}
			frames.Add(1)
			if p.Payload[0]&0x10 != 0 && p.Payload[1]&0x01 == 0 {
				keyframes.Add(1)
			}
		}
	})
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(o); err != nil {
		t.Fatal(err)
	}
	<-gathered
	a, err := s.Handle(t.Context(), Signal{App: app, Session: "s-bob", Stream: "cam", Kind: Play, Op: OpOffer,
		SDP: pc.LocalDescription().SDP})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the answer's way to a client on a real network
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: a.SDP}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "video frames at the player", func() bool { return frames.Load() >= 50 })
	// A keyframe request sent on connecting is answered within a frame or
	// two; without one the publisher never sends a keyframe again.
	waitUntil(t, fmt.Sprintf("a keyframe among the player's video packets (%d so far, none a keyframe)", frames.Load()),
		func() bool { return keyframes.Load() > 0 })
}

func camRouterOrNil(s *SFU) *router {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.routers[routeKey{app, "cam"}]
}

// A player is PLAYING "once the first packet reaches the player"
// (docs/protocol.md): not before its connection is up. Before, the first
// packet written to its track counted, though Pion drops every packet
// written before the connection's SRTP is ready: a player whose client
// never even applied the answer was reported PLAYING.
func TestNotPlayingBeforeConnected(t *testing.T) {
	w := newWorld(t)
	s, st := startSFU(t, w, "n1", nil)
	w.aliceCamToBob()
	if _, err := publishMedia(t, s, "s-alice", "cam"); err != nil {
		t.Fatal(err)
	}
	st.wait(t, "s-alice", "cam", Publishing)
	pc, err := mediatest.API().NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, k := range []webrtc.RTPCodecType{video, audio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(o); err != nil {
		t.Fatal(err)
	}
	// The answer is never applied: the player cannot connect.
	if _, err := s.Handle(t.Context(), Signal{App: app, Session: "s-bob", Stream: "cam", Kind: Play, Op: OpOffer,
		SDP: o.SDP}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // an absence: give a wrong PLAYING time to come
	for _, e := range st.all() {
		if e.Session == "s-bob" && e.State == Playing {
			t.Fatalf("the player was reported %s though its connection never came up: %+v", Playing, st.all())
		}
	}
	a, err := s.Handle(t.Context(), Signal{App: app, Session: "s-bob", Stream: "cam", Kind: Play, Op: OpCheck})
	if err != nil || a.State != PlayRequesting {
		t.Fatalf("media_check of the unconnected player: %+v, %v; want %s", a, err, PlayRequesting)
	}
}

// A player whose stream stops keeps its connection in PLAY_REQUESTING
// (docs/architecture.md, docs/protocol.md), and is PLAYING again when the
// stream is published anew. Before, it stayed PLAYING (in its events and in
// media_check) while nothing reached it.
func TestPlayerRequestingWhileItsStreamIsStopped(t *testing.T) {
	w, s, st, _, pl := setup(t)
	st.wait(t, "s-bob", "cam", Playing)
	w.apply(w.room("r1"), &domain.StreamStoppedData{Stream: "cam", User: "alice", Session: "s-alice",
		Reason: domain.ReasonStopped})
	st.wait(t, "s-alice", "cam", NoPublish)
	if !pl.sink.Stopped(video, quiet, long) {
		t.Fatal("video still flows")
	}
	check := func() State {
		a, err := s.Handle(t.Context(), Signal{App: app, Session: "s-bob", Stream: "cam", Kind: Play, Op: OpCheck})
		if err != nil {
			t.Fatal(err)
		}
		return a.State
	}
	if got := check(); got != PlayRequesting {
		t.Errorf("media_check of a player whose stream stopped: %s, want %s", got, PlayRequesting)
	}
	var last State
	for _, e := range st.all() {
		if e.Session == "s-bob" {
			last = e.State
		}
	}
	if last != PlayRequesting {
		t.Errorf("the player's last state event: %s, want %s; events %+v", last, PlayRequesting, st.all())
	}
	// Published again: PLAYING again.
	w.join("r1", "erin", "s-erin")
	w.publish("r1", "erin", "s-erin", "cam", "n1")
	if _, err := publishMedia(t, s, "s-erin", "cam"); err != nil {
		t.Fatal(err)
	}
	if !pl.sink.WaitMore(video, 10, long) {
		t.Fatal("the new publisher's media did not reach the player")
	}
	if got := check(); got != Playing {
		t.Errorf("media_check once media flows again: %s, want %s", got, Playing)
	}
}

// A publisher whose connection failed on its side (a network change) and
// that offers again on a new RTCPeerConnection, as clients do on "failed",
// gets its media through the new one, before the node's ICE noticed the old
// one is gone. Before, the new connection's offer was applied to the old
// peer connection as a renegotiation: the new ICE credentials restarted
// ICE, but the new connection's DTLS certificate (another fingerprint) was
// never handshaken, so the new connection never came up.
func TestNewConnectionReplacesAStaleOne(t *testing.T) {
	_, s, _, pub, pl := setup(t)
	pub.stop() // the old connection's media stops; its ICE is left to time out
	if !pl.sink.Stopped(video, quiet, long) {
		t.Fatal("video still flows")
	}
	c, err := publishMedia(t, s, "s-alice", "cam")
	if err != nil {
		t.Fatalf("the new connection's offer: %v", err)
	}
	if !pl.sink.WaitMore(video, 20, 10*time.Second) {
		t.Fatalf("the new connection's media did not reach the player: its state %s, SFU stats %+v",
			c.pc.ConnectionState(), s.Stats())
	}
}

// An offer with more than one audio or video section (a stream has one of
// each; every track costs the node a goroutine) is refused with a coded
// error, and the node goes on serving others.
func TestAnOfferWithTwoVideoTracksIsRefused(t *testing.T) {
	s, pc := aliceMayPublish(t, nil)
	for range 2 {
		vt, _ := mediatest.Tracks("cam")
		if _, err := pc.AddTrack(vt); err != nil {
			t.Fatal(err)
		}
	}
	err := offer(context.Background(), s, pc, Signal{App: app, Session: "s-alice", Stream: "cam", Kind: Publish})
	if code, _ := domain.CodeOf(err); code != ErrPublishBadOffer.Code {
		t.Fatalf("an offer of two video tracks: %v, want %s", err, ErrPublishBadOffer.Name)
	}
	if st := s.Stats(); st.Publishers != 0 {
		t.Fatalf("after the refusal the node holds %+v", st)
	}
	pliPublisher(t, s, "s-alice", "cam") // the same session with one track is served
}

// An offer with no codec the node forwards (VP9 video only) is refused at
// once with publish_media_bad_offer, rather than answered with every section
// rejected, which the client cannot apply, and failed 20 s later as
// connection_failed. Refused offers cost nothing of the stream's ICE
// candidate budget (a budget of 4 here, on a clock that stands still, and
// five offers refused): the second reader found they spent it, so that a
// client trying again was soon refused for its candidates, not its codecs.
func TestAnOfferWithNoCodecTheNodeForwardsIsRefused(t *testing.T) {
	now := time.Now()
	s, pc := aliceMayPublish(t, func(c *Config) {
		c.MaxRemoteCandidates = 4
		c.Now = func() time.Time { return now }
	})
	for try := range 5 {
		if try > 0 {
			var err error
			if pc, err = mediatest.API().NewPeerConnection(webrtc.Configuration{}); err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
		}
		vp9, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000}, "video", "cam")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.AddTrack(vp9); err != nil {
			t.Fatal(err)
		}
		onlyVP9(t, pc)
		err = offer(context.Background(), s, pc, Signal{App: app, Session: "s-alice", Stream: "cam", Kind: Publish})
		if code, _ := domain.CodeOf(err); code != ErrPublishBadOffer.Code || strings.Contains(err.Error(), "ICE candidates") {
			t.Fatalf("VP9-only offer %d: %v, want %s for its codecs", try+1, err, ErrPublishBadOffer.Name)
		}
	}
	if st := s.Stats(); st.Publishers != 0 {
		t.Fatalf("after the refusals the node holds %+v", st)
	}
	pliPublisher(t, s, "s-alice", "cam") // the same session with VP8 is served
}

// onlyVP9 makes pc's video transceivers offer VP9 alone.
func onlyVP9(t *testing.T, pc *webrtc.PeerConnection) {
	t.Helper()
	vp9 := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000}, PayloadType: 98}
	for _, tr := range pc.GetTransceivers() {
		if tr.Kind() == video {
			if err := tr.SetCodecPreferences([]webrtc.RTPCodecParameters{vp9}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// An offer that goes the wrong way for its kind (a player's that only sends,
// a publisher's that only receives) is refused with the kind's bad-offer
// code, instead of connecting a peer through which nothing can flow.
func TestAnOfferGoingTheWrongWayIsRefused(t *testing.T) {
	w := newWorld(t)
	s, _ := startSFU(t, w, "n1", nil)
	w.aliceCamToBob()
	for _, c := range []struct {
		kind      Kind
		session   domain.SessionID
		direction webrtc.RTPTransceiverDirection
		want      *domain.Error
	}{
		{Play, "s-bob", webrtc.RTPTransceiverDirectionSendonly, ErrPlayBadOffer},
		{Publish, "s-alice", webrtc.RTPTransceiverDirectionRecvonly, ErrPublishBadOffer},
	} {
		pc, err := mediatest.API().NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		for _, k := range []webrtc.RTPCodecType{video, audio} {
			if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: c.direction}); err != nil {
				t.Fatal(err)
			}
		}
		err = offer(context.Background(), s, pc, Signal{App: app, Session: c.session, Stream: "cam", Kind: c.kind})
		if code, _ := domain.CodeOf(err); code != c.want.Code {
			t.Errorf("a %s offer that is all %s: %v, want %s", c.kind, c.direction, err, c.want.Name)
		}
	}
	if st := s.Stats(); st.Publishers != 0 || st.Players != 0 {
		t.Fatalf("after the refusals the node holds %+v", st)
	}
}

// A simulcast offer (one video section, several encodings) is refused with
// publish_media_bad_offer naming simulcast. It used to be answered: each
// layer arrived as a track of its own and replaced the one before as the
// stream's video, so players got whichever layer came last, and the node
// read the others for nothing.
func TestASimulcastOfferIsRefused(t *testing.T) {
	s, pc := aliceMayPublish(t, nil)
	var sender *webrtc.RTPSender
	for _, rid := range []string{"h", "l"} {
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
			"video", "cam", webrtc.WithRTPStreamID(rid))
		if err != nil {
			t.Fatal(err)
		}
		if sender == nil {
			if sender, err = pc.AddTrack(tr); err != nil {
				t.Fatal(err)
			}
		} else if err := sender.AddEncoding(tr); err != nil {
			t.Fatal(err)
		}
	}
	err := offer(context.Background(), s, pc, Signal{App: app, Session: "s-alice", Stream: "cam", Kind: Publish})
	if code, _ := domain.CodeOf(err); code != ErrPublishBadOffer.Code || !strings.Contains(err.Error(), "simulcast") {
		t.Fatalf("a simulcast offer: %v, want %s naming simulcast", err, ErrPublishBadOffer.Name)
	}
	if st := s.Stats(); st.Publishers != 0 {
		t.Fatalf("after the refusal the node holds %+v", st)
	}
	pliPublisher(t, s, "s-alice", "cam") // the same session with one encoding is served
}

// aliceMayPublish starts a media node n1 (its Config as edit says) at which
// alice (session s-alice) publishes cam, as the log says, and returns it
// with a bare peer connection for her offer.
func aliceMayPublish(t *testing.T, edit func(*Config)) (*SFU, *webrtc.PeerConnection) {
	t.Helper()
	w := newWorld(t)
	s, _ := startSFU(t, w, "n1", edit)
	w.join("r1", "alice", "s-alice")
	w.publish("r1", "alice", "s-alice", "cam", "n1")
	pc, err := mediatest.API().NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return s, pc
}
