package media

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/media/mediatest"
)

const (
	video = webrtc.RTPCodecTypeVideo
	audio = webrtc.RTPCodecTypeAudio
	// quiet is how long nothing must arrive for a flow to count as stopped.
	quiet = 600 * time.Millisecond
	long  = 15 * time.Second
)

// A publisher's VP8 and Opus reach a player in its room and one in another
// room (cross-room co-hosting); sessions the fold does not allow are refused
// with their codes.
func TestForwardsByTheFold(t *testing.T) {
	w := newWorld(t)
	s, st := startSFU(t, w, "n1", nil)
	w.join("r1", "alice", "s-alice")
	w.join("r1", "bob", "s-bob")
	w.join("r2", "carol", "s-carol")
	w.publish("r1", "alice", "s-alice", "cam", "n1")
	w.play("r1", "bob", "s-bob", "cam")
	w.play("r2", "carol", "s-carol", "cam")

	if _, err := publishMedia(t, s, "s-bob", "cam"); !errors.Is(err, ErrNotPublishing) {
		t.Fatalf("bob publishing alice's stream: %v, want %v", err, ErrNotPublishing)
	}
	w.join("r2", "dave", "s-dave")
	if _, err := playMedia(t, s, "s-dave", "cam"); !errors.Is(err, ErrNotPlaying) {
		t.Fatalf("dave playing without a play: %v, want %v", err, ErrNotPlaying)
	}
	pub, err := publishMedia(t, s, "s-alice", "cam")
	if err != nil {
		t.Fatal(err)
	}
	st.wait(t, "s-alice", "cam", Publishing)
	// The answer offers the publisher NACK, PLI and transport-wide
	// congestion control feedback.
	answer := pub.pc.RemoteDescription().SDP
	for _, fb := range []string{"a=rtcp-fb:96 nack", "a=rtcp-fb:96 nack pli", "a=rtcp-fb:96 transport-cc", "transport-wide-cc"} {
		if !strings.Contains(answer, fb) {
			t.Errorf("the publisher's answer lacks %q:\n%s", fb, answer)
		}
	}
	for _, sid := range []domain.SessionID{"s-bob", "s-carol"} {
		p, err := playMedia(t, s, sid, "cam")
		if err != nil {
			t.Fatal(err)
		}
		if !p.sink.WaitMore(video, 20, long) || !p.sink.WaitMore(audio, 10, long) {
			t.Fatalf("%s received video %d, audio %d", sid, p.sink.Count(video), p.sink.Count(audio))
		}
		if got := p.sink.Mime(video); got != webrtc.MimeTypeVP8 {
			t.Errorf("%s: video arrives as %q", sid, got)
		}
		st.wait(t, sid, "cam", Playing)
	}
	if got := s.Stats(); got.Publishers != 1 || got.Players != 2 || got.Streams != 1 {
		t.Errorf("stats %+v", got)
	}
}

// setup publishes alice's "cam" in r1 and has bob (r1) play it, media flowing.
func setup(t *testing.T) (*world, *SFU, *states, *client, *client) {
	w, s, st, pub, pl, _ := setupCounted(t)
	return w, s, st, pub, pl
}

// setupCounted is setup that also returns the goroutine count before any
// peer existed.
func setupCounted(t *testing.T) (*world, *SFU, *states, *client, *client, int) {
	t.Helper()
	return setupEdited(t, nil)
}

// setupEdited is setupCounted on a node whose Config edit changes.
func setupEdited(t *testing.T, edit func(*Config)) (*world, *SFU, *states, *client, *client, int) {
	t.Helper()
	w := newWorld(t)
	s, st := startSFU(t, w, "n1", edit)
	w.aliceCamToBob()
	time.Sleep(50 * time.Millisecond)
	base := runtimeGoroutines()
	pub, err := publishMedia(t, s, "s-alice", "cam")
	if err != nil {
		t.Fatal(err)
	}
	pl, err := playMedia(t, s, "s-bob", "cam")
	if err != nil {
		t.Fatal(err)
	}
	if !pl.sink.WaitMore(video, 10, long) {
		t.Fatal("no video reached the player")
	}
	return w, s, st, pub, pl, base
}

// Each way the fold ends a stream or a play closes its media.
func TestTheFoldEndsMedia(t *testing.T) {
	cases := []struct {
		name string
		end  func(w *world)
		// pub and play: whose media must close.
		pub, play bool
	}{
		{"stream stopped", func(w *world) {
			w.apply(w.room("r1"), &domain.StreamStoppedData{Stream: "cam", User: "alice", Session: "s-alice",
				Reason: domain.ReasonStopped})
		}, true, false},
		{"play stopped", func(w *world) {
			w.apply(w.room("r1"), &domain.PlayStoppedData{Stream: "cam", User: "bob", Session: "s-bob"})
		}, false, true},
		{"player left", func(w *world) {
			w.apply(w.room("r1"), &domain.MemberLeftData{User: "bob", Session: "s-bob", Reason: domain.ReasonLogout})
		}, false, true},
		{"room destroyed (no stream_stopped)", func(w *world) {
			w.apply(w.room("r1"), &domain.RoomDestroyedData{Reason: domain.DestroyBackend})
		}, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, s, st, pub, pl, base := setupCounted(t)
			c.end(w)
			if c.pub {
				if e := st.wait(t, "s-alice", "cam", NoPublish); e.Reason != "ended" {
					t.Errorf("publisher closed with %+v", e)
				}
			}
			if c.play {
				st.wait(t, "s-bob", "cam", NoPlay)
			}
			if !pl.sink.Stopped(video, quiet, long) {
				t.Fatal("video still flows")
			}
			if !c.play {
				for _, e := range st.all() {
					if e.Session == "s-bob" && e.State == NoPlay {
						t.Errorf("the play ended too: %+v", e)
					}
				}
			}
			// Whatever is left closes from the client side; then nothing
			// of either peer remains.
			pub.close()
			pl.close()
			waitStats(t, s, Stats{})
			settleGoroutines(t, base)
		})
	}
}

// waitStats waits until the SFU holds what want says.
func waitStats(t *testing.T, s *SFU, want Stats) {
	t.Helper()
	deadline := time.Now().Add(long + 10*time.Second) // ICE notices a closed client within ConnectTimeout
	for s.Stats() != want {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want %+v", s.Stats(), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A player keeps its connection when the stream stops, and receives the
// stream again when it is published anew (by another session, too).
func TestPlayerOutlivesItsPublisher(t *testing.T) {
	w, s, st, _, pl := setup(t)
	w.apply(w.room("r1"), &domain.StreamStoppedData{Stream: "cam", User: "alice", Session: "s-alice"})
	st.wait(t, "s-alice", "cam", NoPublish)
	if !pl.sink.Stopped(video, quiet, long) {
		t.Fatal("video still flows")
	}
	w.join("r1", "erin", "s-erin")
	w.publish("r1", "erin", "s-erin", "cam", "n1")
	if _, err := publishMedia(t, s, "s-erin", "cam"); err != nil {
		t.Fatal(err)
	}
	if !pl.sink.WaitMore(video, 10, long) || !pl.sink.WaitMore(audio, 5, long) {
		t.Fatal("the new publisher's media did not reach the player")
	}
}

// Closing from the client side ends the peer; everything it started is
// released, back to the goroutines before it.
func TestCloseReleasesEverything(t *testing.T) {
	w := newWorld(t)
	s, st := startSFU(t, w, "n1", nil)
	w.aliceCamToBob()
	time.Sleep(100 * time.Millisecond)
	base, fds := runtimeGoroutines(), openFiles(t)
	pub, err := publishMedia(t, s, "s-alice", "cam")
	if err != nil {
		t.Fatal(err)
	}
	pl, err := playMedia(t, s, "s-bob", "cam")
	if err != nil {
		t.Fatal(err)
	}
	if !pl.sink.WaitMore(video, 10, long) {
		t.Fatal("no video")
	}
	for _, sig := range []Signal{{App: app, Session: "s-bob", Stream: "cam", Kind: Play, Op: OpClose},
		{App: app, Session: "s-alice", Stream: "cam", Kind: Publish, Op: OpClose}} {
		if _, err := s.Handle(t.Context(), sig); err != nil {
			t.Fatal(err)
		}
	}
	if e := st.wait(t, "s-bob", "cam", NoPlay); e.Reason != "closed" || e.Code != 0 {
		t.Errorf("player closed with %+v", e)
	}
	st.wait(t, "s-alice", "cam", NoPublish)
	pub.close()
	pl.close()
	if got := s.Stats(); got != (Stats{}) {
		t.Errorf("stats after close: %+v", got)
	}
	settleGoroutines(t, base)
	// Every UDP port (socket) of both ends is closed again.
	if n := openFiles(t); n > fds {
		t.Errorf("%d open files, %d before the peers", n, fds)
	}
}

// openFiles counts the process's open file descriptors (sockets included).
func openFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(fds)
}

// An ICE restart renegotiates the same peer connection; media keeps flowing.
func TestICERestart(t *testing.T) {
	_, s, _, _, pl := setup(t)
	restart := &webrtc.OfferOptions{ICERestart: true}
	if err := offerWith(t.Context(), s, pl.pc, Signal{App: app, Session: "s-bob", Stream: "cam", Kind: Play}, restart); err != nil {
		t.Fatal(err)
	}
	if !pl.sink.WaitMore(video, 20, long) {
		t.Fatal("no video after the ICE restart")
	}
}

// A player that first receives audio only, then renegotiates its peer
// connection to receive video too, gets the stream's video as well. Before,
// the renegotiation was answered with no track behind the new kind: no
// video ever came.
func TestARenegotiationThatAddsVideoToAnAudioPlayerBringsVideo(t *testing.T) {
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
	t.Cleanup(func() { pc.Close() })
	sink := mediatest.NewSink()
	pc.OnTrack(sink.OnTrack)
	recv := webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}
	if _, err := pc.AddTransceiverFromKind(audio, recv); err != nil {
		t.Fatal(err)
	}
	signal := Signal{App: app, Session: "s-bob", Stream: "cam", Kind: Play}
	if err := offer(t.Context(), s, pc, signal); err != nil {
		t.Fatalf("the audio-only offer: %v", err)
	}
	if !sink.WaitMore(audio, 5, long) {
		t.Fatal("no audio reached the audio-only player")
	}
	if sink.Count(video) != 0 {
		t.Fatal("video reached a player that asked for audio only")
	}

	if _, err := pc.AddTransceiverFromKind(video, recv); err != nil {
		t.Fatal(err)
	}
	if err := offer(t.Context(), s, pc, signal); err != nil {
		t.Fatalf("the renegotiation adding video: %v", err)
	}
	if got := s.Stats(); got.Players != 1 {
		t.Fatalf("stats %+v: the renegotiation should keep bob's one peer", got)
	}
	if !sink.WaitMore(video, 10, long) {
		t.Fatalf("after a renegotiation adding video, the player received %d video packets (audio %d)",
			sink.Count(video), sink.Count(audio))
	}
	if !sink.WaitMore(audio, 5, long) {
		t.Fatal("audio stopped after the renegotiation")
	}
}

func TestBadSignals(t *testing.T) {
	w := newWorld(t)
	s, _ := startSFU(t, w, "n1", nil)
	w.join("r1", "alice", "s-alice")
	w.publish("r1", "alice", "s-alice", "cam", "n1")
	for _, c := range []struct {
		sig  Signal
		want error
	}{
		{Signal{App: app, Session: "s-alice", Stream: "cam", Kind: "watch", Op: OpOffer, SDP: "v=0"}, ErrBadSignal},
		{Signal{App: app, Session: "s-alice", Stream: "", Kind: Publish, Op: OpOffer, SDP: "v=0"}, ErrBadSignal},
		{Signal{App: app, Session: "s-alice", Stream: "cam", Kind: Publish, Op: OpOffer}, ErrBadSignal},
		{Signal{App: app, Session: "s-alice", Stream: "cam", Kind: Publish, Op: OpOffer, SDP: "not sdp"}, ErrPublishBadOffer},
		{Signal{App: app, Session: "s-alice", Stream: "cam", Kind: Publish, Op: OpCandidate, Candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host"}, ErrNoPeer},
	} {
		if _, err := s.Handle(t.Context(), c.sig); !errors.Is(err, c.want) {
			t.Errorf("%+v: %v, want %v", c.sig, err, c.want)
		}
	}
	if got := s.Stats(); got != (Stats{}) {
		t.Errorf("refused offers left peers: %+v", got)
	}
}

// media_check tells a resumed session whether the node still has its peer
// connection, and in what state.
func TestCheckSaysWhetherThePeerIsThere(t *testing.T) {
	_, s, _, _, _ := setup(t) // alice publishes cam, bob plays it and gets video
	// The player is PLAYING once its first packet is written, which bob
	// may receive a moment before the forwarder records it.
	var a Answer
	var err error
	for deadline := time.Now().Add(long); ; time.Sleep(10 * time.Millisecond) {
		a, err = s.Handle(context.Background(), Signal{App: app, Session: "s-bob", Stream: "cam", Kind: Play, Op: OpCheck})
		if err != nil || a.State == Playing || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || a.State != Playing || a.Node != "n1" {
		t.Errorf("bob's player: %+v, %v; want PLAYING on n1", a, err)
	}
	a, err = s.Handle(context.Background(), Signal{App: app, Session: "s-alice", Stream: "cam", Kind: Publish, Op: OpCheck})
	if err != nil || a.State != Publishing {
		t.Errorf("alice's publisher: %+v, %v; want PUBLISHING", a, err)
	}
	if _, err := s.Handle(context.Background(), Signal{App: app, Session: "s-carol", Stream: "cam", Kind: Play,
		Op: OpCheck}); !errors.Is(err, ErrNoPeer) {
		t.Errorf("a session without a peer: %v, want media_peer_not_found", err)
	}
}
