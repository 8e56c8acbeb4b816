package media

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// sinkWriter stands where Pion's RTP writer stands behind a downTrack: it
// marshals each packet (the part of Pion's write that every forwarder pays
// too, before SRTP and the socket) and counts it.
type sinkWriter struct {
	n   atomic.Uint64
	buf []byte
}

func (w *sinkWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	p := rtp.Packet{Header: *h, Payload: payload}
	n, err := p.MarshalTo(w.buf)
	w.n.Add(1)
	return n, err
}

func (w *sinkWriter) Write(b []byte) (int, error) { w.n.Add(1); return len(b), nil }

// BenchmarkFanOutOverhead is the SFU's own cost of fanning one hot track out
// to N players (rewrite, marshal, hand-off to shard workers), without SRTP
// and sockets: ns per forwarded packet, with every player in one shard (one
// goroutine) and sharded over the cores.
//
//	go test ./media -run '^$' -bench FanOutOverhead
func BenchmarkFanOutOverhead(b *testing.B) {
	for _, players := range []int{10, 100, 1000} {
		for _, shard := range []int{1 << 20, 32} {
			name := "one-goroutine"
			if shard == 32 {
				name = "sharded"
			}
			b.Run(fmt.Sprintf("players=%d/%s", players, name), func(b *testing.B) {
				u := &upTrack{mime: "video/vp8", kind: webrtc.RTPCodecTypeVideo, keyframe: func() {}, shardSize: shard,
					done: make(chan struct{})}
				u.fan.Store(&fanout{})
				var writers []*sinkWriter
				for i := range players {
					w := &sinkWriter{buf: make([]byte, 1500)}
					d := newDownTrack(webrtc.RTPCodecTypeVideo, "cam", func() {})
					d.bound, d.ssrc, d.out = true, webrtc.SSRC(i+1), w
					d.codecs = []webrtc.RTPCodecParameters{{RTPCodecCapability: webrtc.RTPCodecCapability{
						MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96}}
					u.mu.Lock()
					u.downs = append(u.downs, d)
					u.reshard()
					u.mu.Unlock()
					writers = append(writers, w)
				}
				defer func() { close(u.done); u.wg.Wait() }()
				pkt := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 7, PayloadType: 100}, Payload: make([]byte, 1000)}
				var wg sync.WaitGroup
				b.ResetTimer()
				for i := range b.N {
					pkt.SequenceNumber, pkt.Timestamp = uint16(i), uint32(i)*3000
					u.forward(&pkt, &wg)
				}
				b.StopTimer()
				var n uint64
				for _, w := range writers {
					n += w.n.Load()
				}
				if n != uint64(b.N*players) {
					b.Fatalf("forwarded %d of %d", n, b.N*players)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/fwd_pkt")
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "fwd_pkts/s")
			})
		}
	}
}
