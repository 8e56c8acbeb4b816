package domain

import (
	"testing"
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
	run := func() int {
		n := 0
		for i := 0; i < len(w.events); i++ { // follow-ups may add events, which may call for more
			e := w.events[i]
			for _, f := range FollowUps(&e) {
				d, err := w.tryMeta(Meta{App: w.app, ID: "f", Causation: e.ID.String()}, f.Command)
				if err != nil {
					t.Fatalf("follow-up %s of %s: %v", f.Command.CommandName(), e.Type, err)
				}
				n += len(d.Steps)
			}
		}
		return n
	}
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
