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

// An offer from a new peer connection replaces the old one (closed without a
// word, the new one goes on). When the node then refuses the new offer (here
// a player's offer that receives nothing; a timeout while answering does the
// same), the session is told its old connection ended (NO_PLAY, reason
// replaced): else its SDK believes it still plays, and nothing reaches it.
func TestARefusedReplacementIsNotSilentAboutTheOldPeer(t *testing.T) {
	_, s, st, _, _ := setup(t)
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
	if e := st.wait(t, "s-bob", "cam", NoPlay); e.Reason != "replaced" {
		t.Fatalf("bob's player ended with reason %q, want replaced", e.Reason)
	}
}

// A player goes back to PLAY_REQUESTING when its stream's publisher goes
// (router.waitLocked), and stays there until the next publisher's media
// reaches it. The publisher's forwarder may be writing a packet to the
// player at that moment: that write must not make it PLAYING again, with no
// publisher (and none later when one comes). A hot publisher (2,000 video
// packets/s) leaving a handful of players showed it within a few cycles.
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
		// The states arrive asynchronously: first every player's
		// PLAY_REQUESTING, then an absence window, media still flowing, for
		// a wrong PLAYING to show up.
		waitUntil(t, "every player PLAY_REQUESTING", func() bool {
			for _, sid := range sids {
				if last(sid) != PlayRequesting {
					return false
				}
			}
			return true
		})
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
