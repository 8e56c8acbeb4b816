package media

import (
	"errors"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// upTrack is one track a publisher sends: it reads the publisher's RTP and
// forwards every packet to the downTracks attached to it. A hot track's
// fan-out is split in shards of shardSize downTracks (at most one per core);
// shards past the first are written by worker goroutines, each fed by its own
// queue of packets, so one track's fan-out uses more than one core.
//
// The workers are fed, not waited for: a fan-out that waited for every
// shard at every packet measured no faster on two cores than on one (each
// packet parked and woke the second core), while queued workers that run
// free forward 1.7 times as much (docs/benchmarks.md). A player's packets
// stay in order: between two reshards a player is in one shard, and when
// the shards change (a player joins or leaves) the reader waits for the old
// workers' queues to drain before it writes by the new ones.
type upTrack struct {
	remote *webrtc.TrackRemote
	mime   string
	kind   webrtc.RTPCodecType
	// keyframe asks the publisher for a keyframe (throttled).
	keyframe func()

	mu      sync.Mutex
	downs   []*downTrack
	workers []chan fanJob // under mu; fan holds a copy
	stopped bool          // under mu: run has returned
	// fan is the current fan-out: copy on write, read without a lock.
	fan atomic.Pointer[fanout]
	// last is the fan-out forward used last (only forward touches it).
	last      *fanout
	shardSize int
	done      chan struct{}
	wg        sync.WaitGroup
}

// fanout is one version of a track's fan-out: its shards of players, and
// the workers that write shards 1 and up.
type fanout struct {
	shards  [][]*downTrack
	workers []chan fanJob
}

// fanJob is one packet for one shard's worker to write, or a fence: when
// fence is set the worker marks it done, so that the reader knows every job
// queued before it is written.
type fanJob struct {
	pkt   *packetCopy
	downs []*downTrack
	fence *sync.WaitGroup
}

// workerQueue is how many packets a shard worker may have waiting: at a hot
// stream's 1,000 packets/s, 128 ms. A reader that fills it waits, as it
// would for a writer that cannot keep up.
const workerQueue = 128

// packetCopy is a forwarded packet queued for the shard workers: the reader
// reuses its buffer for the next packet, so the workers share a copy, read
// only, and the last to write it recycles it.
type packetCopy struct {
	hdr     rtp.Header
	csrc    []uint32
	payload []byte
	refs    atomic.Int32
}

var packetCopies = sync.Pool{New: func() any { return &packetCopy{payload: make([]byte, 0, 1500)} }}

func copyPacket(pkt *rtp.Packet, refs int) *packetCopy {
	c := packetCopies.Get().(*packetCopy)
	c.hdr = pkt.Header
	c.csrc = append(c.csrc[:0], pkt.CSRC...)
	c.hdr.CSRC = c.csrc
	c.payload = append(c.payload[:0], pkt.Payload...)
	c.refs.Store(int32(refs))
	return c
}

func (c *packetCopy) release() {
	if c.refs.Add(-1) == 0 {
		packetCopies.Put(c)
	}
}

func newUpTrack(remote *webrtc.TrackRemote, shardSize int, keyframe func()) *upTrack {
	u := &upTrack{remote: remote, mime: strings.ToLower(remote.Codec().MimeType), kind: remote.Kind(),
		keyframe: keyframe, shardSize: shardSize, done: make(chan struct{})}
	u.fan.Store(&fanout{})
	return u
}

// attach adds d to the fan-out and, if d's player can receive already (a
// new publisher of its stream), asks for a keyframe, so that it sees video at
// once. A player not connected yet asks when it connects.
func (u *upTrack) attach(d *downTrack) {
	d.setOwner(u)
	u.mu.Lock()
	u.downs = append(u.downs, d)
	u.reshard()
	u.mu.Unlock()
	if u.kind == webrtc.RTPCodecTypeVideo && d.live.Load() {
		u.keyframe()
	}
}

// detach removes d from the fan-out. Packets already queued for d are
// dropped, not written: d may be attached to another track (a new
// publisher of the stream) by then.
func (u *upTrack) detach(d *downTrack) {
	d.clearOwner(u)
	u.mu.Lock()
	defer u.mu.Unlock()
	for i, x := range u.downs {
		if x == d {
			u.downs = append(u.downs[:i:i], u.downs[i+1:]...)
			break
		}
	}
	u.reshard()
}

// reshard rebuilds the shards and starts the workers they need. u.mu held.
func (u *upTrack) reshard() {
	var shards [][]*downTrack
	for i := 0; i < len(u.downs); i += u.shardSize {
		shards = append(shards, u.downs[i:min(i+u.shardSize, len(u.downs))])
	}
	// At most one shard per core: past that, shards only add hand-offs.
	if n := runtime.GOMAXPROCS(0); len(shards) > n {
		per := (len(u.downs) + n - 1) / n
		shards = shards[:0]
		for i := 0; i < len(u.downs); i += per {
			shards = append(shards, u.downs[i:min(i+per, len(u.downs))])
		}
	}
	for len(u.workers) < len(shards)-1 && !u.stopped {
		ch := make(chan fanJob, workerQueue)
		u.workers = append(u.workers, ch)
		u.wg.Add(1)
		go u.work(ch)
	}
	if len(u.workers) < len(shards)-1 {
		return // the track has ended: nothing is forwarded any more
	}
	u.fan.Store(&fanout{shards: shards, workers: slices.Clone(u.workers)})
}

func (u *upTrack) work(ch chan fanJob) {
	defer u.wg.Done()
	for {
		select {
		case j := <-ch:
			if j.fence != nil {
				j.fence.Done()
				continue
			}
			for _, d := range j.downs {
				d.write(u, &j.pkt.hdr, j.pkt.payload)
			}
			j.pkt.release()
		case <-u.done:
			return
		}
	}
}

// run forwards the publisher's packets until its track ends.
func (u *upTrack) run() {
	defer u.stop()
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := u.remote.Read(buf)
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		u.forward(&pkt)
	}
}

// stop ends the workers; no worker starts after it. It is run's end, or
// what releases a track that is never run.
func (u *upTrack) stop() {
	u.mu.Lock()
	u.stopped = true
	close(u.done)
	u.mu.Unlock()
	u.wg.Wait()
}

// forward writes one packet to every attached downTrack: shard 0 on this
// goroutine, the others by queueing a copy to their workers (pkt's buffer is
// reused for the next packet).
func (u *upTrack) forward(pkt *rtp.Packet) {
	// Header extensions are the publisher's (its IDs): they are not
	// forwarded.
	pkt.Header.Extension, pkt.Header.Extensions = false, nil
	fan := u.fan.Load()
	if fan != u.last {
		// The shards changed: a player may have moved from one worker to
		// another, or to this goroutine. What the old workers hold is
		// written first, so that no player gets a packet before an
		// earlier one.
		if u.last != nil {
			u.last.drain()
		}
		u.last = fan
	}
	shards := fan.shards
	if len(shards) == 0 {
		return
	}
	if len(shards) > 1 {
		c := copyPacket(pkt, len(shards)-1)
		for i := 1; i < len(shards); i++ {
			fan.workers[i-1] <- fanJob{pkt: c, downs: shards[i]}
		}
	}
	for _, d := range shards[0] {
		d.write(u, &pkt.Header, pkt.Payload)
	}
}

// drain returns once f's workers have written every job queued to them.
func (f *fanout) drain() {
	var fence sync.WaitGroup
	for _, w := range f.workers {
		fence.Add(1)
		w <- fanJob{fence: &fence}
	}
	fence.Wait()
}

// downTrack is what one player receives of one kind (audio or video): a
// webrtc.TrackLocal bound to the player's peer connection. It rewrites each
// forwarded packet for its player (SSRC, payload type, a sequence and time
// line that stays continuous when the publisher changes). It is the seam
// where a simulcast layer choice would go.
type downTrack struct {
	id, streamID string
	kind         webrtc.RTPCodecType
	// live: the player's connection is up (Pion drops what is written
	// before its DTLS session, without an error, so nothing is written
	// before). onFirst runs at the first packet written while live, and
	// again after rearm (the stream lost its publisher), under mu, so that
	// it cannot run for a packet of a publisher detached before rearm.
	live    atomic.Bool
	onFirst func()

	mu sync.Mutex
	// owner is the track d is attached to: only its packets are written.
	owner   *upTrack
	fired   bool // onFirst ran since the last rearm
	bound   bool
	ssrc    webrtc.SSRC
	out     webrtc.TrackLocalWriter
	codecs  []webrtc.RTPCodecParameters
	mime    string // the mime type of lastPT
	lastPT  uint8
	perMs   uint32 // the codec's RTP clock ticks per millisecond
	src     uint32 // the source SSRC the offsets are for
	started bool
	seqOff  uint16
	tsOff   uint32
	lastSeq uint16
	lastTS  uint32
	lastAt  time.Time
	sent    atomic.Uint64
}

var _ webrtc.TrackLocal = (*downTrack)(nil)

func newDownTrack(kind webrtc.RTPCodecType, stream string, onFirst func()) *downTrack {
	return &downTrack{id: kind.String(), streamID: stream, kind: kind, onFirst: onFirst}
}

// Bind is called by Pion when the player's connection negotiated the track.
func (d *downTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codecs := ctx.CodecParameters()
	if len(codecs) == 0 {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.bound, d.ssrc, d.out, d.codecs = true, ctx.SSRC(), ctx.WriteStream(), codecs
	d.mime = ""
	return codecs[0], nil
}

// Unbind is called by Pion when the track is removed or the connection closes.
func (d *downTrack) Unbind(webrtc.TrackLocalContext) error {
	d.mu.Lock()
	d.bound, d.out = false, nil
	d.mu.Unlock()
	return nil
}

func (d *downTrack) ID() string                { return d.id }
func (d *downTrack) RID() string               { return "" }
func (d *downTrack) StreamID() string          { return d.streamID }
func (d *downTrack) Kind() webrtc.RTPCodecType { return d.kind }
func (d *downTrack) packets() uint64           { return d.sent.Load() }
func (d *downTrack) isBound() bool             { d.mu.Lock(); defer d.mu.Unlock(); return d.bound }
func (d *downTrack) codecList() []webrtc.RTPCodecParameters {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.codecs
}

func (d *downTrack) setOwner(u *upTrack) { d.mu.Lock(); d.owner = u; d.mu.Unlock() }

func (d *downTrack) clearOwner(u *upTrack) {
	d.mu.Lock()
	if d.owner == u {
		d.owner = nil
	}
	d.mu.Unlock()
}

// write sends one packet forwarded by u to the player, if d is still
// attached to u. hdr is shared between players: it is copied, never
// changed.
func (d *downTrack) write(u *upTrack, hdr *rtp.Header, payload []byte) {
	if !d.live.Load() {
		return
	}
	mime := u.mime
	d.mu.Lock()
	if !d.bound || d.owner != u {
		d.mu.Unlock()
		return
	}
	if mime != d.mime {
		c, ok := codecOf(d.codecs, mime)
		if !ok {
			d.mu.Unlock()
			return // the player cannot decode this codec
		}
		d.mime, d.lastPT, d.perMs = mime, uint8(c.PayloadType), max(c.ClockRate/1000, 1)
	}
	h := *hdr
	fresh := !d.started || h.SSRC != d.src
	if fresh {
		// A new source (the first, or a new publisher of the stream):
		// continue the player's sequence and time line after the last
		// packet sent.
		if d.started {
			// The time between the sources, on the codec's clock (48 kHz
			// for Opus, 90 kHz for video).
			gap := uint32(time.Since(d.lastAt).Milliseconds()) * d.perMs
			d.seqOff = d.lastSeq + 1 - h.SequenceNumber
			d.tsOff = d.lastTS + max(gap, 1) - h.Timestamp
		}
		d.src, d.started = h.SSRC, true
	}
	h.SequenceNumber += d.seqOff
	h.Timestamp += d.tsOff
	h.SSRC, h.PayloadType = uint32(d.ssrc), d.lastPT
	// The line goes on from the newest packet sent, not from a late one (a
	// retransmission the player asked for, or one reordered on the way):
	// a new source after it would reuse what the player already has.
	if fresh || int16(h.SequenceNumber-d.lastSeq) > 0 {
		d.lastSeq = h.SequenceNumber
	}
	if fresh || int32(h.Timestamp-d.lastTS) > 0 {
		d.lastTS = h.Timestamp
	}
	d.lastAt = time.Now()
	if !d.fired {
		d.fired = true
		d.onFirst()
	}
	out := d.out
	d.mu.Unlock()
	if _, err := out.WriteRTP(&h, payload); err != nil && !errors.Is(err, io.ErrClosedPipe) {
		return
	}
	d.sent.Add(1)
}

// rearm makes the next packet written run onFirst again.
func (d *downTrack) rearm() { d.mu.Lock(); d.fired = false; d.mu.Unlock() }

// codecOf returns the player's codec of the mime type.
func codecOf(codecs []webrtc.RTPCodecParameters, mime string) (webrtc.RTPCodecParameters, bool) {
	for _, c := range codecs {
		if strings.EqualFold(c.MimeType, mime) {
			return c, true
		}
	}
	return webrtc.RTPCodecParameters{}, false
}

// keyframeRequester returns a function that asks pc for a keyframe of the
// track with SSRC ssrc, at most once per interval: a request within the
// interval is sent when it ends, so a player that joins right after another
// is not left without one.
func keyframeRequester(pc *webrtc.PeerConnection, ssrc webrtc.SSRC, interval time.Duration) func() {
	var mu sync.Mutex
	var last time.Time
	var pending bool
	send := func() {
		_ = pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(ssrc)}})
	}
	return func() {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if wait := interval - now.Sub(last); !last.IsZero() && wait > 0 {
			if !pending {
				pending = true
				time.AfterFunc(wait, func() {
					mu.Lock()
					pending, last = false, time.Now()
					mu.Unlock()
					send()
				})
			}
			return
		}
		last = now
		go send()
	}
}

func isKeyframeRequest(pkt rtcp.Packet) bool {
	switch pkt.(type) {
	case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
		return true
	}
	return false
}
