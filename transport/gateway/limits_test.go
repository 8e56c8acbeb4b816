package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
)

// A room gets its barrage allowance per second, in bursts of at most that,
// whichever other rooms spend theirs.
func TestRoomLimitsCountEachRoomApart(t *testing.T) {
	l := newRoomLimits()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	a, b := domain.RoomKey("app", "a"), domain.RoomKey("app", "b")
	for i := range 3 {
		if !l.allow(a, now, 3) {
			t.Fatalf("message %d of a burst of 3 refused", i+1)
		}
	}
	if l.allow(a, now, 3) {
		t.Fatal("a fourth message in the same instant allowed")
	}
	if !l.allow(b, now, 3) {
		t.Fatal("another room's message refused")
	}
	if !l.allow(a, now.Add(time.Second/3), 3) {
		t.Fatal("no message allowed a third of a second later")
	}
}

// Rooms that had barrage once and went quiet do not stay in memory: with
// barrage moving across 100,000 rooms, a few at a time, the node holds
// limiters for about the rooms of the last second, not for every room.
func TestRoomLimitsForgetQuietRooms(t *testing.T) {
	l := newRoomLimits()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	const rooms, perSecond = 100_000, 20
	for i := range rooms {
		now = now.Add(time.Millisecond) // 1,000 new rooms a second
		key := domain.RoomKey("app", domain.RoomID(fmt.Sprint("r", i)))
		for range 5 {
			l.allow(key, now, perSecond)
		}
	}
	if n := l.size(); n > 4*minSweep {
		t.Fatalf("%d limiters held after barrage in %d rooms, at most 1,000 of them in the last second", n, rooms)
	}
	// A room still spending its allowance keeps its count through a sweep.
	busy := domain.RoomKey("app", "busy")
	for range perSecond {
		l.allow(busy, now, perSecond)
	}
	for i := range 3 * minSweep {
		l.allow(domain.RoomKey("app", domain.RoomID(fmt.Sprint("x", i))), now, perSecond)
	}
	if l.allow(busy, now, perSecond) {
		t.Fatal("a sweep forgot a room that had spent its allowance")
	}
}
