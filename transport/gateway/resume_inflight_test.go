package gateway_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections"
	"github.com/roomlog/roomlog/tests/netcut"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/protocol"
)

// holdSource is the engine's Source (the live projection) with a trap: the
// first cold load of the armed key waits until release. A command that
// touches an aggregate the engine has not cached loads it through its
// Source before it decides, so the trap holds that command before any of
// its appends: as a slow log does to a command in flight.
type holdSource struct {
	live    *projections.Live
	armed   atomic.Pointer[domain.Key]
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	// outcome gets how the held load ended: nil when it went on (its
	// command then decides and appends), the context's error when the
	// command was cancelled while held.
	outcome chan error
}

func newHoldSource(l *projections.Live) *holdSource {
	return &holdSource{live: l, entered: make(chan struct{}), release: make(chan struct{}), outcome: make(chan error, 1)}
}

// let lets the held load go on (once; later calls do nothing).
func (s *holdSource) let() { s.once.Do(func() { close(s.release) }) }

func (s *holdSource) State(ctx context.Context, k domain.Key, atLeast uint64) (any, uint64, bool, error) {
	if p := s.armed.Load(); p != nil && *p == k && s.armed.CompareAndSwap(p, nil) {
		close(s.entered)
		select {
		case <-s.release:
			s.outcome <- nil
		case <-ctx.Done():
			s.outcome <- ctx.Err()
			return nil, 0, false, ctx.Err()
		}
	}
	return s.live.State(ctx, k, atLeast)
}

// startHoldNode is newHandNode whose engine loads through a holdSource,
// served, with its projection running.
func startHoldNode(t *testing.T) (*handNode, *holdSource, string) {
	t.Helper()
	return startHoldNodeOn(t, estest.Open(t, nil))
}

// startHoldNodeOn is startHoldNode on log.
func startHoldNodeOn(t *testing.T, log *eventstore.Log) (*handNode, *holdSource, string) {
	t.Helper()
	var src *holdSource
	h := buildHandNode(t, log, "A", nil, func(l *projections.Live) engine.Source {
		src = newHoldSource(l)
		return src
	})
	addr := h.serve(t, gateway.Config{}, src.let) // the gateway subscribes to the projection first
	estest.RunLive(t, h.log, h.live)
	t.Cleanup(src.let) // before the projection stops
	return h, src, addr
}

// loginHeldOnR2 logs alice in to r1 (multi-room) on w, then sends a login
// to r2 (a room no one is in yet, so the engine loads it cold) that src
// holds before it appends anything; it returns her token and r1's snapshot.
func loginHeldOnR2(t *testing.T, h *handNode, src *holdSource, w *wire.Conn) (string, protocol.RoomSnapshot) {
	t.Helper()
	tok := holdToken(t, h, "alice")
	if f := w.Do("m", protocol.OpSetRoomMode, protocol.SetRoomModeRequest{Mode: string(domain.MultiRoom)}); f.Code != 0 {
		t.Fatalf("set_room_mode: %+v", f)
	}
	snap := w.Login("r1", "alice", tok)
	r2 := domain.RoomKey("dev", "r2")
	src.armed.Store(&r2)
	w.Send("l2", protocol.OpLogin, protocol.LoginRequest{Room: "r2", User: protocol.User{ID: "alice", Name: "alice"},
		Token: tok})
	select {
	case <-src.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the login to r2 never reached the engine's load of r2")
	}
	return tok, snap
}

func holdToken(t *testing.T, h *handNode, user string) string {
	t.Helper()
	tok, err := h.signer.Mint(auth.Claims{App: "dev", User: user, AllRooms: true, Publish: true,
		ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// A session logged in to r1 sends a login to r2; its network dies while
// that login is still on its way to the log (it has not appended yet), and
// the client resumes on a new connection to the same node, naming only r1
// (it does not know whether the login landed). The resume waits for the old
// connection's command to end, so that it reads what that command stored:
// r2 comes back "unknown" (as when a login's reply was lost with the
// connection), and the session gets r2's events. Before, the resume read
// the log first; the login landed after, and the session was a member of r2
// that was never told, and got none of the room's events.
func TestAResumeWaitsForTheCommandItsOldConnectionWasRunning(t *testing.T) {
	h, src, addr := startHoldNode(t)
	proxy := netcut.Start(t, addr)

	alice := wire.Dial(t, proxy.Addr())
	sid := domain.SessionID(alice.Hello.Session)
	tok, snap := loginHeldOnR2(t, h, src, alice)

	// The network drops alice (the server's old socket stays open: it
	// neither hears nor reaches her), and she resumes on a new connection.
	proxy.Drop()
	again := wire.Dial(t, addr)
	again.Send("r", protocol.OpResume, protocol.ResumeRequest{ResumeToken: alice.Hello.ResumeToken, Token: tok,
		Rooms: map[string]uint64{"r1": snap.Seq}})

	// The new connection's frames, read on a goroutine of their own (a
	// read that times out would close the connection).
	frames := make(chan protocol.Frame, 1024)
	go func() {
		defer close(frames)
		for {
			f, err := again.TryNext(30 * time.Second)
			if err != nil {
				return
			}
			frames <- f
		}
	}()
	var reply protocol.Frame
	var seen []protocol.Frame // frames of r2 on the new connection
	next := func(within time.Duration) bool {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatal("the new connection closed")
			}
			if f.Type == protocol.TypeReply && f.ID == "r" {
				reply = f
			} else if f.Room == "r2" {
				seen = append(seen, f)
			}
			return true
		case <-time.After(within):
			return false
		}
	}
	// Give the resume time to answer while the login is still held (a
	// gateway that waits for the old connection's command first answers
	// only after the release below).
	for end := time.Now().Add(1500 * time.Millisecond); reply.ID != "r" && next(time.Until(end)); {
	}
	answeredFirst := reply.ID == "r"
	// The login goes on: its appends land.
	src.let()
	for reply.ID != "r" {
		if !next(20 * time.Second) {
			t.Fatal("no reply to the resume")
		}
	}
	var rr protocol.ResumeReply
	if reply.Code != 0 || json.Unmarshal(reply.Data, &rr) != nil {
		t.Fatalf("resume: %+v", reply)
	}
	t.Logf("resume answered before the login went on: %v; rooms in the reply: %+v", answeredFirst, rr.Rooms)

	// Does the log (as the projection folds it) have the session in r2?
	inR2 := func() bool {
		var in bool
		h.live.Read(func(m *projections.Model) {
			if a := m.App("dev"); a != nil && a.Rooms["r2"] != nil {
				_, in = a.Rooms["r2"].MemberBySession("alice", sid)
			}
		})
		return in
	}
	landed := false
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if landed = inR2(); landed {
			break
		}
	}
	if !landed {
		// The old login was given up before it appended: then the client
		// must not be told it is in r2.
		if st, ok := rr.Rooms["r2"]; ok && st.Status != "left" {
			t.Errorf("the log does not have the session in r2, yet the resume says %q", st.Status)
		}
		t.Logf("the login to r2 did not land")
		return
	}
	t.Logf("the log has session %s in r2", sid)

	// Bob logs in to r2 and sees alice there; his broadcast reaches every
	// member this node serves before his query's reply (WaitFor waits for
	// the hub), and alice's query_room (which only a member may make)
	// succeeds after it.
	bob := wire.Dial(t, addr)
	bsnap := bob.Login("r2", "bob", holdToken(t, h, "bob"))
	var bobSeesAlice bool
	for _, u := range bsnap.Users {
		bobSeesAlice = bobSeesAlice || u.ID == "alice"
	}
	bob.Do("b", protocol.OpBroadcast, protocol.MessageRequest{Room: "r2", Message: "to r2"})
	bob.Do("q", protocol.OpQueryRoom, protocol.RoomRequest{Room: "r2"})
	again.Send("q", protocol.OpQueryRoom, protocol.RoomRequest{Room: "r2"})
	var q protocol.Frame
	for q.ID != "q" {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatal("the new connection closed")
			}
			if f.Type == protocol.TypeReply && f.ID == "q" {
				q = f
			} else if f.Room == "r2" {
				seen = append(seen, f)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no reply to query_room")
		}
	}
	t.Logf("bob's snapshot of r2 lists alice: %v; alice's query_room r2 on the new connection: code %d; "+
		"frames of r2 alice got on the new connection: %d", bobSeesAlice, q.Code, len(seen))

	st, told := rr.Rooms["r2"]
	told = told && (st.Status == "resumed" || st.Status == "unknown")
	if !told && len(seen) == 0 {
		t.Errorf("the log has the session in r2 (bob sees alice there: %v), but the resume reply names rooms %+v "+
			"and no frame of r2 came on the new connection: the client was never told it is in r2", bobSeesAlice, rr.Rooms)
	}
	if st.Status == "resumed" || len(seen) > 0 {
		return // registered in r2: it gets the room's events
	}
	var got bool
	for _, f := range seen {
		got = got || f.Event == protocol.EvBroadcastMessage
	}
	if !got && !told {
		t.Errorf("alice is a member of r2 in the log but got none of its events (bob's broadcast did not reach her)")
	}
}
