package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections"
)

// live runs a projection of the whole log until the test ends.
func live(t *testing.T, log *eventstore.Log) *projections.Live {
	t.Helper()
	l := projections.NewLive(projections.NewModel())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, log, []string{log.Prefix() + ".>"}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("projection: %v", err)
		}
	})
	return l
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func runReactor(t *testing.T, e *engine.Engine, log *eventstore.Log) {
	t.Helper()
	r, err := engine.NewReactor(engine.ReactorConfig{Engine: e, Log: log, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("reactor: %v", err)
		}
	})
	select {
	case <-r.Running():
	case <-time.After(10 * time.Second):
		t.Fatal("reactor did not start")
	}
}

func room(l *projections.Live, id domain.RoomID) (r *domain.Room) {
	l.Read(func(m *projections.Model) {
		if a := m.App(app); a != nil && a.Rooms[id] != nil {
			r = a.Rooms[id].Clone()
		}
	})
	if r == nil {
		r = &domain.Room{}
	}
	return r
}

func session(l *projections.Live, id domain.SessionID) (s *domain.Session) {
	l.Read(func(m *projections.Model) {
		if a := m.App(app); a != nil && a.Sessions[id] != nil {
			s = a.Sessions[id].Clone()
		}
	})
	if s == nil {
		s = &domain.Session{}
	}
	return s
}

// A duplicate login kicks the older session out of one room; the reactor
// takes it out of its other rooms, and frees what a destroyed room held.
func TestReactorCompletesFollowUps(t *testing.T) {
	log := estest.Open(t, nil)
	l := live(t, log)
	e := newEngine(t, log, l)
	runReactor(t, e, log)
	exec(t, e, login("old", "u1", "r1"))
	exec(t, e, login("old", "u1", "r2"))
	exec(t, e, domain.PublishStream{Session: "old", Stream: "cam", Room: "r2"})
	exec(t, e, login("x", "u2", "r2"))
	exec(t, e, login("new", "u1", "r1")) // kicks old out of r1
	eventually(t, "the kicked session leaves its other room and stops its stream there", func() bool {
		r := room(l, "r2")
		_, in := r.Members["u1"]
		_, pub := r.Streams["cam"]
		return !in && !pub && len(session(l, "old").Claims) == 0
	})
	exec(t, e, domain.DestroyRoom{Room: "r2"})
	eventually(t, "the destroyed room's member gets its slot back", func() bool {
		return len(session(l, "x").Claims) == 0
	})
}

// The reactor's consumer is durable: what happens while no reactor runs is
// done by the next one.
func TestReactorCatchesUpAfterARestart(t *testing.T) {
	log := estest.Open(t, nil)
	l := live(t, log)
	e := newEngine(t, log, l)
	exec(t, e, login("a", "u1", "r1"))
	exec(t, e, login("b", "u2", "r1"))
	exec(t, e, domain.DestroyRoom{Room: "r1"}) // nobody frees a's and b's claims yet
	last, err := log.LastSeq(estest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.WaitFor(estest.Ctx(t), last); err != nil {
		t.Fatal(err)
	}
	if len(session(l, "a").Claims) == 0 {
		t.Fatal("the claim was freed without a reactor")
	}
	runReactor(t, e, log)
	eventually(t, "claims freed by the reactor started later", func() bool {
		return len(session(l, "a").Claims) == 0 && len(session(l, "b").Claims) == 0
	})
}

func TestTimekeeperDestroysEmptyRoomsWhenTheirDelayRunsOut(t *testing.T) {
	log := estest.Open(t, nil)
	l := live(t, log)
	clock := estest.NewClock(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC))
	d, err := domain.NewDecider(domain.Config{Default: policy()})
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(engine.Config{Log: log, Decider: d, Source: l, Clock: clock.Now, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	tk := engine.NewTimekeeper(e, l, clock, estest.Logger(t))
	tk.Attach()
	t.Cleanup(tk.Stop)
	enter := func(s domain.SessionID, u domain.UserID, r domain.RoomID, delay int) {
		c := login(s, u, r)
		c.Via, c.Config = domain.ViaEnter, domain.RoomConfig{DestroyDelay: delay}
		exec(t, e, c)
	}
	sync := func() {
		last, err := log.LastSeq(estest.Ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.WaitFor(estest.Ctx(t), last); err != nil {
			t.Fatal(err)
		}
	}
	enter("s1", "u1", "kept", 60)
	enter("s2", "u2", "gone", 60)
	exec(t, e, domain.LeaveRoom{Session: "s1", Room: "kept"})
	exec(t, e, domain.LeaveRoom{Session: "s2", Room: "gone"})
	sync()
	if n := tk.Pending(); n != 2 {
		t.Fatalf("%d deadlines scheduled, want 2", n)
	}
	clock.Advance(30 * time.Second)
	enter("s3", "u3", "kept", 60) // joins within the delay: keeps the room
	sync()
	clock.Advance(29 * time.Second)
	sync()
	if !room(l, "gone").Exists {
		t.Fatal("destroyed before its delay ran out")
	}
	clock.Advance(time.Second)
	sync()
	if room(l, "gone").Exists {
		t.Fatal("not destroyed when its delay ran out")
	}
	clock.Advance(time.Hour)
	sync()
	if !room(l, "kept").Exists {
		t.Fatal("a room someone joined within its delay was destroyed")
	}
	if n := tk.Pending(); n != 0 {
		t.Errorf("%d deadlines still scheduled", n)
	}
}

// A reactor stopped while messages stream in stops cleanly, however the
// stop falls: watermill-nats closes its output channel when the
// subscription's context ends, and a delivery in flight at that moment
// would send on the closed channel (a panic that takes the node down).
func TestReactorStopsCleanlyWhileBusy(t *testing.T) {
	log := estest.Open(t, nil)
	l := live(t, log)
	e := newEngine(t, log, l)
	for i := range 300 {
		room := domain.RoomID(fmt.Sprint("r", i%10))
		s := domain.SessionID(fmt.Sprint("s", i))
		exec(t, e, login(s, domain.UserID(fmt.Sprint("u", i)), room))
		exec(t, e, domain.LeaveRoom{Session: s, Room: room}) // a follow-up frees its claim
	}
	for i := range 30 {
		r, err := engine.NewReactor(engine.ReactorConfig{Engine: e, Log: log, Logger: estest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		<-r.Running()
		time.Sleep(time.Duration(i%5) * time.Millisecond) // stop at various points of the flow
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("stop %d: %v", i, err)
		}
	}
}

// A session whose last heartbeat is the timeout old is timed out for
// Lookup, even while its record is still there: the timekeeper records the
// timeout in the log before it forgets the record, and a resume in between
// must be refused (seed case 2). No watcher runs here, so nothing fires.
func TestPresenceLookupCountsAnExpiredRecordAsTimedOut(t *testing.T) {
	log := estest.Open(t, nil)
	clock := estest.NewClock(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	p, err := engine.NewPresence(estest.Ctx(t), engine.PresenceConfig{Engine: newEngine(t, log, nil), Log: log,
		Clock: clock, Timeout: 90 * time.Second, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := p.Lookup(estest.Ctx(t), "s1"); err != nil || ok {
		t.Fatalf("a session never heard from: alive %v, %v", ok, err)
	}
	if err := p.Beat(estest.Ctx(t), app, "s1"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(89 * time.Second)
	if r, ok, err := p.Lookup(estest.Ctx(t), "s1"); err != nil || !ok || r.App != app {
		t.Fatalf("89 s after a heartbeat: %+v, alive %v, %v", r, ok, err)
	}
	clock.Advance(time.Second)
	if r, ok, err := p.Lookup(estest.Ctx(t), "s1"); err != nil || ok || r.Session != "s1" {
		t.Fatalf("90 s after a heartbeat: %+v, alive %v, %v; want the record, timed out", r, ok, err)
	}
}
