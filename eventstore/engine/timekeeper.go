package engine

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/projections"
)

// Timekeeper records what happens when time passes: an empty room whose
// destroy delay runs out is destroyed (domain.ExpireRoom). It learns the
// deadlines from the live projection, so it knows them after a restart too,
// and every node runs one: two nodes firing for the same room append once
// (the second decides on the first one's result and does nothing).
type Timekeeper struct {
	eng    *Engine
	live   *projections.Live
	clock  Clock
	logger *slog.Logger

	mu      sync.Mutex
	stopped bool
	rooms   map[domain.Key]*deadline
}

type deadline struct {
	at    time.Time
	timer Timer
}

// NewTimekeeper returns a timekeeper that watches live and acts through eng.
// Call Attach before the projection runs.
func NewTimekeeper(eng *Engine, live *projections.Live, clock Clock, logger *slog.Logger) *Timekeeper {
	if logger == nil {
		logger = slog.Default()
	}
	return &Timekeeper{eng: eng, live: live, clock: clock, logger: logger, rooms: map[domain.Key]*deadline{}}
}

// Attach subscribes the timekeeper to the projection's records.
func (t *Timekeeper) Attach() {
	t.live.Subscribe(func(rec projections.Record) {
		for i := range rec.Events {
			if e := &rec.Events[i]; e.Aggregate == domain.KindRoom {
				t.check(e.Key())
				break // one message holds one aggregate's events
			}
		}
	})
}

// Scan schedules every deadline in the projection as it is now (after
// starting from a snapshot, whose records the subscribers never saw).
func (t *Timekeeper) Scan() {
	var keys []domain.Key
	t.live.Read(func(m *projections.Model) {
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

// Stop cancels every pending deadline.
func (t *Timekeeper) Stop() {
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
	t.live.Read(func(m *projections.Model) {
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
	d.timer = t.clock.AfterFunc(max(at.Sub(t.clock.Now()), 0), func() { t.fire(k, d) })
	t.rooms[k] = d
}

// fire destroys the room if it is still empty and due. When it records
// nothing (another node did it, or on this node's clock it is not due yet, or
// the log failed) it looks again a second later; when it does record the
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
	res, err := t.eng.Execute(ctx, domain.Meta{App: k.App}, domain.ExpireRoom{Room: domain.RoomID(k.ID)})
	if err != nil {
		t.logger.Warn("expiring an empty room failed; will retry", "room", k.ID, "err", err)
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
	nd.timer = t.clock.AfterFunc(time.Second, func() {
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
