package engine_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
)

func loginMax(s domain.SessionID, u domain.UserID, r domain.RoomID, max int) domain.JoinRoom {
	c := login(s, u, r)
	c.Config.MaxMembers = max
	return c
}

// Two engines (two roomd nodes) admitting logins into one room at once never
// let it exceed its capacity, and fill it exactly: a refusal is confirmed
// against the log, never decided from a stale cache alone.
func TestCapacityHoldsAcrossEngines(t *testing.T) {
	log := estest.Open(t, nil)
	a, b := newEngine(t, log, nil), newEngine(t, log, nil)
	const capacity = 5
	exec(t, a, loginMax("s0", "u0", "r1", capacity))
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted, full := 1, 0
	for i := 1; i <= 20; i++ {
		e := a
		if i%2 == 0 {
			e = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.Execute(estest.Ctx(t), domain.Meta{App: app},
				login(domain.SessionID(fmt.Sprint("s", i)), domain.UserID(fmt.Sprint("u", i)), "r1"))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				admitted++
			case errors.Is(err, domain.ErrRoomFull):
				full++
			default:
				t.Errorf("login %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if admitted != capacity || full != 21-capacity {
		t.Fatalf("admitted %d, refused %d as full; want %d and %d", admitted, full, capacity, 21-capacity)
	}
	members := map[domain.UserID]bool{}
	for _, e := range history(t, log, domain.RoomKey(app, "r1")) {
		switch d := e.Data.(type) {
		case *domain.MemberJoinedData:
			members[d.User] = true
		case *domain.MemberLeftData:
			delete(members, d.User)
		}
		if len(members) > capacity {
			t.Fatalf("the room held %d members at seq %d, capacity %d", len(members), e.Seq, capacity)
		}
	}
}

// An engine whose cache saw the room full admits a login once another
// node's member left: the refusal is checked against the log first.
func TestFullRoomRecheckedAgainstTheLog(t *testing.T) {
	log := estest.Open(t, nil)
	a, b := newEngine(t, log, nil), newEngine(t, log, nil)
	exec(t, a, loginMax("s1", "u1", "r1", 1))
	if _, err := b.Execute(estest.Ctx(t), domain.Meta{App: app}, login("s2", "u2", "r1")); !errors.Is(err, domain.ErrRoomFull) {
		t.Fatalf("login into a full room: %v, want room_full", err)
	}
	exec(t, a, domain.LeaveRoom{Session: "s1", Room: "r1"})
	exec(t, b, login("s2", "u2", "r1")) // b's cache still holds u1
}
