package presence_test

import (
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// "No ghosts": node A, which served s1 last, dies; node B records the
// timeout. B's engine once served s1 (a login and logout before s1 moved to
// A by a resume), so its cached session has no claims. Were TimeoutSession
// decided on that cache, nothing would be done, presence would forget the
// record, and s1 would stay a member of r2 for ever.
func TestASurvivingNodeWithAStaleCacheTimesTheSessionOut(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	clock := estest.NewClock(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	a := estest.Engine(t, log, l, clock) // node A: dies, its presence never runs
	b := estest.Engine(t, log, l, clock)
	pb := open(t, log, b, clock)
	run(t, pb)

	estest.Exec(t, b, estest.Login("s1", "u1", "r1"))
	estest.Exec(t, b, domain.LeaveRoom{Session: "s1", Room: "r1"})
	estest.Exec(t, a, estest.Login("s1", "u1", "r2"))
	estest.Exec(t, a, estest.Login("s2", "u2", "r2"))
	if err := pb.Beat(estest.Ctx(t), estest.App, "s1"); err != nil {
		t.Fatal(err)
	}
	estest.Eventually(t, "node B tracks s1", func() bool { return pb.Tracked() == 1 })
	clock.Advance(91 * time.Second)
	estest.Eventually(t, "node B forgets s1 (timeout recorded)", func() bool { return pb.Tracked() == 0 })
	estest.Sync(t, log, l)
	if _, ok, _ := pb.Lookup(estest.Ctx(t), "s1"); ok {
		t.Fatal("s1 still alive")
	}
	if _, in := estest.Room(l, "r2").MemberBySession("u1", "s1"); in {
		t.Fatal("s1 timed out and forgotten by presence, but it is still a member of r2 (a ghost no timer will remove)")
	}
}
