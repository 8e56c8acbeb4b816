package media

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/media/mediatest"
)

// The forwarding benchmarks: one publisher sends VP8 packets as fast as it
// can, N players receive them, through the SFU and through a bare Pion
// forwarding loop (same codecs, same interceptors: one TrackLocalStaticRTP
// shared by every player, RTCP read on every sender). The metric is
// forwarded packets per second (packets received by all players together).
//
//	go test ./media -run '^$' -bench Forward -benchtime 20000x

func BenchmarkForward(b *testing.B) {
	for _, players := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("sfu/players=%d", players), func(b *testing.B) { benchSFU(b, players) })
		b.Run(fmt.Sprintf("bare/players=%d", players), func(b *testing.B) { benchBare(b, players) })
	}
}

// pump sends b.N VP8 packets on track and waits until the sinks received
// them all (or stop receiving), reporting forwarded packets/s.
func pump(b *testing.B, track *webrtc.TrackLocalStaticRTP, sinks []*mediatest.Sink, ready func() bool) {
	deadline := time.Now().Add(20 * time.Second)
	var seq uint16
	for !ready() {
		if time.Now().After(deadline) {
			b.Fatal("players not ready")
		}
		seq++ // SRTP drops a repeated sequence number as a replay
		_ = track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 3000},
			Payload: make([]byte, 1000)})
		time.Sleep(20 * time.Millisecond)
	}
	base := make([]uint64, len(sinks))
	for i, s := range sinks {
		base[i] = s.Count(video)
	}
	payload := make([]byte, 1000)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		seq++
		_ = track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 3000},
			Payload: payload})
		if i%16 == 15 {
			time.Sleep(time.Millisecond) // paced: at most 16,000 packets/s in
		}
	}
	var got uint64
	last, lastAt := uint64(0), time.Now()
	for {
		got = 0
		for i, s := range sinks {
			got += s.Count(video) - base[i]
		}
		if got >= uint64(b.N*len(sinks)) {
			break
		}
		if got != last {
			last, lastAt = got, time.Now()
		} else if time.Since(lastAt) > 500*time.Millisecond {
			break // the rest was lost
		}
		time.Sleep(5 * time.Millisecond)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(got)/el.Seconds(), "fwd_pkts/s")
	b.ReportMetric(float64(got)/float64(b.N*len(sinks)), "delivered")
}

func benchSFU(b *testing.B, players int) {
	t := &testing.T{}
	w := &world{t: t, live: newWorld(t).live, aggs: map[domain.Key]uint64{}}
	s, err := New(Config{Live: w.live, Node: "bench", SweepInterval: time.Hour, MaxPeersPerSession: 1000})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	w.join("r1", "pub", "s-pub")
	w.publish("r1", "pub", "s-pub", "cam", "bench")
	api := mediatest.API()
	pubPC, _ := api.NewPeerConnection(webrtc.Configuration{})
	defer pubPC.Close()
	track, _ := mediatest.Tracks("cam")
	sender, _ := pubPC.AddTrack(track)
	go drain(sender)
	if err := offer(ctx, s, pubPC, Signal{App: app, Session: "s-pub", Stream: "cam", Kind: Publish}); err != nil {
		b.Fatal(err)
	}
	var sinks []*mediatest.Sink
	for i := range players {
		sid := domain.SessionID(fmt.Sprint("s-", i))
		w.join("r1", domain.UserID(sid), sid)
		w.play("r1", domain.UserID(sid), sid, "cam")
		pc, _ := api.NewPeerConnection(webrtc.Configuration{})
		defer pc.Close()
		pc.AddTransceiverFromKind(video, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
		sink := mediatest.NewSink()
		pc.OnTrack(sink.OnTrack)
		if err := offer(ctx, s, pc, Signal{App: app, Session: sid, Stream: "cam", Kind: Play}); err != nil {
			b.Fatal(err)
		}
		sinks = append(sinks, sink)
	}
	pump(b, track, sinks, allReceiving(sinks))
}

// benchBare is the baseline: a Pion peer receives the publisher's track and
// writes every packet to one TrackLocalStaticRTP that every player's peer
// connection sends.
func benchBare(b *testing.B, players int) {
	api := mediatest.API()
	pubPC, _ := api.NewPeerConnection(webrtc.Configuration{})
	defer pubPC.Close()
	track, _ := mediatest.Tracks("cam")
	sender, _ := pubPC.AddTrack(track)
	go drain(sender)
	sfuIn, _ := api.NewPeerConnection(webrtc.Configuration{})
	defer sfuIn.Close()
	out, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "cam")
	sfuIn.OnTrack(func(r *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		buf := make([]byte, 1500)
		for {
			n, _, err := r.Read(buf)
			if err != nil {
				return
			}
			_, _ = out.Write(buf[:n])
		}
	})
	connect(b, pubPC, sfuIn)
	var sinks []*mediatest.Sink
	for range players {
		fwd, _ := api.NewPeerConnection(webrtc.Configuration{})
		defer fwd.Close()
		s, _ := fwd.AddTrack(out)
		go drain(s)
		pl, _ := api.NewPeerConnection(webrtc.Configuration{})
		defer pl.Close()
		sink := mediatest.NewSink()
		pl.OnTrack(sink.OnTrack)
		connect(b, fwd, pl)
		sinks = append(sinks, sink)
	}
	pump(b, track, sinks, allReceiving(sinks))
}

func allReceiving(sinks []*mediatest.Sink) func() bool {
	return func() bool {
		for _, s := range sinks {
			if s.Count(video) == 0 {
				return false
			}
		}
		return true
	}
}

// connect negotiates offerer with answerer (full ICE gathering, no trickle).
func connect(b *testing.B, offerer, answerer *webrtc.PeerConnection) {
	if len(answerer.GetTransceivers()) == 0 && len(offerer.GetTransceivers()) == 0 {
		b.Fatal("nothing to negotiate")
	}
	o, _ := offerer.CreateOffer(nil)
	g := webrtc.GatheringCompletePromise(offerer)
	offerer.SetLocalDescription(o)
	<-g
	if err := answerer.SetRemoteDescription(*offerer.LocalDescription()); err != nil {
		b.Fatal(err)
	}
	a, _ := answerer.CreateAnswer(nil)
	g = webrtc.GatheringCompletePromise(answerer)
	answerer.SetLocalDescription(a)
	<-g
	if err := offerer.SetRemoteDescription(*answerer.LocalDescription()); err != nil {
		b.Fatal(err)
	}
}
