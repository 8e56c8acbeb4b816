package gateway

import (
	"fmt"
	"testing"
	"time"

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
