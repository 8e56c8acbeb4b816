package presence_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/eventstore/presence"
)

// openWithMarkers is open with a bucket whose deletion markers expire
// after a second (the least JetStream takes), as roomd's do after
// presence.MarkerTTL.
func openWithMarkers(t *testing.T, log *eventstore.Log, e presence.Executor, clock *estest.Clock) *presence.Presence {
	t.Helper()
	return openMarked(t, log, e, clock, time.Second)
}

// bucketMessages is how many messages the presence bucket's stream holds.
func bucketMessages(t *testing.T, log *eventstore.Log) uint64 {
	t.Helper()
	s, err := estest.JetStream(t, log).Stream(estest.Ctx(t), "KV_"+presence.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(estest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// The presence bucket holds live sessions only. A session's record is
// deleted when it times out (or is forgotten), and session IDs are never
// reused: each deletion's marker used to stay for good, one message per
// session ever served, handed again to every node's watch at each start.
// Now the markers expire.
func TestTimedOutSessionsLeaveNothingInThePresenceBucket(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	clock := estest.NewClock(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	e := estest.Engine(t, log, l, clock)
	p := openWithMarkers(t, log, e, clock)
	run(t, p)
	const n = 40
	for i := range n {
		s := domain.SessionID(fmt.Sprintf("s%02d", i))
		estest.Exec(t, e, estest.Login(s, domain.UserID(s), "r1"))
		if err := p.Beat(estest.Ctx(t), estest.App, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Forget(estest.Ctx(t), "never-logged-in"); err != nil {
		t.Fatal(err)
	}
	estest.Eventually(t, "presence tracks every session", func() bool { return p.Tracked() == n })
	clock.Advance(91 * time.Second)
	estest.Eventually(t, "every session timed out and forgotten", func() bool { return p.Tracked() == 0 })
	estest.Sync(t, log, l)
	if m := estest.Room(l, "r1").Members; len(m) != 0 {
		t.Fatalf("%d members left in r1 after every session timed out", len(m))
	}
	// JetStream's clock, not the test's, expires the markers.
	estest.Eventually(t, "the bucket empty once the markers expired", func() bool { return bucketMessages(t, log) == 0 })
}

// A deletion a node's watch never saw (it went by while the watch was set
// up again, and its marker has expired since; here the record is purged
// without one) leaves that node a timer for the session. When it fires
// and finds no record, the node stops tracking the session: before, the
// timer stayed in its map for good.
func TestATimerWhoseRecordWentUnseenIsDropped(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	clock := estest.NewClock(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	e := estest.Engine(t, log, l, clock)
	p := openWithMarkers(t, log, e, clock)
	run(t, p)
	estest.Exec(t, e, estest.Login("s1", "u1", "r1"))
	if err := p.Beat(estest.Ctx(t), estest.App, "s1"); err != nil {
		t.Fatal(err)
	}
	estest.Eventually(t, "presence tracks s1", func() bool { return p.Tracked() == 1 })
	s, err := estest.JetStream(t, log).Stream(estest.Ctx(t), "KV_"+presence.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(estest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(91 * time.Second)
	estest.Eventually(t, "the timer dropped once it found no record", func() bool { return p.Tracked() == 0 })
}
