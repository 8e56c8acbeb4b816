package presence_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// held is the real engine, except that a TimeoutSession waits at started
// until release is closed: the moment between a node deciding to time a
// session out and the timeout being recorded.
type held struct {
	*engine.Engine
	started chan struct{}
	release chan struct{}
}

func (h *held) Execute(ctx context.Context, m domain.Meta, c domain.Command) (engine.Result, error) {
	if _, ok := c.(domain.TimeoutSession); ok {
		select {
		case h.started <- struct{}{}:
		default:
		}
		<-h.release
	}
	return h.Engine.Execute(ctx, m, c)
}

// advance moves clock on by d in a goroutine of its own (a timer it fires
// may wait for the test); the channel closes when it is done.
func advance(clock *estest.Clock, d time.Duration) <-chan struct{} {
	done := make(chan struct{})
	go func() { defer close(done); clock.Advance(d) }()
	return done
}

// A resume and a heartbeat timeout of the same session are exclusive: a
// resume once the timeout is under way fails (the session is not alive) and
// the timeout is recorded; a resume before it refreshes the session, and no
// timeout follows. Either way presence and the log agree.
func TestAResumeAndATimeoutAreExclusive(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	clock := estest.NewClock(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	e := estest.Engine(t, log, l, clock)
	h := &held{Engine: e, started: make(chan struct{}, 1), release: make(chan struct{})}
	p := open(t, log, h, clock)
	run(t, p)
	for _, s := range []domain.SessionID{"late", "early"} {
		estest.Exec(t, e, estest.Login(s, domain.UserID(s), "r1"))
		if err := p.Beat(estest.Ctx(t), estest.App, s); err != nil {
			t.Fatal(err)
		}
	}
	estest.Eventually(t, "presence tracks both sessions", func() bool { return p.Tracked() == 2 })

	// early comes back 89 s after its last beat: revived, with 90 s more.
	clock.Advance(89 * time.Second)
	if _, alive, err := p.Revive(estest.Ctx(t), "early"); err != nil || !alive {
		t.Fatalf("revive 89 s after the last beat: alive %v, %v", alive, err)
	}
	estest.Eventually(t, "presence sees early revived", func() bool {
		r, _, _ := p.Lookup(estest.Ctx(t), "early")
		return r.LastSeen.Equal(clock.Now().UTC())
	})
	// late's timeout runs out and is under way (held before the log); the
	// timer runs inside Advance, which returns once it is released.
	advanced := advance(clock, time.Second)
	select {
	case <-h.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no timeout started 90 s after late's last beat")
	}
	if _, alive, err := p.Revive(estest.Ctx(t), "late"); err != nil || alive {
		t.Errorf("revive while late's timeout is under way: alive %v, %v; want not alive", alive, err)
	}
	close(h.release)
	<-advanced
	estest.Eventually(t, "late leaves its room", func() bool {
		_, in := estest.Room(l, "r1").Members["late"]
		return !in
	})
	estest.Eventually(t, "late is forgotten", func() bool { return p.Tracked() == 1 })
	if _, in := estest.Room(l, "r1").Members["early"]; !in {
		t.Error("early, revived before its timeout, was timed out")
	}
	if _, alive, _ := p.Lookup(estest.Ctx(t), "early"); !alive {
		t.Error("early, revived before its timeout, is not alive")
	}
}

// Beat is an unconditional Put: a heartbeat that lands while a marked
// record's timeout is being recorded wipes the mark. The record must still
// be forgotten once the timeout is in the log: left, it would make the
// session, timed out in the log, look alive (resumable) for another full
// timeout.
func TestAHeartbeatDuringTheTimeoutLeavesNoTimedOutSessionResumable(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	clock := estest.NewClock(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	e := estest.Engine(t, log, l, clock)
	h := &held{Engine: e, started: make(chan struct{}, 1), release: make(chan struct{})}
	p := open(t, log, h, clock)
	run(t, p)
	estest.Exec(t, e, estest.Login("s", "u", "r1"))
	if err := p.Beat(estest.Ctx(t), estest.App, "s"); err != nil {
		t.Fatal(err)
	}
	estest.Eventually(t, "presence tracks s", func() bool { return p.Tracked() == 1 })
	advanced := advance(clock, 90*time.Second)
	select {
	case <-h.started: // marked, and now recording the timeout
	case <-time.After(10 * time.Second):
		t.Fatal("no timeout started")
	}
	// The session's connection is heard from meanwhile (a heartbeat).
	if err := p.Beat(estest.Ctx(t), estest.App, "s"); err != nil {
		t.Fatal(err)
	}
	close(h.release)
	<-advanced
	estest.Eventually(t, "s is timed out in the log", func() bool {
		_, in := estest.Room(l, "r1").Members["u"]
		return !in
	})
	estest.Eventually(t, "the timed-out session is forgotten", func() bool {
		_, alive, _ := p.Lookup(estest.Ctx(t), "s")
		return !alive
	})
	if _, alive, err := p.Revive(estest.Ctx(t), "s"); err != nil || alive {
		t.Errorf("after its timeout was recorded, Revive says alive %v (%v): a resume would be accepted "+
			"for a session the log timed out", alive, err)
	}
}

// A heartbeat does not undo the mark of a timeout being recorded: were it
// to, a resume on another node could claim the session in that window, and
// its record be deleted under it once the timeout lands.
func TestNoResumeWhileATimeoutIsBeingRecorded(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	clock := estest.NewClock(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	e := estest.Engine(t, log, l, clock)
	h := &held{Engine: e, started: make(chan struct{}, 1), release: make(chan struct{})}
	p := open(t, log, h, clock)
	run(t, p)
	estest.Exec(t, e, estest.Login("s", "u", "r1"))
	if err := p.Beat(estest.Ctx(t), estest.App, "s"); err != nil {
		t.Fatal(err)
	}
	estest.Eventually(t, "presence tracks s", func() bool { return p.Tracked() == 1 })
	// Advance runs due timers inline; the timeout's fire blocks in held
	// until release.
	advanced := advance(clock, 90*time.Second)
	select {
	case <-h.started: // marked, and now recording the timeout
	case <-time.After(10 * time.Second):
		t.Fatal("no timeout started")
	}
	if err := p.Beat(estest.Ctx(t), estest.App, "s"); err != nil { // a stray heartbeat
		t.Fatal(err)
	}
	_, alive, err := p.Revive(estest.Ctx(t), "s") // a resume on another node
	close(h.release)
	<-advanced
	if err != nil || alive {
		t.Errorf("while its timeout is being recorded, Revive claims s (alive %v, %v): the resume goes on, "+
			"then the timeout lands and the record is deleted under the resumed session", alive, err)
	}
}

// failOnce is the real engine, except that the first TimeoutSession fails
// as a log that does not answer would make it fail, once the mark the timer
// wrote has come back through the watch (observe rescheduled the session).
type failOnce struct {
	*engine.Engine
	marked   func() bool
	failed   atomic.Bool
	timeouts atomic.Int32
}

func (f *failOnce) Execute(ctx context.Context, m domain.Meta, c domain.Command) (engine.Result, error) {
	if _, ok := c.(domain.TimeoutSession); ok {
		f.timeouts.Add(1)
		if f.failed.CompareAndSwap(false, true) {
			deadline := time.Now().Add(10 * time.Second)
			for !f.marked() && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			return engine.Result{}, domain.ErrUnavailable.With("the log does not answer")
		}
	}
	return f.Engine.Execute(ctx, m, c)
}

// A timeout that could not be recorded (the log did not answer) is tried
// again later, by one timer: the one the watch set for the record's mark
// meanwhile is replaced, not left to fire untracked, after Run returned too
// (on a node shutting down, a session timed out behind its back).
func TestAFailedTimeoutLeavesNoTimerBehindRun(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	clock := estest.NewClock(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	e := estest.Engine(t, log, l, clock)
	f := &failOnce{Engine: e}
	pr := open(t, log, f, clock)
	f.marked = func() bool {
		r, _, err := pr.Lookup(context.Background(), "s")
		return err == nil && r.TimingOut
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pr.Run(ctx) }()
	<-pr.Ready()
	estest.Exec(t, e, estest.Login("s", "u", "r1"))
	if err := pr.Beat(estest.Ctx(t), estest.App, "s"); err != nil {
		t.Fatal(err)
	}
	estest.Eventually(t, "presence tracks s", func() bool { return pr.Tracked() == 1 })
	clock.Advance(90 * time.Second) // fires: marks, the timeout fails
	if f.timeouts.Load() != 1 {
		t.Fatalf("%d timeouts tried, want 1", f.timeouts.Load())
	}
	// The watch has delivered the mark (failOnce waited for it); give
	// observe the moment it takes to reschedule.
	estest.Eventually(t, "the marked record is rescheduled", func() bool { return clock.Pending() >= 1 })
	t.Logf("timers pending after the failed timeout: %d (sessions tracked: %d)", clock.Pending(), pr.Tracked())
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := clock.Pending(); n != 0 {
		t.Errorf("presence's Run returned with %d timer(s) still scheduled", n)
	}
	before := f.timeouts.Load()
	clock.Advance(time.Minute)
	if n := f.timeouts.Load() - before; n != 0 {
		t.Errorf("after Run returned, %d timeout(s) were executed", n)
	}
}
