package media

import (
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// recorder is a player's writer: it records the SSRC and sequence number of
// every packet it is given (as the downTrack rewrote them), and can hold
// the first write until released, as a slow socket would.
type recorder struct {
	mu      sync.Mutex
	got     []rtp.Header
	hold    chan struct{} // if set, the first write waits for it
	holding chan struct{} // closed when the first write is held
	once    sync.Once
}

func (r *recorder) WriteRTP(h *rtp.Header, _ []byte) (int, error) {
	r.mu.Lock()
	r.got = append(r.got, *h)
	r.mu.Unlock()
	if r.hold != nil {
		r.once.Do(func() { close(r.holding); <-r.hold })
	}
	return 0, nil
}

func (r *recorder) Write(b []byte) (int, error) { return len(b), nil }

func (r *recorder) seqs() []uint16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []uint16
	for _, h := range r.got {
		s = append(s, h.SequenceNumber)
	}
	return s
}

func (r *recorder) wait(t *testing.T, n int) []uint16 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if s := r.seqs(); len(s) >= n || time.Now().After(deadline) {
			return s
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testTrack is an upTrack as onTrack makes one, without a remote track.
func testTrack(tb testing.TB, shardSize int) *upTrack {
	u := &upTrack{mime: "video/vp8", kind: webrtc.RTPCodecTypeVideo, keyframe: func() {}, shardSize: shardSize,
		done: make(chan struct{})}
	u.fan.Store(&fanout{})
	tb.Cleanup(u.stop)
	return u
}

// testPlayer is a player's bound downTrack writing to w.
func testPlayer(ssrc webrtc.SSRC, w webrtc.TrackLocalWriter) *downTrack {
	d := newDownTrack(webrtc.RTPCodecTypeVideo, "cam", func() {})
	d.bound, d.ssrc, d.out = true, ssrc, w
	d.live.Store(true) // its connection is up
	d.codecs = []webrtc.RTPCodecParameters{{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96}}
	return d
}

func packet(ssrc uint32, seq uint16) *rtp.Packet {
	return &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: ssrc, SequenceNumber: seq, PayloadType: 100}, Payload: []byte{1}}
}

// twoCores makes room for two shards (one per core at most) for the test.
func twoCores(t *testing.T) {
	prev := runtime.GOMAXPROCS(2)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
}

// When a player leaves, the others' shards change: a player whose packets
// were queued to a worker may now be written by the reader itself. It still
// gets every packet in order: the reader lets the old worker finish first.
func TestAPlayerKeepsItsPacketOrderWhenTheShardsChange(t *testing.T) {
	twoCores(t)
	u := testTrack(t, 1)
	a, slow := &recorder{}, &recorder{hold: make(chan struct{}), holding: make(chan struct{})}
	da, dx := testPlayer(1, a), testPlayer(2, slow)
	u.attach(da)
	u.attach(dx) // shards [a] (the reader) and [x] (a worker)
	for seq := range uint16(5) {
		u.forward(packet(7, seq+1))
	}
	<-slow.holding // x's worker is stuck on packet 1; 2 to 5 wait in its queue
	u.detach(da)   // one shard left: x is now the reader's to write
	sixth := make(chan struct{})
	go func() { u.forward(packet(7, 6)); close(sixth) }()
	time.Sleep(50 * time.Millisecond) // packet 6 would overtake here
	close(slow.hold)
	<-sixth
	got := slow.wait(t, 6)
	if want := []uint16{1, 2, 3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Fatalf("player received sequence numbers %v, want %v", got, want)
	}
}

// When a stream's publisher changes, its players move to the new publisher's
// track. What the old track had queued for them is dropped, not written in
// among the new publisher's packets.
func TestAPlayerMovedToANewTrackGetsNothingMoreFromTheOldOne(t *testing.T) {
	twoCores(t)
	old, next := testTrack(t, 1), testTrack(t, 1)
	a, slow := &recorder{}, &recorder{hold: make(chan struct{}), holding: make(chan struct{})}
	da, dx := testPlayer(1, a), testPlayer(2, slow)
	old.attach(da)
	old.attach(dx)
	for seq := range uint16(5) {
		old.forward(packet(7, seq+1))
	}
	<-slow.holding // packet 1 is being written; 2 to 5 are queued
	old.detach(dx)
	next.attach(dx)
	close(slow.hold)
	next.forward(packet(9, 100))
	got := slow.wait(t, 2)
	time.Sleep(100 * time.Millisecond) // room for a late packet of the old track
	if got = slow.seqs(); len(got) != 2 {
		t.Fatalf("player received %d packets (%v), want packet 1 of the old track and then the new one's", len(got), got)
	}
	// The new publisher's packet follows the last one sent, whatever its
	// own sequence number.
	if got[1] != got[0]+1 {
		t.Fatalf("sequence numbers %v: the new track's packet does not follow the old one's", got)
	}
}

// A new publisher's audio goes on in the player's time line after the last
// packet sent, by the time between them on Opus's 48 kHz clock: counted on
// video's 90 kHz, a player's jitter buffer would see the new audio almost
// twice as far ahead as it is.
func TestANewPublishersAudioFollowsOnOnTheAudioClock(t *testing.T) {
	old, next := testTrack(t, 1), testTrack(t, 1)
	for _, u := range []*upTrack{old, next} {
		u.mime, u.kind = "audio/opus", webrtc.RTPCodecTypeAudio
	}
	rec := &recorder{}
	d := testPlayer(1, rec)
	d.kind = webrtc.RTPCodecTypeAudio
	d.codecs = []webrtc.RTPCodecParameters{{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}}
	old.attach(d)
	first := packet(7, 1)
	first.Timestamp = 1000
	old.forward(first)
	rec.wait(t, 1)
	old.detach(d)
	d.mu.Lock()
	d.lastAt = d.lastAt.Add(-10 * time.Second) // ten seconds pass before the next publisher's first packet
	d.mu.Unlock()
	next.attach(d)
	second := packet(9, 500)
	second.Timestamp = 77777
	next.forward(second)
	rec.wait(t, 2)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	// 480,000 ticks for the ten seconds, and up to five seconds more for a
	// slow machine between the two writes (at 90 kHz: 900,000 at least).
	if jump := rec.got[1].Timestamp - rec.got[0].Timestamp; jump < 480_000 || jump > 720_000 {
		t.Fatalf("the audio time line moved %d ticks across a ten-second gap, want 480,000 (48 kHz)", jump)
	}
}

// A publisher retransmits a packet a player NACKed (or one arrives late):
// it is forwarded after newer ones. If the stream's publisher then changes,
// the new publisher's packets go on after the newest sequence number and
// timestamp the player has seen, not after the late packet's: else the
// player would receive sequence numbers (and timestamps) it already had, and
// its jitter buffer would drop the new publisher's first packets (its
// keyframe) as duplicates or stale.
func TestANewPublisherFollowsTheNewestPacketNotALateOne(t *testing.T) {
	old, next := testTrack(t, 1), testTrack(t, 1)
	rec := &recorder{}
	d := testPlayer(1, rec)
	old.attach(d)
	for seq := uint16(1); seq <= 10; seq++ {
		p := packet(7, seq)
		p.Timestamp = uint32(seq) * 3000
		old.forward(p)
	}
	late := packet(7, 5) // a retransmission of packet 5
	late.Timestamp = 5 * 3000
	old.forward(late)
	rec.wait(t, 11)
	old.detach(d)
	next.attach(d)
	first := packet(9, 40000)
	first.Timestamp = 123456
	next.forward(first)
	rec.wait(t, 12)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	var maxSeq uint16
	var maxTS uint32
	for _, h := range rec.got[:11] {
		maxSeq, maxTS = max(maxSeq, h.SequenceNumber), max(maxTS, h.Timestamp)
	}
	got := rec.got[11]
	if got.SequenceNumber <= maxSeq {
		t.Fatalf("the new publisher's first packet has sequence number %d, but the player already received up to %d",
			got.SequenceNumber, maxSeq)
	}
	if got.Timestamp <= maxTS {
		t.Fatalf("the new publisher's first packet has timestamp %d, but the player already received up to %d",
			got.Timestamp, maxTS)
	}
}
