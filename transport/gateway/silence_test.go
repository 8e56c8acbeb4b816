package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/eventstore/presence"
	"github.com/roomlog/roomlog/tests/netcut"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/protocol"
)

// closedFor reads w until the server closes it, and checks that it said why
// first (session_closing with want) and closed with a close frame naming it.
// Each frame read before is given to seen, if any.
func closedFor(t *testing.T, w *wire.Conn, want *domain.Error, seen ...func(protocol.Frame)) {
	t.Helper()
	said := false
	for {
		f, err := w.TryNext(10 * time.Second)
		if err == nil {
			for _, fn := range seen {
				fn(f)
			}
		}
		if err != nil {
			if !said {
				t.Fatalf("closed (%v) without session_closing", err)
			}
			var ce websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != want.Name {
				t.Fatalf("closed with %v, want a close frame with status 1008 and reason %q", err, want.Name)
			}
			return
		}
		if f.Event == protocol.EvSessionClosing {
			var sc protocol.SessionClosing
			if err := json.Unmarshal(f.Data, &sc); err != nil || sc.Code != int(want.Code) || sc.Error != want.Name {
				t.Fatalf("session_closing %s, want %d %s", f.Data, want.Code, want.Name)
			}
			// As in replies: the code's message, then what happened.
			if !strings.HasPrefix(sc.Message, want.Message) {
				t.Fatalf("session_closing message %q, want the code's message %q first", sc.Message, want.Message)
			}
			said = true
		}
	}
}

// waitSessions waits (real time, generously) until the gateway holds want
// connections' sessions: a closed socket's goroutines are gone.
func waitSessions(t *testing.T, n *node.Node, want int) {
	t.Helper()
	// Generous: a loaded machine; it costs nothing when the count comes.
	deadline := time.Now().Add(30 * time.Second)
	for n.Gateway.Sessions() != want {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway holds %d sessions, want %d", n.Gateway.Sessions(), want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A connection that never logs in is closed at the login deadline, whatever
// it sends meanwhile.
func TestAConnectionThatNeverLogsInIsClosed(t *testing.T) {
	clock := estest.NewClock(t0)
	n := startClocked(t, clock, domain.DefaultPolicy(), gateway.Config{})
	idle, chatty := dial(t, n), dial(t, n)
	loggedIn := dial(t, n)
	loggedIn.Login("r1", "alice", token(t, n, "alice"))
	clock.Advance(20 * time.Second)
	chatty.Do("hb", protocol.OpHeartbeat, nil)
	loggedIn.Do("hb", protocol.OpHeartbeat, nil)
	if got := n.Gateway.Sessions(); got != 3 {
		t.Fatalf("%d sessions before the login deadline, want 3", got)
	}
	clock.Advance(10 * time.Second) // 30 s: the default login deadline
	closedFor(t, idle, protocol.ErrLoginTimeout)
	closedFor(t, chatty, protocol.ErrLoginTimeout)
	waitSessions(t, n, 1)
	loggedIn.Do("still", protocol.OpHeartbeat, nil)
}

// A logged-in connection that falls silent is closed at the heartbeat
// timeout, and its socket and goroutines go.
func TestASilentConnectionIsClosed(t *testing.T) {
	clock := estest.NewClock(t0)
	n := startClocked(t, clock, domain.DefaultPolicy(), gateway.Config{})
	alice := dial(t, n)
	alice.Login("r1", "alice", token(t, n, "alice"))
	clock.Advance(90 * time.Second)
	closedFor(t, alice, protocol.ErrSilent)
	waitSessions(t, n, 0)
}

// Any frame proves the client alive, not only heartbeats: a client that only
// broadcasts is neither timed out nor closed; once it stops, it is.
func TestAnyFrameKeepsTheSessionAlive(t *testing.T) {
	clock := estest.NewClock(t0)
	n := startClocked(t, clock, domain.DefaultPolicy(), gateway.Config{})
	alice, bob := dial(t, n), dial(t, n)
	alice.Login("r1", "alice", token(t, n, "alice"))
	bob.Login("r1", "bob", token(t, n, "bob"))
	for i := range 10 { // 200 s, more than twice the 90 s timeout
		clock.Advance(20 * time.Second)
		alice.Do("m"+string(rune('0'+i)), protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "still here"})
		bob.Do("b"+string(rune('0'+i)), protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "me too"})
	}
	if timedOut := timeouts(t, n); timedOut != 0 {
		t.Fatalf("%d sessions timed out while they were talking", timedOut)
	}
	if got := n.Gateway.Sessions(); got != 2 {
		t.Fatalf("%d sessions, want 2", got)
	}
	clock.Advance(90 * time.Second)
	closedFor(t, alice, protocol.ErrSilent)
	closedFor(t, bob, protocol.ErrSilent)
	waitSessions(t, n, 0)
}

// When the log records a session's timeout (another node's presence timer,
// say), this node closes the session's socket. The session's own departures
// are not sent to it: they would race the close, and an SDK that read one
// before the close would give the room up instead of logging in again when
// it comes back (SEMANTICS case 2). Its socket says why it closes; the
// others hear that it left.
func TestARecordedTimeoutClosesTheSocket(t *testing.T) {
	clock := estest.NewClock(t0)
	n := startClocked(t, clock, domain.DefaultPolicy(), gateway.Config{})
	bob := dial(t, n)
	bob.Login("r0", "bob", token(t, n, "bob"))
	var silent []*wire.Conn
	for i := range 8 {
		room, user := fmt.Sprint("r", i%2), fmt.Sprint("user-", i)
		w := dial(t, n)
		w.Login(room, user, token(t, n, user))
		silent = append(silent, w)
	}
	for _, w := range silent {
		if _, err := n.Engine.Execute(estest.Ctx(t), domain.Meta{App: "dev"},
			domain.TimeoutSession{Session: domain.SessionID(w.Hello.Session), LastSeen: t0}); err != nil {
			t.Fatal(err)
		}
	}
	for i, w := range silent {
		closedFor(t, w, protocol.ErrSilent, func(f protocol.Frame) {
			var st protocol.RoomStateChanged
			if f.Event == protocol.EvRoomStateChanged && json.Unmarshal(f.Data, &st) == nil &&
				st.State != string(domain.StateLogined) {
				t.Errorf("user-%d got its own departure %s before the close", i, f.Data)
			}
		})
	}
	left := map[string]bool{}
	for len(left) < 4 {
		f := bob.Next()
		if f.Event != protocol.EvRoomUserUpdate {
			continue
		}
		var u protocol.UserUpdate
		if err := json.Unmarshal(f.Data, &u); err != nil {
			t.Fatal(err)
		}
		for _, x := range u.Users {
			if u.UpdateType == "DELETE" {
				left[x.ID] = true
			}
		}
	}
	waitSessions(t, n, 1)
}

// A peer that vanished without closing (a half-open TCP connection) is
// pinged once it has been quiet for a heartbeat interval, and closed when
// no pong comes, long before the heartbeat timeout.
func TestADeadPeerIsClosedWhenItMissesAPing(t *testing.T) {
	clock := estest.NewClock(t0)
	// The pong timeout is real time and applies to bob, the live peer, too:
	// generous enough that a loaded machine never makes him miss a pong.
	n := startClocked(t, clock, domain.DefaultPolicy(), gateway.Config{PongTimeout: 5 * time.Second})
	proxy := netcut.Start(t, n.HTTPAddr())
	alice := wire.Dial(t, proxy.Addr())
	alice.Login("r1", "alice", token(t, n, "alice"))
	bob := dial(t, n)
	bob.Login("r1", "bob", token(t, n, "bob"))
	// Bob reads all along, as a live client does: he answers his pings.
	frames := make(chan protocol.Frame, 100)
	go func() {
		defer close(frames)
		for {
			f, err := bob.TryNext(20 * time.Second)
			if err != nil {
				return
			}
			frames <- f
		}
	}()
	proxy.Freeze()
	clock.Advance(30 * time.Second)
	waitSessions(t, n, 1)
	bob.Send("hb", protocol.OpHeartbeat, nil)
	for f := range frames {
		if f.Type == protocol.TypeReply && f.ID == "hb" {
			return
		}
	}
	t.Fatal("bob's connection closed")
}

// timeouts counts the session timeouts in n's log.
func timeouts(t *testing.T, n *node.Node) int {
	t.Helper()
	count := 0
	_, err := n.Log.Read(estest.Ctx(t), []string{n.Log.Prefix() + ".>"}, 1, func(rec eventstore.Record) error {
		events, _ := domain.DecodeEvents(rec.Data)
		for _, e := range events {
			if _, ok := e.Data.(*domain.SessionTimedOutData); ok {
				count++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return count
}

// A client that stops reading in a busy room is dropped as too slow; when it
// reads again it finds whole frames only, then session_closing saying why
// and a close frame. The room's other members are not held up.
func TestAClientThatStopsReadingLearnsWhyAndGetsNoHalfFrame(t *testing.T) {
	p := domain.DefaultPolicy()
	p.Limits.BroadcastPerSecond = 1 << 20
	p.Limits.MessageBytes = 8000
	n := startClocked(t, estest.NewClock(t0), p, gateway.Config{QueueSize: 256, WriteTimeout: time.Second,
		RequestsPerSecond: 1e6, RequestBurst: 1e6})
	stalled := dial(t, n)
	stalled.Login("busy", "stalled", token(t, n, "stalled"))
	bob := dial(t, n)
	bob.Login("busy", "bob", token(t, n, "bob"))
	body := strings.Repeat("x", 8000)
	deadline := time.Now().Add(30 * time.Second)
	sent := 0
	for n.Gateway.Sessions() == 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the stalled reader was never disconnected after %d broadcasts", sent)
		}
		bob.Do(fmt.Sprint(sent), protocol.OpBroadcast, protocol.MessageRequest{Room: "busy", Message: body})
		sent++
	}
	bob.Do("after", protocol.OpBroadcast, protocol.MessageRequest{Room: "busy", Message: "bob goes on"})

	// The stalled client reads again: every frame whole, then why.
	var last protocol.Frame
	frames := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, b, err := stalled.WS.Read(ctx)
		cancel()
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("after %d whole frames: %v, want a close frame (half a frame, or none)", frames, err)
			}
			if ce.Code != websocket.StatusPolicyViolation || ce.Reason != protocol.ErrSlowConsumer.Name {
				t.Fatalf("closed with %d %q, want 1008 %q", ce.Code, ce.Reason, protocol.ErrSlowConsumer.Name)
			}
			break
		}
		if err := json.Unmarshal(b, &last); err != nil {
			t.Fatalf("frame %d is not whole JSON: %v", frames, err)
		}
		frames++
	}
	var sc protocol.SessionClosing
	if last.Event != protocol.EvSessionClosing || json.Unmarshal(last.Data, &sc) != nil ||
		sc.Code != int(protocol.ErrSlowConsumer.Code) {
		t.Fatalf("the last frame was %s %s, want session_closing with slow_consumer", last.Event, last.Data)
	}
	t.Logf("dropped after %d broadcasts of 8 KB; it then read %d whole frames and why", sent, frames)
}

// Any frame proves the client alive, for its session's timeout too, not only
// for its socket. Alice logs in at t=0 and broadcasts at t=29 s (presence,
// written at most once a heartbeat interval, is not told at once), then her
// network drops. She reconnects at t=100 s, 71 s after her last frame, within
// the 90 s timeout: she resumes, and nobody recorded her timeout.
func TestAFrameAfterTheLastBeatCountsForTheTimeout(t *testing.T) {
	clock := estest.NewClock(t0)
	n := startClocked(t, clock, domain.DefaultPolicy(), gateway.Config{})
	proxy := netcut.Start(t, n.HTTPAddr())
	alice := wire.Dial(t, proxy.Addr())
	hello := alice.Hello
	snap := alice.Login("r1", "alice", token(t, n, "alice"))
	waitTracked(t, n, 1)

	clock.Advance(29 * time.Second)
	f := alice.Do("m", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "still here"})
	var mr protocol.MessageReply
	json.Unmarshal(f.Data, &mr)

	proxy.Cut()
	waitSessions(t, n, 0)
	clock.Advance(71 * time.Second) // t = 100 s: 71 s after alice's last frame

	again := wire.Dial(t, proxy.Addr())
	again.Send("r", protocol.OpResume, protocol.ResumeRequest{ResumeToken: hello.ResumeToken,
		Rooms: map[string]uint64{"r1": max(mr.Seq, snap.Seq)}})
	r := again.Reply("r")
	var rr protocol.ResumeReply
	json.Unmarshal(r.Data, &rr)
	if r.Code != 0 || rr.Rooms["r1"].Status != "resumed" {
		t.Errorf("resume 71 s after the session's last frame (timeout 90 s): code %d %s %q, rooms %+v",
			r.Code, r.Error, r.Message, rr.Rooms)
	}
	if got := timeouts(t, n); got != 0 {
		t.Errorf("%d heartbeat timeouts recorded for a session last heard from 71 s ago (timeout 90 s)", got)
	}
}

// countingPresence is the node's real presence; it counts the heartbeats
// written to the presence bucket (a JetStream key-value write each).
type countingPresence struct {
	*presence.Presence
	beats atomic.Int64
}

func (p *countingPresence) BeatAt(ctx context.Context, app domain.AppID, s domain.SessionID, seen time.Time) error {
	p.beats.Add(1)
	return p.Presence.BeatAt(ctx, app, s, seen)
}

// Heartbeats are answered at once, outside the request queue and its rate
// limit; each one used to be written to the cluster's presence bucket (a
// JetStream read and compare-and-set). A client flooding heartbeats (1,000
// within one frozen second here) is answered, and presence is written at
// most once a second.
func TestAHeartbeatFloodIsNotWrittenToPresence(t *testing.T) {
	clock := estest.NewClock(t0)
	h := newHandNode(t, clock)
	cp := &countingPresence{Presence: h.presence}
	estest.RunLive(t, h.log, h.live)
	addr := h.serve(t, gateway.Config{Presence: cp, Clock: clock}, nil)
	tok, err := h.signer.Mint(auth.Claims{App: "dev", User: "mallory", AllRooms: true, Publish: true,
		ExpiresAt: clock.Now().Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	w := wire.Dial(t, addr)
	w.Login("r1", "mallory", tok)
	before := cp.beats.Load()
	const flood = 1000
	go func() {
		for range flood {
			if w.WS.Write(context.Background(), websocket.MessageText, []byte(`{"id":"hb","op":"heartbeat"}`)) != nil {
				return
			}
		}
	}()
	served, refused := 0, 0
	for served+refused < flood {
		f := w.Next()
		if f.Type != protocol.TypeReply || f.ID != "hb" {
			continue
		}
		if f.Code == 0 {
			served++
		} else {
			refused++
		}
	}
	writes := cp.beats.Load() - before
	if served != flood {
		t.Errorf("%d of %d heartbeats answered", served, flood)
	}
	if writes > 1 {
		t.Errorf("%d heartbeats sent within one second made %d presence writes", flood, writes)
	}
}

// A session's last frame reaches presence when its connection goes quiet,
// not only when it goes away: a client still connected but silent after a
// broadcast at t=29 s is timed out 90 s after that broadcast, not 90 s after
// the beat of its login.
func TestAQuietConnectionsLastFrameReachesPresence(t *testing.T) {
	clock := estest.NewClock(t0)
	n := startClocked(t, clock, domain.DefaultPolicy(), gateway.Config{})
	alice := dial(t, n)
	alice.Login("r1", "alice", token(t, n, "alice"))
	waitTracked(t, n, 1)
	clock.Advance(29 * time.Second)
	alice.Do("m", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "then nothing"})
	clock.Advance(31 * time.Second) // quiet for an interval: pinged
	// While the connection is still there (not by its detach, once the
	// unanswered ping gives it up).
	estest.Eventually(t, "presence to hear of the broadcast while alice is connected", func() bool {
		r, _, err := n.Presence.Lookup(context.Background(), domain.SessionID(alice.Hello.Session))
		return err == nil && r.Attached && r.LastSeen.Equal(t0.Add(29*time.Second))
	})
}
