package domain

import (
	"testing"
	"time"
)

// Running every follow-up of a history completes what its commands left to
// others, and running them again changes nothing.
func TestFollowUpsCompleteAndAreIdempotent(t *testing.T) {
	w := newWorld(t, multiPolicy())
	w.must(
		loginMulti("old", "u1", "r1"), loginMulti("old", "u1", "r2"), PublishStream{Session: "old", Stream: "st", Room: "r2"},
		loginMulti("x", "u2", "r2"), loginMulti("y", "u3", "r3"), PublishStream{Session: "y", Stream: "y-cam", Room: "r3"},
		loginMulti("new", "u1", "r1"), // kicks old out of r1: old must leave r2 too
		DestroyRoom{Room: "r3"},       // y's claim on r3 and y-cam's registry entry must be freed
	)
	run := func() int { return w.runFollowUps(0) }
	if run() == 0 {
		t.Fatal("follow-ups did nothing")
	}
	if _, ok := w.room("r2").Members["u1"]; ok {
		t.Error("the kicked session is still in its other room")
	}
	if _, ok := w.room("r2").Streams["st"]; ok {
		t.Error("the kicked session still publishes in its other room")
	}
	if s := w.session("old"); len(s.Claims) != 0 {
		t.Errorf("the kicked session still claims %v", s.Claims)
	}
	if s := w.session("y"); len(s.Claims) != 0 {
		t.Errorf("a member of the destroyed room still claims %v", s.Claims)
	}
	for _, id := range []StreamID{"st", "y-cam"} {
		if e := w.streamEntry(id); e.Claimed {
			t.Errorf("stream ID %s is still claimed: %+v", id, e)
		}
	}
	if n := len(w.events); run() != 0 || len(w.events) != n {
		t.Error("running the follow-ups again changed something")
	}
	if _, ok := w.room("r1").MemberBySession("u1", "new"); !ok {
		t.Error("the new session lost its room")
	}
}

// A duplicate login's kick takes the older session out of the rooms it was in
// at the time of the login, and only those: a room it enters after the kick,
// before the reactor has finished the kick, is its own new choice. The rooms
// the kick went on to call for the same kick, at the login's time, not at
// their own later time.
func TestAKickLeavesTheRoomsEnteredAfterIt(t *testing.T) {
	w := newWorld(t, multiPolicy())
	w.must(loginMulti("old", "u1", "r1"), loginMulti("old", "u1", "r2"), loginMulti("x", "u2", "r2"))
	mark := len(w.events)
	w.must(loginMulti("new", "u1", "r1")) // kicks old out of r1, and so of r2
	w.advance(time.Second)
	w.must(loginMulti("old", "u1", "r3")) // after the kick: old's own choice
	w.advance(time.Second)
	w.runFollowUps(mark)
	if _, ok := w.room("r2").MemberBySession("u1", "old"); ok {
		t.Error("old is still in r2, which it was in at the time of the kick")
	}
	if _, ok := w.room("r3").MemberBySession("u1", "old"); !ok {
		t.Errorf("old was taken out of r3, which it entered after the kick:\n%s", showEvents(w.since(mark)))
	}
	if cl, ok := w.session("old").Claims["r3"]; !ok || cl.Seq == 0 {
		t.Errorf("old's claim on r3 was released: %+v", w.session("old").Claims)
	}
}
