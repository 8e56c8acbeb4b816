// Package timekeeper records what happens when time passes: an empty room
// whose destroy delay runs out is destroyed (domain.ExpireRoom).
//
// It learns the deadlines from the live projection, so it knows them after a
// restart too, and every node runs one: two nodes firing for the same room
// append once (the second decides on the first one's result and does
// nothing). Heartbeat timeouts are presence's (eventstore/presence).
package timekeeper

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/projections"
)

// Executor executes commands (an *engine.Engine).
type Executor interface {
	Execute(ctx context.Context, m domain.Meta, cmd domain.Command) (engine.Result, error)
}

var _ Executor = (*engine.Engine)(nil)

// Config configures a Timekeeper.
type Config struct {
	// Engine records what time calls for. Required.
	Engine Executor
	// Live is the projection the deadlines are read from. Required.
	Live *projections.Live
	// Clock is the node's clock. Default engine.SystemClock.
	Clock engine.Clock
	// Retry is how long a deadline that recorded nothing waits before it
	// looks again. Default 1 s.
	Retry  time.Duration
	Logger *slog.Logger
}

// Timekeeper schedules the deadlines of the rooms in the projection and
// records them when they fall due.
type Timekeeper struct {
	cfg Config

	mu      sync.Mutex
	stopped bool
	rooms   map[domain.Key]*deadline
}

type deadline struct {
	at    time.Time
	timer engine.Timer
}

// New validates cfg and returns a timekeeper subscribed to the projection's
// records. Build it before the projection runs, so it misses none.
func New(cfg Config) (*Timekeeper, error) {
	var errs []error
	if cfg.Engine == nil {
		errs = append(errs, errors.New("timekeeper: Engine is required"))
	}
	if cfg.Live == nil {
		errs = append(errs, errors.New("timekeeper: Live is required"))
	}
	if cfg.Retry < 0 {
		errs = append(errs, errors.New("timekeeper: Retry must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = engine.SystemClock{}
	}
	if cfg.Retry == 0 {
		cfg.Retry = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	t := &Timekeeper{cfg: cfg, rooms: map[domain.Key]*deadline{}}
	cfg.Live.Subscribe(func(rec projections.Record) {
		for i := range rec.Events {
			if e := &rec.Events[i]; e.Aggregate == domain.KindRoom {
				t.check(e.Key())
				break // one message holds one aggregate's events
			}
		}
	}, projections.Named("timekeeper"))
	return t, nil
}

// Run schedules every deadline in the projection as it is now (a model
// restored from a snapshot holds rooms whose records the subscription never
// saw), keeps them until ctx ends, then cancels them and returns nil.
func (t *Timekeeper) Run(ctx context.Context) error {
	t.scan()
	<-ctx.Done()
	t.stop()
	return nil
}

// scan schedules every deadline in the projection.
func (t *Timekeeper) scan() {
	var keys []domain.Key
	t.cfg.Live.Read(func(m *projections.Model) {
		for app, a := range m.Apps {
			for id, r := range a.Rooms {
				if _, due := r.DestroyAt(); due {
					keys = append(keys, domain.RoomKey(app, id))
				}
			}
		}
	})
	for _, k := range keys {
		t.check(k)
	}
}

// stop cancels every pending deadline.
func (t *Timekeeper) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	for k, d := range t.rooms {
		d.timer.Stop()
		delete(t.rooms, k)
	}
}

// Pending returns how many deadlines are scheduled.
func (t *Timekeeper) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.rooms)
}

// check (re)schedules room k's destroy deadline from its projected state.
func (t *Timekeeper) check(k domain.Key) {
	var at time.Time
	var due bool
	t.cfg.Live.Read(func(m *projections.Model) {
		if a := m.Apps[k.App]; a != nil {
			if r := a.Rooms[domain.RoomID(k.ID)]; r != nil {
				at, due = r.DestroyAt()
			}
		}
	})
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.rooms[k]
	switch {
	case t.stopped:
		return
	case !due:
		if old != nil {
			old.timer.Stop()
			delete(t.rooms, k)
		}
		return
	case old != nil && old.at.Equal(at):
		return
	case old != nil:
		old.timer.Stop()
	}
	d := &deadline{at: at}
	d.timer = t.cfg.Clock.AfterFunc(max(at.Sub(t.cfg.Clock.Now()), 0), func() { t.fire(k, d) })
	t.rooms[k] = d
}

// fire destroys the room if it is still empty and due. When it records
// nothing (another node did it, or on this node's clock it is not due yet, or
// the log failed) it looks again after Config.Retry; when it does record the
// destroy, the projection folding it cancels the deadline.
func (t *Timekeeper) fire(k domain.Key, d *deadline) {
	t.mu.Lock()
	if t.stopped || t.rooms[k] != d {
		t.mu.Unlock()
		return
	}
	delete(t.rooms, k)
	t.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := t.cfg.Engine.Execute(ctx, domain.Meta{App: k.App}, domain.ExpireRoom{Room: domain.RoomID(k.ID)})
	if err != nil {
		t.cfg.Logger.Warn("expiring an empty room failed; will retry", "room", k.ID, "err", err)
	}
	if err != nil || len(res.Appended) == 0 {
		t.retryLater(k, d)
	}
}

func (t *Timekeeper) retryLater(k domain.Key, d *deadline) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped || t.rooms[k] != nil {
		return
	}
	nd := &deadline{at: d.at}
	nd.timer = t.cfg.Clock.AfterFunc(t.cfg.Retry, func() {
		t.mu.Lock()
		stale := t.rooms[k] != nd
		if !stale {
			delete(t.rooms, k)
		}
		t.mu.Unlock()
		if !stale {
			t.check(k)
		}
	})
	t.rooms[k] = nd
}
