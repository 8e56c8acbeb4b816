package domain

import (
	"strings"
	"testing"
	"time"
)

// rule is one Given / When / Then case. Given is a history, written as the
// commands that produced it; Then is the events the When command must produce,
// or the coded error it must be refused with.
type rule struct {
	name    string
	policy  *Policy
	given   []Command
	advance time.Duration
	when    Command
	then    []ev
	err     *Error
}

func (r rule) run(t *testing.T) {
	t.Helper()
	p := DefaultPolicy()
	if r.policy != nil {
		p = *r.policy
	}
	w := newWorld(t, p)
	w.must(r.given...)
	w.advance(r.advance)
	d, err := w.try(r.when)
	if r.err != nil {
		expectError(t, err, r.err)
	} else if err != nil {
		t.Fatalf("refused: %v", err)
	}
	expectEvents(t, d, r.then...)
}

func runRules(t *testing.T, rules []rule) {
	t.Helper()
	for _, r := range rules {
		t.Run(r.name, r.run)
	}
}

func ptr[T any](v T) *T { return &v }

func policyMaxRooms(n int) *Policy {
	p := multiPolicy()
	p.MaxRooms = n
	return &p
}

func opened(u UserID, mode RoomMode) *SessionOpenedData {
	return &SessionOpenedData{User: u, UserName: "name-" + string(u), Mode: mode}
}

func joined(u UserID, s SessionID, claim uint64, via Via) *MemberJoinedData {
	return &MemberJoinedData{User: u, UserName: "name-" + string(u), Session: s, Role: Anchor, CanPublish: true,
		Claim: claim, Via: via}
}

func created(u UserID, s SessionID, via Via) *RoomCreatedData {
	return &RoomCreatedData{By: u, Session: s, Via: via}
}

// Section 1: sessions, users, room modes.
func TestSessionRules(t *testing.T) {
	wrongUserToken := login("s1", "u1", "r1")
	wrongUserToken.Grant.User = "u2"
	otherRoomToken := login("s1", "u1", "r1")
	otherRoomToken.Grant = Grant{User: "u1", Rooms: []RoomID{"r2"}}
	expired := login("s1", "u1", "r1")
	expired.Grant.ExpiresAt = t0
	otherTokenName := login("s1", "u1", "r1")
	otherTokenName.Grant.UserName = "someone else"
	sameName := login("s1", "u1", "r1")
	sameName.Grant.UserName = "name-u1"
	listed := login("s1", "u1", "r1")
	listed.Grant = Grant{User: "u1", Rooms: []RoomID{"r0", "r1"}}
	otherName := loginMulti("s1", "u1", "r2")
	otherName.User.Name = "someone else"

	runRules(t, []rule{
		{name: "room mode may be chosen before the first login",
			when: SetRoomMode{Session: "s1", Mode: MultiRoom}},
		{name: "room mode after a login is refused (1001020)",
			given: []Command{login("s1", "u1", "r1")},
			when:  SetRoomMode{Session: "s1", Mode: MultiRoom}, err: ErrRoomModeAfterLogin},
		{name: "room mode after logging out of everything is still refused (1001020)",
			given: []Command{login("s1", "u1", "r1"), LeaveRoom{Session: "s1"}},
			when:  SetRoomMode{Session: "s1", Mode: MultiRoom}, err: ErrRoomModeAfterLogin},
		{name: "a login creates the room and joins it",
			when: login("s1", "u1", "r1"),
			then: []ev{
				inSession("s1", opened("u1", SingleRoom)),
				inSession("s1", &RoomClaimedData{Room: "r1", Command: "cmd-0001"}),
				inRoom("r1", created("u1", "s1", ViaLogin)),
				inRoom("r1", joined("u1", "s1", 2, ViaLogin)),
			}},
		{name: "logging in again to the same room changes nothing",
			given: []Command{login("s1", "u1", "r1")},
			when:  login("s1", "u1", "r1")},
		{name: "a multi-room login is refused when the app does not allow it (1002036)",
			when: loginMulti("s1", "u1", "r1"), err: ErrMultiRoomNotAllowed},
		{name: "multi-room: the sixth room is refused (1002037)", policy: ptr(multiPolicy()),
			given: []Command{loginMulti("s1", "u1", "r1"), loginMulti("s1", "u1", "r2"), loginMulti("s1", "u1", "r3"),
				loginMulti("s1", "u1", "r4"), loginMulti("s1", "u1", "r5")},
			when: loginMulti("s1", "u1", "r6"), err: ErrTooManyRooms},
		{name: "multi-room: the limit is the app's (2 here)", policy: policyMaxRooms(2),
			given: []Command{loginMulti("s1", "u1", "r1"), loginMulti("s1", "u1", "r2")},
			when:  loginMulti("s1", "u1", "r3"), err: ErrTooManyRooms},
		{name: "multi-room: a room left frees its slot", policy: policyMaxRooms(2),
			given: []Command{loginMulti("s1", "u1", "r1"), loginMulti("s1", "u1", "r2"),
				LeaveRoom{Session: "s1", Room: "r1"}},
			when: loginMulti("s1", "u1", "r3"),
			then: []ev{
				inSession("s1", &RoomClaimedData{Room: "r3", Command: "cmd-0004"}),
				inRoom("r3", created("u1", "s1", ViaLogin)),
				inRoom("r3", joined("u1", "s1", 5, ViaLogin)),
			}},
		{name: "a second user ID on one session is refused (1002018)", policy: ptr(multiPolicy()),
			given: []Command{loginMulti("s1", "u1", "r1")},
			when:  loginMulti("s1", "u2", "r2"), err: ErrUserMismatch},
		{name: "a second user name on one session is refused (1002018)", policy: ptr(multiPolicy()),
			given: []Command{loginMulti("s1", "u1", "r1")},
			when:  otherName, err: ErrUserMismatch},
		{name: "single-room: a login while in another room is refused (1902001)",
			given: []Command{login("s1", "u1", "r1")},
			when:  login("s1", "u1", "r2"), err: ErrAlreadyInAnotherRoom},
		{name: "a token for another user is refused (1002033)", when: wrongUserToken, err: ErrTokenInvalid},
		{name: "a token for another room is refused (1002033)", when: otherRoomToken, err: ErrTokenInvalid},
		{name: "an expired token is refused (1002033)", when: expired, err: ErrTokenInvalid},
		{name: "a token naming the user logs in under that name only (1002033)", when: otherTokenName, err: ErrTokenInvalid},
		{name: "a token naming the user logs in under that name",
			when: sameName,
			then: []ev{
				inSession("s1", opened("u1", SingleRoom)),
				inSession("s1", &RoomClaimedData{Room: "r1", Command: "cmd-0001"}),
				inRoom("r1", created("u1", "s1", ViaLogin)),
				inRoom("r1", joined("u1", "s1", 2, ViaLogin)),
			}},
		{name: "a token listing the room is accepted", when: listed,
			then: []ev{
				inSession("s1", opened("u1", SingleRoom)),
				inSession("s1", &RoomClaimedData{Room: "r1", Command: "cmd-0001"}),
				inRoom("r1", created("u1", "s1", ViaLogin)),
				inRoom("r1", &MemberJoinedData{User: "u1", UserName: "name-u1", Session: "s1", Role: Anchor,
					CanPublish: false, Claim: 2, Via: ViaLogin}),
			}},
		{name: "logout of a room the session is not in fails (1002002)",
			given: []Command{login("s1", "u1", "r1")},
			when:  LeaveRoom{Session: "s1", Room: "r2"}, err: ErrNotInRoom},
		{name: "logout of one room: the member leaves, the slot is released, the empty room ends",
			given: []Command{login("s1", "u1", "r1")},
			when:  LeaveRoom{Session: "s1", Room: "r1"},
			then: []ev{
				inRoom("r1", &MemberLeftData{User: "u1", UserName: "name-u1", Session: "s1", Claim: 2, Reason: ReasonLogout}),
				inRoom("r1", &RoomDestroyedData{Reason: DestroyEmpty}),
				inSession("s1", &RoomReleasedData{Room: "r1", Claim: 2, Reason: ReasonLogout}),
			}},
		{name: "logout with no room leaves every room", policy: ptr(multiPolicy()),
			given: []Command{loginMulti("s1", "u1", "r1"), loginMulti("s1", "u1", "r2"), loginMulti("s2", "u2", "r2")},
			when:  LeaveRoom{Session: "s1"},
			then: []ev{
				inRoom("r1", &MemberLeftData{User: "u1", UserName: "name-u1", Session: "s1", Claim: 2, Reason: ReasonLogout}),
				inRoom("r1", &RoomDestroyedData{Reason: DestroyEmpty}),
				inRoom("r2", &MemberLeftData{User: "u1", UserName: "name-u1", Session: "s1", Claim: 3, Reason: ReasonLogout}),
				inSession("s1", &RoomReleasedData{Room: "r1", Claim: 2, Reason: ReasonLogout}),
				inSession("s1", &RoomReleasedData{Room: "r2", Claim: 3, Reason: ReasonLogout}),
			}},
		{name: "logout with no room when in none changes nothing", when: LeaveRoom{Session: "s1"}},
		{name: "switch leaves one room and joins the other",
			given: []Command{login("s1", "u1", "r1"), login("s2", "u2", "r1")},
			when:  SwitchRoom{Session: "s1", From: "r1", To: "r2", Grant: allRooms("u1"), Create: CreateIfMissing},
			then: []ev{
				inSession("s1", &RoomClaimedData{Room: "r2", Command: "cmd-0003"}),
				inRoom("r1", &MemberLeftData{User: "u1", UserName: "name-u1", Session: "s1", Claim: 2, Reason: ReasonSwitch}),
				inSession("s1", &RoomReleasedData{Room: "r1", Claim: 2, Reason: ReasonSwitch}),
				inRoom("r2", created("u1", "s1", ViaSwitch)),
				inRoom("r2", joined("u1", "s1", 3, ViaSwitch)),
			}},
		{name: "switch from a room the session is not in fails (1002002)",
			given: []Command{login("s1", "u1", "r1")},
			when:  SwitchRoom{Session: "s1", From: "r9", To: "r2", Grant: allRooms("u1"), Create: CreateIfMissing},
			err:   ErrNotInRoom},
		{name: "switch needs a token naming the session's user name, if it names one (1002033)",
			given: []Command{login("s1", "u1", "r1")},
			when: SwitchRoom{Session: "s1", From: "r1", To: "r2", Grant: Grant{User: "u1", UserName: "u1", AllRooms: true},
				Create: CreateIfMissing},
			err: ErrTokenInvalid},
		{name: "switch needs a token for the target room (1002033)",
			given: []Command{login("s1", "u1", "r1")},
			when: SwitchRoom{Session: "s1", From: "r1", To: "r2", Grant: Grant{User: "u1", Rooms: []RoomID{"r1"}},
				Create: CreateIfMissing},
			err: ErrTokenInvalid},
		{name: "single-room: leaving stops all publishing and playing",
			given: []Command{login("s1", "u1", "r1"), login("s2", "u2", "r1"),
				PublishStream{Session: "s1", Stream: "st1"}, PlayStream{Session: "s1", Stream: "st2"}},
			when: LeaveRoom{Session: "s1", Room: "r1"},
			then: []ev{
				inRoom("r1", &StreamStoppedData{Stream: "st1", User: "u1", UserName: "name-u1", Session: "s1", Claim: 1, Reason: ReasonLogout}),
				inRoom("r1", &MemberLeftData{User: "u1", UserName: "name-u1", Session: "s1", Claim: 2, Reason: ReasonLogout}),
				inSession("s1", &RoomReleasedData{Room: "r1", Claim: 2, Reason: ReasonLogout}),
				inStream("st1", &StreamReleasedData{Claim: 1, Reason: ReasonLogout}),
			}},
		{name: "multi-room: leaving a room stops only that room's publishing", policy: ptr(multiPolicy()),
			given: []Command{loginMulti("s1", "u1", "r1"), loginMulti("s1", "u1", "r2"),
				PublishStream{Session: "s1", Stream: "a", Room: "r1"}, PublishStream{Session: "s1", Stream: "b", Room: "r2"}},
			when: LeaveRoom{Session: "s1", Room: "r1"},
			then: []ev{
				inRoom("r1", &StreamStoppedData{Stream: "a", User: "u1", UserName: "name-u1", Session: "s1", Claim: 1, Reason: ReasonLogout}),
				inRoom("r1", &MemberLeftData{User: "u1", UserName: "name-u1", Session: "s1", Claim: 2, Reason: ReasonLogout}),
				inRoom("r1", &RoomDestroyedData{Reason: DestroyEmpty}),
				inSession("s1", &RoomReleasedData{Room: "r1", Claim: 2, Reason: ReasonLogout}),
				inStream("a", &StreamReleasedData{Claim: 1, Reason: ReasonLogout}),
			}},
	})
}

func TestPerAppPolicy(t *testing.T) {
	big := multiPolicy()
	big.MaxRooms = 7
	d, err := NewDecider(Config{Default: DefaultPolicy(), Apps: map[AppID]Policy{"big": big}})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Policy("big").MaxRooms; got != 7 {
		t.Errorf("big app max rooms = %d, want 7", got)
	}
	if d.Policy("other").MultiRoom {
		t.Errorf("an unconfigured app allows multi-room mode")
	}
	bad := DefaultPolicy()
	bad.MaxRooms = 0
	bad.Limits.MessageBytes = -1
	_, err = NewDecider(Config{Default: bad, Apps: map[AppID]Policy{"": big}})
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"max_rooms", "message_bytes", "app ID is empty"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("config error %q does not mention %q (all problems are reported at once)", err, want)
		}
	}
}

// The switch records one correlation in both rooms' histories.
func TestSwitchCorrelation(t *testing.T) {
	w := newWorld(t, DefaultPolicy())
	w.must(login("s1", "u1", "r1"))
	d, err := w.tryMeta(Meta{App: "app", ID: "switch-1"},
		SwitchRoom{Session: "s1", From: "r1", To: "r2", Grant: allRooms("u1"), Create: CreateIfMissing})
	if err != nil {
		t.Fatal(err)
	}
	rooms := map[string]bool{}
	for _, st := range d.Steps {
		for _, e := range st.Events {
			if e.Correlation != "switch-1" {
				t.Errorf("%s %s has correlation %q", st.Key, e.Type, e.Correlation)
			}
			if st.Key.Kind == KindRoom {
				rooms[st.Key.ID] = true
			}
		}
	}
	if !rooms["r1"] || !rooms["r2"] {
		t.Errorf("the switch touched rooms %v, want r1 and r2", rooms)
	}
}
