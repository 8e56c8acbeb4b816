package media

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/media/mediatest"
)

// H.264 is forwarded where the publisher sends it and the player accepts it.
func TestForwardsH264(t *testing.T) {
	w := newWorld(t)
	s, _ := startSFU(t, w, "n1", nil)
	w.aliceCamToBob()
	pc, err := mediatest.API().NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	h264, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "video", "cam")
	if err != nil {
		t.Fatal(err)
	}
	sender, _ := pc.AddTrack(h264)
	go drain(sender)
	if err := offer(t.Context(), s, pc, Signal{App: app, Session: "s-alice", Stream: "cam", Kind: Publish}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		for seq := uint16(1); ctx.Err() == nil; seq++ {
			_ = h264.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 3000},
				Payload: []byte{0x65, 1, 2, 3}})
			time.Sleep(10 * time.Millisecond)
		}
	}()
	p, err := playMedia(t, s, "s-bob", "cam")
	if err != nil {
		t.Fatal(err)
	}
	if !p.sink.WaitMore(video, 10, long) {
		t.Fatal("no H.264 reached the player")
	}
	if got := p.sink.Mime(video); got != webrtc.MimeTypeH264 {
		t.Errorf("video arrives as %q", got)
	}
}

// A track with more players than one shard holds is written by several
// goroutines; every player still gets every packet.
func TestShardedFanOut(t *testing.T) {
	w := newWorld(t)
	s, _ := startSFU(t, w, "n1", func(c *Config) { c.ShardSize = 2 })
	w.join("r1", "alice", "s-alice")
	w.publish("r1", "alice", "s-alice", "cam", "n1")
	if _, err := publishMedia(t, s, "s-alice", "cam"); err != nil {
		t.Fatal(err)
	}
	var players []*client
	for i := range 5 {
		sid := domain.SessionID(fmt.Sprint("s-", i))
		w.join("r1", domain.UserID(sid), sid)
		w.play("r1", domain.UserID(sid), sid, "cam")
		p, err := playMedia(t, s, sid, "cam")
		if err != nil {
			t.Fatal(err)
		}
		players = append(players, p)
	}
	for i, p := range players {
		if !p.sink.WaitMore(video, 20, long) || !p.sink.WaitMore(audio, 10, long) {
			t.Fatalf("player %d: video %d, audio %d", i, p.sink.Count(video), p.sink.Count(audio))
		}
	}
	s.mu.Lock()
	r := s.routers[routeKey{app, "cam"}]
	s.mu.Unlock()
	r.mu.Lock()
	u := r.ups[video]
	r.mu.Unlock()
	if shards := len(u.fan.Load().shards); shards < 2 {
		t.Errorf("%d shards for 5 players of 2 per shard", shards)
	}
}

// A player's arrival and a player's own request (PLI) reach the publisher
// as keyframe requests, throttled per track.
func TestKeyframeRequests(t *testing.T) {
	w := newWorld(t)
	// Real time: the interval is long enough that a burst of 5 stays within
	// one on a loaded machine; the windows below exceed it.
	const interval = 2 * time.Second
	s, _ := startSFU(t, w, "n1", func(c *Config) { c.KeyframeInterval = interval })
	w.aliceCamToBob()
	pc, err := mediatest.API().NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	vt, _ := mediatest.Tracks("cam")
	sender, _ := pc.AddTrack(vt)
	var plis atomic.Int64
	go func() {
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			for _, p := range pkts {
				if _, ok := p.(*rtcp.PictureLossIndication); ok {
					plis.Add(1)
				}
			}
		}
	}()
	if err := offer(t.Context(), s, pc, Signal{App: app, Session: "s-alice", Stream: "cam", Kind: Publish}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	mediatest.Send(ctx, vt, nil, 10*time.Millisecond)
	p, err := playMedia(t, s, "s-bob", "cam")
	if err != nil {
		t.Fatal(err)
	}
	if !p.sink.WaitMore(video, 10, long) {
		t.Fatal("no video")
	}
	waitUntil(t, "a keyframe request for the joining player", func() bool { return plis.Load() >= 1 })
	// The join's requests (on attach, and once the track is bound) settle.
	for last := int64(-1); plis.Load() != last; time.Sleep(interval + 500*time.Millisecond) {
		last = plis.Load()
	}
	before := plis.Load()
	var ssrc uint32
	for _, tr := range p.pc.GetReceivers() {
		if tr.Track() != nil && tr.Track().Kind() == video {
			ssrc = uint32(tr.Track().SSRC())
		}
	}
	for range 5 { // a burst: throttled to one now and one at the interval's end
		if err := p.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "the player's keyframe request", func() bool { return plis.Load() > before })
	time.Sleep(interval + time.Second) // room for the one at the interval's end, and a wrong third
	if got := plis.Load() - before; got > 2 {
		t.Errorf("%d keyframe requests for a burst of 5 within one interval, want at most 2", got)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(long)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not in time", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// With UDPPort every peer connection's media shares one UDP port.
func TestSingleUDPPort(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	w := newWorld(t)
	s, _ := startSFU(t, w, "n1", func(c *Config) { c.UDPPort, c.IPs = port, []string{"127.0.0.1"} })
	w.aliceCamToBob()
	if _, err := publishMedia(t, s, "s-alice", "cam"); err != nil {
		t.Fatal(err)
	}
	p, err := playMedia(t, s, "s-bob", "cam")
	if err != nil {
		t.Fatal(err)
	}
	if !p.sink.WaitMore(video, 10, long) {
		t.Fatal("no video through the single port")
	}
	remote := p.pc.RemoteDescription().SDP
	if !strings.Contains(remote, fmt.Sprintf("127.0.0.1 %d typ host", port)) {
		t.Errorf("the answer does not offer port %d:\n%s", port, remote)
	}
}

// A client that trickles its candidates (as browsers do) connects: its
// offer carries none, media_candidate brings them, an empty one ends them.
func TestTrickledCandidates(t *testing.T) {
	w := newWorld(t)
	s, _ := startSFU(t, w, "n1", nil)
	w.aliceCamToBob()
	if _, err := publishMedia(t, s, "s-alice", "cam"); err != nil {
		t.Fatal(err)
	}
	pc, err := mediatest.API().NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.AddTransceiverFromKind(video, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
	sink := mediatest.NewSink()
	pc.OnTrack(sink.OnTrack)
	cands := make(chan *webrtc.ICECandidate, 16)
	pc.OnICECandidate(func(c *webrtc.ICECandidate) { cands <- c })
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(o); err != nil {
		t.Fatal(err)
	}
	sig := Signal{App: app, Session: "s-bob", Stream: "cam", Kind: Play}
	offerSig := sig
	offerSig.Op, offerSig.SDP = OpOffer, o.SDP // no candidates in it
	a, err := s.Handle(t.Context(), offerSig)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: a.SDP}); err != nil {
		t.Fatal(err)
	}
	for c := range cands {
		cs := sig
		cs.Op = OpCandidate
		if c != nil {
			init := c.ToJSON()
			cs.Candidate, cs.SDPMid, cs.SDPMLineIndex = init.Candidate, init.SDPMid, init.SDPMLineIndex
		}
		if _, err := s.Handle(t.Context(), cs); err != nil {
			t.Fatal(err)
		}
		if c == nil {
			break
		}
	}
	if !sink.WaitMore(video, 10, long) {
		t.Fatal("no video over trickled candidates")
	}
}

// A client's ICE candidates are bounded per connection
// (Config.MaxRemoteCandidates at once, then one a second): the node sends
// connectivity checks to every address one names, and used to take as many
// as a client sent, trickled or in its offers. Past the budget a trickled
// candidate is refused with media_bad_signal (1907005) and an offer with
// the bad-offer code; the connection keeps its media, and a candidate it
// has, given again, is free. The clock stands still here: the budget's
// growth is TestTheCandidateBudget's.
func TestAClientsICECandidatesAreBounded(t *testing.T) {
	const most = 6
	s, pl, _ := budgeted(t, most)
	sig := Signal{App: app, Session: "s-bob", Stream: "cam", Kind: Play, Op: OpCandidate}
	_, inOffer := offerICE(pl.pc.LocalDescription().SDP)
	if len(inOffer) == 0 || len(inOffer) >= most {
		t.Fatalf("the player's offer carried %d candidates, want 1 to %d", len(inOffer), most-1)
	}
	trickle := func(i int, ext string) error {
		c := sig
		c.Candidate = fmt.Sprintf("candidate:%d 1 udp 2130706431 127.0.0.1 %d typ host%s", 9000+i, 40000+i, ext)
		_, err := s.Handle(t.Context(), c)
		return err
	}
	i := 0
	for taken := len(inOffer); taken < most; taken++ {
		if err := trickle(i, ""); err != nil {
			t.Fatalf("candidate %d of at most %d: %v", taken+1, most, err)
		}
		i++
	}
	if err := trickle(0, " generation 0 ufrag abcd network-id 1"); err != nil {
		t.Errorf("a candidate the connection has, given again (as Chrome trickles it): %v", err)
	}
	err := trickle(i, "")
	if code, _ := domain.CodeOf(err); code != ErrBadSignal.Code || !strings.Contains(err.Error(), "ICE candidates") {
		t.Fatalf("candidate %d of at most %d: %v, want media_bad_signal (1907005) saying why", most+1, most, err)
	}
	n := pl.sink.Count(video)
	if !pl.sink.WaitMore(video, n+10, long) {
		t.Fatal("no video after a refused candidate")
	}

	// An offer that brings a new candidate, over the budget: a bad offer;
	// the connection is kept.
	var more strings.Builder
	for line := range strings.Lines(pl.pc.LocalDescription().SDP) {
		more.WriteString(line)
		if strings.HasPrefix(line, "a=ice-ufrag:") {
			more.WriteString("a=candidate:7000 1 udp 2130706431 127.0.0.1 50000 typ host\r\n")
		}
	}
	_, err = s.Handle(t.Context(), Signal{App: app, Session: "s-bob", Stream: "cam", Kind: Play, Op: OpOffer, SDP: more.String()})
	if code, _ := domain.CodeOf(err); code != ErrPlayBadOffer.Code || !strings.Contains(err.Error(), "ICE candidates") {
		t.Errorf("an offer with a candidate over the budget: %v, want the bad-offer code saying why", err)
	}
	n = pl.sink.Count(video)
	if !pl.sink.WaitMore(video, n+10, long) {
		t.Fatal("no video after a refused offer")
	}
}

// The candidate budget (candidateBudget.take): most new candidates at
// once, one more each second after, never more than most in hand; steps
// add up exactly (it counted in float seconds: ten steps of 100 ms fell
// short of one); a clock that goes back adds nothing and takes nothing
// (the credit went negative, and even nothing new was refused).
func TestTheCandidateBudget(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	var b candidateBudget
	if err := b.take(t0, 4, 4); err != nil {
		t.Fatalf("4 candidates, budget 4: %v", err)
	}
	if err := b.take(t0.Add(999*time.Millisecond), 1, 4); err == nil {
		t.Error("a 5th candidate within the second: taken")
	}
	for i := 1; i <= 10; i++ { // nothing new, every 100 ms
		if err := b.take(t0.Add(time.Duration(i)*100*time.Millisecond), 0, 4); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.take(t0.Add(time.Second), 1, 4); err != nil {
		t.Errorf("a 5th candidate a second later, in steps: %v", err)
	}
	if err := b.take(t0.Add(-5*time.Minute), 0, 4); err != nil {
		t.Errorf("nothing new after the clock went back: %v", err)
	}
	if err := b.take(t0.Add(-5*time.Minute+1500*time.Millisecond), 1, 4); err != nil {
		t.Errorf("a candidate 1.5 s after the clock went back: %v", err)
	}
	// Idle for a minute: the budget is full again, not more.
	later := t0.Add(time.Minute)
	if !b.full(later, 4) {
		t.Error("after a minute idle the budget is not full")
	}
	if err := b.take(later, 5, 4); err == nil {
		t.Error("5 candidates at once after a minute, budget 4: taken")
	}
	if err := b.take(later, 4, 4); err != nil {
		t.Errorf("4 candidates at once after a minute, budget 4: %v", err)
	}
}

// A candidate is its transport address: Chrome's trickled line ("ufrag X"
// and the rest) and its SDP line are one; an ICE restart's credentials
// forget what the connection had.
func TestACandidateIsItsTransportAddress(t *testing.T) {
	trickled := "candidate:1467250027 1 udp 2122260223 192.168.0.196 46243 typ host generation 0 ufrag QNvE network-id 1 network-cost 10"
	inOffer := "a=candidate:1467250027 1 UDP 2122260223 192.168.0.196 46243 typ host generation 0 network-id 1 network-cost 10"
	r, fresh := remoteICE{}.with("QNvE", []string{trickled})
	if fresh != 1 {
		t.Fatalf("the first candidate: %d new", fresh)
	}
	if _, fresh = r.with("QNvE", []string{inOffer}); fresh != 0 {
		t.Errorf("the same candidate in an offer: %d new, want 0", fresh)
	}
	if _, fresh = r.with("GNSr", []string{inOffer}); fresh != 1 {
		t.Errorf("the same candidate after an ICE restart: %d new, want 1", fresh)
	}
	if !otherUfrag(strings.Replace(trickled, "QNvE", "GNSr", 1), "QNvE") || otherUfrag(trickled, "QNvE") ||
		otherUfrag("candidate:1 1 udp 1 127.0.0.1 9 typ host", "QNvE") {
		t.Error("otherUfrag reads a candidate's ufrag wrong")
	}
}

// An ICE restart as roomlog.js makes it in Chrome: the new credentials'
// candidates are trickled (each with "ufrag NEW") before the restart's
// offer, which then carries them too. They are the restart's, not the
// connection's yet (the ICE agent drops them): they cost nothing until
// the offer brings them, once. Found by the second reader: each restart
// cost its candidates twice, and restarts were refused long before the
// budget said.
func TestAChromeICERestartPaysForItsCandidatesOnce(t *testing.T) {
	const most = 8
	s, pl, _ := budgeted(t, most)
	_, inOffer := offerICE(pl.pc.LocalDescription().SDP)
	sig := Signal{App: app, Session: "s-bob", Stream: "cam", Kind: Play}
	spent := len(inOffer)
	for restart := 1; ; restart++ {
		o, err := pl.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
		if err != nil {
			t.Fatal(err)
		}
		gathered := webrtc.GatheringCompletePromise(pl.pc)
		if err := pl.pc.SetLocalDescription(o); err != nil {
			t.Fatal(err)
		}
		<-gathered
		sdp := pl.pc.LocalDescription().SDP
		ufrag, cands := offerICE(sdp)
		for _, c := range cands {
			cs := sig
			cs.Op, cs.Candidate = OpCandidate, strings.TrimPrefix(c, "a=")+" generation 0 ufrag "+ufrag+" network-id 1"
			if _, err := s.Handle(t.Context(), cs); err != nil {
				t.Fatalf("a candidate of the coming restart: %v", err)
			}
		}
		rs := sig
		rs.Op, rs.SDP = OpRestart, sdp
		a, err := s.Handle(t.Context(), rs)
		if spent+len(cands) > most {
			if err == nil {
				t.Errorf("restart %d: %d candidates on %d left of %d: taken", restart, len(cands), most-spent, most)
			}
			return
		}
		if err != nil {
			t.Fatalf("restart %d: %d candidates on %d left of %d: %v", restart, len(cands), most-spent, most, err)
		}
		spent += len(cands)
		if err := pl.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: a.SDP}); err != nil {
			t.Fatal(err)
		}
	}
}

// The budget is the stream's (of the session and kind), not one
// connection's: an offer from a new connection replacing the old one has
// what the old one left. Found by the second reader: each new connection
// came with a full budget, so a client changing its offer's fingerprint
// got most candidates per offer, at any rate.
func TestANewConnectionHasWhatTheOldOneLeftOfTheBudget(t *testing.T) {
	const most = 2
	s, pl, now := budgeted(t, most)
	_, inOffer := offerICE(pl.pc.LocalDescription().SDP)
	if len(inOffer) > most {
		t.Fatalf("the first offer carried %d candidates, budget %d", len(inOffer), most)
	}
	for i := 0; len(inOffer)+i < most; i++ {
		c := Signal{App: app, Session: "s-bob", Stream: "cam", Kind: Play, Op: OpCandidate,
			Candidate: fmt.Sprintf("candidate:%d 1 udp 2130706431 127.0.0.1 %d typ host", 9000+i, 40000+i)}
		if _, err := s.Handle(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
	// The clock stands still: the budget is spent. A new connection's
	// offer, whose candidates are new, is refused.
	_, err := playMedia(t, s, "s-bob", "cam")
	if code, _ := domain.CodeOf(err); code != ErrPlayBadOffer.Code || !strings.Contains(err.Error(), "ICE candidates") {
		t.Errorf("a new connection's offer on a spent budget: %v, want the bad-offer code saying why", err)
	}
	// A minute on, it has its budget back.
	*now = now.Add(time.Minute)
	if _, err := playMedia(t, s, "s-bob", "cam"); err != nil {
		t.Errorf("a new connection's offer a minute later: %v", err)
	}
}

// A refused offer's candidates are given back, but no more than its spend
// took: when another spend of the same key came in between, later on the
// clock, that one's refill was cut at the budget's size, and adding the
// refused offer's back on top would give more than a budget that never saw
// it. Found by the second reader: the undo added them to the credit as it
// stood.
func TestAnUndoGivesBackNoMoreThanItsSpendTook(t *testing.T) {
	now := time.Now()
	w := newWorld(t)
	s, _ := startSFU(t, w, "n1", func(c *Config) {
		c.MaxRemoteCandidates = 4
		c.Now = func() time.Time { return now }
	})
	k := peerKey{app: app, session: "s-alice", stream: "cam", kind: Publish}

	undoA, err := s.spend(k, 4) // an offer, later refused (or ended)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(10 * time.Second)
	if _, err := s.spend(k, 2); err != nil { // another connection of the key
		t.Fatal(err)
	}
	undoA()

	// What the budget would hold had the refused offer never come: 4 - 2.
	var ref candidateBudget
	if err := ref.take(now, 2, 4); err != nil {
		t.Fatal(err)
	}
	refErr := ref.take(now, 4, 4)
	_, gotErr := s.spend(k, 4)
	if (refErr == nil) != (gotErr == nil) {
		t.Fatalf("4 more candidates: without the refused offer %v, after its undo %v: the undo over-credited", refErr, gotErr)
	}
}

// A connection closed while its offer is being answered keeps what its
// candidates cost: SetRemoteDescription gave them to the ICE agent and
// SetLocalDescription started it (a close leaves the peer connection open
// until the answer is done). Found by the second reader: it was refunded,
// and the client's next connection of the stream, at the same instant, took
// as many new candidates again, past the budget.
func TestAConnectionClosedWhileAnsweredKeepsWhatItsCandidatesCost(t *testing.T) {
	now := time.Now()
	mk := func() (*webrtc.PeerConnection, string) {
		pc, err := mediatest.API().NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		video, audio := mediatest.Tracks("cam")
		for _, tr := range []webrtc.TrackLocal{video, audio} {
			if _, err := pc.AddTrack(tr); err != nil {
				t.Fatal(err)
			}
		}
		o, err := pc.CreateOffer(nil)
		if err != nil {
			t.Fatal(err)
		}
		g := webrtc.GatheringCompletePromise(pc)
		if err := pc.SetLocalDescription(o); err != nil {
			t.Fatal(err)
		}
		<-g
		return pc, pc.LocalDescription().SDP
	}
	_, sdpA := mk()
	_, candsA := offerICE(sdpA)
	if len(candsA) == 0 {
		t.Fatal("no candidates in the offer")
	}
	w := newWorld(t)
	s, _ := startSFU(t, w, "n1", func(c *Config) {
		c.MaxRemoteCandidates = len(candsA)
		c.Now = func() time.Time { return now }
	})
	w.join("r1", "alice", "s-alice")
	w.publish("r1", "alice", "s-alice", "cam", "n1")
	sig := Signal{App: app, Session: "s-alice", Stream: "cam", Kind: Publish, Op: OpOffer}

	first := true
	s.beforeRoute = func(p *peer) {
		if !first {
			return
		}
		first = false
		// The client's media_close comes as the node answers (gathering).
		p.pc.OnICEGatheringStateChange(func(st webrtc.ICEGatheringState) {
			if st == webrtc.ICEGatheringStateGathering {
				c := sig
				c.Op = OpClose
				s.Handle(context.Background(), c) //nolint:errcheck
			}
		})
	}
	a := sig
	a.SDP = sdpA
	if _, errA := s.Handle(t.Context(), a); !errors.Is(errA, ErrNotPublishing) {
		t.Fatalf("offer A, closed while answered: %v, want %s", errA, ErrNotPublishing.Name)
	}

	_, sdpB := mk()
	_, candsB := offerICE(sdpB)
	b := sig
	b.SDP = sdpB
	_, errB := s.Handle(t.Context(), b)
	if errB == nil || !strings.Contains(errB.Error(), "ICE candidates") {
		t.Fatalf("offer B (%d new candidates, same instant, budget %d already handed to A's ICE agent): %v, want refused for its candidates",
			len(candsB), len(candsA), errB)
	}
}

// budgeted is setup on a node whose candidate budget is most, on a clock
// that stands still unless the test moves it (*now).
func budgeted(t *testing.T, most int) (*SFU, *client, *time.Time) {
	t.Helper()
	now := time.Now()
	_, s, _, _, pl, _ := setupEdited(t, func(c *Config) {
		c.MaxRemoteCandidates = most
		c.Now = func() time.Time { return now }
	})
	return s, pl, &now
}
