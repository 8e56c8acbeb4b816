package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/netcut"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/protocol"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func startClocked(t *testing.T, clock *estest.Clock, p domain.Policy, gc gateway.Config) *node.Node {
	t.Helper()
	n, err := node.Start(estest.Ctx(t), node.Config{Log: eventstore.Config{DataDir: t.TempDir()}, Clock: clock,
		Policy: domain.Config{Default: p}, Secret: secret, HTTPListen: "127.0.0.1:0", Gateway: gc, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// waitTracked waits until presence has a timer for n sessions.
func waitTracked(t *testing.T, n *node.Node, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n.Presence.Tracked() != want {
		if time.Now().After(deadline) {
			t.Fatalf("presence tracks %d sessions, want %d", n.Presence.Tracked(), want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// roomFrames reads frames until stop says so, returning the room events seen.
func roomFrames(w *wire.Conn, stop func(protocol.Frame) bool) []protocol.Frame {
	var out []protocol.Frame
	for {
		f := w.Next()
		if f.Type == protocol.TypeEvent && f.Seq != 0 {
			out = append(out, f)
		}
		if stop(f) {
			return out
		}
	}
}

// Seed case 1: the client reconnects before the heartbeat timeout. The others
// see nothing; the client gets every event it missed, in order, no gap, no
// duplicate, and then live events.
func TestResumeWithinTheTimeout(t *testing.T) {
	clock := estest.NewClock(t0)
	p := domain.DefaultPolicy()
	p.MultiRoom = true
	n := startClocked(t, clock, p, gateway.Config{})
	proxy := netcut.Start(t, n.HTTPAddr())
	alice := wire.Dial(t, proxy.Addr())
	hello := alice.Hello
	snap := alice.Login("r1", "alice", token(t, n, "alice"))
	bob := dial(t, n)
	bob.Login("r1", "bob", token(t, n, "bob"))
	last := alice.Until(func(f protocol.Frame) bool { return f.Event == protocol.EvRoomUserUpdate }).Seq
	waitTracked(t, n, 2)

	proxy.Cut() // the network drops alice
	for i := range 5 {
		bob.Do(fmt.Sprint("b", i), protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: fmt.Sprint("missed ", i)})
	}
	bob.Do("x", protocol.OpSetRoomExtraInfo, protocol.RoomExtraInfoRequest{Room: "r1", Key: "topic", Value: "while away"})
	carol := dial(t, n)
	carol.Login("r1", "carol", token(t, n, "carol"))
	carol.Do("bye", protocol.OpLogout, protocol.LogoutRequest{Room: "r1"})
	clock.Advance(30 * time.Second) // well within the 90 s timeout

	again := wire.Dial(t, proxy.Addr())
	fresh := again.Hello
	again.Send("r", protocol.OpResume, protocol.ResumeRequest{ResumeToken: hello.ResumeToken, Rooms: map[string]uint64{"r1": last}})
	f := again.Reply("r")
	var rr protocol.ResumeReply
	if f.Code != 0 || json.Unmarshal(f.Data, &rr) != nil || rr.Session != hello.Session || rr.Rooms["r1"].Status != "resumed" {
		t.Fatalf("resume: %+v %+v (fresh session %s)", f, rr, fresh.Session)
	}
	bob.Do("live", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "live again"})
	frames := roomFrames(again, func(f protocol.Frame) bool { return strings.Contains(string(f.Data), "live again") })
	var kinds []string
	prev := last
	for _, f := range frames {
		if f.Prev != prev || f.Seq <= prev {
			t.Fatalf("frame seq %d prev %d after seq %d: a gap or a duplicate", f.Seq, f.Prev, prev)
		}
		prev = f.Seq
		kinds = append(kinds, string(f.Event))
	}
	want := "broadcast_message broadcast_message broadcast_message broadcast_message broadcast_message room_extra_info_update room_user_update room_user_update broadcast_message"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("replayed and live events:\n got %s\nwant %s", got, want)
	}
	if snap.Seq >= last {
		t.Errorf("snapshot seq %d, then bob's join at %d", snap.Seq, last)
	}
	// Bob saw nothing of alice's interruption.
	bob.Send("end", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "end"})
	for _, f := range roomFrames(bob, func(f protocol.Frame) bool { return f.Type == protocol.TypeReply && f.ID == "end" }) {
		if f.Event == protocol.EvRoomUserUpdate && strings.Contains(string(f.Data), `"alice"`) {
			t.Errorf("bob was told about alice: %s", f.Data)
		}
	}
}

// isDelete matches a user DELETE. Bob's login snapshot may be taken before
// the projection folded alice's login (logins do not wait for it); then her
// ADD reaches bob first, as an event after his snapshot.
func isDelete(f protocol.Frame) bool {
	return f.Event == protocol.EvRoomUserUpdate && strings.Contains(string(f.Data), `"DELETE"`)
}

// Seed case 2: the client comes back after the timeout. The timeout was
// recorded (others got DELETE); resume is refused; a new login is ADDed.
func TestResumeAfterTheTimeoutIsRefused(t *testing.T) {
	clock := estest.NewClock(t0)
	n := startClocked(t, clock, domain.DefaultPolicy(), gateway.Config{})
	proxy := netcut.Start(t, n.HTTPAddr())
	alice := wire.Dial(t, proxy.Addr())
	hello := alice.Hello
	alice.Login("r1", "alice", token(t, n, "alice"))
	bob := dial(t, n)
	bob.Login("r1", "bob", token(t, n, "bob"))
	waitTracked(t, n, 2)
	proxy.Cut()
	clock.Advance(89 * time.Second)
	bob.Do("hb", protocol.OpHeartbeat, nil) // bob is alive
	waitTracked(t, n, 2)
	clock.Advance(2 * time.Second) // alice's 90 s are up
	gone := bob.Until(isDelete)
	if !strings.Contains(string(gone.Data), `"DELETE"`) || !strings.Contains(string(gone.Data), `"alice"`) {
		t.Fatalf("bob got %s, want alice DELETE", gone.Data)
	}
	again := wire.Dial(t, proxy.Addr())
	again.Send("r", protocol.OpResume, protocol.ResumeRequest{ResumeToken: hello.ResumeToken, Rooms: map[string]uint64{"r1": 3},
		Token: token(t, n, "alice")})
	if f := again.Reply("r"); f.Code != protocol.ErrResumeFailed.Code || len(f.Data) != 0 {
		t.Fatalf("resume after the timeout: %+v (a timeout is no kick: no data)", f)
	}
	again.Login("r1", "alice", token(t, n, "alice"))
	back := bob.Until(func(f protocol.Frame) bool { return f.Event == protocol.EvRoomUserUpdate })
	if !strings.Contains(string(back.Data), `"ADD"`) {
		t.Fatalf("bob got %s, want alice ADD", back.Data)
	}
}

// Alice's phone loses its network; she logs in to the same room from her
// laptop, which kicks the phone's session out (duplicate login); then the
// phone's session times out. When the phone comes back, its resume is
// refused, and the refusal names r1 as a room it was kicked out of, with
// the KickOut state it would have been told: a kick is final, and a phone
// that logged in again would kick the laptop. Before, the refusal said
// nothing, and the SDKs logged in to every room again.
func TestAResumeRefusedAfterTheTimeoutNamesTheRoomsKickedOutOf(t *testing.T) {
	clock := estest.NewClock(t0)
	n := startClocked(t, clock, domain.DefaultPolicy(), gateway.Config{})
	proxy := netcut.Start(t, n.HTTPAddr())
	phone := wire.Dial(t, proxy.Addr())
	snap := phone.Login("r1", "alice", token(t, n, "alice"))
	waitTracked(t, n, 1)
	proxy.Cut()

	laptop := dial(t, n)
	laptop.Login("r1", "alice", token(t, n, "alice"))
	waitTracked(t, n, 2)
	clock.Advance(89 * time.Second)
	laptop.Do("hb", protocol.OpHeartbeat, nil) // the laptop is alive
	waitTracked(t, n, 2)
	clock.Advance(2 * time.Second) // the phone's 90 s are up
	waitTracked(t, n, 1)

	again := wire.Dial(t, proxy.Addr())
	again.Send("r", protocol.OpResume, protocol.ResumeRequest{ResumeToken: phone.Hello.ResumeToken,
		Rooms: map[string]uint64{"r1": snap.Seq}, Token: token(t, n, "alice")})
	f := again.Reply("r")
	var refused protocol.ResumeRefused
	if f.Code != protocol.ErrResumeFailed.Code || json.Unmarshal(f.Data, &refused) != nil {
		t.Fatalf("resume after a kick and the timeout: %+v", f)
	}
	k, ok := refused.Kicked["r1"]
	if !ok || k.State != string(domain.StateKickOut) || k.Code != int(domain.ErrKickedDuplicate.Code) ||
		k.By != laptop.Hello.Session {
		t.Fatalf("the refusal's kicked rooms: %+v, want r1 KickOut %d by %s", refused.Kicked, domain.ErrKickedDuplicate.Code,
			laptop.Hello.Session)
	}
}

// What a refused resume may make the server read for its kicks is bounded.
// A connection that never logged in names its own new session (no one's in
// the log) with an app token and ten rooms at seq 0: the first version read
// each room's whole history, as often as the client asked on one
// connection (600 JetStream requests for 20 refusals). Now the session must
// be in the log with the token's app and user, and a connection gets one
// such refusal.
func TestARefusedResumeReadsNoRoomsForASessionItDoesNotOwn(t *testing.T) {
	n := startNode(t, gateway.Config{})
	for i := range 10 {
		w := dial(t, n)
		w.Login(fmt.Sprint("r", i), fmt.Sprint("u", i), token(t, n, fmt.Sprint("u", i)))
		w.Do("m", protocol.OpBroadcast, protocol.MessageRequest{Room: fmt.Sprint("r", i), Message: "x"})
	}
	api := func() uint64 {
		jsz, err := n.Log.Server().Jsz(&server.JSzOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return jsz.API.Total
	}
	rooms := map[string]uint64{}
	for i := range 10 { // twice the default room limit
		rooms[fmt.Sprint("r", i)] = 0
	}
	mallory := dial(t, n) // never logs in: its hello names a session no one knows
	again := dial(t, n)
	before := api()
	again.Send("r1", protocol.OpResume, protocol.ResumeRequest{ResumeToken: mallory.Hello.ResumeToken,
		Token: token(t, n, "mallory"), Rooms: rooms})
	if f := again.Reply("r1"); f.Code != protocol.ErrResumeFailed.Code || len(f.Data) != 0 {
		t.Fatalf("resume of a session no one knows: %+v", f)
	}
	// Reading the session's own record takes a few requests; ten rooms'
	// histories take tens.
	if calls := api() - before; calls > 5 {
		t.Errorf("a resume of a session no one knows made %d JetStream API requests: it read the rooms it named", calls)
	}
	again.Send("r2", protocol.OpResume, protocol.ResumeRequest{ResumeToken: mallory.Hello.ResumeToken,
		Token: token(t, n, "mallory"), Rooms: rooms})
	if f := again.Reply("r2"); f.Code != protocol.ErrResumeFailed.Code || !strings.Contains(f.Message, "already") {
		t.Errorf("a second resume on the connection: %+v, want a refusal without a look", f)
	}
}

// A client that hangs (reads nothing, sends no heartbeat) times out on time.
func TestAHungClientTimesOut(t *testing.T) {
	clock := estest.NewClock(t0)
	n := startClocked(t, clock, domain.DefaultPolicy(), gateway.Config{})
	proxy := netcut.Start(t, n.HTTPAddr())
	alice := wire.Dial(t, proxy.Addr())
	alice.Login("r1", "alice", token(t, n, "alice"))
	bob := dial(t, n)
	bob.Login("r1", "bob", token(t, n, "bob"))
	waitTracked(t, n, 2)
	proxy.Freeze()
	clock.Advance(60 * time.Second)
	bob.Do("hb", protocol.OpHeartbeat, nil)
	waitTracked(t, n, 2)
	clock.Advance(31 * time.Second)
	gone := bob.Until(isDelete)
	if !strings.Contains(string(gone.Data), `"DELETE"`) {
		t.Fatalf("bob got %s", gone.Data)
	}
	var timedOut int
	_, err := n.Log.Read(estest.Ctx(t), []string{n.Log.Prefix() + ".>"}, 1, func(rec eventstore.Record) error {
		events, _ := domain.DecodeEvents(rec.Data)
		for _, e := range events {
			if d, ok := e.Data.(*domain.SessionTimedOutData); ok {
				timedOut++
				if want := t0; !d.LastSeen.Equal(want) || !e.Time.Equal(t0.Add(90*time.Second)) {
					t.Errorf("timeout recorded at %v for last seen %v; want 90 s after %v", e.Time, d.LastSeen, want)
				}
			}
		}
		return nil
	})
	if err != nil || timedOut != 1 {
		t.Fatalf("%d timeouts recorded (%v), want 1", timedOut, err)
	}
}

// A client that stops reading in a busy room is disconnected; the room and
// its other members go on undisturbed.
func TestAStalledReaderDoesNotStallTheRoom(t *testing.T) {
	p := domain.DefaultPolicy()
	p.Limits.BroadcastPerSecond = 1 << 20
	// The write timeout applies to carol, the healthy reader, too: generous
	// enough that a loaded machine never drops her (the stalled reader goes
	// when its queue is full).
	n := startClocked(t, estest.NewClock(t0), p, gateway.Config{QueueSize: 512, WriteTimeout: 10 * time.Second,
		RequestsPerSecond: 1e6, RequestBurst: 1e6})
	proxy := netcut.Start(t, n.HTTPAddr())
	stalled := wire.Dial(t, proxy.Addr())
	stalled.Login("busy", "stalled", token(t, n, "stalled"))
	bob, carol := dial(t, n), dial(t, n)
	bob.Login("busy", "bob", token(t, n, "bob"))
	carol.Login("busy", "carol", token(t, n, "carol"))
	proxy.Freeze()
	// Carol reads as a healthy client does, while bob floods the room,
	// until the message that ends the flood.
	type result struct {
		got int
		err error
	}
	carolDone := make(chan result, 1)
	go func() {
		got, prev := 0, uint64(0)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // generous: a loaded machine
			_, b, err := carol.WS.Read(ctx)
			cancel()
			if err != nil {
				carolDone <- result{got, err}
				return
			}
			var f protocol.Frame
			json.Unmarshal(b, &f)
			if f.Event != protocol.EvBroadcastMessage {
				continue
			}
			if prev != 0 && f.Prev != prev {
				carolDone <- result{got, fmt.Errorf("frame prev %d after %d", f.Prev, prev)}
				return
			}
			prev = f.Seq
			if strings.Contains(string(f.Data), "end of the flood") {
				carolDone <- result{got, nil}
				return
			}
			got++
		}
	}()
	body := strings.Repeat("x", 1000)
	// The stalled socket is dropped once the kernel's buffers and the queue
	// are full: a few MB of broadcasts, sent one at a time. On a loaded
	// machine that takes a while; the deadline only catches a node that
	// never drops it.
	deadline := time.Now().Add(2 * time.Minute)
	sent := 0
	for n.Gateway.Sessions() == 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the stalled reader was never disconnected after %d broadcasts", sent)
		}
		bob.Do(fmt.Sprint(sent), protocol.OpBroadcast, protocol.MessageRequest{Room: "busy", Message: body})
		sent++
	}
	bob.Do("end", protocol.OpBroadcast, protocol.MessageRequest{Room: "busy", Message: "end of the flood"})
	// Carol got every one of bob's messages, in order, without a gap.
	if r := <-carolDone; r.err != nil || r.got != sent {
		t.Fatalf("carol got %d of %d broadcasts: %v", r.got, sent, r.err)
	}
	t.Logf("the stalled reader was disconnected after %d broadcasts of 1 KB", sent)
	carol.Do("still", protocol.OpBroadcast, protocol.MessageRequest{Room: "busy", Message: "still here"})
	msg := bob.Until(func(f protocol.Frame) bool { return strings.Contains(string(f.Data), "still here") })
	if msg.Event != protocol.EvBroadcastMessage {
		t.Fatalf("bob got %+v", msg)
	}
}

// A session that lives longer than its resume token gets fresh ones on its
// heartbeats, and can still resume; a resume names the rooms the client
// forgot (a login whose reply was lost) as "unknown".
func TestResumeTokenIsRenewedAndStrayRoomsAreNamed(t *testing.T) {
	clock := estest.NewClock(t0)
	p := domain.DefaultPolicy()
	p.MultiRoom = true
	n := startClocked(t, clock, p, gateway.Config{ResumeWindow: 2 * time.Minute}) // tokens last 3.5 min
	alice := dial(t, n)
	first := alice.Hello.ResumeToken
	if f := alice.Do("m", protocol.OpSetRoomMode, protocol.SetRoomModeRequest{Mode: string(domain.MultiRoom)}); f.Code != 0 {
		t.Fatalf("set_room_mode: %+v", f)
	}
	alice.Login("r1", "alice", token(t, n, "alice"))
	alice.Login("r2", "alice", token(t, n, "alice"))
	waitTracked(t, n, 1)

	latest := first
	renewals := 0
	for i := range 10 { // ten minutes of heartbeats, a minute apart
		clock.Advance(time.Minute)
		f := alice.Do(fmt.Sprint("hb", i), protocol.OpHeartbeat, nil)
		var hb protocol.HeartbeatReply
		if len(f.Data) > 0 {
			if err := json.Unmarshal(f.Data, &hb); err != nil {
				t.Fatal(err)
			}
		}
		if hb.ResumeToken != "" {
			latest = hb.ResumeToken
			renewals++
		}
	}
	// Renewed once half the 3.5 min are spent: at minutes 2, 4, 6, 8, 10.
	if renewals != 5 {
		t.Errorf("%d renewals in ten minutes, want 5", renewals)
	}
	alice.WS.CloseNow()

	stale := dial(t, n)
	stale.Send("r", protocol.OpResume, protocol.ResumeRequest{ResumeToken: first})
	if f := stale.Reply("r"); f.Code != protocol.ErrResumeFailed.Code {
		t.Fatalf("resume with the ten-minute-old token: %+v", f)
	}
	again := dial(t, n)
	again.Send("r", protocol.OpResume, protocol.ResumeRequest{ResumeToken: latest, Rooms: map[string]uint64{"r1": 0}})
	f := again.Reply("r")
	var rr protocol.ResumeReply
	if f.Code != 0 || json.Unmarshal(f.Data, &rr) != nil {
		t.Fatalf("resume with the renewed token: %+v", f)
	}
	if rr.Rooms["r1"].Status != "resumed" || rr.Rooms["r2"].Status != "unknown" || len(rr.Rooms) != 2 {
		t.Errorf("resumed rooms %+v, want r1 resumed and r2 unknown", rr.Rooms)
	}
	if sid, err := n.Signer.VerifyResume(rr.ResumeToken); err != nil || sid != alice.Hello.Session {
		t.Errorf("the resume reply's token names %q (%v), want session %s", sid, err, alice.Hello.Session)
	}
}

// A session whose first login failed was never in a room: presence keeps no
// record of it (its first heartbeat is written alongside the login's
// appends, and removed when they are refused), so it cannot be resumed and
// nothing times it out later.
func TestAFailedFirstLoginLeavesNoPresence(t *testing.T) {
	n := startClocked(t, estest.NewClock(t0), domain.DefaultPolicy(), gateway.Config{})
	c := wire.Dial(t, n.HTTPAddr())
	hello := c.Hello
	c.Send("j", protocol.OpJoinRoom, protocol.JoinRoomRequest{Room: "nowhere", User: &protocol.User{ID: "alice"},
		Token: token(t, n, "alice")})
	if f := c.Reply("j"); f.Code != domain.ErrRoomNotExist.Code {
		t.Fatalf("joining a room that does not exist: %+v", f)
	}
	if r, ok, err := n.Presence.Lookup(estest.Ctx(t), domain.SessionID(hello.Session)); err != nil || ok {
		t.Fatalf("presence after a failed first login: %+v, alive %v, %v", r, ok, err)
	}
	again := wire.Dial(t, n.HTTPAddr())
	again.Send("r", protocol.OpResume, protocol.ResumeRequest{ResumeToken: hello.ResumeToken})
	if f := again.Reply("r"); f.Code != protocol.ErrResumeFailed.Code {
		t.Fatalf("resuming a session that never logged in: %+v", f)
	}
	// The same connection logs in afterwards: its session is resumable.
	c.Login("r1", "alice", token(t, n, "alice"))
	if _, ok, err := n.Presence.Lookup(estest.Ctx(t), domain.SessionID(hello.Session)); err != nil || !ok {
		t.Fatalf("presence after a login: alive %v, %v", ok, err)
	}
}

// A session whose connection is gone cannot be warned that its token is
// about to expire: the warning's timer goes with the connection, instead of
// pinning the session in memory until the token's expiry, up to a day later.
func TestADetachedSessionKeepsNoTokenTimer(t *testing.T) {
	clock := estest.NewClock(t0)
	n := startClocked(t, clock, domain.DefaultPolicy(), gateway.Config{})
	far := t0.Add(time.Hour) // past every presence and room timer; before the token's warning
	alice := dial(t, n)
	alice.Login("r1", "alice", token(t, n, "alice"))
	if got := clock.PendingAfter(far); got != 1 {
		t.Fatalf("%d timers due after an hour with alice logged in, want 1 (her token's warning)", got)
	}
	alice.WS.CloseNow()
	deadline := time.Now().Add(10 * time.Second)
	for clock.PendingAfter(far) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("alice's connection is gone and %d timers are still due after an hour", clock.PendingAfter(far))
		}
		time.Sleep(2 * time.Millisecond)
	}
}
