package domain

import (
	"errors"
	"testing"
	"time"
)

// decidePartly decides c and folds only its first n steps, as if the writer
// died after n appends.
func (w *world) decidePartly(m Meta, c Command, n int) Decision {
	w.t.Helper()
	v := NewView()
	for {
		d, err := w.d.Decide(v, m, c, w.now)
		var need *NeedError
		if errors.As(err, &need) {
			w.view(need.Keys, v)
			continue
		}
		if err != nil {
			w.t.Fatalf("%s: %v", c.CommandName(), err)
		}
		if len(d.Steps) < n {
			w.t.Fatalf("%s has %d steps, fewer than %d", c.CommandName(), len(d.Steps), n)
		}
		part := d
		part.Steps = d.Steps[:n]
		w.fold(part)
		return d
	}
}

func TestStaleClaimsAreVoidedBeforeRelease(t *testing.T) {
	runRules(t, []rule{
		{name: "multi-room at its limit: a claim on a destroyed room is voided there, released, and reused",
			policy: policyMaxRooms(2),
			given:  []Command{loginMulti("s1", "u1", "r1"), loginMulti("s1", "u1", "r2"), DestroyRoom{Room: "r1"}},
			when:   loginMulti("s1", "u1", "r3"),
			then: []ev{
				inRoom("r1", &ClaimVoidedData{Registry: KindSession, ID: "s1", Claim: 2}),
				inSession("s1", &RoomReleasedData{Room: "r1", Claim: 2, Reason: ReasonClaimVoided}),
				inSession("s1", &RoomClaimedData{Room: "r3", Command: "cmd-0004"}),
				inRoom("r3", created("u1", "s1", ViaLogin)),
				inRoom("r3", joined("u1", "s1", 5, ViaLogin)),
			}},
		{name: "single-room: a claim on a room that removed the session does not block a login",
			given: []Command{login("s1", "u1", "r1"), login("s2", "u2", "r1"), DestroyRoom{Room: "r1"}},
			when:  login("s1", "u1", "r2"),
			then: []ev{
				inRoom("r1", &ClaimVoidedData{Registry: KindSession, ID: "s1", Claim: 2}),
				inSession("s1", &RoomReleasedData{Room: "r1", Claim: 2, Reason: ReasonClaimVoided}),
				inSession("s1", &RoomClaimedData{Room: "r2", Command: "cmd-0004"}),
				inRoom("r2", created("u1", "s1", ViaLogin)),
				inRoom("r2", joined("u1", "s1", 4, ViaLogin)),
			}},
		{name: "the reactor's release of a claim whose member is gone",
			given: []Command{login("s1", "u1", "r1"), login("s2", "u2", "r1"), DestroyRoom{Room: "r1"}},
			when:  ReleaseRoomClaim{Session: "s1", Room: "r1", Claim: 2, Reason: ReasonRoomDestroyed},
			then:  []ev{inSession("s1", &RoomReleasedData{Room: "r1", Claim: 2, Reason: ReasonRoomDestroyed})}},
		{name: "the reactor never releases a claim that backs a membership",
			given: []Command{login("s1", "u1", "r1")},
			when:  ReleaseRoomClaim{Session: "s1", Room: "r1", Claim: 2, Reason: ReasonKickedByBackend}},
		{name: "the reactor's release of a stream ID whose room stopped it",
			given: []Command{login("s1", "u1", "r1"), PublishStream{Session: "s1", Stream: "st"}, DestroyRoom{Room: "r1"}},
			when:  ReleaseStreamClaim{Stream: "st", Claim: 1, Reason: ReasonRoomDestroyed},
			then:  []ev{inStream("st", &StreamReleasedData{Claim: 1, Reason: ReasonRoomDestroyed})}},
		{name: "the reactor never releases a stream ID still published",
			given: []Command{login("s1", "u1", "r1"), PublishStream{Session: "s1", Stream: "st"}},
			when:  ReleaseStreamClaim{Stream: "st", Claim: 1, Reason: ReasonStopped}},
		{name: "a stream ID whose room dropped it is voided there before another publisher takes it",
			policy: ptr(multiPolicy()),
			given: []Command{loginMulti("s1", "u1", "r1"), PublishStream{Session: "s1", Stream: "st", Room: "r1"},
				loginMulti("s2", "u2", "r1"), loginMulti("s2", "u2", "r2"), DestroyRoom{Room: "r1"}},
			when: PublishStream{Session: "s2", Stream: "st", Room: "r2"},
			then: []ev{
				inRoom("r1", &ClaimVoidedData{Registry: KindStream, ID: "st", Claim: 1}),
				inStream("st", &StreamClaimedData{Room: "r2", User: "u2", Session: "s2", Command: "cmd-0006"}),
				inRoom("r2", &StreamPublishedData{Stream: "st", User: "u2", UserName: "name-u2", Session: "s2", Claim: 2}),
			}},
		{name: "a heartbeat timeout voids a claim that no membership backs",
			given: []Command{login("s1", "u1", "r1"), login("s2", "u2", "r1"), DestroyRoom{Room: "r1"}},
			when:  TimeoutSession{Session: "s1", LastSeen: t0},
			then: []ev{
				inRoom("r1", &ClaimVoidedData{Registry: KindSession, ID: "s1", Claim: 2}),
				inSession("s1", &SessionTimedOutData{LastSeen: t0, Released: []RoomRef{{Room: "r1", Claim: 2}}}),
			}},
	})
}

// A writer that dies between its claim and its room append leaves a claim no
// room honours yet. A retry of the same command uses it; anyone else voids it
// first, after which it can never be used.
func TestInFlightClaims(t *testing.T) {
	t.Run("a retried login reuses its own claim", func(t *testing.T) {
		w := newWorld(t, DefaultPolicy())
		m := Meta{App: "app", ID: "login-1"}
		w.decidePartly(m, login("s1", "u1", "r1"), 1) // the session step only
		d, err := w.tryMeta(m, login("s1", "u1", "r1"))
		if err != nil {
			t.Fatal(err)
		}
		expectEvents(t, d, inRoom("r1", created("u1", "s1", ViaLogin)), inRoom("r1", joined("u1", "s1", 2, ViaLogin)))
	})
	t.Run("a retried switch resumes after its session step", func(t *testing.T) {
		w := newWorld(t, DefaultPolicy())
		w.must(login("s1", "u1", "r1"))
		m := Meta{App: "app", ID: "switch-1"}
		sw := SwitchRoom{Session: "s1", From: "r1", To: "r2", Grant: allRooms("u1"), Create: CreateIfMissing}
		w.decidePartly(m, sw, 1)
		d, err := w.tryMeta(m, sw)
		if err != nil {
			t.Fatal(err)
		}
		expectEvents(t, d,
			inRoom("r1", &MemberLeftData{User: "u1", UserName: "name-u1", Session: "s1", Claim: 2, Reason: ReasonSwitch}),
			inRoom("r1", &RoomDestroyedData{Reason: DestroyEmpty}),
			inSession("s1", &RoomReleasedData{Room: "r1", Claim: 2, Reason: ReasonSwitch}),
			inRoom("r2", created("u1", "s1", ViaSwitch)),
			inRoom("r2", joined("u1", "s1", 3, ViaSwitch)))
	})
	t.Run("a claim voided under a slow publisher is never used", func(t *testing.T) {
		w := newWorld(t, multiPolicy())
		w.must(loginMulti("s1", "u1", "r1"), loginMulti("s2", "u2", "r2"))
		slow := Meta{App: "app", ID: "cmd-0000-slow-publish"}
		pub := PublishStream{Session: "s1", Stream: "st", Room: "r1"}
		w.decidePartly(slow, pub, 1) // the registry claim only: s1 stalls
		// s2 takes the ID over: the stalled claim is voided in r1 first.
		w.must(PublishStream{Session: "s2", Stream: "st", Room: "r2"})
		if got := w.room("r1").Voided["stream:st"]; got != 1 {
			t.Fatalf("r1 voided claim = %d, want 1", got)
		}
		// s1 wakes up and retries: its claim is gone, the ID is in use.
		_, err := w.tryMeta(slow, pub)
		expectError(t, err, ErrStreamIDInUse)
		if _, ok := w.room("r1").Streams["st"]; ok {
			t.Fatal("the voided claim was used")
		}
	})
}

func TestAggregateTimeNeverRunsBackwards(t *testing.T) {
	w := newWorld(t, DefaultPolicy())
	w.advance(time.Hour)
	w.must(login("s1", "u1", "r1"))
	w.now = t0 // a node whose clock is an hour behind
	d := w.must(SendBroadcast{Session: "s1", Room: "r1", Body: "hi"})
	if got := d.Steps[0].Events[0].Time; !got.Equal(t0.Add(time.Hour)) {
		t.Errorf("event time = %v, want the room's last time %v", got, t0.Add(time.Hour))
	}
}

// A login decided on a stale view of a room the session is already in must
// not replace the session's claim on it unnoticed: its first write is to
// that room, which conflicts, and the login decided again finds the session
// there.
func TestStaleLoginWritesTheRoomFirst(t *testing.T) {
	w := newWorld(t, *policyMaxRooms(2))
	w.must(loginMulti("s1", "u1", "r1"))
	stale := Meta{App: "app", ID: "stale-login"}
	v := NewView()
	v.Sessions["s1"] = w.session("s1").Clone()
	v.Rooms["r1"] = &Room{} // r1 as it was before s1 joined
	held := w.session("s1").Claims["r1"]
	held.Command = "another"
	v.Sessions["s1"].Claims["r1"] = held
	d, err := w.d.Decide(v, stale, loginMulti("s1", "u1", "r1"), w.now)
	if err != nil {
		t.Fatal(err)
	}
	if first := d.Steps[0]; first.Key != roomK("r1") || first.Expect != 0 {
		t.Fatalf("first step %s at %d; want r1 at its stale sequence 0, which cannot append", first.Key, first.Expect)
	}
	if d, err := w.tryMeta(stale, loginMulti("s1", "u1", "r1")); err != nil || len(d.Steps) != 0 {
		t.Fatalf("decided again on fresh state: %v, %d steps; want nothing to do", err, len(d.Steps))
	}
}

// A membership occupies its slot whatever claim it joined with.
func TestMembershipOccupiesItsSlotWhateverItsClaim(t *testing.T) {
	w := newWorld(t, *policyMaxRooms(2))
	w.must(loginMulti("s1", "u1", "r1"), loginMulti("s1", "u1", "r2"))
	// Given: the session's claim on r1 was replaced while it stayed in r1.
	s := w.session("s1")
	old := s.Claims["r1"].Seq
	w.fold(Decision{Steps: []Step{{Key: sessK("s1"), Expect: s.Seq, Events: []Event{
		{Type: SessionRoomReleased, App: "app", Aggregate: KindSession, AggregateID: "s1", Seq: s.Seq + 1, Time: w.now,
			Data: &RoomReleasedData{Room: "r1", Claim: old, Reason: ReasonLoginFailed}},
		{Type: SessionRoomClaimed, App: "app", Aggregate: KindSession, AggregateID: "s1", Seq: s.Seq + 2, Time: w.now,
			Data: &RoomClaimedData{Room: "r1", Command: "other"}},
	}}}})
	_, err := w.try(loginMulti("s1", "u1", "r3"))
	expectError(t, err, ErrTooManyRooms)
	// And the reactor does not free it while the session is in the room.
	d, err := w.try(ReleaseRoomClaim{Session: "s1", Room: "r1", Claim: s.Seq + 2, Reason: ReasonKickedByBackend})
	if err != nil || len(d.Steps) != 0 {
		t.Fatalf("release of the slot of a room the session is in: %v, %d steps", err, len(d.Steps))
	}
}

// A login that finds the session holding a claim on the room taken by another
// command voids it there first: that command may still be on its way, and must
// never land with a claim the session no longer holds.
func TestAnotherCommandsClaimIsVoidedBeforeItIsReplaced(t *testing.T) {
	w := newWorld(t, *policyMaxRooms(2))
	w.must(loginMulti("s1", "u1", "r0"))
	slow := Meta{App: "app", ID: "cmd-0000-slow-login"}
	w.decidePartly(slow, loginMulti("s1", "u1", "r1"), 1) // claimed r1, then stalled
	d := w.must(loginMulti("s1", "u1", "r1"))             // another engine logs s1 into r1
	expectEvents(t, d,
		inRoom("r1", &ClaimVoidedData{Registry: KindSession, ID: "s1", Claim: 3}),
		inSession("s1", &RoomReleasedData{Room: "r1", Claim: 3, Reason: ReasonClaimVoided}),
		inSession("s1", &RoomClaimedData{Room: "r1", Command: "cmd-0002"}),
		inRoom("r1", created("u1", "s1", ViaLogin)),
		inRoom("r1", joined("u1", "s1", 5, ViaLogin)),
	)
	w.must(KickUser{Room: "r1", User: "u1"}) // frees claim 5
	// The stalled login wakes up and decides again: its claim is void.
	if _, err := w.tryMeta(slow, loginMulti("s1", "u1", "r1")); err != nil {
		t.Fatal(err)
	}
	if m := w.room("r1").Members["u1"]; m == nil || m.Claim != w.session("s1").Claims["r1"].Seq {
		t.Fatalf("s1 is in r1 with claim %+v but holds %+v", m, w.session("s1").Claims)
	}
}

// Two commands that would undo each other's claims (two engines logging one
// session into one room at once) cannot livelock: the newer one wins.
func TestTheNewerOfTwoConcurrentLoginsWins(t *testing.T) {
	w := newWorld(t, *policyMaxRooms(2))
	w.must(loginMulti("s1", "u1", "r0"))
	newer := Meta{App: "app", ID: "cmd-9999-newer"}
	w.decidePartly(newer, loginMulti("s1", "u1", "r1"), 1) // claimed r1, its join on its way
	_, err := w.tryMeta(Meta{App: "app", ID: "cmd-0002-older"}, loginMulti("s1", "u1", "r1"))
	expectError(t, err, ErrTimeout)
	// At its limit, a session counts a newer command's claim as taken.
	_, err = w.tryMeta(Meta{App: "app", ID: "cmd-0003-older"}, loginMulti("s1", "u1", "r2"))
	expectError(t, err, ErrTooManyRooms)
	// The newer login completes.
	if _, err := w.tryMeta(newer, loginMulti("s1", "u1", "r1")); err != nil {
		t.Fatal(err)
	}
	if _, ok := w.room("r1").MemberBySession("u1", "s1"); !ok {
		t.Fatal("the newer login did not complete")
	}
}
