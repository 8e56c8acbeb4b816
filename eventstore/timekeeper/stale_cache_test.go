package timekeeper_test

import (
	"context"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/eventstore/timekeeper"
	"github.com/roomlog/roomlog/projections"
)

// Node B's engine cached room r1 while s1 was in it; s1 leaves r1 (60 s
// destroy delay) through node A, which then dies. B's timekeeper fires
// ExpireRoom on time; decided on the cached room, which still has a
// member, it would do nothing, for ever (each retry decides on the same
// cache), and the empty room would never be destroyed.
func TestASurvivingNodeWithAStaleCacheExpiresTheRoom(t *testing.T) {
	log := estest.Open(t, nil)
	l := projections.NewLive(projections.NewModel())
	clock := estest.NewClock(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC))
	a := estest.Engine(t, log, l, clock)
	b := estest.Engine(t, log, l, clock)
	tk, err := timekeeper.New(timekeeper.Config{Engine: b, Live: l, Clock: clock, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	estest.RunLive(t, log, l)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tk.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("timekeeper: %v", err)
		}
	})
	c := estest.Login("s1", "u1", "r1")
	c.Via, c.Config = domain.ViaEnter, domain.RoomConfig{DestroyDelay: 60}
	estest.Exec(t, b, c) // B caches r1 with s1 in it
	estest.Exec(t, a, domain.LeaveRoom{Session: "s1", Room: "r1"})
	estest.Sync(t, log, l)
	// The clock moves a destroy delay on at each look, in case the
	// timekeeper had not yet scheduled the expiry at the first.
	estest.Eventually(t, "the empty room is destroyed after its delay", func() bool {
		clock.Advance(61 * time.Second)
		return !estest.Room(l, "r1").Exists
	})
}
