// Package mediabench measures the SFU's forwarding against a bare Pion
// forwarding loop, in one process on loopback: publishers send synthetic
// VP8 at a fixed rate, players receive, and the result is forwarded packets
// per second, CPU per forwarded packet and memory per player. The bare loop
// uses the same codecs and interceptors: a Pion peer receives each
// publisher's track and writes every packet to one TrackLocalStaticRTP that
// each of its players' peer connections sends (RTCP read on every sender).
// `roomload media` and the package's Go benchmark run it.
package mediabench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/media"
	"github.com/roomlog/roomlog/media/mediatest"
	"github.com/roomlog/roomlog/projections"
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
	// CPU is the process's user and system time while the packets flowed
	// (publishers, forwarder and players together: all in this process).
	CPU time.Duration
	// HeapPerPlayer is the heap each player's peer connection (both ends)
	// added, in bytes.
	HeapPerPlayer float64
}

// PerSecond is forwarded packets per second.
func (r Result) PerSecond() float64 { return float64(r.Forwarded) / r.Elapsed.Seconds() }

// CPUPerPacket is the process's CPU time per forwarded packet.
func (r Result) CPUPerPacket() time.Duration {
	if r.Forwarded == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Forwarded)
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

// Run sets the peers up, sends for cfg.Duration and measures.
func Run(ctx context.Context, cfg Config) (res Result, err error) {
	if cfg.Publishers < 1 || cfg.Players < 1 || cfg.Rate < 1 || cfg.Duration <= 0 {
		return res, errors.New("mediabench: publishers, players, rate and duration must be positive")
	}
	var closers []func()
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
	var sfu *media.SFU
	var live *projections.Live
	if cfg.SFU {
		live = projections.NewLive(projections.NewModel())
		if sfu, err = media.New(media.Config{Live: live, Node: "bench", SweepInterval: time.Hour,
			MaxPeersPerSession: 1 << 20}); err != nil {
			return res, err
		}
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); sfu.Run(sctx) }()
		closers = append(closers, func() { cancel(); <-done })
	}
	var f fold
	// Peers of an earlier run in this process finish closing first.
	for range 3 {
		runtime.GC()
		time.Sleep(200 * time.Millisecond)
	}
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
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
		if cfg.SFU {
			psid := domain.SessionID(fmt.Sprint("pub-", i))
			f.join(live, "room", psid)
			f.publish(live, "room", psid, name)
			if err := offer(ctx, sfu, pub, media.Signal{App: app, Session: psid, Stream: name, Kind: media.Publish}); err != nil {
				return res, err
			}
			for j := range cfg.Players {
				sid := domain.SessionID(fmt.Sprintf("play-%d-%d", i, j))
				f.join(live, "room", sid)
				f.play(live, "room", sid, name)
				pc, err := newPC()
				if err != nil {
					return res, err
				}
				sink := player(pc)
				if err := offer(ctx, sfu, pc, media.Signal{App: app, Session: sid, Stream: name, Kind: media.Play}); err != nil {
					return res, err
				}
				st.sinks = append(st.sinks, sink)
			}
			continue
		}
		in, err := newPC()
		if err != nil {
			return res, err
		}
		out, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
			"video", string(name))
		in.OnTrack(func(r *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			buf := make([]byte, 1500)
			for {
				n, _, err := r.Read(buf)
				if err != nil {
					return
				}
				_, _ = out.Write(buf[:n])
			}
		})
		if err := connect(pub, in); err != nil {
			return res, err
		}
		for range cfg.Players {
			fwd, err := newPC()
			if err != nil {
				return res, err
			}
			s, err := fwd.AddTrack(out)
			if err != nil {
				return res, err
			}
			go drain(s)
			pl, err := newPC()
			if err != nil {
				return res, err
			}
			sink := mediatest.NewSink()
			pl.OnTrack(sink.OnTrack)
			if err := connect(fwd, pl); err != nil {
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
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	res.HeapPerPlayer = (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(cfg.Publishers*cfg.Players)

	base := counts(streams)
	cpu0 := cpuTime()
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
	res.CPU = cpuTime() - cpu0
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

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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

// offer negotiates pc with the SFU.
func offer(ctx context.Context, s *media.SFU, pc *webrtc.PeerConnection, sig media.Signal) error {
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
	a, err := s.Handle(ctx, sig)
	if err != nil {
		return err
	}
	return pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: a.SDP})
}

// connect negotiates two Pion peers directly (the bare loop's).
func connect(offerer, answerer *webrtc.PeerConnection) error {
	o, err := offerer.CreateOffer(nil)
	if err != nil {
		return err
	}
	g := webrtc.GatheringCompletePromise(offerer)
	if err := offerer.SetLocalDescription(o); err != nil {
		return err
	}
	<-g
	if err := answerer.SetRemoteDescription(*offerer.LocalDescription()); err != nil {
		return err
	}
	a, err := answerer.CreateAnswer(nil)
	if err != nil {
		return err
	}
	g = webrtc.GatheringCompletePromise(answerer)
	if err := answerer.SetLocalDescription(a); err != nil {
		return err
	}
	<-g
	return offerer.SetRemoteDescription(*answerer.LocalDescription())
}

// fold feeds a live projection the events that make sessions publishers
// and players, as the engine would append them.
type fold struct {
	seq  uint64
	aggs map[domain.Key]uint64
}

func (f *fold) apply(live *projections.Live, k domain.Key, ps ...domain.Payload) {
	if f.aggs == nil {
		f.aggs = map[domain.Key]uint64{}
	}
	var evs []domain.Event
	for _, p := range ps {
		f.aggs[k]++
		evs = append(evs, domain.Event{Type: p.EventType(), App: k.App, Aggregate: k.Kind, AggregateID: k.ID,
			Seq: f.aggs[k], Time: time.Now(), Data: p})
	}
	f.seq++
	live.Apply(projections.Record{Seq: f.seq, Events: evs})
}

func (f *fold) join(live *projections.Live, room domain.RoomID, sid domain.SessionID) {
	u := domain.UserID(sid)
	f.apply(live, domain.SessionKey(app, sid), &domain.SessionOpenedData{User: u, Mode: domain.MultiRoom},
		&domain.RoomClaimedData{Room: room})
	rk := domain.RoomKey(app, room)
	if f.aggs[rk] == 0 {
		f.apply(live, rk, &domain.RoomCreatedData{Session: sid, By: u})
	}
	f.apply(live, rk, &domain.MemberJoinedData{User: u, Session: sid, Role: domain.Anchor, CanPublish: true})
}

func (f *fold) publish(live *projections.Live, room domain.RoomID, sid domain.SessionID, st domain.StreamID) {
	u := domain.UserID(sid)
	f.apply(live, domain.StreamKey(app, st), &domain.StreamClaimedData{Room: room, User: u, Session: sid})
	f.apply(live, domain.RoomKey(app, room), &domain.StreamPublishedData{Stream: st, User: u, Session: sid, Node: "bench"})
}

func (f *fold) play(live *projections.Live, room domain.RoomID, sid domain.SessionID, st domain.StreamID) {
	f.apply(live, domain.RoomKey(app, room), &domain.PlayStartedData{Stream: st, User: domain.UserID(sid), Session: sid})
}
