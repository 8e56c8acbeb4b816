package estest

import (
	"slices"
	"sync"
	"time"

	"github.com/roomlog/roomlog/eventstore/engine"
)

// Clock is a clock a test moves by hand. Timers fire in Advance, in time
// order, on the goroutine that calls Advance.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
}

var _ engine.Clock = (*Clock)(nil)

// NewClock returns a clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

type timer struct {
	c     *Clock
	at    time.Time
	f     func()
	ready bool // not yet fired or stopped
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f for d from now. As with time.AfterFunc, f runs at
// once (in its own goroutine) when d is not positive: a deadline already
// passed does not wait for the next Advance.
func (c *Clock) AfterFunc(d time.Duration, f func()) engine.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d <= 0 {
		go f()
		return &timer{c: c, at: c.now, f: f}
	}
	t := &timer{c: c, at: c.now.Add(d), f: f, ready: true}
	c.timers = append(c.timers, t)
	return t
}

// Stop implements engine.Timer.
func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.ready
	t.ready = false
	return was
}

// Advance moves the clock forward by d, firing every timer that falls due
// (including timers scheduled by the timers it fires), each at its own time.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		c.timers = slices.DeleteFunc(c.timers, func(t *timer) bool { return !t.ready })
		slices.SortStableFunc(c.timers, func(a, b *timer) int { return a.at.Compare(b.at) })
		if len(c.timers) == 0 || c.timers[0].at.After(end) {
			c.now = end
			c.mu.Unlock()
			return
		}
		t := c.timers[0]
		t.ready = false
		if t.at.After(c.now) {
			c.now = t.at
		}
		c.mu.Unlock()
		t.f()
	}
}

// Pending returns how many timers are scheduled.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if t.ready {
			n++
		}
	}
	return n
}

// PendingAfter returns how many scheduled timers fall due after t.
func (c *Clock) PendingAfter(t time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, tm := range c.timers {
		if tm.ready && tm.at.After(t) {
			n++
		}
	}
	return n
}
