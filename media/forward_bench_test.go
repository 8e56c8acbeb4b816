package media

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
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
				writers := make([]countingWriter, players)
				for i := range writers {
					writers[i] = &sinkWriter{buf: make([]byte, 1500)}
				}
				benchFanOut(b, shard, writers)
			})
		}
	}
}

// countingWriter is a player's writer that counts what it was given.
type countingWriter interface {
	webrtc.TrackLocalWriter
	count() uint64
}

func (w *sinkWriter) count() uint64 { return w.n.Load() }
func (w *srtpWriter) count() uint64 { return w.n.Load() }

// benchFanOut forwards b.N packets of one track to a player per writer,
// shardSize players per goroutine, and reports the time per forwarded
// packet and the forwarded packets per second.
func benchFanOut(b *testing.B, shardSize int, writers []countingWriter) {
	u := testTrack(b, shardSize)
	for i, w := range writers {
		u.attach(testPlayer(webrtc.SSRC(i+1), w))
	}
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 7, PayloadType: 100}, Payload: make([]byte, 1000)}
	b.ResetTimer()
	for i := range b.N {
		pkt.SequenceNumber, pkt.Timestamp = uint16(i), uint32(i)*3000
		u.forward(&pkt)
	}
	n := waitWritten(b, uint64(b.N*len(writers)), func() (n uint64) {
		for _, w := range writers {
			n += w.count()
		}
		return n
	})
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/fwd_pkt")
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "fwd_pkts/s")
}

// waitWritten waits until the shard workers have written all want packets
// (forward only queues them), stops the benchmark's timer and returns how
// many were written.
func waitWritten(b *testing.B, want uint64, written func() uint64) uint64 {
	deadline := time.Now().Add(time.Minute)
	for written() < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Microsecond)
	}
	b.StopTimer()
	n := written()
	if n != want {
		b.Fatalf("forwarded %d of %d", n, want)
	}
	return n
}

// srtpWriter stands where Pion's RTP writer stands behind a downTrack, and
// does what it does for every packet once the interceptors are done: marshal,
// SRTP-encrypt with the player's own keys (AES-128-GCM, what browsers and
// Pion pick first) and send one UDP datagram, here to a loopback socket that
// nobody reads (the kernel drops what overflows it), so that the players'
// receiving costs the benchmark nothing, as if they were on other hosts.
type srtpWriter struct {
	n    atomic.Uint64
	ctx  *srtp.Context
	conn *net.UDPConn
	to   *net.UDPAddr
	buf  []byte
	enc  []byte
}

func newSRTPWriter(tb testing.TB, i int) *srtpWriter {
	key, salt := make([]byte, 16), make([]byte, 12)
	key[0], salt[0] = byte(i), byte(i>>8)
	ctx, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm)
	if err != nil {
		tb.Fatal(err)
	}
	loopback := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	conn, err := net.ListenUDP("udp4", loopback)
	if err != nil {
		tb.Fatal(err)
	}
	// One sink per player, as players have their own addresses: a shared
	// one would make the writers contend on its receive queue.
	sink, err := net.ListenUDP("udp4", loopback)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(); sink.Close() })
	return &srtpWriter{ctx: ctx, conn: conn, to: sink.LocalAddr().(*net.UDPAddr), buf: make([]byte, 1500), enc: make([]byte, 1600)}
}

func (w *srtpWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	p := rtp.Packet{Header: *h, Payload: payload}
	n, err := p.MarshalTo(w.buf)
	if err != nil {
		return 0, err
	}
	return w.Write(w.buf[:n])
}

func (w *srtpWriter) Write(b []byte) (int, error) {
	enc, err := w.ctx.EncryptRTP(w.enc[:0], b, nil)
	if err != nil {
		return 0, err
	}
	w.n.Add(1)
	return w.conn.WriteToUDP(enc, w.to)
}

// BenchmarkHotStreamFanOut fans one hot track out to N players through the
// SFU's forwarding code into writers that encrypt and send as Pion's do,
// each player with its own SRTP keys and UDP socket. Run it with -cpu 1,2
// (or more) to see whether one stream's fan-out uses more than one core:
// fwd_pkts/s at -cpu 2 over -cpu 1.
//
//	go test ./media -run '^$' -bench HotStreamFanOut -cpu 1,2 -count 5
func BenchmarkHotStreamFanOut(b *testing.B) {
	for _, players := range []int{100, 500} {
		b.Run(fmt.Sprintf("players=%d", players), func(b *testing.B) {
			writers := make([]countingWriter, players)
			for i := range writers {
				writers[i] = newSRTPWriter(b, i)
			}
			benchFanOut(b, 32, writers) // Config.ShardSize's default
		})
	}
}
