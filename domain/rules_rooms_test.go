package domain

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

func kb(n int) string { return strings.Repeat("x", n) }

// broadcasts returns n broadcast commands from s1 in r1.
func broadcasts(n int) []Command {
	var cs []Command
	for i := range n {
		cs = append(cs, SendBroadcast{Session: "s1", Room: "r1", Body: fmt.Sprint("m", i)})
	}
	return cs
}

func with(given []Command, more ...Command) []Command {
	return append(append([]Command{}, given...), more...)
}

// Section 3: room messages and extra info.
func TestMessageRules(t *testing.T) {
	two := []Command{login("s1", "u1", "r1"), login("s2", "u2", "r1")}
	var toOne, toMany, extra []Command
	for i := range 200 {
		toOne = append(toOne, SendCustomCommand{Session: "s1", Room: "r1", To: []UserID{"u2"}, Body: fmt.Sprint(i)})
	}
	for i := range 10 {
		toMany = append(toMany, SendCustomCommand{Session: "s1", Room: "r1", Body: fmt.Sprint(i)})
		extra = append(extra, SetRoomExtraInfo{Session: "s1", Room: "r1", Key: "k", Value: fmt.Sprint(i)})
	}
	runRules(t, []rule{
		{name: "a broadcast goes into the room's history",
			given: two, when: SendBroadcast{Session: "s1", Room: "r1", Body: "hello"},
			then: []ev{inRoom("r1", &BroadcastSentData{From: "u1", FromName: "name-u1", Session: "s1", Body: "hello"})}},
		{name: "a broadcast of 1 KB is accepted",
			given: two, when: SendBroadcast{Session: "s1", Room: "r1", Body: kb(1024)},
			then: []ev{inRoom("r1", &BroadcastSentData{From: "u1", FromName: "name-u1", Session: "s1", Body: kb(1024)})}},
		{name: "a broadcast over 1 KB is refused (1905001)",
			given: two, when: SendBroadcast{Session: "s1", Room: "r1", Body: kb(1025)}, err: ErrMessageTooLarge},
		{name: "an empty broadcast is refused (1905001)",
			given: two, when: SendBroadcast{Session: "s1", Room: "r1"}, err: ErrMessageTooLarge},
		{name: "the 11th broadcast in one second is refused (1905002)",
			given: with(two, broadcasts(10)...), when: SendBroadcast{Session: "s2", Room: "r1", Body: "late"},
			err: ErrRateLimited},
		{name: "the next second has a fresh budget",
			given: with(two, broadcasts(10)...), advance: time.Second,
			when: SendBroadcast{Session: "s2", Room: "r1", Body: "later"},
			then: []ev{inRoom("r1", &BroadcastSentData{From: "u2", FromName: "name-u2", Session: "s2", Body: "later"})}},
		{name: "a non-member cannot send (1902006)",
			given: two, when: SendBroadcast{Session: "s9", Room: "r1", Body: "x"}, err: ErrNotLoggedIn},
		{name: "a barrage is never logged", given: two, when: SendBarrage{Session: "s1", Room: "r1", Body: "666"}},
		{name: "a barrage over 1 KB is refused (1905001)",
			given: two, when: SendBarrage{Session: "s1", Room: "r1", Body: kb(1025)}, err: ErrMessageTooLarge},
		{name: "a custom command names its recipients",
			given: two, when: SendCustomCommand{Session: "s1", Room: "r1", To: []UserID{"u2", "u2"}, Body: "mic off"},
			then: []ev{inRoom("r1", &CustomCommandSentData{From: "u1", FromName: "name-u1", Session: "s1",
				To: []UserID{"u2"}, Body: "mic off"})}},
		{name: "200 custom commands per second to one user, not 201 (1905002)",
			given: with(two, toOne...), when: SendCustomCommand{Session: "s1", Room: "r1", To: []UserID{"u2"}, Body: "x"},
			err: ErrRateLimited},
		{name: "the per-recipient budget is the recipient's own",
			given: with(append(two, login("s3", "u3", "r1")), toOne...),
			when:  SendCustomCommand{Session: "s1", Room: "r1", To: []UserID{"u3"}, Body: "x"},
			then: []ev{inRoom("r1", &CustomCommandSentData{From: "u1", FromName: "name-u1", Session: "s1",
				To: []UserID{"u3"}, Body: "x"})}},
		{name: "10 custom commands per second to many, not 11 (1905002)",
			given: with(two, toMany...), when: SendCustomCommand{Session: "s1", Room: "r1", Body: "x"},
			err: ErrRateLimited},
		{name: "a custom command over 1 KB is refused (1905001)",
			given: two, when: SendCustomCommand{Session: "s1", Room: "r1", Body: kb(1025)}, err: ErrMessageTooLarge},
		{name: "too many recipients are refused (1905004)",
			given: two, when: SendCustomCommand{Session: "s1", Room: "r1", To: make([]UserID, 101), Body: "x"},
			err: ErrRecipientsInvalid},
		{name: "room extra info is set by a member",
			given: two, when: SetRoomExtraInfo{Session: "s2", Room: "r1", Key: "topic", Value: "maths"},
			then: []ev{inRoom("r1", &ExtraInfoUpdatedData{Key: "topic", Value: "maths", By: "u2", ByName: "name-u2"})}},
		{name: "an extra info key of 128 bytes is refused (1905003)",
			given: two, when: SetRoomExtraInfo{Session: "s2", Room: "r1", Key: kb(128), Value: "v"},
			err: ErrExtraInfoInvalid},
		{name: "an extra info value of 4096 bytes is refused (1905003)",
			given: two, when: SetRoomExtraInfo{Session: "s2", Room: "r1", Key: "k", Value: kb(4096)},
			err: ErrExtraInfoInvalid},
		{name: "the 11th extra info update in one second is refused (1905002)",
			given: with(two, extra...), when: SetRoomExtraInfo{Session: "s2", Room: "r1", Key: "k", Value: "v"},
			err: ErrRateLimited},
	})
}

func TestLateJoinerSeesExtraInfoAndStreams(t *testing.T) {
	w := newWorld(t, DefaultPolicy())
	w.must(login("s1", "u1", "r1"), SetRoomExtraInfo{Session: "s1", Room: "r1", Key: "topic", Value: "maths"},
		PublishStream{Session: "s1", Stream: "st", ExtraInfo: "cam"})
	w.advance(time.Minute)
	w.must(login("s2", "u2", "r1"))
	r := w.room("r1")
	if got := r.ExtraInfo["topic"].Value; got != "maths" {
		t.Errorf("extra info topic = %q, want maths", got)
	}
	if st := r.Streams["st"]; st == nil || st.ExtraInfo != "cam" || st.UserName != "name-u1" {
		t.Errorf("stream st = %+v, want published by u1 with extra info cam", st)
	}
}

// Section 4: ZIM rooms with attributes and lifetime.
func TestZIMRoomRules(t *testing.T) {
	multi := ptr(multiPolicy())
	withAttrs := func(attrs map[string]string, delay int) JoinRoom {
		c := zim("s1", "u1", "r1", ViaCreate)
		c.RoomName = "Maths"
		c.Config = RoomConfig{Attributes: attrs, DestroyDelay: delay}
		return c
	}
	many := map[string]string{}
	for i := range 21 {
		many[fmt.Sprint("k", i)] = "v"
	}
	big := map[string]string{}
	for i := range 6 {
		big[fmt.Sprint("k", i)] = kb(1000)
	}
	switchCreate := SwitchRoom{Session: "s1", From: "r1", To: "r2", ToName: "Two", Grant: allRooms("u1"),
		Create: CreateIfMissing, Config: RoomConfig{DestroyDelay: 90}}
	switchNoCreate := switchCreate
	switchNoCreate.Create = CreateNever

	runRules(t, []rule{
		{name: "createRoom creates and joins, with attributes and a destroy delay", policy: multi,
			when: withAttrs(map[string]string{"teacher": "t1"}, 60),
			then: []ev{
				inSession("s1", opened("u1", MultiRoom)),
				inSession("s1", &RoomClaimedData{Room: "r1", Command: "cmd-0001"}),
				inRoom("r1", &RoomCreatedData{Name: "Maths", Attributes: map[string]string{"teacher": "t1"},
					DestroyDelay: 60, By: "u1", Session: "s1", Via: ViaCreate}),
				inRoom("r1", joined("u1", "s1", 2, ViaCreate)),
			}},
		{name: "createRoom fails if the room exists (1902003)", policy: multi,
			given: []Command{zim("s2", "u2", "r1", ViaEnter)},
			when:  zim("s1", "u1", "r1", ViaCreate), err: ErrRoomAlreadyExists},
		{name: "joinRoom fails if the room does not exist (1902002)", policy: multi,
			when: zim("s1", "u1", "r1", ViaJoin), err: ErrRoomNotExist},
		{name: "joinRoom joins an existing room", policy: multi,
			given: []Command{zim("s2", "u2", "r1", ViaCreate)},
			when:  zim("s1", "u1", "r1", ViaJoin),
			then: []ev{
				inSession("s1", opened("u1", MultiRoom)),
				inSession("s1", &RoomClaimedData{Room: "r1", Command: "cmd-0002"}),
				inRoom("r1", joined("u1", "s1", 2, ViaJoin)),
			}},
		{name: "enterRoom creates a missing room", policy: multi,
			when: zim("s1", "u1", "r1", ViaEnter),
			then: []ev{
				inSession("s1", opened("u1", MultiRoom)),
				inSession("s1", &RoomClaimedData{Room: "r1", Command: "cmd-0001"}),
				inRoom("r1", created("u1", "s1", ViaEnter)),
				inRoom("r1", joined("u1", "s1", 2, ViaEnter)),
			}},
		{name: "21 attributes are refused (1902004)", policy: multi, when: withAttrs(many, 0), err: ErrAttributesInvalid},
		{name: "an attribute key of 17 bytes is refused (1902004)", policy: multi,
			when: withAttrs(map[string]string{kb(17): "v"}, 0), err: ErrAttributesInvalid},
		{name: "an attribute value over 1 KB is refused (1902004)", policy: multi,
			when: withAttrs(map[string]string{"k": kb(1025)}, 0), err: ErrAttributesInvalid},
		{name: "attributes over 5 KB in all are refused (1902004)", policy: multi,
			when: withAttrs(big, 0), err: ErrAttributesInvalid},
		{name: "a destroy delay over 3 hours is refused (1902005)", policy: multi,
			when: withAttrs(nil, 10801), err: ErrDestroyDelayInvalid},
		{name: "setting and deleting attributes", policy: multi,
			given: []Command{withAttrs(map[string]string{"a": "1", "b": "2"}, 0)},
			when:  SetRoomAttributes{Session: "s1", Room: "r1", Set: map[string]string{"a": "1", "c": "3"}, Delete: []string{"b", "zz"}},
			then:  []ev{inRoom("r1", &AttributesUpdatedData{Set: map[string]string{"c": "3"}, Deleted: []string{"b"}, By: "u1", ByName: "name-u1"})}},
		{name: "attributes may not grow past the limits (1902004)", policy: multi,
			given: []Command{withAttrs(nil, 0)},
			when:  SetRoomAttributes{Session: "s1", Room: "r1", Set: many}, err: ErrAttributesInvalid},
		{name: "switchRoom may create the target room", policy: multi,
			given: []Command{zim("s1", "u1", "r1", ViaEnter)},
			when:  switchCreate,
			then: []ev{
				inSession("s1", &RoomClaimedData{Room: "r2", Command: "cmd-0002"}),
				inRoom("r1", &MemberLeftData{User: "u1", UserName: "name-u1", Session: "s1", Claim: 2, Reason: ReasonSwitch}),
				inRoom("r1", &RoomDestroyedData{Reason: DestroyEmpty}),
				inSession("s1", &RoomReleasedData{Room: "r1", Claim: 2, Reason: ReasonSwitch}),
				inRoom("r2", &RoomCreatedData{Name: "Two", DestroyDelay: 90, By: "u1", Session: "s1", Via: ViaSwitch}),
				inRoom("r2", joined("u1", "s1", 3, ViaSwitch)),
			}},
		{name: "switchRoom without create fails for a missing room and stays put (1902002)", policy: multi,
			given: []Command{zim("s1", "u1", "r1", ViaEnter)},
			when:  switchNoCreate, err: ErrRoomNotExist},
		{name: "leaveAllRoom leaves every room", policy: multi,
			given: []Command{zim("s1", "u1", "r1", ViaEnter), zim("s1", "u1", "r2", ViaEnter), zim("s2", "u2", "r1", ViaEnter)},
			when:  LeaveRoom{Session: "s1", Reason: ReasonLeave},
			then: []ev{
				inRoom("r1", &MemberLeftData{User: "u1", UserName: "name-u1", Session: "s1", Claim: 2, Reason: ReasonLeave}),
				inRoom("r2", &MemberLeftData{User: "u1", UserName: "name-u1", Session: "s1", Claim: 3, Reason: ReasonLeave}),
				inRoom("r2", &RoomDestroyedData{Reason: DestroyEmpty}),
				inSession("s1", &RoomReleasedData{Room: "r1", Claim: 2, Reason: ReasonLeave}),
				inSession("s1", &RoomReleasedData{Room: "r2", Claim: 3, Reason: ReasonLeave}),
			}},
		{name: "a room with a destroy delay outlives its last member", policy: multi,
			given: []Command{withAttrs(nil, 60)},
			when:  LeaveRoom{Session: "s1", Room: "r1", Reason: ReasonLeave},
			then: []ev{
				inRoom("r1", &MemberLeftData{User: "u1", UserName: "name-u1", Session: "s1", Claim: 2, Reason: ReasonLeave}),
				inSession("s1", &RoomReleasedData{Room: "r1", Claim: 2, Reason: ReasonLeave}),
			}},
		{name: "an empty room is not destroyed before its delay", policy: multi,
			given:   []Command{withAttrs(nil, 60), LeaveRoom{Session: "s1", Room: "r1", Reason: ReasonLeave}},
			advance: 59 * time.Second, when: ExpireRoom{Room: "r1"}},
		{name: "an empty room is destroyed when its delay runs out", policy: multi,
			given:   []Command{withAttrs(nil, 60), LeaveRoom{Session: "s1", Room: "r1", Reason: ReasonLeave}},
			advance: 60 * time.Second, when: ExpireRoom{Room: "r1"},
			then: []ev{inRoom("r1", &RoomDestroyedData{Reason: DestroyEmpty})}},
		{name: "a member who joins within the delay keeps the room", policy: multi,
			given: []Command{withAttrs(nil, 60), LeaveRoom{Session: "s1", Room: "r1", Reason: ReasonLeave},
				zim("s2", "u2", "r1", ViaJoin)},
			advance: time.Hour, when: ExpireRoom{Room: "r1"}},
		{name: "the backend destroys a room; the event lists what it held", policy: multi,
			given: []Command{zim("s1", "u1", "r1", ViaEnter), zim("s2", "u2", "r1", ViaEnter),
				PublishStream{Session: "s2", Stream: "st", Room: "r1"}},
			when: DestroyRoom{Room: "r1", Detail: "class over", Admin: "ops"},
			then: []ev{inRoom("r1", &RoomDestroyedData{Reason: DestroyBackend, Detail: "class over", Admin: "ops",
				Members: []MemberClaim{{User: "u1", Session: "s1", Claim: 2}, {User: "u2", Session: "s2", Claim: 2}},
				Streams: []StreamClaim{{Stream: "st", User: "u2", Session: "s2", Claim: 1}}})}},
		{name: "destroying a room that does not exist (1902002)", when: DestroyRoom{Room: "r1"}, err: ErrRoomNotExist},
		{name: "joinRoom after the room was destroyed fails (1902002)", policy: multi,
			given: []Command{zim("s2", "u2", "r1", ViaEnter), DestroyRoom{Room: "r1"}},
			when:  zim("s1", "u1", "r1", ViaJoin), err: ErrRoomNotExist},
	})
}

func TestDestroyedRoomForgetsItsState(t *testing.T) {
	w := newWorld(t, multiPolicy())
	w.must(zim("s1", "u1", "r1", ViaEnter), SetRoomExtraInfo{Session: "s1", Room: "r1", Key: "k", Value: "v"},
		DestroyRoom{Room: "r1"})
	r := w.room("r1")
	if r.Exists || r.Members != nil || r.ExtraInfo != nil || r.Streams != nil {
		t.Errorf("destroyed room still holds state: %+v", r)
	}
	if r.Seq == 0 {
		t.Errorf("destroyed room lost its sequence")
	}
}

// Sections 5 and 6: kicks and timeouts.
func TestKickAndTimeoutRules(t *testing.T) {
	multi := ptr(multiPolicy())
	runRules(t, []rule{
		{name: "the backend kicks a user (1002055): streams stop, the member leaves, the slot is freed",
			given: []Command{login("s1", "u1", "r1"), login("s2", "u2", "r1"), PublishStream{Session: "s1", Stream: "st"}},
			when:  KickUser{Room: "r1", User: "u1", Detail: "spam", Admin: "ops"},
			then: []ev{
				inRoom("r1", &StreamStoppedData{Stream: "st", User: "u1", UserName: "name-u1", Session: "s1", Claim: 1, Reason: ReasonKickedByBackend}),
				inRoom("r1", &MemberLeftData{User: "u1", UserName: "name-u1", Session: "s1", Claim: 2, Reason: ReasonKickedByBackend, Detail: "spam",
					Admin: "ops"}),
				inSession("s1", &RoomReleasedData{Room: "r1", Claim: 2, Reason: ReasonKickedByBackend}),
				inStream("st", &StreamReleasedData{Claim: 1, Reason: ReasonKickedByBackend}),
			}},
		{name: "kicking a user who is not in the room (1902007)",
			given: []Command{login("s1", "u1", "r1")}, when: KickUser{Room: "r1", User: "u9"}, err: ErrUserNotInRoom},
		{name: "a second session of the same user kicks the first out of the room (1002050)",
			given: []Command{login("old", "u1", "r1"), PublishStream{Session: "old", Stream: "st"}},
			when:  login("new", "u1", "r1"),
			then: []ev{
				inSession("new", opened("u1", SingleRoom)),
				inSession("new", &RoomClaimedData{Room: "r1", Command: "cmd-0003"}),
				inRoom("r1", &StreamStoppedData{Stream: "st", User: "u1", UserName: "name-u1", Session: "old", Claim: 1, Reason: ReasonKickedDuplicateLogin}),
				inRoom("r1", &MemberLeftData{User: "u1", UserName: "name-u1", Session: "old", Claim: 2, Reason: ReasonKickedDuplicateLogin, BySession: "new"}),
				inRoom("r1", joined("u1", "new", 2, ViaLogin)),
			}},
		{name: "the kicked session then leaves its other rooms, recorded with who caused it and when", policy: multi,
			given: []Command{loginMulti("old", "u1", "r1"), loginMulti("old", "u1", "r2"), loginMulti("x", "u2", "r2"),
				loginMulti("new", "u1", "r1")},
			when: KickSession{Session: "old", BySession: "new", Room: "r1", Claim: 2, At: t0},
			then: []ev{
				inRoom("r2", &MemberLeftData{User: "u1", UserName: "name-u1", Session: "old", Claim: 3, Reason: ReasonKickedDuplicateLogin,
					BySession: "new", KickedAt: t0}),
				inSession("old", &SessionKickedData{BySession: "new", Reason: ReasonKickedDuplicateLogin,
					Released: []RoomRef{{Room: "r1", Claim: 2}, {Room: "r2", Claim: 3}}}),
			}},
		{name: "rooms the kicked session joins after the kick are its own", policy: multi,
			given: []Command{loginMulti("old", "u1", "r1"), loginMulti("new", "u1", "r1")}, advance: time.Second,
			when: KickSession{Session: "old", BySession: "new", Room: "r1", Claim: 2, At: t0.Add(-time.Second)},
			then: []ev{inSession("old", &SessionKickedData{BySession: "new", Reason: ReasonKickedDuplicateLogin,
				Released: []RoomRef{{Room: "r1", Claim: 2}}})}},
		{name: "a heartbeat timeout takes the session out of every room", policy: multi,
			given: []Command{loginMulti("s1", "u1", "r1"), loginMulti("s1", "u1", "r2"), loginMulti("s2", "u2", "r1"),
				PublishStream{Session: "s1", Stream: "st", Room: "r1"}},
			when: TimeoutSession{Session: "s1", LastSeen: t0},
			then: []ev{
				inRoom("r1", &StreamStoppedData{Stream: "st", User: "u1", UserName: "name-u1", Session: "s1", Claim: 1, Reason: ReasonHeartbeatTimeout}),
				inRoom("r1", &MemberLeftData{User: "u1", UserName: "name-u1", Session: "s1", Claim: 2, Reason: ReasonHeartbeatTimeout}),
				inRoom("r2", &MemberLeftData{User: "u1", UserName: "name-u1", Session: "s1", Claim: 3, Reason: ReasonHeartbeatTimeout}),
				inRoom("r2", &RoomDestroyedData{Reason: DestroyEmpty}),
				inSession("s1", &SessionTimedOutData{LastSeen: t0, Released: []RoomRef{{Room: "r1", Claim: 2}, {Room: "r2", Claim: 3}}}),
				inStream("st", &StreamReleasedData{Claim: 1, Reason: ReasonHeartbeatTimeout}),
			}},
		{name: "a timeout of a session in no room records nothing", when: TimeoutSession{Session: "s1"}},
	})
}

// SEMANTICS.md section 4: a room whose last member left is destroyed after
// its destroy delay; only a member who joins within the delay keeps it
// alive. Past the deadline, before the timekeeper's ExpireRoom is recorded
// (a timer's lag, a retry, a node restarting), the room used to be joined
// as it was, old attributes included, and a createRoom refused (1902003).
// An entry now finds no room: joinRoom fails, and an entry that creates
// records the old room's end first, in the same step.
func TestARoomPastItsDestroyDelayIsNotEntered(t *testing.T) {
	multi := ptr(multiPolicy())
	create := zim("s1", "u1", "r1", ViaCreate)
	create.Config = RoomConfig{Attributes: map[string]string{"seat": "u1"}, DestroyDelay: 10}
	emptied := []Command{create, LeaveRoom{Session: "s1", Room: "r1"}}
	recreate := zim("s2", "u2", "r1", ViaCreate)
	runRules(t, []rule{
		{name: "joinRoom within the delay keeps the room", policy: multi, given: emptied, advance: 9 * time.Second,
			when: zim("s2", "u2", "r1", ViaJoin),
			then: []ev{
				inSession("s2", opened("u2", MultiRoom)),
				inSession("s2", &RoomClaimedData{Room: "r1", Command: "cmd-0003"}),
				inRoom("r1", joined("u2", "s2", 2, ViaJoin)),
			}},
		{name: "joinRoom past the delay fails (1902002)", policy: multi, given: emptied, advance: 11 * time.Second,
			when: zim("s2", "u2", "r1", ViaJoin), err: ErrRoomNotExist},
		{name: "createRoom past the delay ends the old room and creates a new one", policy: multi, given: emptied,
			advance: 11 * time.Second, when: recreate,
			then: []ev{
				inSession("s2", opened("u2", MultiRoom)),
				inSession("s2", &RoomClaimedData{Room: "r1", Command: "cmd-0003"}),
				inRoom("r1", &RoomDestroyedData{Reason: DestroyEmpty}),
				inRoom("r1", &RoomCreatedData{By: "u2", Session: "s2", Via: ViaCreate}),
				inRoom("r1", joined("u2", "s2", 2, ViaCreate)),
			}},
	})
}

// A room whose room.destroyed would not fit one log message (the default
// 1 MiB holds about 12,000 members) is emptied in steps first: each step one
// message, each member and stream released exactly once, the room gone at
// the end.
func TestARoomTooLargeForOneEventIsDestroyedInSteps(t *testing.T) {
	d, err := NewDecider(Config{Default: multiPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	const members = 20_000
	room := &Room{Head: Head{Seq: 3, Time: t0}, Exists: true, Members: map[UserID]*Member{},
		Streams: map[StreamID]*Stream{}}
	bySession := map[SessionID]*Member{}
	for i := range members {
		m := &Member{User: UserID(fmt.Sprintf("user-%059d", i)), UserName: strings.Repeat("<ü>", 20),
			Session: SessionID(fmt.Sprintf("session-%056d", i)), Claim: uint64(i%7 + 1), JoinedAt: t0}
		if i%50 == 0 { // every 50th member publishes two streams
			m.Publishing = map[StreamID]bool{}
			for j := range 2 {
				sid := StreamID(fmt.Sprintf("stream-%d-%s", j, strings.Repeat("s", 170)+string(m.User)))
				m.Publishing[sid] = true
				room.Streams[sid] = &Stream{ID: sid, User: m.User, UserName: m.UserName, Session: m.Session,
					Claim: uint64(j + 1)}
			}
		}
		room.Members[m.User] = m
		bySession[m.Session] = m
	}
	v := NewView()
	v.Rooms["big"] = room
	dec, err := d.Decide(v, Meta{App: "app", ID: "cmd-1", Correlation: "cmd-1"},
		DestroyRoom{Room: "big", Detail: "over", Admin: "ops"}, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(dec.Steps) < 3 {
		t.Fatalf("%d steps, want the room emptied in steps before its room.destroyed", len(dec.Steps))
	}

	folded := &Room{}
	*folded = *room
	folded.Members, folded.Streams = maps.Clone(room.Members), maps.Clone(room.Streams)
	released := map[string]int{} // by claim holder: "session:<id>" and "stream:<id>"
	expect := room.Seq
	for i, st := range dec.Steps {
		if st.Key != RoomKey("app", "big") || st.Expect != expect {
			t.Fatalf("step %d is for %v expecting %d, want the room expecting %d", i, st.Key, st.Expect, expect)
		}
		expect += uint64(len(st.Events))
		body, _, err := EncodeEvents(zeroHash, slices.Clone(st.Events))
		if err != nil {
			t.Fatal(err)
		}
		if len(body) > DefaultMaxMessageBytes-messageHeadroom {
			t.Fatalf("step %d of %d is %d bytes, more than a 1 MiB message takes", i, len(dec.Steps), len(body))
		}
		last := i == len(dec.Steps)-1
		for j := range st.Events {
			e := &st.Events[j]
			switch p := e.Data.(type) {
			case *MemberLeftData:
				if last || p.Reason != ReasonRoomDestroyed || p.Admin != "ops" {
					t.Fatalf("step %d: %s left with reason %q", i, p.User, p.Reason)
				}
			case *StreamStoppedData:
				if last || p.Reason != ReasonRoomDestroyed {
					t.Fatalf("step %d: %s stopped with reason %q", i, p.Stream, p.Reason)
				}
			case *RoomDestroyedData:
				if !last || j != len(st.Events)-1 || p.Detail != "over" || p.Reason != DestroyBackend || p.Admin != "ops" {
					t.Fatalf("step %d event %d: %+v, want the destroy's last event", i, j, p)
				}
			default:
				t.Fatalf("step %d: unexpected %s", i, e.Type)
			}
			for _, f := range FollowUps(e) {
				switch c := f.Command.(type) {
				case ReleaseRoomClaim:
					if m := bySession[c.Session]; m == nil || m.Claim != c.Claim {
						t.Fatalf("release of a claim nobody held: %+v", c)
					}
					released["session:"+string(c.Session)]++
				case ReleaseStreamClaim:
					if s := room.Streams[c.Stream]; s == nil || s.Claim != c.Claim {
						t.Fatalf("release of a claim nobody held: %+v", c)
					}
					released["stream:"+string(c.Stream)]++
				}
			}
			folded.Apply(e)
		}
		if !last && (!folded.Exists || len(folded.Members) == 0) {
			t.Fatalf("after step %d the room exists %v with %d members, want a room still being emptied",
				i, folded.Exists, len(folded.Members))
		}
	}
	if folded.Exists || len(folded.Members) != 0 || len(folded.Streams) != 0 {
		t.Fatalf("after the destroy the room exists %v with %d members and %d streams", folded.Exists,
			len(folded.Members), len(folded.Streams))
	}
	if len(released) != members+2*members/50 {
		t.Fatalf("%d claims released, want %d", len(released), members+2*members/50)
	}
	for who, n := range released {
		if n != 1 {
			t.Fatalf("%s released %d times", who, n)
		}
	}
}

// The admin subject a kick or destroy records is held to what IDs are held
// to: one longer than 128 bytes, or with a control character, is refused.
func TestAnAdminSubjectIsChecked(t *testing.T) {
	long := strings.Repeat("a", MaxAdminBytes+1)
	runRules(t, []rule{
		{name: "a kick by a subject too long", given: []Command{login("s1", "u1", "r1")},
			when: KickUser{Room: "r1", User: "u1", Admin: long}, err: ErrInvalidArgument},
		{name: "a destroy by a subject with a control character", given: []Command{login("s1", "u1", "r1")},
			when: DestroyRoom{Room: "r1", Admin: "ops\x1b[2J"}, err: ErrInvalidArgument},
	})
}

// A logout whose room step was stored, decided again after a conflict on
// the session, must not undo a login of the same session into the room
// that a newer command stored in between (through another node): before,
// it released the new claim (its room view stale) or removed the new
// membership, and the race test's auditor found the session in more rooms
// than it may be.
func TestALogoutDecidedAgainLeavesANewerLoginAlone(t *testing.T) {
	w := newWorld(t, multiPolicy())
	w.must(zim("s1", "u1", "r1", ViaEnter), zim("s2", "u2", "r1", ViaJoin), zim("s1", "u1", "r2", ViaEnter))
	logout := w.meta()
	if _, err := w.tryMeta(logout, LeaveRoom{Session: "s1", Room: "r1", Reason: ReasonLogout}); err != nil {
		t.Fatal(err)
	}
	w.must(zim("s1", "u1", "r1", ViaJoin)) // a newer login, through another node
	logout.Stored = []Key{RoomKey(w.app, "r1")}
	d, err := w.tryMeta(logout, LeaveRoom{Session: "s1", Room: "r1", Reason: ReasonLogout})
	if err != nil {
		t.Fatalf("the logout decided again: %v", err)
	}
	if len(d.Steps) != 0 {
		t.Fatalf("the logout decided again undoes the newer login: %+v", d.Steps)
	}
	if _, in := w.room("r1").MemberBySession("u1", "s1"); !in {
		t.Fatal("s1 is no longer in r1")
	}
}
