package media

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/media/mediatest"
	"github.com/roomlog/roomlog/projections"
)

const app = domain.AppID("dev")

// world is a live projection fed by hand with the events the engine would
// append: the SFU reads it exactly as it reads a node's.
type world struct {
	t    *testing.T
	live *projections.Live
	mu   sync.Mutex
	seq  uint64
	aggs map[domain.Key]uint64
}

func newWorld(t *testing.T) *world {
	return &world{t: t, live: projections.NewLive(projections.NewModel()), aggs: map[domain.Key]uint64{}}
}

func (w *world) apply(k domain.Key, payloads ...domain.Payload) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var evs []domain.Event
	for _, p := range payloads {
		w.aggs[k]++
		evs = append(evs, domain.Event{Type: p.EventType(), App: k.App, Aggregate: k.Kind, AggregateID: k.ID,
			Seq: w.aggs[k], Time: time.Now(), Data: p})
	}
	w.seq++
	w.live.Apply(projections.Record{Seq: w.seq, Events: evs})
}

func (w *world) room(r domain.RoomID) domain.Key { return domain.RoomKey(app, r) }

// join opens session s of user u and makes it a member of room r.
func (w *world) join(r domain.RoomID, u domain.UserID, s domain.SessionID) {
	sk := domain.SessionKey(app, s)
	w.mu.Lock()
	fresh := w.aggs[sk] == 0
	created := w.aggs[w.room(r)] > 0
	w.mu.Unlock()
	if fresh {
		w.apply(sk, &domain.SessionOpenedData{User: u, Mode: domain.MultiRoom})
	}
	w.apply(sk, &domain.RoomClaimedData{Room: r})
	if !created {
		w.apply(w.room(r), &domain.RoomCreatedData{Session: s, By: u})
	}
	w.apply(w.room(r), &domain.MemberJoinedData{User: u, Session: s, Role: domain.Anchor, CanPublish: true})
}

func (w *world) publish(r domain.RoomID, u domain.UserID, s domain.SessionID, st domain.StreamID, node string) {
	w.apply(domain.StreamKey(app, st), &domain.StreamClaimedData{Room: r, User: u, Session: s})
	w.apply(w.room(r), &domain.StreamPublishedData{Stream: st, User: u, Session: s, Node: node})
}

func (w *world) play(r domain.RoomID, u domain.UserID, s domain.SessionID, st domain.StreamID) {
	w.apply(w.room(r), &domain.PlayStartedData{Stream: st, User: u, Session: s})
}

// aliceCamToBob is the usual stage: alice (s-alice) and bob (s-bob) in r1,
// alice publishing "cam" on node n1, bob playing it.
func (w *world) aliceCamToBob() {
	w.join("r1", "alice", "s-alice")
	w.join("r1", "bob", "s-bob")
	w.publish("r1", "alice", "s-alice", "cam", "n1")
	w.play("r1", "bob", "s-bob", "cam")
}

// states records the state events an SFU sends.
type states struct {
	mu  sync.Mutex
	evs []StateEvent
	ch  chan struct{}
}

func newStates() *states { return &states{ch: make(chan struct{}, 1)} }

func (s *states) notify(e StateEvent) {
	s.mu.Lock()
	s.evs = append(s.evs, e)
	s.mu.Unlock()
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

// wait waits for a state event of stream and session in state st and
// returns it.
func (s *states) wait(t *testing.T, sid domain.SessionID, st domain.StreamID, state State) StateEvent {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		s.mu.Lock()
		for _, e := range s.evs {
			if e.Session == sid && e.Stream == st && e.State == state {
				s.mu.Unlock()
				return e
			}
		}
		s.mu.Unlock()
		select {
		case <-s.ch:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no %s for %s/%s; got %+v", state, sid, st, s.all())
		}
	}
}

func (s *states) all() []StateEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]StateEvent(nil), s.evs...)
}

// startSFU runs an SFU on w's projection until the test ends.
func startSFU(t *testing.T, w *world, node string, edit func(*Config)) (*SFU, *states) {
	t.Helper()
	st := newStates()
	cfg := Config{Live: w.live, Node: node, Notify: st.notify, SweepInterval: time.Hour}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, st
}

// client is a test peer: a publisher or a player of one stream.
type client struct {
	pc   *webrtc.PeerConnection
	sink *mediatest.Sink
	stop context.CancelFunc
}

func (c *client) close() {
	if c.stop != nil {
		c.stop()
	}
	c.pc.Close()
}

// offer sends pc's offer to the SFU and applies its answer.
func offer(ctx context.Context, s *SFU, pc *webrtc.PeerConnection, sig Signal) error {
	return offerWith(ctx, s, pc, sig, nil)
}

// offerWith is offer with the offer's options (an ICE restart); sig.Op, if
// set, is the request's op (OpRestart), else OpOffer.
func offerWith(ctx context.Context, s *SFU, pc *webrtc.PeerConnection, sig Signal, opts *webrtc.OfferOptions) error {
	o, err := pc.CreateOffer(opts)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(o); err != nil {
		return err
	}
	<-gathered
	if sig.Op == "" {
		sig.Op = OpOffer
	}
	sig.SDP = pc.LocalDescription().SDP
	a, err := s.Handle(ctx, sig)
	if err != nil {
		return err
	}
	return pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: a.SDP})
}

// publishMedia connects a publisher sending synthetic VP8 and Opus.
func publishMedia(t *testing.T, s *SFU, sid domain.SessionID, st domain.StreamID) (*client, error) {
	t.Helper()
	pc, err := mediatest.API().NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	video, audio := mediatest.Tracks(string(st))
	for _, tr := range []webrtc.TrackLocal{video, audio} {
		sender, err := pc.AddTrack(tr)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				if _, _, err := sender.ReadRTCP(); err != nil {
					return
				}
			}
		}()
	}
	c := &client{pc: pc}
	t.Cleanup(c.close)
	if err := offer(context.Background(), s, pc, Signal{App: app, Session: sid, Stream: st, Kind: Publish}); err != nil {
		return c, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	mediatest.Send(ctx, video, audio, 10*time.Millisecond)
	return c, nil
}

// playMedia connects a player that receives audio and video.
func playMedia(t *testing.T, s *SFU, sid domain.SessionID, st domain.StreamID) (*client, error) {
	t.Helper()
	pc, err := mediatest.API().NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	c := &client{pc: pc, sink: mediatest.NewSink()}
	pc.OnTrack(c.sink.OnTrack)
	t.Cleanup(c.close)
	return c, offer(context.Background(), s, pc, Signal{App: app, Session: sid, Stream: st, Kind: Play})
}

// settleGoroutines waits until the goroutine count is back to at most base.
func settleGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func runtimeGoroutines() int { return runtime.NumGoroutine() }
