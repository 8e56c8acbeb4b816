package client_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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

// reviewMedia records a client's media state callbacks.
type reviewMedia struct {
	mu  sync.Mutex
	evs []reviewMediaEvent
}

type reviewMediaEvent struct {
	publisher bool
	stream    string
	state     client.MediaState
	code      domain.Code
	reason    string
}

func (m *reviewMedia) handlers(o *client.Options) {
	o.Handlers.OnPublisherStateUpdate = func(stream string, st client.MediaState, code domain.Code, reason string) {
		m.mu.Lock()
		m.evs = append(m.evs, reviewMediaEvent{true, stream, st, code, reason})
		m.mu.Unlock()
	}
	o.Handlers.OnPlayerStateUpdate = func(stream string, st client.MediaState, code domain.Code, reason string) {
		m.mu.Lock()
		m.evs = append(m.evs, reviewMediaEvent{false, stream, st, code, reason})
		m.mu.Unlock()
	}
}

// waitState waits up to d for a state of stream; false if none came.
func (m *reviewMedia) waitState(stream string, st client.MediaState, d time.Duration) (reviewMediaEvent, bool) {
	deadline := time.Now().Add(d)
	for {
		m.mu.Lock()
		for _, e := range m.evs {
			if e.stream == stream && e.state == st {
				m.mu.Unlock()
				return e, true
			}
		}
		m.mu.Unlock()
		if time.Now().After(deadline) {
			return reviewMediaEvent{}, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (m *reviewMedia) all() []reviewMediaEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]reviewMediaEvent(nil), m.evs...)
}

// awayNode starts a node on a fake clock (heartbeat timeout a minute) and a
// proxy in front of it, through which the client that goes away dials.
func awayNode(t *testing.T) (*node.Node, *estest.Clock, *netcut.Proxy) {
	t.Helper()
	clock := estest.NewClock(time.Now()) // the server's
	n := startNodeClocked(t, gateway.Config{HeartbeatTimeout: time.Minute}, clock)
	return n, clock, netcut.Start(t, n.HTTPAddr())
}

// timeOut keeps the client behind p away (its recorder away) until the
// server has timed its session out, as the other client (stay, recorded by
// stayRec) sees: user is DELETEd from room. stay is heard from on time.
func timeOut(t *testing.T, clock *estest.Clock, p *netcut.Proxy, away *rec, stay *client.Client, stayRec *rec, room, user string) {
	t.Helper()
	p.Refuse(true)
	p.Cut()
	away.WaitState(room, client.StateReconnecting)
	clock.Advance(59 * time.Second)
	if _, err := stay.QueryRoom(ctx(t), room); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Second)
	stayRec.WaitUsers(room, client.UpdateDelete, user)
}

// A session that timed out while the client was away loses its streams
// (protocol.md: a heartbeat timeout ends media with NO_PUBLISH / NO_PLAY,
// reason ended). The server sends that to the dead session, so the SDK tells
// the app when it logs in again on a new session (NO_PUBLISH, 1002053), or
// the app would believe it still publishes.
func TestAReloginAfterATimeoutEndsTheAppsMedia(t *testing.T) {
	t.Parallel()
	n, clock, p := awayNode(t)
	rb, rw := newRec(t, "bob"), newRec(t, "watcher")
	rb.AllowReconnects()
	w := dial(t, wsURL(n), rw, nil)
	login(t, n, w, rw, "r1", "watcher")
	media := &reviewMedia{}
	b := dial(t, clienttest.URL(p.Addr()), rb, func(o *client.Options) { fastRetry(o); media.handlers(o) })
	login(t, n, b, rb, "r1", "bob")
	if _, err := b.StartPublishingStream(ctx(t), "bob-cam", client.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	video, audio := mediatest.Tracks("bob-cam")
	pub, err := b.PublishMedia(ctx(t), "bob-cam", []webrtc.TrackLocal{video, audio}, client.MediaOptions{API: mediatest.API()})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); pub.PeerConnection().Close() })
	mediatest.Send(sctx, video, audio, 10*time.Millisecond)
	if _, ok := media.waitState("bob-cam", client.Publishing, wait); !ok {
		t.Fatalf("never PUBLISHING: %+v", media.all())
	}
	session := b.Session()

	timeOut(t, clock, p, rb, w, rw, "r1", "bob") // his stream stops
	p.Refuse(false)
	if st := waitRestored(t, rb, "r1"); st != client.StateLogined {
		t.Fatalf("restored as %s, want Logined (the session timed out)", st)
	}
	if b.Session() == session {
		t.Fatalf("session %s kept", session)
	}
	// The stream is gone on the new session: publishing again needs a new
	// publish (the old one's media_check would fail too).
	if e, ok := media.waitState("bob-cam", client.NoPublish, wait); !ok {
		t.Errorf("after the re-login on a new session the app was never told its media ended; callbacks %+v", media.all())
	} else if e.code != domain.ErrTimeout.Code || e.reason != "ended" {
		t.Errorf("NO_PUBLISH %+v, want code 1002053, reason ended", e)
	}
}

// A session that timed out while the client was away is logged in again on
// a new session. The users and streams that left meanwhile get their DELETE
// (their departures went with the old session) before the room's current
// ones are ADDed: an app keeping its lists from the callbacks ends with the
// room's. Before, they were never deleted.
func TestAReloginDeletesWhoLeftMeanwhile(t *testing.T) {
	t.Parallel()
	n, clock, p := awayNode(t)
	rb, ra := newRec(t, "bob"), newRec(t, "alice")
	rb.AllowReconnects()
	a := dial(t, wsURL(n), ra, nil)
	login(t, n, a, ra, "r1", "alice")
	if _, err := a.StartPublishingStream(ctx(t), "alice-cam", client.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	b := dial(t, clienttest.URL(p.Addr()), rb, fastRetry)
	login(t, n, b, rb, "r1", "bob")
	rb.WaitUsers("r1", client.UpdateAdd, "alice")
	rb.WaitStreams("r1", client.UpdateAdd, "alice-cam")

	timeOut(t, clock, p, rb, a, ra, "r1", "bob")
	if err := a.StopPublishingStream(ctx(t), "alice-cam"); err != nil {
		t.Fatal(err)
	}
	if err := a.LogoutRoom(ctx(t), "r1"); err != nil {
		t.Fatal(err)
	}
	p.Refuse(false)
	var deleted []string
	rb.WaitFor("Logined in r1", func(e ev) bool {
		if e.Room == "r1" && e.Type == client.UpdateDelete {
			for _, u := range e.Users {
				deleted = append(deleted, "user "+u.ID)
			}
			for _, st := range e.Streams {
				deleted = append(deleted, "stream "+st.Stream)
			}
		}
		return e.Kind == "state" && e.Room == "r1" && e.State == client.StateLogined
	})
	if want := []string{"stream alice-cam", "user alice"}; !slices.Equal(deleted, want) {
		t.Errorf("bob's DELETEs as r1 was entered again: %v, want %v", deleted, want)
	}
}

// A keyed request whose reply was lost with the connection is sent again
// with the same idempotency key; the server dedupes keys per session. When
// the session timed out meanwhile and the client logs in on a new session,
// sent again it would run again (the others would get the message twice):
// it fails instead as lost (1002051: it may or may not have taken effect).
func TestALostReplyIsNotSentAgainOnANewSession(t *testing.T) {
	t.Parallel()
	n, clock, p := awayNode(t)
	ra, rb := newRec(t, "alice"), newRec(t, "bob")
	ra.AllowReconnects()
	a := dial(t, clienttest.URL(p.Addr()), ra, func(o *client.Options) { fastRetry(o); o.RequestTimeout = time.Minute })
	b := dial(t, wsURL(n), rb, nil)
	login(t, n, a, ra, "r1", "alice")
	login(t, n, b, rb, "r1", "bob")
	ra.WaitUsers("r1", client.UpdateAdd, "bob")
	rb.WaitUsers("r1", client.UpdateAdd, "alice")
	session := a.Session()

	p.MuteServer() // the server hears alice; alice hears nothing
	errc := make(chan error, 1)
	go func() {
		_, err := a.SendBroadcastMessage(ctx(t), "r1", "hello once")
		errc <- err
	}()
	rb.WaitFor("alice's message", func(e ev) bool { return e.Kind == "broadcast" && e.Msgs[0].Message == "hello once" })
	timeOut(t, clock, p, ra, b, rb, "r1", "alice") // the reply is lost with the connection
	p.Refuse(false)
	if st := waitRestored(t, ra, "r1"); st != client.StateLogined {
		t.Fatalf("restored as %s, want Logined", st)
	}
	if a.Session() == session {
		t.Fatalf("session %s kept", session)
	}
	err := <-errc
	if code, _ := domain.CodeOf(err); code != 1002051 {
		t.Errorf("the send whose reply was lost with the session returned %v, want 1002051", err)
	}
	if _, err := a.SendBroadcastMessage(ctx(t), "r1", "marker"); err != nil {
		t.Fatal(err)
	}
	repeats := 0
	rb.WaitFor("the marker", func(e ev) bool {
		if e.Kind == "broadcast" && e.Msgs[0].Message == "hello once" {
			repeats++
		}
		return e.Kind == "broadcast" && e.Msgs[0].Message == "marker"
	})
	if repeats > 0 {
		t.Errorf("bob got alice's one message %d more time(s): the repeat ran again on the new session (send returned %v)",
			repeats, err)
	}
}

// A request made with a context that is already done fails with the
// context's error and is never sent: were it sent, the app would be told
// the message was not sent while the others got it.
func TestACancelledContextSendsNothing(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	ra, rb := newRec(t, "alice"), newRec(t, "bob")
	a := dial(t, wsURL(n), ra, nil)
	b := dial(t, wsURL(n), rb, nil)
	login(t, n, a, ra, "r1", "alice")
	login(t, n, b, rb, "r1", "bob")
	rb.WaitUsers("r1", client.UpdateAdd, "alice")

	cancelled, cancel := context.WithCancel(ctx(t))
	cancel()
	_, err := a.SendBroadcastMessage(cancelled, "r1", "never sent")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("send with a cancelled context: %v", err)
	}
	if _, err := a.SendBroadcastMessage(ctx(t), "r1", "marker"); err != nil {
		t.Fatal(err)
	}
	ghosts := 0
	rb.WaitFor("the marker", func(e ev) bool {
		if e.Kind == "broadcast" && e.Msgs[0].Message == "never sent" {
			ghosts++
		}
		return e.Kind == "broadcast" && e.Msgs[0].Message == "marker"
	})
	if ghosts > 0 {
		t.Errorf("SendBroadcastMessage failed with %v, yet bob got the message %d time(s)", err, ghosts)
	}
}

// A LogoutRoom whose reply was lost, and whose session then timed out, is
// not undone on the new session: the room it leaves is not entered again
// there (it used to be, and the logout sent again: the others saw the user
// come back for a moment), it gets Logout, and the call succeeds; the user
// is not in the room the app left.
func TestALogoutWhoseReplyWasLostIsNotUndoneOnTheNewSession(t *testing.T) {
	t.Parallel()
	clock := estest.NewClock(time.Now())
	n := startNodeClocked(t, gateway.Config{HeartbeatTimeout: time.Minute}, clock)
	p := netcut.Start(t, n.HTTPAddr())
	ra, rb := newRec(t, "alice"), newRec(t, "bob")
	ra.AllowReconnects()
	a := dial(t, clienttest.URL(p.Addr()), ra, func(o *client.Options) { fastRetry(o); o.RequestTimeout = time.Minute })
	b := dial(t, wsURL(n), rb, nil)
	login(t, n, a, ra, "r1", "alice")
	login(t, n, b, rb, "r1", "bob")
	rb.WaitUsers("r1", client.UpdateAdd, "alice")
	session := a.Session()

	p.MuteServer()
	errc := make(chan error, 1)
	go func() { errc <- a.LogoutRoom(ctx(t), "r1") }()
	rb.WaitUsers("r1", client.UpdateDelete, "alice") // the logout took effect
	p.Refuse(true)
	p.Cut()
	ra.WaitState("r1", client.StateReconnecting)
	clock.Advance(59 * time.Second)
	if _, err := b.QueryRoom(ctx(t), "r1"); err != nil { // bob is heard from on time
		t.Fatal(err)
	}
	clock.Advance(2 * time.Second) // alice's session is past its timeout: no resume
	p.Refuse(false)
	e := ra.WaitFor("r1's state after the timeout", func(e ev) bool {
		return e.Kind == "state" && e.Room == "r1" && e.State != client.StateReconnecting
	})
	if e.State != client.StateLogout || e.Code != 0 || e.Info.Reason != "logout" {
		t.Fatalf("r1 after the timeout: %v, want Logout (code 0, reason logout): not entered again", e)
	}
	if a.Session() == session {
		t.Fatalf("session kept")
	}
	err := <-errc
	code, _ := domain.CodeOf(err)
	users, _, qerr := b.QueryRoomMemberList(ctx(t), "r1", "", 100)
	if qerr != nil {
		t.Fatal(qerr)
	}
	in := false
	for _, u := range users {
		if u.ID == "alice" {
			in = true
		}
	}
	if err != nil || in {
		t.Errorf("the app called LogoutRoom, got %v (code %d); alice in r1 afterwards: %v", err, code, in)
	}
}

// A stop_publish whose reply was lost with its session is not repeated on
// the new one, which publishes nothing (the re-login does not publish
// again; the old session's streams ended with it): repeated, it would be
// refused, and the app told its stop failed, although the stream is stopped
// (bob saw it go). It reports 1002051 (it may have taken effect).
func TestAStopWhoseReplyWasLostWithItsSessionIsNotReportedAsRefused(t *testing.T) {
	t.Parallel()
	clock := estest.NewClock(time.Now())
	n := startNodeClocked(t, gateway.Config{HeartbeatTimeout: time.Minute}, clock)
	p := netcut.Start(t, n.HTTPAddr())
	ra, rb := newRec(t, "alice"), newRec(t, "bob")
	ra.AllowReconnects()
	a := dial(t, clienttest.URL(p.Addr()), ra, func(o *client.Options) { fastRetry(o); o.RequestTimeout = time.Minute })
	b := dial(t, wsURL(n), rb, nil)
	login(t, n, a, ra, "r1", "alice")
	login(t, n, b, rb, "r1", "bob")
	if _, err := a.StartPublishingStream(ctx(t), "s1", client.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	rb.WaitStreams("r1", client.UpdateAdd, "s1")

	p.MuteServer()
	errc := make(chan error, 1)
	go func() { errc <- a.StopPublishingStream(ctx(t), "s1") }()
	rb.WaitStreams("r1", client.UpdateDelete, "s1") // the stop took effect
	p.Refuse(true)
	p.Cut()
	ra.WaitState("r1", client.StateReconnecting)
	clock.Advance(59 * time.Second)
	if _, err := b.QueryRoom(ctx(t), "r1"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Second) // alice's session times out: a new one
	p.Refuse(false)
	if st := waitRestored(t, ra, "r1"); st != client.StateLogined {
		t.Fatalf("restored as %s, want Logined", st)
	}
	err := <-errc
	code, _ := domain.CodeOf(err)
	t.Logf("StopPublishingStream after its reply was lost and the session with it: %v (code %d)", err, code)
	if err != nil && code != domain.ErrReconnecting.Code {
		t.Errorf("the app stopped s1, which is stopped, and is told the stop was refused: %v (code %d)", err, code)
	}
}

// A query whose reply is lost with the connection is asked again on the
// next one: it changes nothing, so it needs no idempotency key. When
// queries lost their keys (so that a repeated key gets today's answer), the
// SDK failed them with 1002051 ("it may or may not have taken effect"), for
// a read.
func TestAQueryWhoseReplyWasLostIsAskedAgain(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	p := netcut.Start(t, n.HTTPAddr())
	ra := newRec(t, "alice")
	ra.AllowReconnects()
	a := dial(t, clienttest.URL(p.Addr()), ra, fastRetry)
	login(t, n, a, ra, "r1", "alice")

	p.MuteServer()
	type answer struct {
		count int
		err   error
	}
	done := make(chan answer, 1)
	go func() {
		c, err := a.QueryRoomOnlineMemberCount(ctx(t), "r1")
		done <- answer{c, err}
	}()
	// The server has answered it (the reply is held by the proxy).
	estest.Eventually(t, "the query answered by the server", func() bool {
		return strings.Contains(clienttest.Metrics(t, n), `roomlog_gateway_request_duration_seconds_count{op="query_online_count"} 1`)
	})
	p.Cut()
	got := <-done
	if got.err != nil || got.count != 1 {
		t.Fatalf("query_online_count whose reply was lost with the connection: %d, %v; want 1", got.count, got.err)
	}
}

// A member that logged in with UserStatusNotify false hears of no other
// user after its connection comes back, whether the session was resumed
// (the client names its quiet rooms, for one it was removed from meanwhile)
// or logged in again after a timeout. Before, a re-login entered the room
// without the flag, and the member heard of everyone from then on.
func TestAQuietMemberStaysQuietAcrossAReloginAndAResume(t *testing.T) {
	t.Parallel()
	n, clock, p := awayNode(t)
	ra, rb := newRec(t, "alice"), newRec(t, "bob")
	ra.AllowReconnects()
	a := dial(t, clienttest.URL(p.Addr()), ra, fastRetry)
	off := false
	if _, err := a.LoginRoom(ctx(t), "r1", clienttest.User("alice"), client.LoginOptions{Token: token(t, n, "alice"),
		UserStatusNotify: &off}); err != nil {
		t.Fatal(err)
	}
	ra.WaitState("r1", client.StateLogined)
	b := dial(t, wsURL(n), rb, nil)
	login(t, n, b, rb, "r1", "bob")

	// Away past the timeout: logged in again on a new session, still quiet.
	timeOut(t, clock, p, ra, b, rb, "r1", "alice")
	p.Refuse(false)
	quietUntil := func(what string, match func(ev) bool) {
		t.Helper()
		ra.WaitFor(what, func(e ev) bool {
			if e.Kind == "user" {
				t.Errorf("quiet alice was told %v", e)
			}
			return match(e)
		})
	}
	quietUntil("Logined in r1 again", func(e ev) bool {
		return e.Kind == "state" && e.Room == "r1" && e.State == client.StateLogined
	})
	if _, err := b.SendBroadcastMessage(ctx(t), "r1", "after the re-login"); err != nil {
		t.Fatal(err)
	}
	quietUntil("bob's message", func(e ev) bool { return e.Kind == "broadcast" && e.Msgs[0].Message == "after the re-login" })

	// Away briefly, kicked meanwhile after carol came: resumed, told of the
	// kick and of no user.
	p.Refuse(true)
	p.Cut()
	ra.WaitState("r1", client.StateReconnecting)
	rc := newRec(t, "carol")
	login(t, n, dial(t, wsURL(n), rc, nil), rc, "r1", "carol")
	if _, err := n.Engine.Execute(ctx(t), domain.Meta{App: clienttest.App}, domain.KickUser{Room: "r1", User: "alice"}); err != nil {
		t.Fatal(err)
	}
	p.Refuse(false)
	quietUntil("the kick, replayed", func(e ev) bool { return e.Kind == "state" && e.Room == "r1" && e.State == client.StateKickOut })
}

// A room logged into with MaxMemberCount that ends while the client is
// away past the timeout is created again by the re-login with the same
// capacity: one more member than it allows is refused with room_full.
// Before, the re-login asked for none and the room took anyone.
func TestAReloginCreatesTheRoomAgainWithItsCapacity(t *testing.T) {
	t.Parallel()
	n, clock, p := awayNode(t)
	ra, rb := newRec(t, "alice"), newRec(t, "bob")
	ra.AllowReconnects()
	a := dial(t, clienttest.URL(p.Addr()), ra, fastRetry)
	if _, err := a.LoginRoom(ctx(t), "pair", clienttest.User("alice"), client.LoginOptions{Token: token(t, n, "alice"),
		MaxMemberCount: 2}); err != nil {
		t.Fatal(err)
	}
	ra.WaitState("pair", client.StateLogined)
	b := dial(t, wsURL(n), rb, nil)
	login(t, n, b, rb, "pair", "bob")

	// Alice times out and bob leaves: the room ends. Alice comes back and
	// creates it again.
	timeOut(t, clock, p, ra, b, rb, "pair", "alice")
	if err := b.LogoutRoom(ctx(t), "pair"); err != nil {
		t.Fatal(err)
	}
	p.Refuse(false)
	ra.WaitFor("Logined in pair again", func(e ev) bool {
		return e.Kind == "state" && e.Room == "pair" && e.State == client.StateLogined
	})
	rc, rd := newRec(t, "carol"), newRec(t, "dave")
	login(t, n, dial(t, wsURL(n), rc, nil), rc, "pair", "carol")
	d := dial(t, wsURL(n), rd, nil)
	if _, err := d.LoginRoom(ctx(t), "pair", clienttest.User("dave"), client.LoginOptions{Token: token(t, n, "dave")}); !errors.Is(err, domain.ErrRoomFull) {
		t.Fatalf("a third member of the room alice created again for two: %v, want room_full", err)
	}
}
