package tests

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/netcut"
	"github.com/roomlog/roomlog/transport/client"
)

// The seed's room connection status cases, end to end: a node on a fake
// clock (so the 90 s heartbeat timeout is reached by Advance, not by
// waiting), clients over real sockets through a proxy that breaks the
// connection the ways networks do.

// quickRetry makes reconnection attempts quick (on the client's real clock).
func quickRetry(o *client.Options) {
	o.BackoffMin, o.BackoffMax = 10*time.Millisecond, 50*time.Millisecond
}

// beating is a client on a clock of its own, which only the test moves: the
// client heartbeats when advance moves that clock on, never because the
// machine was slow.
type beating struct {
	c     *client.Client
	clock *estest.Clock
}

// dialBeating dials a client on a clock of its own.
func dialBeating(t *testing.T, url string, r *clienttest.Recorder) beating {
	b := beating{clock: estest.NewClock(time.Now())}
	b.c = clienttest.Dial(t, url, r, func(o *client.Options) { o.Clock = clienttest.ClientClock(b.clock) })
	return b
}

// advance moves the node's clock by d in steps of at most 30 s; after each
// step every client in alive heartbeats (its own clock moves one interval)
// and advance waits until presence heard it at the new time: live clients
// keep heartbeating while the clock jumps, so only the silent ones time out.
func advance(t *testing.T, n *node.Node, clock *estest.Clock, d time.Duration, alive ...beating) {
	t.Helper()
	for d > 0 {
		step := min(d, 30*time.Second)
		clock.Advance(step)
		d -= step
		for _, b := range alive {
			b.clock.Advance(clienttest.Heartbeat)
			waitHeard(t, n, clock, b.c)
			// The reply to a request sent now comes after the heartbeat's:
			// once it is back, the client has read the heartbeat's reply
			// too, and its silence watchdog counts from this step, not
			// from the one before (which the next step would take for two
			// silent intervals).
			b.c.QueryRoom(clienttest.Ctx(t), "advance-probe") //nolint:errcheck // any reply will do
		}
	}
}

// waitHeard waits until presence has heard from c's session at the clock's
// current time.
func waitHeard(t *testing.T, n *node.Node, clock *estest.Clock, c *client.Client) {
	t.Helper()
	deadline := time.Now().Add(clienttest.Wait)
	for {
		r, ok, err := n.Presence.Lookup(clienttest.Ctx(t), domain.SessionID(c.Session()))
		if err == nil && ok && !r.LastSeen.Before(clock.Now()) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s not heard from since %v (record %+v, %v, %v)", c.Session(), clock.Now(), r, ok, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// skipOnline returns the next callback that is not an online count.
func skipOnline(r *clienttest.Recorder) clienttest.Event {
	for {
		if e := r.Next(); e.Kind != "online" {
			return e
		}
	}
}

// Seed case 1: the network drops the client (the TCP connection is closed
// under it) and it comes back 60 s later, within the heartbeat timeout. It
// reports Reconnecting then Reconnected, gets what it missed in order, and
// the other members never saw it leave.
func TestSeedCase1ReconnectWithinTheTimeout(t *testing.T) {
	t.Parallel()
	clock := estest.NewClock(time.Now())
	n := clienttest.StartNode(t, clienttest.NodeOptions{Clock: clock})
	p := netcut.Start(t, n.HTTPAddr())
	ra, rb := clienttest.NewRecorder(t, "alice"), clienttest.NewRecorder(t, "bob")
	ra.AllowReconnects()
	a := clienttest.Dial(t, clienttest.URL(p.Addr()), ra, quickRetry)
	bob := dialBeating(t, clienttest.URL(n.HTTPAddr()), rb)
	b := bob.c
	clienttest.Login(t, n, a, ra, "class", "alice")
	clienttest.Login(t, n, b, rb, "class", "bob")
	ra.WaitUsers("class", client.UpdateAdd, "bob")
	rb.WaitUsers("class", client.UpdateAdd, "alice") // the room's members, after bob's login
	session := a.Session()

	p.Refuse(true)
	p.Cut()
	if e := ra.WaitState("class", client.StateReconnecting); e.Code != domain.ErrReconnecting.Code {
		t.Errorf("Reconnecting with code %d, want %d", e.Code, domain.ErrReconnecting.Code)
	}
	for i := range 3 {
		if _, err := b.SendBroadcastMessage(clienttest.Ctx(t), "class", fmt.Sprint("missed ", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.SetRoomExtraInfo(clienttest.Ctx(t), "class", "topic", "fractions"); err != nil {
		t.Fatal(err)
	}
	advance(t, n, clock, 60*time.Second, bob)
	p.Refuse(false)

	if e := ra.WaitState("class", client.StateReconnected); e.Code != 0 {
		t.Errorf("Reconnected with code %d", e.Code)
	}
	for i := range 3 {
		if e := skipOnline(ra); e.Kind != "broadcast" || e.Msgs[0].Message != fmt.Sprint("missed ", i) {
			t.Fatalf("missed event %d: %v, want broadcast %q", i, e, fmt.Sprint("missed ", i))
		}
	}
	if e := skipOnline(ra); e.Kind != "extra_info" || e.Items[0].Value != "fractions" {
		t.Fatalf("after the broadcasts: %v, want the extra info", e)
	}
	if a.Session() != session {
		t.Errorf("session %s after resuming %s", a.Session(), session)
	}
	// Bob saw nothing of alice's interruption: her next message is the first
	// thing he hears of her.
	if _, err := a.SendBroadcastMessage(clienttest.Ctx(t), "class", "back"); err != nil {
		t.Fatal(err)
	}
	e := rb.WaitFor("alice's message", func(e clienttest.Event) bool {
		return e.Kind == "broadcast" || (e.Kind == "user" && clienttest.HasUser(e.Users, "alice"))
	})
	if e.Kind != "broadcast" {
		t.Errorf("bob saw %v while alice was away", e)
	}
}

// Seed case 2: the client stops answering (its connection stays open but
// nothing gets through, as with a client that stopped reading) and comes
// back after the timeout. At 90 s the server records the timeout: the
// others get the user and stream DELETEs, not a second earlier. The client's
// resume is refused; it logs in again (the others get ADD) and receives the
// room's current state, including what changed while it was away.
func TestSeedCase2ComeBackAfterTheTimeout(t *testing.T) {
	t.Parallel()
	clock := estest.NewClock(time.Now())
	n := clienttest.StartNode(t, clienttest.NodeOptions{Clock: clock})
	p := netcut.Start(t, n.HTTPAddr())
	ra, rb := clienttest.NewRecorder(t, "alice"), clienttest.NewRecorder(t, "bob")
	ra.AllowReconnects()
	alice := dialBeating(t, clienttest.URL(p.Addr()), ra)
	a := alice.c
	bob := dialBeating(t, clienttest.URL(n.HTTPAddr()), rb)
	b := bob.c
	clienttest.Login(t, n, a, ra, "class", "alice")
	clienttest.Login(t, n, b, rb, "class", "bob")
	if _, err := a.StartPublishingStream(clienttest.Ctx(t), "alice-cam", client.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	rb.WaitStreams("class", client.UpdateAdd, "alice-cam")
	waitHeard(t, n, clock, a)
	session := a.Session()

	p.Refuse(true)
	p.Drop()
	alice.clock.Advance(2 * clienttest.Heartbeat) // two intervals without a frame
	ra.WaitState("class", client.StateReconnecting)
	if err := b.SetRoomExtraInfo(clienttest.Ctx(t), "class", "topic", "geometry"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.StartPublishingStream(clienttest.Ctx(t), "bob-cam", client.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	advance(t, n, clock, 89*time.Second, bob)
	snap, err := b.QueryRoom(clienttest.Ctx(t), "class")
	if err != nil {
		t.Fatal(err)
	}
	if !clienttest.HasUser(snap.Users, "alice") {
		t.Fatalf("alice left the room before the timeout: %v", snap.Users)
	}
	advance(t, n, clock, 2*time.Second, bob)
	var userGone, streamGone bool
	for !userGone || !streamGone {
		e := rb.WaitFor("alice's DELETEs", func(e clienttest.Event) bool {
			return (e.Kind == "user" || e.Kind == "stream") && e.Type == client.UpdateDelete
		})
		userGone = userGone || (e.Kind == "user" && clienttest.HasUser(e.Users, "alice"))
		streamGone = streamGone || (e.Kind == "stream" && e.Streams[0].Stream == "alice-cam")
	}

	p.Refuse(false)
	ra.PumpUntil(alice.clock, "Logined in class", func(e clienttest.Event) bool { // the backoff runs on alice's clock
		return e.Kind == "state" && e.Room == "class" && e.State == client.StateLogined
	})
	rb.WaitUsers("class", client.UpdateAdd, "alice")
	if a.Session() == session {
		t.Errorf("the timed-out session %s was resumed", session)
	}
	// The room's current state, as a fresh login gets it.
	ra.WaitStreams("class", client.UpdateAdd, "bob-cam")
	ra.WaitFor("the extra info set while away", func(e clienttest.Event) bool {
		return e.Kind == "extra_info" && e.Room == "class" && len(e.Items) > 0 && e.Items[0].Value == "geometry"
	})
}

// Seed case 3: the network stays down past the retry window (20 min by
// default, on the client's clock). Until then the client keeps trying and
// reports nothing new; then every room gets ReconnectFailed (1002053) and
// every method fails with that code.
func TestSeedCase3GiveUpAfterTheRetryWindow(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, clienttest.NodeOptions{})
	p := netcut.Start(t, n.HTTPAddr())
	clock := estest.NewClock(time.Now())
	ra := clienttest.NewRecorder(t, "alice")
	ra.AllowReconnects()
	a := clienttest.Dial(t, clienttest.URL(p.Addr()), ra, func(o *client.Options) {
		o.Clock = clienttest.ClientClock(clock)
	})
	if err := a.SetRoomMode(clienttest.Ctx(t), client.MultiRoom); err != nil {
		t.Fatal(err)
	}
	clienttest.Login(t, n, a, ra, "r1", "alice")
	clienttest.Login(t, n, a, ra, "r2", "alice")

	p.Refuse(true)
	p.Cut()
	ra.WaitState("r1", client.StateReconnecting)
	ra.WaitState("r2", client.StateReconnecting)
	attempts := 0
	for elapsed := time.Duration(0); elapsed < 19*time.Minute+30*time.Second; elapsed += 30 * time.Second {
		waitPending(t, clock) // the client is waiting to try again
		clock.Advance(30 * time.Second)
		attempts += drain(p.Refused())
		if e, ok := ra.TryNext(0); ok && e.Kind != "online" {
			t.Fatalf("at %v: %v, want nothing before the window ends", elapsed+30*time.Second, e)
		}
	}
	if attempts < 20 {
		t.Errorf("%d reconnection attempts in 19.5 min, want one at least every 30 s", attempts)
	}
	waitPending(t, clock)
	clock.Advance(time.Minute)
	failed := map[string]domain.Code{}
	for len(failed) < 2 {
		e := ra.WaitFor("ReconnectFailed", func(e clienttest.Event) bool {
			return e.Kind == "state" && e.State == client.StateReconnectFailed
		})
		failed[e.Room] = e.Code
	}
	if want := (map[string]domain.Code{"r1": domain.ErrTimeout.Code, "r2": domain.ErrTimeout.Code}); !maps.Equal(failed, want) {
		t.Errorf("ReconnectFailed %v, want %v", failed, want)
	}
	if _, err := a.SendBroadcastMessage(clienttest.Ctx(t), "r1", "anyone?"); !errors.Is(err, domain.ErrTimeout) {
		t.Errorf("a method after ReconnectFailed: %v, want code %d", err, domain.ErrTimeout.Code)
	}
}

// waitPending waits until something is scheduled on the clock.
func waitPending(t *testing.T, clock *estest.Clock) {
	t.Helper()
	deadline := time.Now().Add(clienttest.Wait)
	for clock.Pending() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("nothing scheduled on the client's clock")
		}
		time.Sleep(time.Millisecond)
	}
}

// drain counts what is waiting on ch, without blocking.
func drain(ch <-chan struct{}) int {
	n := 0
	for {
		select {
		case <-ch:
			n++
		default:
			return n
		}
	}
}

// roomView is what a client knows of a room: its members, streams (with
// their extra info) and extra info, folded from the login snapshot and the
// callbacks since.
type roomView struct {
	users   map[string]string // ID → name
	streams map[string]string // stream → extra info
	extra   map[string]string
}

func newRoomView(s *client.RoomSnapshot) *roomView {
	v := &roomView{users: map[string]string{}, streams: map[string]string{}, extra: map[string]string{}}
	for _, u := range s.Users {
		v.users[u.ID] = u.Name
	}
	for _, st := range s.Streams {
		v.streams[st.Stream] = st.ExtraInfo
	}
	for _, x := range s.ExtraInfo {
		v.extra[x.Key] = x.Value
	}
	return v
}

// apply folds one callback into the view.
func (v *roomView) apply(e clienttest.Event) {
	switch e.Kind {
	case "user":
		for _, u := range e.Users {
			if e.Type == client.UpdateAdd {
				v.users[u.ID] = u.Name
			} else {
				delete(v.users, u.ID)
			}
		}
	case "stream", "stream_extra":
		for _, s := range e.Streams {
			if e.Kind == "stream" && e.Type == client.UpdateDelete {
				delete(v.streams, s.Stream)
			} else {
				v.streams[s.Stream] = s.ExtraInfo
			}
		}
	case "extra_info":
		for _, x := range e.Items {
			v.extra[x.Key] = x.Value
		}
	}
}

// without returns the view's members other than the given users.
func (v *roomView) without(users ...string) map[string]string {
	m := maps.Clone(v.users)
	for _, u := range users {
		delete(m, u)
	}
	return m
}

// Three rooms are busy while the client is away: messages, joins and
// leaves, streams published, changed and stopped, extra info. After the
// resume, the client's view of each room equals what a fresh login sees,
// every message arrived once and in order, and the room sequence had no gap
// and no duplicate (the SDK checks every event's prev against the last seq;
// the recorder fails the test on any mismatch).
func TestResumeCatchesUpThreeBusyRooms(t *testing.T) {
	t.Parallel()
	policy := domain.DefaultPolicy()
	policy.MultiRoom = true
	policy.Limits.BroadcastPerSecond = 1000 // the flood is the point here, not the limit
	n := clienttest.StartNode(t, clienttest.NodeOptions{Policy: &policy})
	p := netcut.Start(t, n.HTTPAddr())
	ctx := clienttest.Ctx(t)
	rooms := []string{"math", "art", "music"}
	ra, rb := clienttest.NewRecorder(t, "alice"), clienttest.NewRecorder(t, "bob")
	ra.AllowReconnects()
	a := clienttest.Dial(t, clienttest.URL(p.Addr()), ra, quickRetry)
	b := clienttest.Dial(t, clienttest.URL(n.HTTPAddr()), rb, nil)
	for _, c := range []*client.Client{a, b} {
		if err := c.SetRoomMode(ctx, client.MultiRoom); err != nil {
			t.Fatal(err)
		}
	}
	views := map[string]*roomView{}
	for _, room := range rooms {
		clienttest.Login(t, n, b, rb, room, "bob")
		views[room] = newRoomView(clienttest.Login(t, n, a, ra, room, "alice"))
	}
	// Carol is in art and leaves while alice is away.
	rc := clienttest.NewRecorder(t, "carol")
	c := clienttest.Dial(t, clienttest.URL(n.HTTPAddr()), rc, nil)
	clienttest.Login(t, n, c, rc, "art", "carol")
	if _, err := b.StartPublishingStream(ctx, "bob-math", client.PublishOptions{Room: "math"}); err != nil {
		t.Fatal(err)
	}
	// What alice has seen so far, up to carol's arrival.
	fold := func(until func(clienttest.Event) bool) {
		for {
			e := ra.Next()
			if e.Room != "" && views[e.Room] != nil {
				views[e.Room].apply(e)
			}
			if until(e) {
				return
			}
		}
	}
	fold(func(e clienttest.Event) bool {
		return e.Kind == "stream" && e.Room == "math" && e.Type == client.UpdateAdd
	})

	p.Refuse(true)
	p.Cut()
	// While alice is away: in each room, messages, a visitor who comes and
	// one who stays, a stream started (its extra info changed), extra info.
	const messages = 30
	for _, room := range rooms {
		for i := range messages {
			if _, err := b.SendBroadcastMessage(ctx, room, fmt.Sprintf("%s %d", room, i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.SetRoomExtraInfo(ctx, room, "topic", room+" while away"); err != nil {
			t.Fatal(err)
		}
		for _, visitor := range []string{room + "-guest", room + "-stays"} {
			rv := clienttest.NewRecorder(t, visitor)
			v := clienttest.Dial(t, clienttest.URL(n.HTTPAddr()), rv, nil)
			clienttest.Login(t, n, v, rv, room, visitor)
			if visitor == room+"-stays" {
				if _, err := v.StartPublishingStream(ctx, visitor+"-cam", client.PublishOptions{}); err != nil {
					t.Fatal(err)
				}
				if err := v.SetStreamExtraInfo(ctx, visitor+"-cam", "720p"); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := v.LogoutRoom(ctx, room); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.StopPublishingStream(ctx, "bob-math"); err != nil {
		t.Fatal(err)
	}
	if err := c.LogoutRoom(ctx, "art"); err != nil {
		t.Fatal(err)
	}
	for _, room := range rooms {
		if _, err := b.SendBroadcastMessage(ctx, room, "end "+room); err != nil {
			t.Fatal(err)
		}
	}
	p.Refuse(false)

	// Alice folds everything up to the last message of each room.
	got := map[string][]string{}
	ended := map[string]bool{}
	reconnected := map[string]bool{}
	fold(func(e clienttest.Event) bool {
		switch {
		case e.Kind == "state" && e.State == client.StateReconnected:
			reconnected[e.Room] = true
		case e.Kind == "state" && e.State != client.StateReconnecting:
			t.Fatalf("alice: %v while resuming", e)
		case e.Kind == "broadcast":
			for _, m := range e.Msgs {
				if m.Message == "end "+e.Room {
					ended[e.Room] = true
				} else {
					got[e.Room] = append(got[e.Room], m.Message)
				}
			}
		}
		return len(ended) == len(rooms)
	})
	for _, room := range rooms {
		if !reconnected[room] {
			t.Errorf("%s: no Reconnected before the missed events", room)
		}
		var want []string
		for i := range messages {
			want = append(want, fmt.Sprintf("%s %d", room, i))
		}
		if !slices.Equal(got[room], want) {
			t.Errorf("%s: alice got %d messages %v, want the %d sent, in order", room, len(got[room]), got[room], messages)
		}
	}

	// A fresh login sees the same rooms.
	rz := clienttest.NewRecorder(t, "zoe")
	z := clienttest.Dial(t, clienttest.URL(n.HTTPAddr()), rz, nil)
	if err := z.SetRoomMode(ctx, client.MultiRoom); err != nil {
		t.Fatal(err)
	}
	for _, room := range rooms {
		fresh := newRoomView(clienttest.Login(t, n, z, rz, room, "zoe"))
		v := views[room]
		if !maps.Equal(v.without("alice", "zoe"), fresh.without("alice", "zoe")) {
			t.Errorf("%s members: resumed %v, fresh %v", room, v.without("alice"), fresh.without("zoe"))
		}
		if !maps.Equal(v.streams, fresh.streams) {
			t.Errorf("%s streams: resumed %v, fresh %v", room, v.streams, fresh.streams)
		}
		if !maps.Equal(v.extra, fresh.extra) {
			t.Errorf("%s extra info: resumed %v, fresh %v", room, v.extra, fresh.extra)
		}
		if len(fresh.streams) != 1 || fresh.extra["topic"] != room+" while away" || fresh.users[room+"-stays"] == "" {
			t.Errorf("%s: the fresh view %+v misses what happened while alice was away", room, fresh)
		}
	}
}
