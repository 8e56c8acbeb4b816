package engine_test

import (
	"os"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections"
	"github.com/roomlog/roomlog/projections/audit"
)

// The logs of this package may be purged, as retention (roomd -retention)
// removes a log's oldest records.
func TestMain(m *testing.M) {
	eventstore.AllowTamperingInTests()
	os.Exit(m.Run())
}

// twoInARoom opens a log with a day's retention and logs s1 and s2 into r1
// through an engine on a clock the test moves; l folds the log.
func twoInARoom(t *testing.T) (*eventstore.Log, *projections.Live, *estest.Clock, *engine.Engine) {
	t.Helper()
	log := estest.Open(t, func(c *eventstore.Config) { c.MaxAge = 24 * time.Hour })
	l := estest.Live(t, log)
	clock := estest.NewClock(time.Now())
	e := estest.Engine(t, log, l, clock)
	estest.Exec(t, e, estest.Login("s1", "u1", "r1"))
	estest.Exec(t, e, estest.Login("s2", "u2", "r1"))
	estest.Sync(t, log, l)
	return log, l, clock, e
}

// A session that stays in a room for longer than the log's max age without
// a change: retention removes every record of its session and of the room,
// while the node still holds both. Its logout must still be stored. Before,
// each append expected the removed record as the subject's last, was refused
// as a conflict, and a catch-up found nothing newer: the command gave up as
// unavailable, and so would every later one on those aggregates, on that
// node, until it restarted.
func TestAnAggregateWhoseRecordsRetentionRemovedGoesOn(t *testing.T) {
	log, l, clock, e := twoInARoom(t)
	before := estest.Room(l, "r1").Seq

	// A day later, retention has removed all of it (the server's max age
	// runs on the real clock: the test removes the records itself).
	clock.Advance(25 * time.Hour)
	estest.Purge(t, log, 0)
	res, err := e.Execute(estest.Ctx(t), domain.Meta{App: estest.App},
		domain.LeaveRoom{Session: "s1", Room: "r1", Reason: domain.ReasonLogout})
	if err != nil {
		t.Fatalf("logout of s1 after retention removed the records of r1 and s1: %v", err)
	}
	estest.Sync(t, log, l)
	r := estest.Room(l, "r1")
	if _, in := r.MemberBySession("u1", "s1"); in || r.Members["u2"] == nil {
		t.Fatalf("after the logout (%d messages appended), r1's members are %v: want u2 only", len(res.Appended), keys(r.Members))
	}
	if r.Seq != before+1 {
		t.Errorf("r1 at seq %d after the logout, was %d: the room's sequence must go on", r.Seq, before)
	}
	// s2's session, untouched by the logout, was emptied too: its logout's
	// room step must not be stored before the session's is found removed.
	estest.Exec(t, e, domain.LeaveRoom{Session: "s2", Room: "r1", Reason: domain.ReasonLogout})
	estest.Exec(t, e, estest.Login("s3", "u3", "r1"))
	estest.Sync(t, log, l)
	if r := estest.Room(l, "r1"); len(r.Members) != 1 || r.Members["u3"] == nil {
		t.Fatalf("r1's members are %v: want u3 only", keys(r.Members))
	}
}

// An engine that loads an emptied aggregate cold (another node, or this
// node once its cache let the aggregate go) takes its state from the node's
// projection, which still holds it, and chains on from "" (the hash of the
// last removed event is nowhere any more). An engine that still caches the
// aggregate takes that record as the chain's new anchor, and the log
// verifies. Before, the cold engine took the room for new: it stored a
// second seq 1 without u1 and u2, and the other engine failed every command
// on the room with a broken hash chain.
func TestAnEmptiedAggregateLoadedColdGoesOnFromTheProjection(t *testing.T) {
	log, l, clock, a := twoInARoom(t)
	before := estest.Room(l, "r1").Seq

	clock.Advance(25 * time.Hour)
	estest.Purge(t, log, 0)
	b := estest.Engine(t, log, l, clock) // has never loaded r1
	estest.Exec(t, b, estest.Login("s3", "u3", "r1"))
	estest.Sync(t, log, l)
	if r := estest.Room(l, "r1"); r.Seq != before+1 || len(r.Members) != 3 {
		t.Fatalf("r1 after u3's login through the cold engine: seq %d (was %d), members %v; want seq %d, u1, u2 and u3",
			r.Seq, before, keys(r.Members), before+1)
	}
	// The engine that caches r1 goes on after the re-anchored record.
	if _, err := a.Execute(estest.Ctx(t), domain.Meta{App: estest.App},
		domain.LeaveRoom{Session: "s1", Room: "r1", Reason: domain.ReasonLogout}); err != nil {
		t.Fatalf("logout of s1 through the engine that caches r1: %v", err)
	}
	estest.Sync(t, log, l)
	if r := estest.Room(l, "r1"); len(r.Members) != 2 || r.Members["u1"] != nil {
		t.Fatalf("r1's members after s1's logout: %v", keys(r.Members))
	}
	// What is kept verifies, as roomctl verify checks it.
	first, last, err := log.Span(estest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	au := audit.New(log.Prefix(), func(domain.AppID) domain.Policy { return estest.Policy() })
	au.Retained(first)
	if _, err := log.Read(estest.Ctx(t), []string{log.Prefix() + ".>"}, first, au.Apply); err != nil {
		t.Fatal(err)
	}
	au.Finish(last)
	for _, v := range au.Violations() {
		t.Errorf("audit: %s", v)
	}
}

// The same, when the engine finds the emptied subjects only by a conflict
// on the append (its clock lags the server's by more than half the max age,
// or another node changed the retention limit): each step goes again as
// decided, expecting the subject empty. Before, a logout's room step was
// stored, its session step conflicted, and the logout, decided again, was
// refused as not in the room, leaving the session's claim behind.
func TestRetentionFoundByAConflictStoresEveryStepOnce(t *testing.T) {
	log, l, _, e := twoInARoom(t) // the clock stays: the records are young
	before := estest.Room(l, "r1").Seq

	estest.Purge(t, log, 0) // young records: only a conflict tells
	estest.Exec(t, e, domain.LeaveRoom{Session: "s1", Room: "r1", Reason: domain.ReasonLogout})
	estest.Exec(t, e, domain.LeaveRoom{Session: "s2", Room: "r1", Reason: domain.ReasonLogout})
	estest.Sync(t, log, l)
	if r := estest.Room(l, "r1"); len(r.Members) != 0 {
		t.Fatalf("r1 after both logouts (at seq %d before): members %v; want none", before, keys(r.Members))
	}
	for _, s := range []domain.SessionID{"s1", "s2"} {
		if got := estest.Session(l, s); len(got.Claims) != 0 {
			t.Errorf("session %s still claims %v after its logout", s, got.Claims)
		}
	}
}

func keys[K comparable, V any](m map[K]V) []K {
	var ks []K
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
