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

func TestTimekeeperDestroysEmptyRoomsWhenTheirDelayRunsOut(t *testing.T) {
	log := estest.Open(t, nil)
	l := projections.NewLive(projections.NewModel())
	clock := estest.NewClock(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC))
	e := estest.Engine(t, log, l, clock)
	tk, err := timekeeper.New(timekeeper.Config{Engine: e, Live: l, Clock: clock, Logger: estest.Logger(t)})
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
	enter := func(s domain.SessionID, u domain.UserID, r domain.RoomID, delay int) {
		c := estest.Login(s, u, r)
		c.Via, c.Config = domain.ViaEnter, domain.RoomConfig{DestroyDelay: delay}
		estest.Exec(t, e, c)
	}
	sync := func() { estest.Sync(t, log, l) }
	enter("s1", "u1", "kept", 60)
	enter("s2", "u2", "gone", 60)
	estest.Exec(t, e, domain.LeaveRoom{Session: "s1", Room: "kept"})
	estest.Exec(t, e, domain.LeaveRoom{Session: "s2", Room: "gone"})
	sync()
	if n := tk.Pending(); n != 2 {
		t.Fatalf("%d deadlines scheduled, want 2", n)
	}
	clock.Advance(30 * time.Second)
	enter("s3", "u3", "kept", 60) // joins within the delay: keeps the room
	sync()
	clock.Advance(29 * time.Second)
	sync()
	if !estest.Room(l, "gone").Exists {
		t.Fatal("destroyed before its delay ran out")
	}
	clock.Advance(time.Second)
	sync()
	if estest.Room(l, "gone").Exists {
		t.Fatal("not destroyed when its delay ran out")
	}
	clock.Advance(time.Hour)
	sync()
	if !estest.Room(l, "kept").Exists {
		t.Fatal("a room someone joined within its delay was destroyed")
	}
	if n := tk.Pending(); n != 0 {
		t.Errorf("%d deadlines still scheduled", n)
	}
}
