package domain

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

func setAttrs(s SessionID, kv map[string]string) SetRoomAttributes {
	return SetRoomAttributes{Session: s, Room: "r1", Set: kv}
}

func loginQuiet(s SessionID, u UserID, r RoomID) JoinRoom {
	c := login(s, u, r)
	c.Quiet = true
	return c
}

func loginMax(s SessionID, u UserID, r RoomID, max int) JoinRoom {
	c := login(s, u, r)
	c.Config.MaxMembers = max
	return c
}

// Owned room attributes, compare-and-set, batches (ZIM), rate limits.
func TestRoomAttributeRules(t *testing.T) {
	two := []Command{login("s1", "u1", "r1"), login("s2", "u2", "r1")}
	owned := with(two, setAttrs("s1", map[string]string{"mic": "u1"}))
	auto := with(two, SetRoomAttributes{Session: "s1", Room: "r1", Set: map[string]string{"seat": "1"}, DeleteAfterOwnerLeft: true})
	var ten []Command
	for i := range 10 {
		ten = append(ten, setAttrs("s1", map[string]string{"n": fmt.Sprint(i)}))
	}
	runRules(t, []rule{
		{name: "given u1 owns a key, when u2 sets it without force, then it is refused (1902010)",
			given: owned, when: setAttrs("s2", map[string]string{"mic": "u2"}), err: ErrAttributeOwned},
		{name: "given u1 owns a key, when u2 deletes it without force, then it is refused (1902010)",
			given: owned, when: SetRoomAttributes{Session: "s2", Room: "r1", Delete: []string{"mic"}}, err: ErrAttributeOwned},
		{name: "given u1 owns a key, when u2 sets it with force, then it is written and u1 still owns it",
			given: owned, when: SetRoomAttributes{Session: "s2", Room: "r1", Set: map[string]string{"mic": "u2"}, Force: true},
			then: []ev{inRoom("r1", &AttributesUpdatedData{Set: map[string]string{"mic": "u2"}, By: "u2", ByName: "name-u2", Force: true})}},
		{name: "given u1 owns a key, when u2 sets it with force and updateOwner, then u2 owns it",
			given: owned, when: SetRoomAttributes{Session: "s2", Room: "r1", Set: map[string]string{"mic": "u2"}, Force: true, UpdateOwner: true},
			then: []ev{inRoom("r1", &AttributesUpdatedData{Set: map[string]string{"mic": "u2"}, By: "u2", ByName: "name-u2", Force: true, UpdateOwner: true})}},
		{name: "given u1 owns a key, when u2 writes it and another key, then only the other key is written (ZIM errorKeys)",
			given: owned, when: setAttrs("s2", map[string]string{"mic": "u2", "cam": "on"}),
			then: []ev{inRoom("r1", &AttributesUpdatedData{Set: map[string]string{"cam": "on"}, By: "u2", ByName: "name-u2"})}},
		{name: "given u1 owns a key, when u2 writes it in a batch, then the whole batch is refused (1902010)",
			given: owned, when: SetRoomAttributes{Session: "s2", Room: "r1", Set: map[string]string{"mic": "u2", "cam": "on"}, Batch: true},
			err: ErrAttributeOwned},
		{name: "a batch sets and deletes several keys as one event",
			given: owned, when: SetRoomAttributes{Session: "s1", Room: "r1", Set: map[string]string{"a": "1", "b": "2"},
				Delete: []string{"mic"}, Batch: true},
			then: []ev{inRoom("r1", &AttributesUpdatedData{Set: map[string]string{"a": "1", "b": "2"}, Deleted: []string{"mic"},
				By: "u1", ByName: "name-u1", Batch: true})}},
		{name: "given a key set with deleteAfterOwnerLeft, when its owner leaves, then the key goes in the same step",
			given: auto, when: LeaveRoom{Session: "s1", Room: "r1"},
			then: []ev{
				inRoom("r1", &AttributesUpdatedData{Deleted: []string{"seat"}, By: "u1", ByName: "name-u1", OwnerLeft: true}),
				inRoom("r1", &MemberLeftData{User: "u1", UserName: "name-u1", Session: "s1", Claim: 2, Reason: ReasonLogout}),
				inSession("s1", &RoomReleasedData{Room: "r1", Claim: 2, Reason: ReasonLogout}),
			}},
		{name: "given a key without deleteAfterOwnerLeft, when its owner leaves, then the key stays",
			given: owned, when: LeaveRoom{Session: "s1", Room: "r1"},
			then: []ev{
				inRoom("r1", &MemberLeftData{User: "u1", UserName: "name-u1", Session: "s1", Claim: 2, Reason: ReasonLogout}),
				inSession("s1", &RoomReleasedData{Room: "r1", Claim: 2, Reason: ReasonLogout}),
			}},
		{name: "given the key's version, when the write expects it, then it is written",
			given: owned, when: SetRoomAttributes{Session: "s1", Room: "r1", Set: map[string]string{"mic": "x"},
				Expect: map[string]uint64{"mic": 4}},
			then: []ev{inRoom("r1", &AttributesUpdatedData{Set: map[string]string{"mic": "x"}, By: "u1", ByName: "name-u1"})}},
		{name: "given a newer version, when the write expects an older one, then it is refused (1905005)",
			given: owned, when: SetRoomAttributes{Session: "s1", Room: "r1", Set: map[string]string{"mic": "x"},
				Expect: map[string]uint64{"mic": 3}}, err: ErrVersionConflict},
		{name: "expecting version 0 creates a key only if it does not exist (1905005)",
			given: owned, when: SetRoomAttributes{Session: "s1", Room: "r1", Set: map[string]string{"mic": "x"},
				Expect: map[string]uint64{"mic": 0}}, err: ErrVersionConflict},
		{name: "the 11th attribute write in one second is refused (1905002)",
			given: with(two, ten...), when: setAttrs("s2", map[string]string{"z": "1"}), err: ErrRateLimited},
		{name: "the next second has a fresh attribute budget",
			given: with(two, ten...), advance: time.Second, when: setAttrs("s2", map[string]string{"z": "1"}),
			then: []ev{inRoom("r1", &AttributesUpdatedData{Set: map[string]string{"z": "1"}, By: "u2", ByName: "name-u2"})}},
	})
}

// Room extra info compare-and-set.
func TestExtraInfoCASRules(t *testing.T) {
	set := with([]Command{login("s1", "u1", "r1")}, SetRoomExtraInfo{Session: "s1", Room: "r1", Key: "k", Value: "v1"})
	runRules(t, []rule{
		{name: "given extra info at version 3, when a write expects 3, then it is written",
			given: set, when: SetRoomExtraInfo{Session: "s1", Room: "r1", Key: "k", Value: "v2", Expect: ptr(uint64(3))},
			then: []ev{inRoom("r1", &ExtraInfoUpdatedData{Key: "k", Value: "v2", By: "u1", ByName: "name-u1"})}},
		{name: "given extra info at version 3, when a write expects 2, then it is refused (1905005)",
			given: set, when: SetRoomExtraInfo{Session: "s1", Room: "r1", Key: "k", Value: "v2", Expect: ptr(uint64(2))},
			err: ErrVersionConflict},
		{name: "a write without a version behaves as before",
			given: set, when: SetRoomExtraInfo{Session: "s1", Room: "r1", Key: "k", Value: "v2"},
			then: []ev{inRoom("r1", &ExtraInfoUpdatedData{Key: "k", Value: "v2", By: "u1", ByName: "name-u1"})}},
	})
}

// A version conflict carries the current value and version; a partial write
// reports what it skipped.
func TestConflictAndPartialData(t *testing.T) {
	w := newWorld(t, DefaultPolicy())
	w.must(login("s1", "u1", "r1"), login("s2", "u2", "r1"), setAttrs("s1", map[string]string{"mic": "u1"}))
	_, err := w.try(SetRoomAttributes{Session: "s2", Room: "r1", Set: map[string]string{"mic": "u2"}, Force: true,
		Expect: map[string]uint64{"mic": 1}})
	var de *Error
	if !errors.As(err, &de) || de.Code != ErrVersionConflict.Code {
		t.Fatalf("err = %v, want a version conflict", err)
	}
	want := VersionConflict{Current: []Current{{Key: "mic", Value: "u1", Version: 4, Exists: true}}}
	if !reflect.DeepEqual(de.Data, want) {
		t.Fatalf("conflict data = %+v, want %+v", de.Data, want)
	}
	d, err := w.try(setAttrs("s2", map[string]string{"mic": "u2", "cam": "on"}))
	if err != nil || d.Partial == nil || !reflect.DeepEqual(d.Partial.Keys, []string{"mic"}) {
		t.Fatalf("partial write: %+v, %v", d.Partial, err)
	}
	if got := w.room("r1").AttributeMeta["cam"]; got.Owner != "u2" || got.Version != 5 {
		t.Fatalf("cam's meta = %+v", got)
	}
	d, err = w.try(SetMemberAttributes{Session: "s1", Room: "r1", Users: []UserID{"u2", "u9"}, Set: map[string]string{"seat": "2"}})
	if err != nil || d.Partial == nil || !reflect.DeepEqual(d.Partial.Users, []UserID{"u9"}) {
		t.Fatalf("partial member write: %+v, %v", d.Partial, err)
	}
}

// Room member attributes (ZIM setRoomMembersAttributes).
func TestMemberAttributeRules(t *testing.T) {
	two := []Command{login("s1", "u1", "r1"), login("s2", "u2", "r1")}
	seat := SetMemberAttributes{Session: "s1", Room: "r1", Users: []UserID{"u2"}, Set: map[string]string{"seat": "3"}}
	var thirty = map[string]string{}
	for i := range 30 {
		thirty[fmt.Sprintf("k%d", i)] = "v"
	}
	runRules(t, []rule{
		{name: "a member sets another member's attributes; the room is told",
			given: two, when: seat,
			then: []ev{inRoom("r1", &MemberAttributesUpdatedData{Members: []MemberAttributes{{User: "u2",
				Set: map[string]string{"seat": "3"}}}, By: "u1", ByName: "name-u1"})}},
		{name: "a write to members none of whom is in the room is refused (1902007)",
			given: two, when: SetMemberAttributes{Session: "s1", Room: "r1", Users: []UserID{"u9"}, Set: map[string]string{"a": "b"}},
			err: ErrUserNotInRoom},
		{name: "a key over 8 bytes is refused (1902011)",
			given: two, when: SetMemberAttributes{Session: "s1", Room: "r1", Users: []UserID{"u2"}, Set: map[string]string{kb(9): "v"}},
			err: ErrMemberAttrsInvalid},
		{name: "a value over 64 bytes is refused (1902011)",
			given: two, when: SetMemberAttributes{Session: "s1", Room: "r1", Users: []UserID{"u2"}, Set: map[string]string{"k": kb(65)}},
			err: ErrMemberAttrsInvalid},
		{name: "a 31st key on a member is refused (1902011)",
			given: with(two, SetMemberAttributes{Session: "s1", Room: "r1", Users: []UserID{"u2"}, Set: thirty}),
			when:  seat, err: ErrMemberAttrsInvalid},
		{name: "a non-member cannot write (1902006)",
			given: two, when: SetMemberAttributes{Session: "s9", Room: "r1", Users: []UserID{"u2"}, Set: map[string]string{"a": "b"}},
			err: ErrNotLoggedIn},
	})
	w := newWorld(t, DefaultPolicy())
	w.must(append(two, seat, LeaveRoom{Session: "s2", Room: "r1"}, login("s2", "u2", "r1"))...)
	if a := w.room("r1").Members["u2"].Attributes; a != nil {
		t.Fatalf("a member's attributes survived its leaving: %v", a)
	}
}

// Room capacity (ZEGO maxMemberCount) and user status notification.
func TestCapacityRules(t *testing.T) {
	full := []Command{loginMax("s1", "u1", "r1", 2), login("s2", "u2", "r1")}
	runRules(t, []rule{
		{name: "the room's creator sets its capacity",
			when: loginMax("s1", "u1", "r1", 2),
			then: []ev{
				inSession("s1", opened("u1", SingleRoom)),
				inSession("s1", &RoomClaimedData{Room: "r1", Command: "cmd-0001"}),
				inRoom("r1", &RoomCreatedData{By: "u1", Session: "s1", Via: ViaLogin, MaxMembers: 2}),
				inRoom("r1", joined("u1", "s1", 2, ViaLogin)),
			}},
		{name: "given a full room, when one more user logs in, then it is refused (1002034)",
			given: full, when: login("s3", "u3", "r1"), err: ErrRoomFull},
		{name: "given a full room, when a member logs in from another device, then it replaces itself",
			given: full, when: login("s3", "u2", "r1"),
			then: []ev{
				inSession("s3", opened("u2", SingleRoom)),
				inSession("s3", &RoomClaimedData{Room: "r1", Command: "cmd-0003"}),
				inRoom("r1", &MemberLeftData{User: "u2", UserName: "name-u2", Session: "s2", Claim: 2,
					Reason: ReasonKickedDuplicateLogin, BySession: "s3"}),
				inRoom("r1", joined("u2", "s3", 2, ViaLogin)),
			}},
		{name: "given a full room, when a member leaves, then the next login gets in",
			given: with(full, LeaveRoom{Session: "s2", Room: "r1"}), when: login("s3", "u3", "r1"),
			then: []ev{
				inSession("s3", opened("u3", SingleRoom)),
				inSession("s3", &RoomClaimedData{Room: "r1", Command: "cmd-0004"}),
				inRoom("r1", joined("u3", "s3", 2, ViaLogin)),
			}},
		{name: "a later login's capacity does not change the room's",
			given: full[:1], when: loginMax("s2", "u2", "r1", 1),
			then: []ev{
				inSession("s2", opened("u2", SingleRoom)),
				inSession("s2", &RoomClaimedData{Room: "r1", Command: "cmd-0002"}),
				inRoom("r1", joined("u2", "s2", 2, ViaLogin)),
			}},
		{name: "a negative capacity is refused (1906001)",
			when: loginMax("s1", "u1", "r1", -1), err: ErrInvalidArgument},
		{name: "a member may ask not to be told of other members",
			when: loginQuiet("s1", "u1", "r1"),
			then: []ev{
				inSession("s1", opened("u1", SingleRoom)),
				inSession("s1", &RoomClaimedData{Room: "r1", Command: "cmd-0001"}),
				inRoom("r1", &RoomCreatedData{By: "u1", Session: "s1", Via: ViaLogin}),
				inRoom("r1", &MemberJoinedData{User: "u1", UserName: "name-u1", Session: "s1", Role: Anchor, CanPublish: true,
					Claim: 2, Via: ViaLogin, Quiet: true}),
			}},
	})
}

// protocol.md: room_extra_info_update comes when "a key changes", and a
// write's version is "none if it changed nothing". Setting a key to the
// value it already has changes nothing: no event for the other members, no
// new version (which made every other writer's compare-and-set fail), no
// rate-limit slot used, as for stream extra info and room attributes.
func TestExtraInfoSetToItsValueChangesNothing(t *testing.T) {
	two := []Command{login("s1", "u1", "r1"), login("s2", "u2", "r1")}
	set := with(two, SetRoomExtraInfo{Session: "s1", Room: "r1", Key: "topic", Value: "maths"})
	runRules(t, []rule{
		{name: "given topic=maths, when its writer sets topic=maths again, then nothing is written",
			given: set, when: SetRoomExtraInfo{Session: "s1", Room: "r1", Key: "topic", Value: "maths"}},
		{name: "given topic=maths at version 4, when u1 rewrites the same value, then u2's write expecting 4 still succeeds",
			given: with(set, SetRoomExtraInfo{Session: "s1", Room: "r1", Key: "topic", Value: "maths"}),
			when:  SetRoomExtraInfo{Session: "s2", Room: "r1", Key: "topic", Value: "physics", Expect: ptr(uint64(4))},
			then:  []ev{inRoom("r1", &ExtraInfoUpdatedData{Key: "topic", Value: "physics", By: "u2", ByName: "name-u2"})}},
	})
}
