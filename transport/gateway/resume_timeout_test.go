package gateway_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/eventstore/presence"
	"github.com/roomlog/roomlog/projections"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/protocol"
)

// slowResume is the node's real presence; while armed, the first claim
// that finds a session alive (Revive) is followed by `pass` of (fake) time
// before the resume goes on: the time the rest of a resume takes (reading the log's end, waiting for the projection, reading the
// session: up to CommandTimeout under load). Nothing is faked: every call
// goes to the real presence on the real bucket; only the clock moves, as it
// would.
type slowResume struct {
	*presence.Presence
	clock *estest.Clock
	pass  time.Duration
	armed atomic.Bool
}

func (p *slowResume) Revive(ctx context.Context, s domain.SessionID) (presence.Record, bool, error) {
	r, alive, err := p.Presence.Revive(ctx, s)
	if alive && err == nil && p.armed.CompareAndSwap(true, false) {
		p.clock.Advance(p.pass)
	}
	return r, alive, err
}

type slowGateway struct {
	addr   string
	signer *auth.Signer
	pres   *slowResume
	log    *eventstore.Log
	live   *projections.Live
}

// startSlowGateway runs one node's parts by hand (real embedded NATS,
// real engine, real projection, real presence), so that presence can be
// the slowResume above.
func startSlowGateway(t *testing.T, clock *estest.Clock) *slowGateway {
	t.Helper()
	h := newHandNode(t, clock)
	sr := &slowResume{Presence: h.presence, clock: clock}
	estest.RunLive(t, h.log, h.live)
	addr := h.serve(t, gateway.Config{Presence: sr, Clock: clock}, nil)
	return &slowGateway{addr: addr, signer: h.signer, pres: sr, log: h.log, live: h.live}
}

func (g *slowGateway) token(t *testing.T, clock *estest.Clock, user string) string {
	t.Helper()
	tok, err := g.signer.Mint(auth.Claims{App: "dev", User: user, AllRooms: true, Publish: true,
		ExpiresAt: clock.Now().Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (g *slowGateway) timeouts(t *testing.T) int {
	t.Helper()
	count := 0
	_, err := g.log.Read(estest.Ctx(t), []string{g.log.Prefix() + ".>"}, 1, func(rec eventstore.Record) error {
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

// Seed case 1 (SEMANTICS.md section 5): a client that reconnects before the
// heartbeat timeout resumes, and the others see nothing. Here alice's
// resume arrives 89.5 s after her last heartbeat, and the rest of the
// resume takes 1 s. The check that she is alive and the refresh that keeps
// her so must be one step (Presence.Revive), exclusive of the timeout: were
// the refresh to come after the reads that follow the check, the 90 s
// would run out in between, the timeout be recorded, and the resume answer
// anyway.
func TestAResumeAcceptedBeforeTheTimeoutIsNotTimedOutMeanwhile(t *testing.T) {
	clock := estest.NewClock(t0)
	g := startSlowGateway(t, clock)
	alice := wire.Dial(t, g.addr)
	hello := alice.Hello
	alice.Login("r1", "alice", g.token(t, clock, "alice"))
	bob := wire.Dial(t, g.addr)
	bob.Login("r1", "bob", g.token(t, clock, "bob"))
	last := alice.Until(func(f protocol.Frame) bool { return f.Event == protocol.EvRoomUserUpdate }).Seq
	estest.Eventually(t, "presence tracks both", func() bool { return g.pres.Tracked() == 2 })

	alice.WS.CloseNow() // alice's network drops
	clock.Advance(60 * time.Second)
	bob.Do("hb1", protocol.OpHeartbeat, nil)
	clock.Advance(29500 * time.Millisecond) // alice silent 89.5 s
	bob.Do("hb2", protocol.OpHeartbeat, nil)

	// Alice is back 0.5 s before her timeout. The resume takes 1 s of
	// wall time between its liveness check and its beat.
	g.pres.pass = time.Second
	g.pres.armed.Store(true)
	again := wire.Dial(t, g.addr)
	again.Send("r", protocol.OpResume, protocol.ResumeRequest{ResumeToken: hello.ResumeToken,
		Rooms: map[string]uint64{"r1": last}})
	// Were the timeout recorded, it would show, depending on when the
	// projection folds it, as r1 "left" in the reply, or as the resumed
	// connection closed with heartbeat_timeout right after the resume.
	var rr protocol.ResumeReply
	for {
		f, err := again.TryNext(10 * time.Second)
		if err != nil {
			t.Errorf("alice's resume 89.5 s after her last heartbeat: her new connection was closed (%v); "+
				"%d timeout(s) recorded", err, g.timeouts(t))
			return
		}
		if f.Event == protocol.EvSessionClosing {
			t.Logf("the resumed connection is being closed: %s", f.Data)
		}
		if f.Type == protocol.TypeReply && f.ID == "r" {
			if f.Code != 0 {
				t.Fatalf("resume 89.5 s after the last heartbeat refused: %+v", f)
			}
			if err := json.Unmarshal(f.Data, &rr); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if g.pres.armed.Load() {
		t.Fatal("the resume never looked alice up")
	}
	estest.Sync(t, g.log, g.live)
	n := g.timeouts(t)
	var in bool
	g.live.Read(func(m *projections.Model) {
		if a := m.App("dev"); a != nil && a.Rooms["r1"] != nil {
			_, in = a.Rooms["r1"].MemberBySession("alice", domain.SessionID(hello.Session))
		}
	})
	_, alive, _ := g.pres.Presence.Lookup(estest.Ctx(t), domain.SessionID(hello.Session))
	if rr.Rooms["r1"].Status != "resumed" || n != 0 || !in {
		t.Errorf("alice's resume was accepted (presence said alive at 89.5 s; alive now: %v), yet %d timeout(s) "+
			"recorded, r1 status %q, alice still a member of r1: %v; seed case 1 wants no timeout and r1 resumed",
			alive, n, rr.Rooms["r1"].Status, in)
	}
	if alive && !in {
		t.Errorf("split state: presence keeps alice alive (resumable, beating) while the log has timed her out")
	}
}
