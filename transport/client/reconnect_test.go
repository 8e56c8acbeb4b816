package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/netcut"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/protocol"
)

// fastRetry makes reconnection attempts quick.
func fastRetry(o *client.Options) {
	o.BackoffMin, o.BackoffMax = 10*time.Millisecond, 50*time.Millisecond
}

// waitRestored waits, after a Reconnecting, until room is usable again:
// Reconnected if the server resumed the session, Logined if the client had
// to log in again (the server could not resume). It reports which.
func waitRestored(t *testing.T, r *rec, room string) client.RoomState {
	t.Helper()
	e := r.WaitFor("Reconnected or Logined in "+room, func(e ev) bool {
		return e.Kind == "state" && e.Room == room &&
			(e.State == client.StateReconnected || e.State == client.StateLogined || e.State == client.StateReconnectFailed ||
				e.State == client.StateLoginFailed)
	})
	if e.State != client.StateReconnected && e.State != client.StateLogined {
		t.Fatalf("%s: %v", room, e)
	}
	return e.State
}

// restoreOnClock moves a client's clock on in small steps (the backoff
// between reconnection attempts runs on it) until room is usable again, and
// reports how: Reconnected or Logined. Other callbacks are skipped.
func restoreOnClock(t *testing.T, clock *estest.Clock, r *rec, room string) client.RoomState {
	t.Helper()
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); {
		clock.Advance(50 * time.Millisecond)
		e, ok := r.TryNext(20 * time.Millisecond)
		if !ok || e.Kind != "state" || e.Room != room || e.State == client.StateReconnecting {
			continue
		}
		if e.State != client.StateReconnected && e.State != client.StateLogined {
			t.Fatalf("%s: %v", room, e)
		}
		return e.State
	}
	t.Fatalf("%s: not restored", room)
	return ""
}

// A cut connection: Reconnecting in every room, then the session is back
// (resumed, or logged in again with the same room mode) and works.
func TestReconnectAfterCut(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	p := netcut.Start(t, n.HTTPAddr())
	ra, rb := newRec(t, "alice"), newRec(t, "bob")
	ra.AllowReconnects()
	a := dial(t, clienttest.URL(p.Addr()), ra, fastRetry)
	b := dial(t, wsURL(n), rb, nil)
	if err := a.SetRoomMode(ctx(t), client.MultiRoom); err != nil {
		t.Fatal(err)
	}
	login(t, n, a, ra, "r1", "alice")
	login(t, n, a, ra, "r2", "alice")
	login(t, n, b, rb, "r1", "bob")
	ra.WaitUsers("r1", client.UpdateAdd, "bob")
	before := a.Session()

	p.Cut()
	got := map[string]ev{}
	for len(got) < 2 {
		e := ra.WaitFor("Reconnecting", func(e ev) bool { return e.Kind == "state" && e.State == client.StateReconnecting })
		got[e.Room] = e
	}
	for room, e := range got {
		if e.Code != 1002051 || e.Info.Reason != "connection_lost" {
			t.Errorf("%s: %+v", room, e)
		}
	}
	s1, s2 := waitRestored(t, ra, "r1"), waitRestored(t, ra, "r2")
	t.Logf("restored as %s/%s; session %s → %s", s1, s2, before, a.Session())
	if (s1 == client.StateReconnected) != (a.Session() == before) {
		t.Errorf("restored as %s but the session went from %s to %s", s1, before, a.Session())
	}

	// Both directions work, in both rooms, and the room mode survived. The
	// query first: its reply comes after the server finished replaying, and
	// an event sent during the replay can be lost (a gateway bug, see
	// TestResumeLosesConcurrentEvent).
	if _, err := a.QueryRoom(ctx(t), "r1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SendBroadcastMessage(ctx(t), "r1", "are you back?"); err != nil {
		t.Fatal(err)
	}
	ra.WaitFor("bob's message", func(e ev) bool {
		return e.Kind == "broadcast" && e.Room == "r1" && e.Msgs[0].Message == "are you back?"
	})
	if _, err := a.SendBroadcastMessage(ctx(t), "r1", "yes"); err != nil {
		t.Fatal(err)
	}
	rb.WaitFor("alice's answer", func(e ev) bool { return e.Kind == "broadcast" && e.Msgs[0].Message == "yes" })
	if _, err := a.StartPublishingStream(ctx(t), "sa", client.PublishOptions{}); !errors.Is(err, domain.ErrPublishRoomRequired) {
		t.Errorf("the room mode was not restored: publish without a room gave %v", err)
	}
	if room, err := a.StartPublishingStream(ctx(t), "sa", client.PublishOptions{Room: "r2"}); err != nil || room != "r2" {
		t.Errorf("publish in r2 after reconnecting: %q, %v", room, err)
	}
}

// Silence without a broken socket: after two heartbeat intervals without a
// frame (on the client's clock) the client gives the connection up and
// reconnects; one interval of silence is not enough.
func TestReconnectAfterSilence(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	p := netcut.Start(t, n.HTTPAddr())
	clock := estest.NewClock(time.Now())
	ra := newRec(t, "alice")
	ra.AllowReconnects()
	a := dial(t, clienttest.URL(p.Addr()), ra, func(o *client.Options) {
		fastRetry(o)
		o.Clock = clienttest.ClientClock(clock)
	})
	login(t, n, a, ra, "r1", "alice")

	p.Drop()
	clock.Advance(clienttest.Heartbeat + clienttest.Heartbeat/2) // one heartbeat sent into the void
	if e, ok := ra.TryNext(100 * time.Millisecond); ok && e.Kind == "state" {
		t.Fatalf("after 1.5 intervals of silence: %v", e)
	}
	// Two intervals after the last frame the watchdog gives up. A frame
	// still on its way when the proxy began dropping (on a busy machine,
	// the room's online count) may have come a little later, so the clock
	// moves on in steps until it does, within a few intervals.
	for moved := 3 * clienttest.Heartbeat / 2; ; moved += clienttest.Heartbeat / 2 {
		if moved > 4*clienttest.Heartbeat {
			// The clock is well past the watchdog: give a loaded machine
			// its time to report it before failing.
			if reconnectingWithin(t, ra, wait) {
				break
			}
			t.Fatalf("no Reconnecting after %v of silence (heartbeat %v)", moved, clienttest.Heartbeat)
		}
		clock.Advance(clienttest.Heartbeat / 2)
		if reconnectingWithin(t, ra, 200*time.Millisecond) {
			break
		}
	}
	restoreOnClock(t, clock, ra, "r1")
	if _, err := a.QueryRoom(ctx(t), "r1"); err != nil {
		t.Fatalf("query after reconnecting: %v", err)
	}
}

// reconnectingWithin reads r's callbacks for d and reports whether r1 went
// Reconnecting; callbacks other than state changes (a room event that came
// late) are passed over.
func reconnectingWithin(t *testing.T, r *rec, d time.Duration) bool {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		e, ok := r.TryNext(time.Until(deadline))
		if !ok {
			return false
		}
		if e.Kind == "state" {
			if e.Room != "r1" || e.State != client.StateReconnecting {
				t.Fatalf("while the connection is silent: %v", e)
			}
			return true
		}
	}
	return false
}

// Requests wait for the connection while the client reconnects, bounded by
// their context and the request timeout; a request in flight when the
// connection dies fails with 1002051.
func TestRequestsWhileReconnecting(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	p := netcut.Start(t, n.HTTPAddr())
	ra, rb := newRec(t, "alice"), newRec(t, "bob")
	ra.AllowReconnects()
	// The request timeout and the retries run on a clock the test moves: the
	// login and the last request, slow on a loaded machine, are not cut short.
	clock := estest.NewClock(time.Now())
	a := dial(t, clienttest.URL(p.Addr()), ra, func(o *client.Options) {
		fastRetry(o)
		o.RequestTimeout, o.Clock = 10*time.Second, clienttest.ClientClock(clock)
	})
	b := dial(t, wsURL(n), rb, nil)
	login(t, n, a, ra, "r1", "alice")
	login(t, n, b, rb, "r1", "bob")

	p.Refuse(true)
	p.Cut()
	ra.WaitState("r1", client.StateReconnecting)
	waitRefused(t, p)
	short, cancel := context.WithTimeout(ctx(t), 50*time.Millisecond)
	defer cancel()
	if _, err := a.SendBroadcastMessage(short, "r1", "lost"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("request bounded by its context while reconnecting: %v", err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := a.SendBroadcastMessage(ctx(t), "r1", "lost too")
		errc <- err
	}()
	err, moved := moveUntil(t, clock, 250*time.Millisecond, errc)
	var ce *client.Error
	if !errors.Is(err, domain.ErrTimeout) || !errors.As(err, &ce) || ce.Op != protocol.OpBroadcast {
		t.Errorf("request bounded by RequestTimeout while reconnecting: %v", err)
	} else if moved < 10*time.Second {
		t.Errorf("timed out after the clock moved %v, RequestTimeout is 10s", moved)
	}

	go func() {
		_, err := a.SendBroadcastMessage(ctx(t), "r1", "sent once back")
		errc <- err
	}()
	// One more attempt refused after the request was made, then the way
	// opens: the next attempt, on the clock's next step, restores the link.
	for len(p.Refused()) > 0 {
		<-p.Refused()
	}
	refused := make(chan error, 1)
	go func() { <-p.Refused(); refused <- nil }()
	moveUntil(t, clock, 20*time.Millisecond, refused)
	p.Refuse(false)
	if err, _ := moveUntil(t, clock, 20*time.Millisecond, errc); err != nil {
		t.Fatalf("request made while reconnecting: %v", err)
	}
	rb.WaitFor("the waiting message", func(e ev) bool { return e.Kind == "broadcast" && e.Msgs[0].Message == "sent once back" })
}

// moveUntil moves clock on by step every 20 ms of real time until errc
// receives, and says how far it moved.
func moveUntil(t *testing.T, clock *estest.Clock, step time.Duration, errc <-chan error) (error, time.Duration) {
	t.Helper()
	var moved time.Duration
	for deadline := time.Now().Add(wait); ; moved += step {
		select {
		case err := <-errc:
			return err, moved
		case <-time.After(20 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatalf("nothing after the clock moved %v", moved)
			}
			clock.Advance(step)
		}
	}
}

func TestRequestTimeoutAndCancel(t *testing.T) {
	t.Parallel()
	// A long heartbeat: a frozen connection is not noticed during the test.
	n := startNode(t, gateway.Config{HeartbeatInterval: time.Minute})
	p := netcut.Start(t, n.HTTPAddr())
	ra := newRec(t, "alice")
	// The request timeout runs on a clock the test moves: the login, on a
	// loaded machine slower than 300 ms, is not cut short by it.
	clock := estest.NewClock(time.Now())
	a := dial(t, clienttest.URL(p.Addr()), ra, func(o *client.Options) {
		o.RequestTimeout, o.Clock = 300*time.Millisecond, clienttest.ClientClock(clock)
	})
	login(t, n, a, ra, "r1", "alice")

	p.Drop()
	errc := make(chan error, 1)
	go func() {
		_, err := a.SendBroadcastMessage(ctx(t), "r1", "into the void")
		errc <- err
	}()
	err, moved := moveUntil(t, clock, 50*time.Millisecond, errc)
	var ce *client.Error
	if !errors.Is(err, domain.ErrTimeout) || !errors.As(err, &ce) || ce.Code != 1002053 || ce.Op != protocol.OpBroadcast {
		t.Fatalf("no reply: %v", err)
	}
	if moved < 300*time.Millisecond {
		t.Errorf("timed out after the clock moved %v, RequestTimeout is 300ms", moved)
	}
	short, cancel := context.WithTimeout(ctx(t), 50*time.Millisecond)
	defer cancel()
	if _, err := a.QueryRoom(short, "r1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("context deadline: %v", err)
	}
	cancelled, cancel2 := context.WithCancel(ctx(t))
	cancel2()
	if _, err := a.QueryRoom(cancelled, "r1"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

// The window runs out: ReconnectFailed (1002053) in every room, and every
// method fails with 1002053.
func TestReconnectWindowRunsOut(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	p := netcut.Start(t, n.HTTPAddr())
	ra := newRec(t, "alice")
	ra.AllowReconnects()
	a := dial(t, clienttest.URL(p.Addr()), ra, func(o *client.Options) { fastRetry(o); o.ReconnectWindow = 300 * time.Millisecond })
	if err := a.SetRoomMode(ctx(t), client.MultiRoom); err != nil {
		t.Fatal(err)
	}
	login(t, n, a, ra, "r1", "alice")
	login(t, n, a, ra, "r2", "alice")

	p.Refuse(true)
	p.Cut()
	var failed []string
	for len(failed) < 2 {
		e := ra.WaitFor("ReconnectFailed", func(e ev) bool { return e.Kind == "state" && e.State == client.StateReconnectFailed })
		if e.Code != 1002053 {
			t.Errorf("ReconnectFailed %+v", e)
		}
		failed = append(failed, e.Room)
	}
	slices.Sort(failed)
	if !slices.Equal(failed, []string{"r1", "r2"}) {
		t.Errorf("ReconnectFailed in %v", failed)
	}
	if _, err := a.QueryRoom(ctx(t), "r1"); !errors.Is(err, domain.ErrTimeout) {
		t.Errorf("a method after ReconnectFailed: %v", err)
	}
	p.Refuse(false)
	if err := a.Close(); err != nil {
		t.Error(err)
	}
}

// A server shutting down says why before it closes the connection; the
// client then tries to reconnect.
func TestSessionClosingOnShutdown(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	ra := newRec(t, "alice")
	ra.AllowReconnects()
	a := dial(t, wsURL(n), ra, func(o *client.Options) { fastRetry(o); o.ReconnectWindow = 200 * time.Millisecond })
	login(t, n, a, ra, "r1", "alice")

	sctx, cancel := context.WithTimeout(ctx(t), wait)
	defer cancel()
	go n.Gateway.Shutdown(sctx)
	e := ra.WaitKind("closing", "")
	if e.Code != protocol.ErrShuttingDown.Code || e.Name != "shutting_down" {
		t.Errorf("session closing %+v", e)
	}
	ra.WaitState("r1", client.StateReconnecting)
	ra.WaitState("r1", client.StateReconnectFailed)
}

// ---- resume (needs the server's side of resume) ----

// mustResume fails a test whose server issued no resume token: every
// session can be resumed.
func mustResume(t *testing.T, c *client.Client) {
	t.Helper()
	if client.ResumeToken(c) == "" {
		t.Fatal("the server's hello carries no resume_token")
	}
}

// Case 1 of the seed: the client comes back before the heartbeat timeout.
// Other members see nothing; the client gets Reconnected, then every event
// it missed, in order, without gap.
func TestResumeBeforeTimeout(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	p := netcut.Start(t, n.HTTPAddr())
	ra, rb := newRec(t, "alice"), newRec(t, "bob")
	ra.AllowReconnects()
	a := dial(t, clienttest.URL(p.Addr()), ra, fastRetry)
	mustResume(t, a)
	b := dial(t, wsURL(n), rb, nil)
	login(t, n, a, ra, "r1", "alice")
	login(t, n, b, rb, "r1", "bob")
	ra.WaitUsers("r1", client.UpdateAdd, "bob")
	rb.WaitUsers("r1", client.UpdateAdd, "alice") // the ADD after bob's login
	session := a.Session()

	p.Refuse(true)
	p.Cut()
	ra.WaitState("r1", client.StateReconnecting)
	for _, m := range []string{"m1", "m2", "m3"} {
		if _, err := b.SendBroadcastMessage(ctx(t), "r1", m); err != nil {
			t.Fatal(err)
		}
	}
	p.Refuse(false)
	if e := ra.WaitState("r1", client.StateReconnected); e.Code != 0 {
		t.Errorf("Reconnected %+v", e)
	}
	for _, m := range []string{"m1", "m2", "m3"} {
		if e := ra.Next(); e.Kind != "broadcast" || e.Msgs[0].Message != m {
			t.Fatalf("after Reconnected: %v, want broadcast %s", e, m)
		}
	}
	if a.Session() != session {
		t.Errorf("session %s after resuming %s", a.Session(), session)
	}
	if _, err := a.SendBroadcastMessage(ctx(t), "r1", "back"); err != nil {
		t.Fatal(err)
	}
	e := rb.WaitFor("alice's message", func(e ev) bool {
		return e.Kind == "broadcast" || (e.Kind == "user" && clienttest.HasUser(e.Users, "alice"))
	})
	if e.Kind != "broadcast" {
		t.Errorf("bob saw %v while alice was away", e)
	}
}

// A resumed session keeps the token it logged in with: the app may enter a
// room again without passing one, as before the connection dropped (the
// client sends its token with the resume).
func TestAResumedSessionKeepsItsToken(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	p := netcut.Start(t, n.HTTPAddr())
	ra := newRec(t, "alice")
	ra.AllowReconnects()
	a := dial(t, clienttest.URL(p.Addr()), ra, fastRetry)
	mustResume(t, a)
	login(t, n, a, ra, "r1", "alice")
	session := a.Session()

	p.Refuse(true)
	p.Cut()
	ra.WaitState("r1", client.StateReconnecting)
	p.Refuse(false)
	ra.WaitState("r1", client.StateReconnected)
	if a.Session() != session {
		t.Fatalf("session %s after resuming %s", a.Session(), session)
	}
	if err := a.LogoutRoom(ctx(t), "r1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.LoginRoom(ctx(t), "r1", clienttest.User("alice"), client.LoginOptions{}); err != nil {
		t.Errorf("logging in again without a token after the resume: %v", err)
	}
}

// Case 2: the client comes back after the heartbeat timeout. Others saw the
// user leave; the resume fails, the client adopts a new session, restores
// its room mode and enters its rooms again as it first did (ZEGO login, ZIM
// join); others see the user ADDed. A room that cannot be entered again gets
// one LoginFailed.
func TestResumeAfterTimeout(t *testing.T) {
	t.Parallel()
	clock := estest.NewClock(time.Now()) // the server's: heartbeat timeouts run on it
	n := startNodeClocked(t, gateway.Config{HeartbeatTimeout: time.Minute}, clock)
	p := netcut.Start(t, n.HTTPAddr())
	ra, rb, rc, rd := newRec(t, "alice"), newRec(t, "bob"), newRec(t, "carol"), newRec(t, "dave")
	ra.AllowReconnects()
	rc.AllowReconnects()
	a := dial(t, clienttest.URL(p.Addr()), ra, fastRetry)
	mustResume(t, a)
	c := dial(t, clienttest.URL(p.Addr()), rc, fastRetry)
	b, d := dial(t, wsURL(n), rb, nil), dial(t, wsURL(n), rd, nil)
	login(t, n, b, rb, "r1", "bob")
	login(t, n, d, rd, "z2", "dave")
	// Alice: ZEGO, multi-room, two rooms.
	if err := a.SetRoomMode(ctx(t), client.MultiRoom); err != nil {
		t.Fatal(err)
	}
	login(t, n, a, ra, "r1", "alice")
	login(t, n, a, ra, "r2", "alice")
	// Carol: ZIM, joins r1 and dave's z2.
	carol := client.RoomOptions{User: &client.User{ID: "carol"}, Token: token(t, n, "carol")}
	for _, room := range []string{"r1", "z2"} {
		if _, err := c.JoinRoom(ctx(t), room, carol); err != nil {
			t.Fatal(err)
		}
		rc.WaitState(room, client.StateLogined)
	}
	sessions := []string{a.Session(), c.Session()}

	p.Refuse(true)
	p.Cut() // the server hears nothing more and times both sessions out
	ra.WaitState("r1", client.StateReconnecting)
	rc.WaitState("z2", client.StateReconnecting)
	clock.Advance(time.Minute - time.Second)
	// Bob and dave are heard from on time: any request proves a client
	// alive, as a heartbeat does.
	for alive, room := range map[*client.Client]string{b: "r1", d: "z2"} {
		if _, err := alive.QueryRoom(ctx(t), room); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2 * time.Second)
	gone := map[string]bool{}
	for len(gone) < 2 {
		e := rb.WaitFor("users DELETEd", func(e ev) bool { return e.Kind == "user" && e.Type == client.UpdateDelete })
		for _, u := range e.Users {
			gone[u.ID] = true
		}
	}
	// z2 disappears while carol is away: she cannot join it again.
	if _, err := n.Engine.Execute(ctx(t), domain.Meta{App: "dev"}, domain.DestroyRoom{Room: "z2"}); err != nil {
		t.Fatal(err)
	}
	rd.WaitState("z2", client.StateLogout)
	p.Refuse(false)

	ra.WaitState("r1", client.StateLogined)
	ra.WaitState("r2", client.StateLogined)
	rc.WaitState("r1", client.StateLogined)
	if e := rc.WaitState("z2", client.StateLoginFailed); e.Code != domain.ErrRoomNotExist.Code {
		t.Errorf("carol's LoginFailed in z2: %+v", e)
	}
	back := map[string]bool{}
	for len(back) < 2 {
		e := rb.WaitFor("users ADDed", func(e ev) bool { return e.Kind == "user" && e.Type == client.UpdateAdd })
		for _, u := range e.Users {
			back[u.ID] = true
		}
	}
	if !back["alice"] || !back["carol"] {
		t.Errorf("bob saw %v come back", back)
	}
	if a.Session() == sessions[0] || c.Session() == sessions[1] {
		t.Errorf("sessions %v kept after the server timed them out: %s, %s", sessions, a.Session(), c.Session())
	}

	// The mode survived the new session; both clients work.
	if _, err := a.StartPublishingStream(ctx(t), "sa", client.PublishOptions{}); !errors.Is(err, domain.ErrPublishRoomRequired) {
		t.Errorf("the room mode was not restored: publish without a room gave %v", err)
	}
	if _, err := a.StartPublishingStream(ctx(t), "sa", client.PublishOptions{Room: "r2"}); err != nil {
		t.Errorf("publish in r2: %v", err)
	}
	if _, err := b.SendBroadcastMessage(ctx(t), "r1", "welcome back"); err != nil {
		t.Fatal(err)
	}
	e := rc.WaitFor("the broadcast", func(e ev) bool {
		return e.Kind == "broadcast" || (e.Kind == "state" && e.State == client.StateLoginFailed)
	})
	if e.Kind != "broadcast" {
		t.Errorf("carol got a second LoginFailed: %v", e)
	}
	ra.WaitFor("the broadcast", func(e ev) bool { return e.Kind == "broadcast" && e.Msgs[0].Message == "welcome back" })
}

// A session resumed on another connection closes the first with
// session_replaced, and the first client does not take it back.
func TestSessionReplaced(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	ra := newRec(t, "alice")
	a := dial(t, wsURL(n), ra, fastRetry)
	mustResume(t, a)
	snap := login(t, n, a, ra, "r1", "alice")

	ws, _, err := websocket.Dial(ctx(t), wsURL(n), &websocket.DialOptions{Subprotocols: []string{protocol.Subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if _, _, err := ws.Read(ctx(t)); err != nil { // hello
		t.Fatal(err)
	}
	data, _ := json.Marshal(protocol.ResumeRequest{ResumeToken: client.ResumeToken(a), Rooms: map[string]uint64{"r1": snap.Seq}})
	req, _ := json.Marshal(protocol.Request{ID: "1", Op: protocol.OpResume, Data: data})
	if err := ws.Write(ctx(t), websocket.MessageText, req); err != nil {
		t.Fatal(err)
	}
	e := ra.WaitKind("closing", "")
	if e.Code != protocol.ErrSessionReplaced.Code {
		t.Fatalf("session closing %+v", e)
	}
	deadline := time.Now().Add(wait)
	for {
		_, err := a.QueryRoom(ctx(t), "r1")
		if errors.Is(err, protocol.ErrSessionReplaced) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after session_replaced a method gave %v", err)
		}
	}
}

// A connection that lives longer than its resume token gets fresh tokens on
// its heartbeats: after twice the token's lifetime, a cut still resumes the
// session instead of starting a new one.
func TestResumeAfterTheFirstTokenExpired(t *testing.T) {
	t.Parallel()
	clock := estest.NewClock(time.Now())
	// Tokens last 11 min (window + timeout); renewed after 5.5.
	n := startNodeClocked(t, gateway.Config{ResumeWindow: time.Minute, HeartbeatTimeout: 10 * time.Minute}, clock)
	p := netcut.Start(t, n.HTTPAddr())
	ra := newRec(t, "alice")
	ra.AllowReconnects()
	beats := estest.NewClock(time.Now()) // the client's: one step, one heartbeat
	a := dial(t, clienttest.URL(p.Addr()), ra, func(o *client.Options) {
		fastRetry(o)
		o.Clock = clienttest.ClientClock(beats)
	})
	login(t, n, a, ra, "r1", "alice")
	session := a.Session()

	tokens := map[string]bool{client.ResumeToken(a): true}
	for range 2 {
		clock.Advance(6 * time.Minute)
		beats.Advance(clienttest.Heartbeat)
		deadline := time.Now().Add(wait)
		for tokens[client.ResumeToken(a)] { // the next heartbeat brings a new one
			if time.Now().After(deadline) {
				t.Fatal("no fresh resume token after 6 minutes")
			}
			time.Sleep(5 * time.Millisecond)
		}
		tokens[client.ResumeToken(a)] = true
	}
	// 12 minutes on, the hello's token has expired; the latest has not.
	p.Cut()
	ra.WaitState("r1", client.StateReconnecting)
	if st := restoreOnClock(t, beats, ra, "r1"); st != client.StateReconnected {
		t.Fatalf("after the cut: %s, want Reconnected (the session resumed)", st)
	}
	if a.Session() != session {
		t.Errorf("session %s after resuming %s", a.Session(), session)
	}
}

// A login whose reply is lost with the connection leaves the session in a
// room the app was told it could not enter. The resume names that room, and
// the client leaves it: the server's view matches the app's again.
func TestResumeLeavesARoomEnteredByALostLogin(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	p := netcut.Start(t, n.HTTPAddr())
	ra, rb := newRec(t, "alice"), newRec(t, "bob")
	ra.AllowReconnects()
	clock := estest.NewClock(time.Now())
	a := dial(t, clienttest.URL(p.Addr()), ra, func(o *client.Options) {
		fastRetry(o)
		o.Clock = clienttest.ClientClock(clock)
	})
	b := dial(t, wsURL(n), rb, nil)
	if err := a.SetRoomMode(ctx(t), client.MultiRoom); err != nil {
		t.Fatal(err)
	}
	login(t, n, a, ra, "r1", "alice")
	login(t, n, b, rb, "r2", "bob")
	session := a.Session()

	p.MuteServer() // the server hears alice; alice hears nothing
	errc := make(chan error, 1)
	go func() {
		_, err := a.LoginRoom(ctx(t), "r2", client.User{ID: "alice", Name: "Alice"}, client.LoginOptions{Token: token(t, n, "alice")})
		errc <- err
	}()
	rb.WaitUsers("r2", client.UpdateAdd, "alice") // the login took effect
	clock.Advance(2 * clienttest.Heartbeat)       // alice's client hears nothing and gives up
	if err := <-errc; err == nil {
		t.Fatal("a login whose reply never came succeeded")
	}
	ra.WaitState("r1", client.StateReconnecting)
	if st := restoreOnClock(t, clock, ra, "r1"); st != client.StateReconnected {
		t.Fatalf("after the lost reply: %s, want Reconnected", st)
	}
	rb.WaitUsers("r2", client.UpdateDelete, "alice")
	if a.Session() != session {
		t.Errorf("session %s after resuming %s", a.Session(), session)
	}
	// The app can enter r2 now, as it would after any failed login.
	login(t, n, a, ra, "r2", "alice")
	rb.WaitUsers("r2", client.UpdateAdd, "alice")
}
