package engine_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// A destroy in steps (a room too large for one message), whose second step
// conflicts with a join another node stored after the first: the command
// decides again and finishes, and every member ever in the room, the
// newcomer included, leaves it exactly once.
func TestADestroyInStepsOvertakenBetweenThemFinishes(t *testing.T) {
	log := estest.Open(t, func(c *eventstore.Config) { c.MaxMsgSize = domain.MinMaxMessageBytes })
	mk := func() *engine.Engine {
		d, err := domain.NewDecider(domain.Config{Default: estest.Policy(), MaxMessageBytes: domain.MinMaxMessageBytes})
		if err != nil {
			t.Fatal(err)
		}
		e, err := engine.New(engine.Config{Log: log, Decider: d, Logger: estest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	a, b := mk(), mk()
	const n = 400
	pad := strings.Repeat("x", 50)
	for i := range n {
		exec(t, a, login(domain.SessionID(fmt.Sprintf("s%s%04d", pad, i)), domain.UserID(fmt.Sprintf("u%s%04d", pad, i)), "r1"))
	}
	room := domain.RoomKey(app, "r1")
	exec(t, b, login("s-other", "u-other", "r0")) // warm b
	var steps atomic.Int32
	a.SetStepStored(func(k domain.Key) {
		if k != room || steps.Add(1) != 1 {
			return
		}
		// Another node: a newcomer joins between the destroy's steps.
		if _, err := b.Execute(context.Background(), domain.Meta{App: app}, login("s-late", "u-late", "r1")); err != nil {
			t.Errorf("late login: %v", err)
		}
	})
	res, err := a.Execute(estest.Ctx(t), domain.Meta{App: app}, domain.DestroyRoom{Room: "r1"})
	if err != nil {
		t.Fatalf("destroy: %v (appended %d steps)", err, len(res.Appended))
	}
	if len(res.Appended) < 3 || a.Stats().Conflicts == 0 {
		t.Fatalf("the destroy appended %d steps and met %d conflicts: not the case under test", len(res.Appended),
			a.Stats().Conflicts)
	}
	left := map[domain.SessionID]int{}
	joined := map[domain.SessionID]bool{}
	destroyed := 0
	for _, e := range history(t, log, room) {
		switch d := e.Data.(type) {
		case *domain.MemberJoinedData:
			joined[d.Session] = true
		case *domain.MemberLeftData:
			left[d.Session]++
		case *domain.RoomDestroyedData:
			destroyed++
			for _, m := range d.Members {
				left[m.Session]++
			}
		}
	}
	if destroyed != 1 {
		t.Fatalf("%d room.destroyed", destroyed)
	}
	for s := range joined {
		if left[s] != 1 {
			t.Errorf("%s left %d times", s, left[s])
		}
	}
	if len(joined) != n+1 {
		t.Fatalf("%d joined", len(joined))
	}
}
