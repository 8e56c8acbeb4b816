// Package mediabench measures the SFU's forwarding against a bare Pion
// forwarding loop on loopback: publishers send synthetic VP8 at a fixed
// rate, players receive, and the result is forwarded packets per second,
// the forwarder's CPU per forwarded packet and its memory per player. The
// forwarder (the SFU, authorized by a fold this process feeds, or the bare
// loop) runs in a child process of its own, the same binary re-executed
// (see EnvForwarder), so that its CPU is measured apart from the
// publishers' and players'. The bare loop uses the same codecs and
// interceptors: a Pion peer receives each publisher's track and writes
// every packet to one TrackLocalStaticRTP that each of its players' peer
// connections sends (RTCP read on every sender). Publishers and players
// signal both forwarders alike. `roomload media` and the package's Go
// benchmark run it.
package mediabench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/media"
	"github.com/roomlog/roomlog/media/mediatest"
)

// Config is one run.
type Config struct {
	// SFU runs roomlog's SFU; false runs the bare loop.
	SFU bool
	// Publishers is the number of streams; each has Players players.
	Publishers, Players int
	// Duration is how long each publisher sends, at Rate packets/s.
	Duration time.Duration
	Rate     int
}

// Result is what one run measured.
type Result struct {
	Sent, Forwarded uint64
	Elapsed         time.Duration
	// CPU is the forwarder process's user and system time while the
	// packets flowed.
	CPU time.Duration
	// LoadCPU is this process's (the publishers' and players') over the
	// same time.
	LoadCPU time.Duration
	// HeapPerPlayer is the heap the forwarder process added per player
	// (its peer connection to the player, and the publishers' share), in
	// bytes.
	HeapPerPlayer float64
}

// PerSecond is forwarded packets per second.
func (r Result) PerSecond() float64 { return float64(r.Forwarded) / r.Elapsed.Seconds() }

// CPUPerPacket is the forwarder's CPU time per forwarded packet.
func (r Result) CPUPerPacket() time.Duration {
	if r.Forwarded == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Forwarded)
}

// PerCore is forwarded packets per second of the forwarder's CPU time:
// what one core fully used by the forwarder would forward.
func (r Result) PerCore() float64 {
	if r.CPU <= 0 {
		return 0
	}
	return float64(r.Forwarded) / r.CPU.Seconds()
}

// Delivered is the share of the packets due that arrived.
func (r Result) Delivered(players int) float64 {
	if r.Sent == 0 {
		return 0
	}
	return float64(r.Forwarded) / float64(r.Sent*uint64(players))
}

const app = domain.AppID("bench")

type stream struct {
	track *webrtc.TrackLocalStaticRTP
	sinks []*mediatest.Sink
}

// Run starts the forwarder process, sets the peers up, sends for
// cfg.Duration and measures.
func Run(ctx context.Context, cfg Config) (res Result, err error) {
	if cfg.Publishers < 1 || cfg.Players < 1 || cfg.Rate < 1 || cfg.Duration <= 0 {
		return res, errors.New("mediabench: publishers, players, rate and duration must be positive")
	}
	fw, err := startChild(ctx, cfg.SFU)
	if err != nil {
		return res, err
	}
	// The peers here close first; then the forwarder exits.
	closers := []func(){fw.close}
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	api := mediatest.API()
	newPC := func() (*webrtc.PeerConnection, error) {
		pc, err := api.NewPeerConnection(webrtc.Configuration{})
		if err == nil {
			closers = append(closers, func() { pc.Close() })
		}
		return pc, err
	}
	heap0, err := fw.heap()
	if err != nil {
		return res, err
	}
	streams := make([]*stream, cfg.Publishers)
	for i := range streams {
		st := &stream{}
		streams[i] = st
		name := domain.StreamID(fmt.Sprint("cam-", i))
		pub, err := newPC()
		if err != nil {
			return res, err
		}
		st.track, _ = mediatest.Tracks(string(name))
		sender, err := pub.AddTrack(st.track)
		if err != nil {
			return res, err
		}
		go drain(sender)
		psid := domain.SessionID(fmt.Sprint("pub-", i))
		if err := offer(fw, pub, media.Signal{App: app, Session: psid, Stream: name, Kind: media.Publish}); err != nil {
			return res, err
		}
		for j := range cfg.Players {
			sid := domain.SessionID(fmt.Sprintf("play-%d-%d", i, j))
			pc, err := newPC()
			if err != nil {
				return res, err
			}
			sink := player(pc)
			if err := offer(fw, pc, media.Signal{App: app, Session: sid, Stream: name, Kind: media.Play}); err != nil {
				return res, err
			}
			st.sinks = append(st.sinks, sink)
		}
	}
	// Warm up until every player receives.
	deadline := time.Now().Add(30 * time.Second)
	seqs := make([]uint16, len(streams))
	for !allReceiving(streams) {
		if time.Now().After(deadline) {
			return res, errors.New("mediabench: the players did not start receiving")
		}
		for i, st := range streams {
			seqs[i]++
			write(st.track, seqs[i])
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	heap1, err := fw.heap()
	if err != nil {
		return res, err
	}
	res.HeapPerPlayer = (float64(heap1) - float64(heap0)) / float64(cfg.Publishers*cfg.Players)

	base := counts(streams)
	cpu0, err := fw.cpu()
	if err != nil {
		return res, err
	}
	load0 := cpuTime()
	start := time.Now()
	done := make(chan uint64, len(streams))
	for i, st := range streams {
		go func() { done <- pace(st.track, seqs[i], cfg.Rate, cfg.Duration) }()
	}
	for range streams {
		res.Sent += <-done
	}
	// Let the last packets arrive.
	last, lastAt := counts(streams)-base, time.Now()
	for time.Since(lastAt) < 300*time.Millisecond {
		time.Sleep(20 * time.Millisecond)
		if n := counts(streams) - base; n != last {
			last, lastAt = n, time.Now()
		}
	}
	res.Elapsed = lastAt.Sub(start)
	res.LoadCPU = cpuTime() - load0
	cpu1, err := fw.cpu()
	if err != nil {
		return res, err
	}
	res.CPU = cpu1 - cpu0
	res.Forwarded = last
	return res, nil
}

// pace sends VP8 packets at rate for d and returns how many it sent.
func pace(t *webrtc.TrackLocalStaticRTP, seq uint16, rate int, d time.Duration) uint64 {
	const tick = 2 * time.Millisecond
	per := float64(rate) * tick.Seconds()
	tk := time.NewTicker(tick)
	defer tk.Stop()
	start := time.Now()
	var sent uint64
	for now := range tk.C {
		if now.Sub(start) >= d {
			return sent
		}
		due := uint64(per * float64(now.Sub(start)) / float64(tick))
		for sent < due {
			seq++
			write(t, seq)
			sent++
		}
	}
	return sent
}

var payload = make([]byte, 1000)

func write(t *webrtc.TrackLocalStaticRTP, seq uint16) {
	_ = t.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 3000},
		Payload: payload})
}

func counts(streams []*stream) uint64 {
	var n uint64
	for _, st := range streams {
		for _, s := range st.sinks {
			n += s.Count(webrtc.RTPCodecTypeVideo)
		}
	}
	return n
}

func allReceiving(streams []*stream) bool {
	for _, st := range streams {
		for _, s := range st.sinks {
			if s.Count(webrtc.RTPCodecTypeVideo) == 0 {
				return false
			}
		}
	}
	return true
}

func player(pc *webrtc.PeerConnection) *mediatest.Sink {
	pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
	sink := mediatest.NewSink()
	pc.OnTrack(sink.OnTrack)
	return sink
}

func drain(s *webrtc.RTPSender) {
	for {
		if _, _, err := s.ReadRTCP(); err != nil {
			return
		}
	}
}

// offer negotiates pc with the forwarder process.
func offer(fw *child, pc *webrtc.PeerConnection, sig media.Signal) error {
	o, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	g := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(o); err != nil {
		return err
	}
	<-g
	sig.Op, sig.SDP = media.OpOffer, pc.LocalDescription().SDP
	rep, err := fw.call(request{Op: "signal", Signal: sig})
	if err != nil {
		return err
	}
	return pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: rep.SDP})
}
