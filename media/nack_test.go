package media

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/media/mediatest"
)

// On a virtual network that drops every 8th media packet from the
// publisher, NACKs (the SFU asks, the publisher's responder resends) bring
// the lost packets to the player anyway.
func TestNACKRecoversLoss(t *testing.T) {
	router, nets := mediatest.VNet(t, map[string]string{"sfu": "10.0.0.1", "pub": "10.0.0.2", "play": "10.0.0.3"})
	var lossy atomic.Bool
	var seen, dropped atomic.Int64
	router.AddChunkFilter(func(c vnet.Chunk) bool {
		src := c.SourceAddr().(*net.UDPAddr)
		if !lossy.Load() || !src.IP.Equal(net.ParseIP("10.0.0.2")) || len(c.UserData()) < 500 {
			return true
		}
		if seen.Add(1)%8 == 0 {
			dropped.Add(1)
			return false
		}
		return true
	})
	if err := router.Start(); err != nil {
		t.Fatal(err)
	}

	w := newWorld(t)
	s, _ := startSFU(t, w, "n1", func(c *Config) { c.Net, c.IPs = nets["sfu"], []string{"0.0.0.0"} })
	w.aliceCamToBob()

	pub, err := mediatest.APIOn(nets["pub"]).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	video, _ := mediatest.Tracks("cam")
	sender, err := pub.AddTrack(video)
	if err != nil {
		t.Fatal(err)
	}
	go drain(sender)
	ctx := context.Background()
	if err := offer(ctx, s, pub, Signal{App: app, Session: "s-alice", Stream: "cam", Kind: Publish}); err != nil {
		t.Fatal(err)
	}
	play, err := mediatest.APIOn(nets["play"]).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer play.Close()
	play.AddTransceiverFromKind(video.Kind(), webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
	var mu sync.Mutex
	got := map[uint32]bool{} // timestamps: the SFU rewrites them by one offset
	play.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			mu.Lock()
			got[p.Timestamp] = true
			mu.Unlock()
		}
	})
	if err := offer(ctx, s, play, Signal{App: app, Session: "s-bob", Stream: "cam", Kind: Play}); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 1000)
	var seq uint16
	send := func(n int) {
		for range n {
			seq++
			_ = video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 3000},
				Payload: payload})
			time.Sleep(10 * time.Millisecond)
		}
	}
	deadline := time.Now().Add(long)
	for {
		send(10)
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing reached the player")
		}
	}
	mu.Lock()
	clear(got)
	mu.Unlock()
	lossy.Store(true)
	const sent = 300
	send(sent)
	lossy.Store(false)
	send(20) // a tail, so the last losses are noticed and resent
	if dropped.Load() < sent/10 {
		t.Fatalf("only %d packets dropped", dropped.Load())
	}
	// The resent packets arrive in their own time: wait for them (generous:
	// a loaded machine).
	var n int
	for deadline := time.Now().Add(long); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n = len(got)
		mu.Unlock()
		if n >= sent+20-3 || time.Now().After(deadline) {
			break
		}
	}
	if n < sent+20-3 {
		t.Errorf("the player got %d of %d packets; %d were dropped on the way in", n, sent+20, dropped.Load())
	}
	t.Logf("dropped %d, the player got %d of %d", dropped.Load(), n, sent+20)
}

func drain(s *webrtc.RTPSender) {
	for {
		if _, _, err := s.ReadRTCP(); err != nil {
			return
		}
	}
}
