package gateway

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/protocol"
)

// The node remembers at most maxRemembered outcomes by idempotency key.
// One client sending keys as fast as it may used to push every other
// session's out (the oldest went first, whoever's they were): their repeats
// then ran again. The session holding the most now loses its oldest first,
// and what expires leaves nothing behind.
func TestOneSessionsKeysDoNotPushOutTheOthers(t *testing.T) {
	var r replies
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	o, _ := r.start("alice", "k-alice", protocol.OpBroadcast, now)
	r.finish(o, "sent", nil)
	for i := range maxRemembered + 10 {
		o, seen := r.start("flood", fmt.Sprint("k", i), protocol.OpBroadcast, now)
		if seen {
			t.Fatalf("flood's key %d was seen already", i)
		}
		r.finish(o, nil, nil)
	}
	if o, seen := r.start("alice", "k-alice", protocol.OpBroadcast, now); !seen || o.data != "sent" {
		t.Errorf("alice's outcome was pushed out by another session's %d keys", maxRemembered+10)
	}
	if _, seen := r.start("flood", "k0", protocol.OpBroadcast, now); seen {
		t.Errorf("the flooding session's oldest outcome is still remembered past the limit")
	}
	if n := len(r.byKey); n > maxRemembered {
		t.Errorf("%d outcomes remembered, at most %d", n, maxRemembered)
	}
	// Past the window, nothing of either session is left.
	r.start("bob", "k-bob", protocol.OpBroadcast, now.Add(protocol.IdempotencyWindow+time.Second))
	if len(r.byKey) != 1 || len(r.bySession) != 1 || len(r.order) != 1 {
		t.Errorf("after the window: %d outcomes, %d sessions, %d in order; want bob's one", len(r.byKey),
			len(r.bySession), len(r.order))
	}
}

// At the cap with no session holding more than its share (many sessions
// holding a couple of outcomes each), the oldest outcome goes first. A
// first version of the fair eviction forgot the newest instead: the next
// request from anyone else dropped it, while sessions holding more kept
// theirs.
func TestAtTheCapWithNoFloodTheOldestOutcomeGoesFirst(t *testing.T) {
	r := replies{limit: 10}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for s := range 5 {
		for k := range 2 {
			o, _ := r.start(domain.SessionID(fmt.Sprint("old", s)), fmt.Sprint("k", k), protocol.OpBroadcast, now)
			r.finish(o, "ok", nil)
		}
	}
	for i := range 6 {
		now = now.Add(time.Second)
		o, _ := r.start(domain.SessionID(fmt.Sprint("new", i)), "k", protocol.OpBroadcast, now)
		r.finish(o, "ok", nil)
	}
	// new4's request was answered a second ago; sessions old1..old4 each still hold two.
	held := map[string]int{}
	for s, l := range r.bySession {
		held[string(s)] = len(l)
	}
	if o, seen := r.start("new4", "k", protocol.OpBroadcast, now); !seen || o.data != "ok" {
		t.Errorf("new4's outcome, one request old, was forgotten while other sessions hold more: %v", held)
	}
}

// A session that once sent many keys and then keeps sending one now and
// then keeps its list of outcomes: what expired from it is released all
// the same. (A first version resliced the list without clearing what it
// dropped, so each such session kept every outcome it ever had, reply data
// included: memory that grew with the sessions, past the limit.)
func TestExpiredOutcomesAreReleased(t *testing.T) {
	var r replies
	var freed atomic.Int64
	const sessions, flood = 10, 1000
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	n := 0
	key := func() string { n++; return fmt.Sprint("k", n) }
	for step := range 3*sessions + 4 {
		now := start.Add(time.Duration(step) * time.Minute)
		// Every session that has started sends one key a minute.
		for s := range min(step/3+1, sessions) {
			o, _ := r.start(domain.SessionID(fmt.Sprint("s", s)), key(), protocol.OpBroadcast, now)
			r.finish(o, "ok", nil)
		}
		if step%3 == 0 && step/3 < sessions {
			s := domain.SessionID(fmt.Sprint("s", step/3))
			for range flood {
				o, _ := r.start(s, key(), protocol.OpBroadcast, now)
				runtime.AddCleanup(o, func(int) { freed.Add(1) }, 0)
				r.finish(o, "ok", nil)
			}
		}
	}
	// The last flood expired two minutes ago; let order move on to a new
	// array too, so that only bySession can hold the expired ones.
	now := start.Add(time.Duration(3*sessions+4) * time.Minute)
	for range 20 * flood {
		o, _ := r.start("other", key(), protocol.OpBroadcast, now)
		r.finish(o, "ok", nil)
	}
	kept := func() int { return sessions*flood - int(freed.Load()) }
	// Cleanups run after a collection, on a goroutine of their own: give
	// them time (a loaded machine), and look again.
	for deadline := time.Now().Add(20 * time.Second); kept() > flood && time.Now().Before(deadline); {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if kept() > flood {
		t.Errorf("%d of %d expired outcomes still reachable (%d remembered, limit %d)", kept(), sessions*flood,
			len(r.byKey), maxRemembered)
	}
}
