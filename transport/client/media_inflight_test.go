package client_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/media/mediatest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/netcut"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/gateway"
)

// pcWatch counts the peer connections made with its API and how many were
// closed: Pion builds an interceptor for each peer connection and closes it
// with it. It is what an app sees of a peer connection it has no handle on
// (the one of a call that failed).
type pcWatch struct {
	mu             sync.Mutex
	opened, closed int
}

func (w *pcWatch) NewInterceptor(string) (interceptor.Interceptor, error) {
	w.mu.Lock()
	w.opened++
	w.mu.Unlock()
	return &pcWatched{w: w}, nil
}

type pcWatched struct {
	interceptor.NoOp
	w    *pcWatch
	once sync.Once
}

func (i *pcWatched) Close() error {
	i.once.Do(func() {
		i.w.mu.Lock()
		i.w.closed++
		i.w.mu.Unlock()
	})
	return nil
}

// api is mediatest.API with the watch added.
func (w *pcWatch) api() *webrtc.API {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		panic(err)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, reg); err != nil {
		panic(err)
	}
	reg.Add(w)
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
}

// allClosed waits until every peer connection made was closed; it returns
// the counts.
func (w *pcWatch) allClosed(d time.Duration) (opened, closed int, ok bool) {
	for deadline := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		w.mu.Lock()
		opened, closed = w.opened, w.closed
		w.mu.Unlock()
		if opened > 0 && opened == closed {
			return opened, closed, true
		}
		if time.Now().After(deadline) {
			return opened, closed, false
		}
	}
}

// inflight is bob, connected through a proxy to a node whose clock the test
// moves, in r1 with a watcher, about to publish or play bob-cam.
type inflight struct {
	n      *node.Node
	clock  *estest.Clock
	p      *netcut.Proxy
	w, b   *client.Client
	rw, rb *rec
	media  *reviewMedia
	watch  *pcWatch
	kind   string // publish or play
}

func startInflight(t *testing.T, kind string) *inflight {
	f := &inflight{clock: estest.NewClock(time.Now()), media: &reviewMedia{}, watch: &pcWatch{}, kind: kind}
	f.n = startNodeClocked(t, gateway.Config{HeartbeatTimeout: time.Minute}, f.clock)
	f.p = netcut.Start(t, f.n.HTTPAddr())
	f.rb, f.rw = newRec(t, "bob"), newRec(t, "watcher")
	f.rb.AllowReconnects()
	f.w = dial(t, wsURL(f.n), f.rw, nil)
	login(t, f.n, f.w, f.rw, "r1", "watcher")
	// A request timeout that never ends a call first: the session's end
	// must.
	f.b = dial(t, clienttest.URL(f.p.Addr()), f.rb, func(o *client.Options) {
		fastRetry(o)
		f.media.handlers(o)
		o.RequestTimeout = time.Minute
	})
	login(t, f.n, f.b, f.rb, "r1", "bob")
	var err error
	if kind == "publish" {
		_, err = f.b.StartPublishingStream(ctx(t), "bob-cam", client.PublishOptions{})
	} else {
		_, err = f.b.StartPlayingStream(ctx(t), "bob-cam", "r1")
	}
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// outcome is what PublishMedia or PlayMedia returned.
type outcome struct {
	pc  *webrtc.PeerConnection // of the publisher or player returned
	err error
}

// call runs PublishMedia or PlayMedia in the background.
func (f *inflight) call(t *testing.T) <-chan outcome {
	done := make(chan outcome, 1)
	go func() {
		var o outcome
		opts := client.MediaOptions{API: f.watch.api()}
		if f.kind == "publish" {
			video, audio := mediatest.Tracks("bob-cam")
			var p *client.MediaPublisher
			if p, o.err = f.b.PublishMedia(ctx(t), "bob-cam", []webrtc.TrackLocal{video, audio}, opts); p != nil {
				o.pc = p.PeerConnection()
			}
		} else {
			var p *client.MediaPlayer
			if p, o.err = f.b.PlayMedia(ctx(t), "bob-cam", nil, opts); p != nil {
				o.pc = p.PeerConnection()
			}
		}
		if o.pc != nil {
			t.Cleanup(func() { o.pc.Close() })
		}
		done <- o
	}()
	return done
}

// holdAnswer holds bob's first media call once its answer came, before it
// is applied and registered, until release.
func (f *inflight) holdAnswer(t *testing.T) (answered <-chan struct{}, release func()) {
	ans, rel := make(chan struct{}), make(chan struct{})
	var first, once sync.Once
	client.OnMediaAnswered(f.b, func(string, string) {
		held := false
		first.Do(func() { held = true })
		if !held {
			return
		}
		close(ans)
		select {
		case <-rel:
		case <-time.After(4 * wait): // a failed test holds nothing forever
		}
	})
	release = func() { once.Do(func() { close(rel) }) }
	t.Cleanup(release)
	return ans, release
}

// offerAtServer waits until the SFU holds bob's peer: the offer reached it.
func (f *inflight) offerAtServer(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(wait); ; time.Sleep(10 * time.Millisecond) {
		st := f.n.SFU.Stats()
		if (f.kind == "publish" && st.Publishers > 0) || (f.kind == "play" && st.Players > 0) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's %s offer never reached the SFU", f.kind)
		}
	}
}

// loseSession cuts bob off until the server timed his session out, then
// lets him back: he logs in again on a new session (and the SDK ends the
// old session's media on the way).
func (f *inflight) loseSession(t *testing.T) {
	t.Helper()
	session := f.b.Session()
	f.p.Refuse(true)
	f.p.Cut()
	f.rb.WaitState("r1", client.StateReconnecting)
	f.clock.Advance(59 * time.Second)
	if _, err := f.w.QueryRoom(ctx(t), "r1"); err != nil { // the watcher is heard from on time
		t.Fatal(err)
	}
	f.clock.Advance(2 * time.Second)
	f.rw.WaitUsers("r1", client.UpdateDelete, "bob")
	f.p.Refuse(false)
	if st := waitRestored(t, f.rb, "r1"); st != client.StateLogined {
		t.Fatalf("restored as %s, want Logined (the session timed out)", st)
	}
	if f.b.Session() == session {
		t.Fatalf("session %s kept", session)
	}
}

func (f *inflight) result(t *testing.T, done <-chan outcome) outcome {
	t.Helper()
	select {
	case o := <-done:
		return o
	case <-time.After(2 * wait):
		t.Fatalf("%s media call still in flight", f.kind)
		return outcome{}
	}
}

// failedAndClosed checks what the app sees of a call that must fail (it was
// in flight when what happened): an error matching want, its peer
// connection closed, no media followed.
func (f *inflight) failedAndClosed(t *testing.T, what string, o outcome, want error) {
	t.Helper()
	if o.err == nil || !errors.Is(o.err, want) {
		state := "none"
		if o.pc != nil {
			state = o.pc.ConnectionState().String()
		}
		t.Errorf("%s media in flight when %s: returned err %v (peer connection %s); want an error matching %q",
			f.kind, what, o.err, state, want)
	}
	if opened, closed, ok := f.watch.allClosed(wait); !ok {
		t.Errorf("%s media in flight when %s: %d peer connection(s) made, %d closed", f.kind, what, opened, closed)
	}
	if pubs, plays := client.TrackedMedia(f.b); len(pubs)+len(plays) > 0 {
		t.Errorf("%s media in flight when %s: the client follows publishers %v, players %v", f.kind, what, pubs, plays)
	}
}

// A PublishMedia or PlayMedia whose answer came from a session that ended
// before the call registered its media (the client logged in again on a
// new session, and endMedia ended that session's media meanwhile) must not
// leave the app with media that no longer exists: the call fails with
// 1002053 (as NO_PUBLISH / NO_PLAY report the rest), its peer connection is
// closed, and nothing of it is followed.
func TestAMediaCallAnsweredByASessionThatEndedFails(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"publish", "play"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			f := startInflight(t, kind)
			answered, release := f.holdAnswer(t)
			done := f.call(t)
			select {
			case <-answered:
			case <-time.After(wait):
				t.Fatal("no answer")
			}
			f.loseSession(t)
			release()
			f.failedAndClosed(t, "its session ended", f.result(t, done), domain.ErrTimeout)
		})
	}
}

// A media call whose answer is lost with its session (the server answered,
// the client never heard it) fails as soon as the client knows the session
// ended, with the same 1002053, and its peer connection is closed.
func TestAMediaCallWhoseAnswerWasLostWithItsSessionFails(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"publish", "play"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			f := startInflight(t, kind)
			f.p.MuteServer()
			done := f.call(t)
			f.offerAtServer(t)
			f.loseSession(t)
			f.failedAndClosed(t, "its session ended", f.result(t, done), domain.ErrTimeout)
		})
	}
}

// A media call in flight when the app closes the client fails with
// ErrClosed, as every method then does, and its peer connection is closed,
// whether its answer is still awaited or came just before.
func TestAMediaCallInFlightAtCloseFails(t *testing.T) {
	t.Parallel()
	for _, answer := range []string{"awaited", "came"} {
		t.Run(answer, func(t *testing.T) {
			t.Parallel()
			f := startInflight(t, "publish")
			var done <-chan outcome
			release := func() {}
			if answer == "awaited" {
				f.p.MuteServer()
				done = f.call(t)
				f.offerAtServer(t)
			} else {
				var answered <-chan struct{}
				answered, release = f.holdAnswer(t)
				done = f.call(t)
				select {
				case <-answered:
				case <-time.After(wait):
					t.Fatal("no answer")
				}
			}
			if err := f.b.Close(); err != nil {
				t.Fatal(err)
			}
			release() // the held call goes on, on a closed client
			f.failedAndClosed(t, "closing the client", f.result(t, done), client.ErrClosed)
		})
	}
}

// A logout racing a PublishMedia: the server answered the offer, then ended
// the stream with the logout (NO_PUBLISH, which the app gets) before the
// call registered it. The call returns its publisher, ended like the
// others: the client does not follow it (a later re-login or resume would
// report it ended a second time, and endMedia would close the app's peer
// connection under it), and its peer connection is closed (it used to stay
// open, past Client.Close).
func TestAPublishEndedByALogoutBeforeItRegisteredIsNotFollowed(t *testing.T) {
	t.Parallel()
	f := startInflight(t, "publish")
	answered, release := f.holdAnswer(t)
	done := f.call(t)
	select {
	case <-answered:
	case <-time.After(wait):
		t.Fatal("no answer")
	}
	if err := f.b.LogoutRoom(ctx(t), "r1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.media.waitState("bob-cam", client.NoPublish, wait); !ok {
		t.Fatalf("the logout never ended bob-cam's media: %+v", f.media.all())
	}
	release()
	o := f.result(t, done)
	if o.err != nil {
		t.Logf("PublishMedia raced by a logout: %v", o.err)
	}
	if pubs, _ := client.TrackedMedia(f.b); slices.Contains(pubs, "bob-cam") {
		t.Errorf("the client follows bob-cam, whose media the logout ended (the app was told NO_PUBLISH)")
	}
	if err := f.b.Close(); err != nil {
		t.Fatal(err)
	}
	if opened, closed, ok := f.watch.allClosed(wait); !ok {
		t.Errorf("after NO_PUBLISH and Client.Close: %d peer connection(s) made by the SDK, %d closed", opened, closed)
	}
}

// registered makes bob's PublishMedia or PlayMedia (as f.kind) and waits
// until it returned: the media is registered with the client.
func registered(t *testing.T, f *inflight) {
	t.Helper()
	o := f.result(t, f.call(t))
	if o.err != nil {
		t.Fatalf("%s media: %v", f.kind, o.err)
	}
	if pubs, plays := client.TrackedMedia(f.b); len(pubs)+len(plays) != 1 {
		t.Fatalf("the client follows publishers %v, players %v", pubs, plays)
	}
}

// Close closes the peer connections of the media the client publishes and
// plays, not only of the media calls in flight
// (TestAMediaCallInFlightAtCloseFails): else their ICE agents, DTLS
// transports and goroutines run on, and the app's tracks flow to the media
// node, after the client is gone.
func TestCloseClosesTheClientsMedia(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"publish", "play"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			f := startInflight(t, kind)
			registered(t, f)
			if err := f.b.Close(); err != nil {
				t.Fatal(err)
			}
			if opened, closed, ok := f.watch.allClosed(wait); !ok {
				t.Errorf("after Close: %d peer connection(s) made, %d closed", opened, closed)
			}
		})
	}
}

// ReconnectFailed: the client gives the session up, and its media with it
// (the server timed the session out and ended its streams). The app is told
// NO_PUBLISH / NO_PLAY (1002053, ended), the peer connections are closed and
// the client follows none of them, as after a re-login.
func TestReconnectFailedEndsTheMedia(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"publish", "play"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			f := startInflight(t, kind)
			// bob again, with a short retry window.
			rb := newRec(t, "bob2")
			rb.AllowReconnects()
			media := &reviewMedia{}
			b := dial(t, clienttest.URL(f.p.Addr()), rb, func(o *client.Options) {
				fastRetry(o)
				media.handlers(o)
				o.ReconnectWindow = 300 * time.Millisecond
			})
			login(t, f.n, b, rb, "r2", "bob2")
			stream := "bob2-cam"
			opts := client.MediaOptions{API: f.watch.api()}
			if kind == "publish" {
				if _, err := b.StartPublishingStream(ctx(t), stream, client.PublishOptions{}); err != nil {
					t.Fatal(err)
				}
				video, audio := mediatest.Tracks(stream)
				p, err := b.PublishMedia(ctx(t), stream, []webrtc.TrackLocal{video, audio}, opts)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { p.PeerConnection().Close() })
			} else {
				if _, err := b.StartPlayingStream(ctx(t), stream, "r2"); err != nil {
					t.Fatal(err)
				}
				p, err := b.PlayMedia(ctx(t), stream, nil, opts)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { p.PeerConnection().Close() })
			}
			f.b.Close() // bob made no media: the watch counts bob2's only

			f.p.Refuse(true)
			f.p.Cut()
			rb.WaitState("r2", client.StateReconnecting)
			if e := rb.WaitState("r2", client.StateReconnectFailed); e.Code != domain.ErrTimeout.Code {
				t.Fatalf("ReconnectFailed %+v", e)
			}
			no := client.NoPublish
			if kind == "play" {
				no = client.NoPlay
			}
			if _, ok := media.waitState(stream, no, wait); !ok {
				t.Errorf("after ReconnectFailed the app was never told its %s media ended; media callbacks %+v", kind, media.all())
			}
			if opened, closed, ok := f.watch.allClosed(wait); !ok {
				t.Errorf("after ReconnectFailed: %d peer connection(s) open, %d closed", opened, closed)
			}
			if pubs, plays := client.TrackedMedia(b); len(pubs)+len(plays) > 0 {
				t.Errorf("after ReconnectFailed the client still follows publishers %v, players %v", pubs, plays)
			}
		})
	}
}

// A second PublishMedia (a camera switch) or PlayMedia of the same stream
// replaces the first one's connection on the media node. Closing the first
// MediaPublisher / MediaPlayer afterwards (the app cleaning up the one it
// replaced) leaves the second's media alone. Close used to send media_close
// for the stream and kind, which the media node applied to the connection it
// had then: the new one.
func TestClosingReplacedMediaLeavesItsReplacement(t *testing.T) {
	for _, kind := range []string{"publish", "play"} {
		t.Run(kind, func(t *testing.T) {
			n := startNode(t, gateway.Config{})
			media := &reviewMedia{}
			rb := newRec(t, "bob")
			b := dial(t, wsURL(n), rb, media.handlers)
			login(t, n, b, rb, "r1", "bob")
			api := mediatest.API()
			var first, second interface{ Close(context.Context) error }
			var flowing client.MediaState
			if kind == "publish" {
				flowing = client.Publishing
				if _, err := b.StartPublishingStream(ctx(t), "bob-cam", client.PublishOptions{}); err != nil {
					t.Fatal(err)
				}
				pub := func() *client.MediaPublisher {
					video, audio := mediatest.Tracks("bob-cam")
					p, err := b.PublishMedia(ctx(t), "bob-cam", []webrtc.TrackLocal{video, audio}, client.MediaOptions{API: api})
					if err != nil {
						t.Fatal(err)
					}
					sctx, cancel := context.WithCancel(context.Background())
					t.Cleanup(func() { cancel(); p.PeerConnection().Close() })
					mediatest.Send(sctx, video, audio, 10*time.Millisecond)
					return p
				}
				p1 := pub()
				if _, ok := media.waitState("bob-cam", flowing, wait); !ok {
					t.Fatalf("first publisher never PUBLISHING: %+v", media.all())
				}
				first, second = p1, pub()
			} else {
				flowing = client.PlayRequesting // nobody publishes bob-cam: the player waits
				if _, err := b.StartPlayingStream(ctx(t), "bob-cam", "r1"); err != nil {
					t.Fatal(err)
				}
				play := func() *client.MediaPlayer {
					p, err := b.PlayMedia(ctx(t), "bob-cam", nil, client.MediaOptions{API: api})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { p.PeerConnection().Close() })
					return p
				}
				first = play()
				if _, ok := media.waitState("bob-cam", flowing, wait); !ok {
					t.Fatalf("first player never PLAY_REQUESTING: %+v", media.all())
				}
				second = play()
			}
			_ = second
			// Let the replacement settle on the node.
			for deadline := time.Now().Add(wait); ; time.Sleep(20 * time.Millisecond) {
				st := n.SFU.Stats()
				if (kind == "publish" && st.Publishers == 1) || (kind == "play" && st.Players == 1) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("SFU %+v", st)
				}
			}
			before := len(media.all())

			// The app cleans up the connection it replaced.
			// (It used to wait for its media_close's reply, by which time
			// the node had closed the replacement.)
			if err := first.Close(ctx(t)); err != nil {
				t.Logf("closing the first: %v", err)
			}
			st := n.SFU.Stats()
			pubs, plays := client.TrackedMedia(b)
			evs := media.all()[before:]
			if (kind == "publish" && st.Publishers != 1) || (kind == "play" && st.Players != 1) {
				t.Errorf("closing the superseded %s ended its replacement on the media node: SFU %+v; events after the Close %+v; tracked publishers %v players %v",
					kind, st, evs, pubs, plays)
			}
			for _, e := range evs {
				if e.state == client.NoPublish || e.state == client.NoPlay {
					t.Errorf("closing the superseded %s reported %+v for the stream the app still %ss", kind, e, kind)
				}
			}
		})
	}
}

// The server ends a stream's media (stop_publish / stop_play: NO_PUBLISH /
// NO_PLAY "ended"). The SDK stops following it and closes its peer
// connection, as it does when it ends media itself (endMedia, dropMedia). It
// used to leave it open: after Client.Close its ICE agent, DTLS transport
// and goroutines lived on.
func TestMediaEndedByTheServerClosesItsPeerConnection(t *testing.T) {
	for _, kind := range []string{"publish", "play"} {
		t.Run(kind, func(t *testing.T) {
			n := startNode(t, gateway.Config{})
			media := &reviewMedia{}
			rb := newRec(t, "bob")
			b := dial(t, wsURL(n), rb, media.handlers)
			login(t, n, b, rb, "r1", "bob")
			watch := &pcWatch{}
			opts := client.MediaOptions{API: watch.api()}
			no := client.NoPublish
			if kind == "publish" {
				if _, err := b.StartPublishingStream(ctx(t), "bob-cam", client.PublishOptions{}); err != nil {
					t.Fatal(err)
				}
				video, audio := mediatest.Tracks("bob-cam")
				if _, err := b.PublishMedia(ctx(t), "bob-cam", []webrtc.TrackLocal{video, audio}, opts); err != nil {
					t.Fatal(err)
				}
				if err := b.StopPublishingStream(ctx(t), "bob-cam"); err != nil {
					t.Fatal(err)
				}
			} else {
				no = client.NoPlay
				if _, err := b.StartPlayingStream(ctx(t), "bob-cam", "r1"); err != nil {
					t.Fatal(err)
				}
				if _, err := b.PlayMedia(ctx(t), "bob-cam", nil, opts); err != nil {
					t.Fatal(err)
				}
				if err := b.StopPlayingStream(ctx(t), "bob-cam", "r1"); err != nil {
					t.Fatal(err)
				}
			}
			e, ok := media.waitState("bob-cam", no, wait)
			if !ok {
				t.Fatalf("no %s after the stop: %+v", no, media.all())
			}
			t.Logf("the app is told %+v", e)
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			if opened, closed, ok := watch.allClosed(wait); !ok {
				t.Errorf("after %s (%s %s) and Client.Close: %d peer connection(s) made by the SDK, %d closed",
					no, e.reason, kind, opened, closed)
			}
		})
	}
}
