package gateway_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/protocol"
)

// Regression tests of bugs the end-to-end tests in tests/ found.

// A login the log cannot serve fails with ZEGO's login timeout, 1002053, as
// the reply and as LoginFailed, even when the log says so at once (no
// JetStream) rather than by not answering; it used to be 1906098.
func TestALoginTheLogCannotServeFailsWithTheLoginTimeout(t *testing.T) {
	p := domain.DefaultPolicy()
	// The engine rides out a log that does not answer (an election) for the
	// whole command timeout: keep it short here.
	n, err := node.Start(estest.Ctx(t), node.Config{Log: eventstore.Config{DataDir: t.TempDir(), ConnectTimeout: 10 * time.Second},
		Policy: domain.Config{Default: p}, Secret: secret, HTTPListen: "127.0.0.1:0", Logger: estest.Logger(t),
		Gateway: gateway.Config{CommandTimeout: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.Log.Server().DisableJetStream(); err != nil {
		t.Fatal(err)
	}
	w := dial(t, n)
	w.Send("1", protocol.OpLogin, protocol.LoginRequest{Room: "r1", User: protocol.User{ID: "alice"}, Token: token(t, n, "alice")})
	st := w.Until(func(f protocol.Frame) bool {
		return f.Event == protocol.EvRoomStateChanged && strings.Contains(string(f.Data), `"LoginFailed"`)
	})
	var sc protocol.RoomStateChanged
	if json.Unmarshal(st.Data, &sc); sc.Code != int(domain.ErrTimeout.Code) || sc.ZIMEvent != "NetworkInterrupted" {
		t.Errorf("LoginFailed: %+v", sc)
	}
	if f := w.Reply("1"); f.Code != domain.ErrTimeout.Code || f.Error != domain.ErrTimeout.Name ||
		!strings.Contains(f.Message, "unavailable") {
		t.Errorf("login reply: %+v", f)
	}
}

// Logging out of a room before any login fails with 1002002 and
// LogoutFailed, as for any session not in the room (it used to be
// not_logged_in, 1902006); logging out of every room leaves none.
func TestLogoutBeforeAnyLogin(t *testing.T) {
	n := startNode(t, gateway.Config{})
	w := dial(t, n)
	w.Send("1", protocol.OpLogout, protocol.LogoutRequest{Room: "r1"})
	st := w.Until(func(f protocol.Frame) bool { return f.Event == protocol.EvRoomStateChanged })
	var sc protocol.RoomStateChanged
	if json.Unmarshal(st.Data, &sc); st.Room != "r1" || sc.State != string(domain.StateLogoutFailed) ||
		sc.Code != int(domain.ErrNotInRoom.Code) {
		t.Errorf("state after the logout: %+v %+v", st, sc)
	}
	if f := w.Reply("1"); f.Code != domain.ErrNotInRoom.Code || f.Error != domain.ErrNotInRoom.Name {
		t.Errorf("logout of r1: %+v", f)
	}
	f := w.Do("2", protocol.OpLogout, nil)
	var rr protocol.RoomsReply
	if err := json.Unmarshal(f.Data, &rr); err != nil || rr.Rooms == nil || len(rr.Rooms) != 0 {
		t.Errorf("logout of every room: %s", f.Data)
	}
}

// The barrage rate limit counts seconds on the gateway's clock, as the log
// counts broadcasts: on an injected clock a second passes when the clock
// says so, not when the wall clock does.
func TestBarrageRateFollowsTheGatewaysClock(t *testing.T) {
	clock := estest.NewClock(t0)
	p := domain.DefaultPolicy()
	p.Limits.BarragePerSecond = 2
	n := startClocked(t, clock, p, gateway.Config{})
	a, b := dial(t, n), dial(t, n)
	a.Login("r1", "alice", token(t, n, "alice"))
	b.Login("r1", "bob", token(t, n, "bob"))
	send := func(id, msg string) protocol.Frame {
		a.Send(id, protocol.OpBarrage, protocol.MessageRequest{Room: "r1", Message: msg})
		return a.Reply(id)
	}
	for _, msg := range []string{"one", "two"} {
		if f := send(msg, msg); f.Code != 0 {
			t.Fatalf("barrage %s: %+v", msg, f)
		}
	}
	if f := send("three", "three"); f.Code != domain.ErrRateLimited.Code {
		t.Fatalf("a third barrage in one second: %+v", f)
	}
	// A second later on the clock (a few milliseconds on the wall's: a
	// limiter on wall time would still refuse) the next one passes.
	clock.Advance(time.Second)
	if f := send("next", "next second"); f.Code != 0 {
		t.Fatalf("a barrage in the next second: %+v", f)
	}
	for _, want := range []string{"one", "two", "next second"} {
		f := b.Until(func(f protocol.Frame) bool { return f.Event == protocol.EvBarrageMessage })
		var m protocol.Message
		if json.Unmarshal(f.Data, &m); m.Message != want {
			t.Fatalf("bob's next barrage: %q, want %q", m.Message, want)
		}
	}
}

// A session that missed more events than its connection's queue holds (a
// slow consumer that was cut off has, by definition) resumes and gets them
// all from the log, in order; it used to be cut off again, as a slow
// consumer, by its own replay, and so could never catch up.
func TestResumeReplaysMoreThanTheQueueHolds(t *testing.T) {
	const queue = 16
	p := domain.DefaultPolicy()
	p.Limits.BroadcastPerSecond = 1000
	n := startClocked(t, estest.NewClock(t0), p, gateway.Config{QueueSize: queue})
	alice, bob := dial(t, n), dial(t, n)
	snap := alice.Login("r1", "alice", token(t, n, "alice"))
	bob.Login("r1", "bob", token(t, n, "bob"))
	joined := alice.Until(func(f protocol.Frame) bool { return f.Event == protocol.EvRoomUserUpdate })
	if joined.Prev != snap.Seq {
		t.Fatalf("alice's first room event: %+v", joined)
	}
	alice.WS.CloseNow()
	const missed = 3 * queue
	for i := range missed {
		bob.Do(fmt.Sprint(i), protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: fmt.Sprint("missed ", i)})
	}
	back := dial(t, n)
	back.Send("r", protocol.OpResume, protocol.ResumeRequest{ResumeToken: alice.Hello.ResumeToken,
		Rooms: map[string]uint64{"r1": joined.Seq}})
	if f := back.Reply("r"); f.Code != 0 {
		t.Fatalf("resume: %+v", f)
	}
	last := joined.Seq
	for i := range missed {
		f := back.Until(func(f protocol.Frame) bool { return f.Seq != 0 })
		if f.Prev != last || !strings.Contains(string(f.Data), fmt.Sprintf(`"missed %d"`, i)) {
			t.Fatalf("replayed event %d: %s #%d after #%d: %s", i, f.Event, f.Seq, f.Prev, f.Data)
		}
		last = f.Seq
	}
}

// A switch tells the session it left the old room before it tells it about
// the new one: Logout in the old room comes before the reply, Logined and
// the new room's users and streams. (The new room's snapshot comes from the
// engine without waiting for the projection, but the old room's Logout is
// sent as the projection folds it, so entering waits for that.) Run many
// times, since an ordering that depends on the projection's lag fails only
// sometimes.
func TestASwitchSaysLogoutBeforeTheNewRoom(t *testing.T) {
	n := startNode(t, gateway.Config{})
	bob := dial(t, n)
	bob.Login("r2", "bob", token(t, n, "bob"))
	bob.Do("pub", protocol.OpPublish, protocol.PublishRequest{Stream: "bob-cam", Room: "r2"})
	alice := dial(t, n)
	alice.Login("r0", "alice", token(t, n, "alice"))
	from := "r0"
	for i := range 30 {
		to := map[bool]string{true: "r2", false: fmt.Sprint("r", 10+i)}[i%2 == 0]
		id := fmt.Sprint("switch-", i)
		alice.Send(id, protocol.OpSwitchRoom, protocol.SwitchRoomRequest{From: from, To: to})
		var seen []string
		for {
			f := alice.Next()
			switch {
			case f.Type == protocol.TypeReply && f.ID == id:
				if f.Code != 0 {
					t.Fatalf("switch %s → %s: %+v", from, to, f)
				}
				seen = append(seen, "reply "+to)
			case f.Event == protocol.EvRoomStateChanged:
				var sc protocol.RoomStateChanged
				json.Unmarshal(f.Data, &sc)
				seen = append(seen, sc.State+" "+f.Room)
			case f.Event == protocol.EvRoomStreamUpdate:
				seen = append(seen, "streams "+f.Room)
			}
			if slices.Contains(seen, "Logout "+from) && slices.Contains(seen, "Logined "+to) &&
				(to != "r2" || slices.Contains(seen, "streams "+to)) {
				break
			}
		}
		logout := slices.Index(seen, "Logout "+from)
		for _, later := range []string{"reply ", "Logined ", "streams "} {
			if k := slices.Index(seen, later+to); k >= 0 && k < logout {
				t.Fatalf("switch %d %s → %s: frames %q: %q before the old room's Logout", i, from, to, seen, later+to)
			}
		}
		from = to
	}
}
