package reactor_test

import (
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// u1's session s1 is in r1 and r2 (logged in through node A); u1 logs into
// r1 again from another session, which kicks s1 out of r1. The follow-up
// (KickSession: leave r2 too) is delivered to node B, whose engine once
// served s1 (before it moved to A) and caches it with no claims. Decided
// on that cache, the follow-up would do nothing and be acknowledged: s1,
// told KickOut, would stay a member of r2 for ever.
func TestAKickFollowUpOnANodeWithAStaleCacheLeavesTheOtherRooms(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	a := estest.Engine(t, log, l, nil)
	b := estest.Engine(t, log, l, nil)
	runReactor(t, b, log) // node A's reactor is not running (or lost the race)

	estest.Exec(t, b, estest.Login("s1", "u1", "r0"))
	estest.Exec(t, b, domain.LeaveRoom{Session: "s1", Room: "r0"})
	estest.Exec(t, a, estest.Login("s1", "u1", "r1"))
	estest.Exec(t, a, estest.Login("s1", "u1", "r2"))
	estest.Exec(t, a, estest.Login("s2", "u2", "r2"))
	estest.Exec(t, a, estest.Login("s3", "u1", "r1")) // duplicate login: kicks s1

	// The consumer's own counts (no ack pending, nothing pending) are no
	// sign that it handled everything: the server tells a consumer of new
	// messages asynchronously, and its info could say nothing pending
	// before it knew of the kick. So wait for what the follow-up does.
	estest.Eventually(t, "the reactor takes s1, kicked by a duplicate login, out of r2", func() bool {
		estest.Sync(t, log, l)
		_, in := estest.Room(l, "r2").MemberBySession("u1", "s1")
		return !in
	})
}
