// Package mediatest holds what tests of the media plane need on the client
// side: Pion peers on loopback, sources that send synthetic VP8 and Opus RTP
// packets, and sinks that count what a player receives. Everything is real
// Pion; nothing is mocked.
package mediatest

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/rtp"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"
)

// API returns a Pion API for a client peer on loopback: Opus, VP8 and H.264,
// the default interceptors (NACK, reports, TWCC), host candidates on
// 127.0.0.1 only.
func API() *webrtc.API { return APIOn(nil) }

// APIOn is API on network n (a vnet.Net; nil: the host's loopback).
func APIOn(n transport.Net) *webrtc.API { return APIWith(n, nil) }

// QuickICE has a peer's ICE report disconnected after disconnected without
// an answer from the other side and failed failed later (0: never), as a
// browser does within seconds, so that a broken path shows soon.
func QuickICE(disconnected, failed time.Duration) func(*webrtc.SettingEngine) {
	return func(se *webrtc.SettingEngine) { se.SetICETimeouts(disconnected, failed, disconnected/5) }
}

// APIWith is APIOn with the settings edit makes (nil: none), such as
// QuickICE.
func APIWith(n transport.Net, edit func(*webrtc.SettingEngine)) *webrtc.API {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		panic(err)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, reg); err != nil {
		panic(err)
	}
	var se webrtc.SettingEngine
	if n != nil {
		se.SetNet(n)
	} else {
		se.SetIncludeLoopbackCandidate(true)
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil })
	}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if edit != nil {
		edit(&se)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
}

// Answer answers offer (an SDP) with pc, as a media node does, and returns
// the answer once pc has gathered its candidates.
func Answer(pc *webrtc.PeerConnection, offer string) (string, error) {
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", err
	}
	a, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(a); err != nil {
		return "", err
	}
	<-gathered
	return pc.LocalDescription().SDP, nil
}

// Tracks returns a VP8 video track and an Opus audio track for stream.
func Tracks(stream string) (video, audio *webrtc.TrackLocalStaticRTP) {
	var err error
	video, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8,
		ClockRate: 90000}, "video", stream)
	if err != nil {
		panic(err)
	}
	audio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus,
		ClockRate: 48000, Channels: 2}, "audio", stream)
	if err != nil {
		panic(err)
	}
	return video, audio
}

// Send writes synthetic packets to the tracks until ctx is done: a VP8
// packet every videoEvery (a keyframe every 30th frame) and a 20 ms Opus
// packet every 20 ms. It returns at once; the sending stops with ctx.
func Send(ctx context.Context, video, audio *webrtc.TrackLocalStaticRTP, videoEvery time.Duration) {
	if video != nil {
		go func() {
			t := time.NewTicker(videoEvery)
			defer t.Stop()
			var seq uint16
			var ts uint32
			payload := make([]byte, 1000)
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				// VP8 payload descriptor: S=1, partition 0; then a frame tag
				// whose lowest bit is 0 for a keyframe.
				payload[0] = 0x10
				payload[1] = 0x01
				if i%30 == 0 {
					payload[1] = 0x00
				}
				seq++
				ts += 3000
				_ = video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, Marker: true, SequenceNumber: seq,
					Timestamp: ts}, Payload: payload})
			}
		}()
	}
	if audio != nil {
		go func() {
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			var seq uint16
			var ts uint32
			payload := make([]byte, 80)
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				seq++
				ts += 960
				_ = audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts},
					Payload: payload})
			}
		}()
	}
}

// Sink counts the packets a player receives, per kind.
type Sink struct {
	mu     sync.Mutex
	counts map[webrtc.RTPCodecType]*atomic.Uint64
	mimes  map[webrtc.RTPCodecType]string
	wake   chan struct{}
}

// NewSink returns an empty sink.
func NewSink() *Sink {
	return &Sink{counts: map[webrtc.RTPCodecType]*atomic.Uint64{webrtc.RTPCodecTypeAudio: {},
		webrtc.RTPCodecTypeVideo: {}}, mimes: map[webrtc.RTPCodecType]string{}, wake: make(chan struct{}, 1)}
}

// OnTrack reads a received track until it ends, counting its packets: pass
// it to PeerConnection.OnTrack (or the SDK's play callback).
func (s *Sink) OnTrack(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	s.mu.Lock()
	s.mimes[t.Kind()] = t.Codec().MimeType
	c := s.counts[t.Kind()]
	s.mu.Unlock()
	buf := make([]byte, 1500)
	for {
		if _, _, err := t.Read(buf); err != nil {
			return
		}
		c.Add(1)
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// Count returns how many packets of kind arrived.
func (s *Sink) Count(kind webrtc.RTPCodecType) uint64 { return s.counts[kind].Load() }

// Mime returns the codec a kind arrived in.
func (s *Sink) Mime(kind webrtc.RTPCodecType) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mimes[kind]
}

// WaitMore waits until at least n more packets of kind arrive than had
// when it was called, and reports whether they did within d.
func (s *Sink) WaitMore(kind webrtc.RTPCodecType, n uint64, d time.Duration) bool {
	start := s.Count(kind)
	deadline := time.After(d)
	for s.Count(kind) < start+n {
		select {
		case <-s.wake:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			return false
		}
	}
	return true
}

// Flowing reports whether packets of kind still arrive: whether any arrive
// within d.
func (s *Sink) Flowing(kind webrtc.RTPCodecType, d time.Duration) bool {
	return s.WaitMore(kind, 1, d)
}

// Stopped waits until no packet of kind arrives for quiet, within d, and
// reports whether it did.
func (s *Sink) Stopped(kind webrtc.RTPCodecType, quiet, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		before := s.Count(kind)
		time.Sleep(quiet)
		if s.Count(kind) == before {
			return true
		}
	}
	return false
}

// VNet is a Pion virtual network (10.0.0.0/24) with one net per name, at
// the addresses given: {"sfu": "10.0.0.1", ...}. Add the router's chunk
// filters, then Start it; it is stopped when the test ends.
func VNet(tb testing.TB, ips map[string]string) (*vnet.Router, map[string]*vnet.Net) {
	tb.Helper()
	router, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "10.0.0.0/24", LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		tb.Fatal(err)
	}
	nets := map[string]*vnet.Net{}
	for name, ip := range ips {
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
		if err != nil {
			tb.Fatal(err)
		}
		if err := router.AddNet(n); err != nil {
			tb.Fatal(err)
		}
		nets[name] = n
	}
	tb.Cleanup(func() { router.Stop() })
	return router, nets
}
