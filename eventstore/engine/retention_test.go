package engine_test

import (
	"os"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// The logs of this package may be purged, as retention (roomd -retention)
// removes a log's oldest records.
func TestMain(m *testing.M) {
	eventstore.AllowTamperingInTests()
	os.Exit(m.Run())
}

// A session that stays in a room for longer than the log's max age without
// a change: retention removes every record of its session and of the room,
// while the node still holds both. Its logout must still be stored. Before,
// each append expected the removed record as the subject's last, was refused
// as a conflict, and a catch-up found nothing newer: the command gave up as
// unavailable, and so would every later one on those aggregates, on that
// node, until it restarted.
func TestAnAggregateWhoseRecordsRetentionRemovedGoesOn(t *testing.T) {
	log := estest.Open(t, func(c *eventstore.Config) { c.MaxAge = 24 * time.Hour })
	l := estest.Live(t, log)
	clock := estest.NewClock(time.Now())
	e := estest.Engine(t, log, l, clock)
	estest.Exec(t, e, estest.Login("s1", "u1", "r1"))
	estest.Exec(t, e, estest.Login("s2", "u2", "r1"))
	estest.Sync(t, log, l)
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

func keys[K comparable, V any](m map[K]V) []K {
	var ks []K
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
