package media

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/media/mediatest"
)

// An offer from a new peer connection that the node then refuses (here a
// player's offer that receives nothing; a gateway timeout while answering
// does the same) must not end the session's working connection without a
// word: either the old connection is kept, or the session is told NO_PLAY.
// Now the old one is closed as "replaced" (no event) before the new offer
// is even checked, and the refusal speaks only of the new one: the session's
// SDK believes it still plays, and nothing reaches it.
func TestARefusedReplacementIsNotSilentAboutTheOldPeer(t *testing.T) {
	_, s, st, _, pl := setup(t)
	st.wait(t, "s-bob", "cam", Playing)

	pc, err := mediatest.API().NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.CreateDataChannel("x", nil); err != nil {
		t.Fatal(err)
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(o); err != nil {
		t.Fatal(err)
	}
	<-gathered
	_, err = s.Handle(t.Context(), Signal{App: app, Session: "s-bob", Stream: "cam", Kind: Play, Op: OpOffer,
		SDP: pc.LocalDescription().SDP})
	if err == nil {
		t.Fatal("an offer that receives nothing was answered")
	}
	t.Logf("the new connection's offer: %v", err)
	time.Sleep(2 * time.Second)
	kept := pl.sink.WaitMore(video, 20, 5*time.Second)
	told := false
	for _, e := range st.all() {
		if e.Session == "s-bob" && e.State == NoPlay {
			told = true
		}
	}
	if !kept && !told {
		_, cerr := s.Handle(t.Context(), Signal{App: app, Session: "s-bob", Stream: "cam", Kind: Play, Op: OpCheck})
		t.Fatalf("a refused offer from a new connection ended bob's working player without NO_PLAY: "+
			"no more video (old connection %s), media_check %v, events %+v", pl.pc.ConnectionState(), cerr, st.all())
	}
}

// The publisher variant, with the refusal a busy node gives: the new
// connection's answer runs out of time (the gateway's command timeout).
// The old publisher is gone from the node, its players wait in
// PLAY_REQUESTING, and its session is never told NO_PUBLISH.
func TestATimedOutReplacementIsNotSilentAboutTheOldPublisher(t *testing.T) {
	_, s, st, _, pl := setup(t)
	st.wait(t, "s-alice", "cam", Publishing)
	st.wait(t, "s-bob", "cam", Playing)

	pc, err := mediatest.API().NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	vt, at := mediatest.Tracks("cam")
	for _, tr := range []webrtc.TrackLocal{vt, at} {
		if _, err := pc.AddTrack(tr); err != nil {
			t.Fatal(err)
		}
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(o); err != nil {
		t.Fatal(err)
	}
	<-gathered
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // the request's time is up while the node answers
	_, err = s.Handle(ctx, Signal{App: app, Session: "s-alice", Stream: "cam", Kind: Publish, Op: OpOffer,
		SDP: pc.LocalDescription().SDP})
	if err == nil {
		t.Skip("answered in no time: nothing refused")
	}
	t.Logf("the new connection's offer: %v", err)
	time.Sleep(2 * time.Second)
	kept := pl.sink.WaitMore(video, 20, 5*time.Second)
	told := false
	for _, e := range st.all() {
		if e.Session == "s-alice" && e.State == NoPublish {
			told = true
		}
	}
	if !kept && !told {
		_, cerr := s.Handle(t.Context(), Signal{App: app, Session: "s-alice", Stream: "cam", Kind: Publish, Op: OpCheck})
		t.Fatalf("a refused offer from a new connection ended alice's working publisher without NO_PUBLISH: "+
			"media_check %v, events %+v", cerr, st.all())
	}
}

// A player goes back to PLAY_REQUESTING when its stream's publisher goes
// (router.waitLocked), and stays there until the next publisher's media
// reaches it. The publisher's forwarder may be writing a packet to the
// player at that moment: the write passed its owner check, the router then
// detaches and rearms the track, and the write's end runs onFirst again
// (first was just cleared): PLAYING after PLAY_REQUESTING, with no
// publisher, and no PLAYING later when one comes (first is set). A hot
// publisher (2,000 video packets/s) leaving a handful of players shows it
// within a few cycles.
func TestAPlayerIsNotPlayingAfterItsPublisherLeft(t *testing.T) {
	w := newWorld(t)
	s, st := startSFU(t, w, "n1", nil)
	w.join("r1", "alice", "s-alice")
	w.publish("r1", "alice", "s-alice", "cam", "n1")
	const players = 6
	var sids []domain.SessionID
	for i := range players {
		u := domain.UserID(fmt.Sprintf("p%d", i))
		sid := domain.SessionID("s-" + string(u))
		w.join("r1", u, sid)
		w.play("r1", u, sid, "cam")
		sids = append(sids, sid)
		if _, err := playMedia(t, s, sid, "cam"); err != nil {
			t.Fatal(err)
		}
	}
	last := func(sid domain.SessionID) State {
		var l State
		for _, e := range st.all() {
			if e.Session == sid {
				l = e.State
			}
		}
		return l
	}
	for cycle := range 60 {
		pc, err := mediatest.API().NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		vt, at := mediatest.Tracks("cam")
		for _, tr := range []webrtc.TrackLocal{vt, at} {
			if _, err := pc.AddTrack(tr); err != nil {
				t.Fatal(err)
			}
		}
		if err := offer(context.Background(), s, pc, Signal{App: app, Session: "s-alice", Stream: "cam", Kind: Publish}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		mediatest.Send(ctx, vt, at, 500*time.Microsecond)
		waitUntil(t, "every player PLAYING", func() bool {
			for _, sid := range sids {
				if last(sid) != Playing {
					return false
				}
			}
			return true
		})
		time.Sleep(100 * time.Millisecond)
		// The publisher goes (media_close) while its media flows.
		if _, err := s.Handle(t.Context(), Signal{App: app, Session: "s-alice", Stream: "cam", Kind: Publish,
			Op: OpClose}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		cancel()
		pc.Close()
		for _, sid := range sids {
			a, err := s.Handle(t.Context(), Signal{App: app, Session: sid, Stream: "cam", Kind: Play, Op: OpCheck})
			if err != nil || a.State != PlayRequesting || last(sid) != PlayRequesting {
				t.Fatalf("cycle %d: the stream has no publisher, yet %s's player is %s (media_check, %v), "+
					"last event %s; want %s", cycle, sid, a.State, err, last(sid), PlayRequesting)
			}
		}
	}
}
