package tests

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/media/mediatest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/client"
)

// mediaEvent is one publisher or player state callback.
type mediaEvent struct {
	Publisher bool
	Stream    string
	State     client.MediaState
	Code      domain.Code
	Reason    string
}

// mediaStates records a client's media state callbacks.
type mediaStates struct {
	mu  sync.Mutex
	evs []mediaEvent
	ch  chan struct{}
}

func (m *mediaStates) put(e mediaEvent) {
	m.mu.Lock()
	m.evs = append(m.evs, e)
	m.mu.Unlock()
	select {
	case m.ch <- struct{}{}:
	default:
	}
}

// wait waits for a state of stream and returns it.
func (m *mediaStates) wait(t *testing.T, stream string, st client.MediaState) mediaEvent {
	t.Helper()
	deadline := time.After(clienttest.Wait)
	for {
		if e, ok := m.find(stream, st); ok {
			return e
		}
		select {
		case <-m.ch:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			m.mu.Lock()
			defer m.mu.Unlock()
			t.Fatalf("no %s for %s; got %+v", st, stream, m.evs)
		}
	}
}

func (m *mediaStates) find(stream string, st client.MediaState) (mediaEvent, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.evs {
		if e.Stream == stream && e.State == st {
			return e, true
		}
	}
	return mediaEvent{}, false
}

// mediaUser is a client with recorded room and media callbacks.
type mediaUser struct {
	t      *testing.T
	n      *node.Node
	id     string
	c      *client.Client
	r      *clienttest.Recorder
	states *mediaStates
}

// dialMedia connects user to url (a node, or a proxy in front of one).
func dialMedia(t *testing.T, n *node.Node, url, user string, edit func(*client.Options)) *mediaUser {
	t.Helper()
	u := &mediaUser{t: t, n: n, id: user, r: clienttest.NewRecorder(t, user), states: &mediaStates{ch: make(chan struct{}, 1)}}
	u.c = clienttest.Dial(t, url, u.r, func(o *client.Options) {
		o.Handlers.OnPublisherStateUpdate = func(stream string, st client.MediaState, code domain.Code, reason string) {
			u.states.put(mediaEvent{Publisher: true, Stream: stream, State: st, Code: code, Reason: reason})
		}
		o.Handlers.OnPlayerStateUpdate = func(stream string, st client.MediaState, code domain.Code, reason string) {
			u.states.put(mediaEvent{Stream: stream, State: st, Code: code, Reason: reason})
		}
		if edit != nil {
			edit(o)
		}
	})
	return u
}

func (u *mediaUser) login(room string) {
	u.t.Helper()
	clienttest.Login(u.t, u.n, u.c, u.r, room, u.id)
}

// publish publishes stream in room and sends synthetic VP8 and Opus on it.
func (u *mediaUser) publish(stream, room string) *client.MediaPublisher {
	u.t.Helper()
	ctx := clienttest.Ctx(u.t)
	if _, err := u.c.StartPublishingStream(ctx, stream, client.PublishOptions{Room: room}); err != nil {
		u.t.Fatal(err)
	}
	video, audio := mediatest.Tracks(stream)
	p, err := u.c.PublishMedia(ctx, stream, []webrtc.TrackLocal{video, audio}, client.MediaOptions{API: mediatest.API()})
	if err != nil {
		u.t.Fatalf("%s publishes %s's media: %v", u.id, stream, err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	u.t.Cleanup(func() { cancel(); p.PeerConnection().Close() })
	mediatest.Send(sctx, video, audio, 10*time.Millisecond)
	u.states.wait(u.t, stream, client.Publishing)
	return p
}

// play plays stream (recorded in room) and returns what its media brings.
func (u *mediaUser) play(stream, room string) (*client.MediaPlayer, *mediatest.Sink) {
	u.t.Helper()
	ctx := clienttest.Ctx(u.t)
	if _, err := u.c.StartPlayingStream(ctx, stream, room); err != nil {
		u.t.Fatal(err)
	}
	sink := mediatest.NewSink()
	p, err := u.c.PlayMedia(ctx, stream, sink.OnTrack, client.MediaOptions{API: mediatest.API()})
	if err != nil {
		u.t.Fatalf("%s plays %s's media: %v", u.id, stream, err)
	}
	u.t.Cleanup(func() { p.PeerConnection().Close() })
	if !sink.WaitMore(webrtc.RTPCodecTypeVideo, 10, clienttest.Wait) || !sink.WaitMore(webrtc.RTPCodecTypeAudio, 5, clienttest.Wait) {
		u.t.Fatalf("%s receives no media of %s (video %d, audio %d)", u.id, stream,
			sink.Count(webrtc.RTPCodecTypeVideo), sink.Count(webrtc.RTPCodecTypeAudio))
	}
	u.states.wait(u.t, stream, client.Playing)
	return p, sink
}

const (
	videoKind = webrtc.RTPCodecTypeVideo
	audioKind = webrtc.RTPCodecTypeAudio
	// mediaQuiet is how long no packet may arrive for a flow to count as
	// stopped (the sources send every 10 and 20 ms).
	mediaQuiet = 700 * time.Millisecond
	// mediaBound bounds how long an ending may take to stop the flow.
	mediaBound = 10 * time.Second
)

func stopped(t *testing.T, who string, s *mediatest.Sink) {
	t.Helper()
	if !s.Stopped(videoKind, mediaQuiet, mediaBound) || !s.Stopped(audioKind, mediaQuiet, mediaBound) {
		t.Fatalf("%s still receives media", who)
	}
}

func flowing(t *testing.T, who string, s *mediatest.Sink) {
	t.Helper()
	if !s.WaitMore(videoKind, 10, mediaBound) || !s.WaitMore(audioKind, 5, mediaBound) {
		t.Fatalf("%s no longer receives media", who)
	}
}
