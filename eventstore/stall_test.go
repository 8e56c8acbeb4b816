package eventstore

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// A read that waits longer than the limit for its next record is told it
// stalled; one whose caller takes long between records, or that waits less
// than the limit each time, is not.
func TestStallWatchFiresOnlyOnOneLongWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit = 10 * time.Second
		w := newStallWatch(context.Background(), limit)
		defer w.stop()
		for range 20 { // short waits, long pauses between them
			w.waiting()
			time.Sleep(limit / 2)
			w.done()
			time.Sleep(3 * limit)
		}
		if w.stalled() || w.ctx.Err() != nil {
			t.Fatal("the watch fired though no single wait reached the limit")
		}
		w.waiting()
		time.Sleep(limit - limit/4)
		synctest.Wait()
		if w.stalled() {
			t.Fatal("the watch fired before the limit")
		}
		start := time.Now()
		<-w.ctx.Done()
		if !w.stalled() {
			t.Fatal("the watch ended without firing")
		}
		if total := time.Since(start) + limit - limit/4; total > limit+limit/2 {
			t.Errorf("the watch fired %v into the wait, limit %v", total, limit)
		}
	})
}

// The parent's end ends the watch without calling it a stall.
func TestStallWatchFollowsItsParent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		w := newStallWatch(parent, time.Second)
		defer w.stop()
		w.waiting()
		cancel()
		<-w.ctx.Done()
		if w.stalled() {
			t.Fatal("a cancelled parent is reported as a stall")
		}
	})
}
