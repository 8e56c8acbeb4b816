package tests

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/gateway"
)

// fastNode starts a node whose message rate limits never get in the way.
func fastNode(t *testing.T, edit func(*clienttest.NodeOptions)) clienttest.NodeOptions {
	o := clienttest.NodeOptions{Gateway: gateway.Config{RequestsPerSecond: 1e6, RequestBurst: 1e6},
		Policy: limitsPolicy(func(p *domain.Policy) {
			p.Limits.BroadcastPerSecond = 1 << 20
			p.Limits.ExtraInfoPerSecond = 1 << 20
			p.Limits.AttributesPerSecond = 1 << 20
		})}
	if edit != nil {
		edit(&o)
	}
	return o
}

// A late joiner asks for the last 5 messages with its login while another
// member keeps sending: the messages it gets with its snapshot and the ones
// it then receives live are the sender's messages with no gap and no
// duplicate.
func TestLateJoinerGetsLastMessagesConsistentWithSnapshot(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, fastNode(t, nil))
	alice := newPerson(t, n, n.HTTPAddr(), "alice", "alice", false)
	alice.login("chat", "")
	const total = 60
	sent := make(chan int, total)
	go func() {
		defer close(sent)
		for i := range total {
			if _, err := alice.c.SendBroadcastMessage(clienttest.Ctx(t), "chat", fmt.Sprint(i)); err != nil {
				t.Errorf("broadcast %d: %v", i, err)
				return
			}
			sent <- i
		}
	}()
	for i := range 10 { // some history first
		if got := <-sent; got != i {
			t.Fatalf("sent %d", got)
		}
	}
	bob := newPerson(t, n, n.HTTPAddr(), "bob", "bob", false)
	snap, err := bob.c.LoginRoom(clienttest.Ctx(t), "chat", bob.user, client.LoginOptions{Token: bob.token(), History: 5})
	if err != nil {
		t.Fatal(err)
	}
	for range sent {
	}
	if len(snap.Messages) != 5 {
		t.Fatalf("the login brought %d messages, want 5: %+v", len(snap.Messages), snap.Messages)
	}
	var got []string
	for i, m := range slices.Backward(snap.Messages) {
		if m.Seq > snap.Seq || m.Type != "broadcast" || m.From.ID != "alice" || (i < 4 && m.Seq <= snap.Messages[i+1].Seq) {
			t.Fatalf("message %d of the login: %+v (snapshot at seq %d)", i, m, snap.Seq)
		}
		got = append(got, m.Message)
	}
	last := got[len(got)-1]
	for last != fmt.Sprint(total-1) {
		e := bob.waitFor("the next broadcast", func(e clienttest.Event) bool { return e.Kind == "broadcast" })
		last = e.Msgs[0].Message
		got = append(got, last)
	}
	var first int
	fmt.Sscan(got[0], &first)
	for i, m := range got {
		if m != fmt.Sprint(first+i) {
			t.Fatalf("history then live messages: %v, not consecutive", got)
		}
	}

	// Paging back through the whole history gives every message once.
	var all []string
	for before := uint64(0); ; {
		page, err := bob.c.QueryHistoryMessage(clienttest.Ctx(t), "chat", before, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Messages {
			all = append(all, m.Message)
		}
		if page.Next == 0 {
			break
		}
		before = page.Next
	}
	if len(all) != total || all[0] != fmt.Sprint(total-1) || all[total-1] != "0" {
		t.Fatalf("history pages: %d messages %v", len(all), all)
	}
	// Only members read a room's history.
	carol := newPerson(t, n, n.HTTPAddr(), "carol", "carol", false)
	carol.login("elsewhere", "")
	if _, err := carol.c.QueryHistoryMessage(clienttest.Ctx(t), "chat", 0, 5); !errors.Is(err, domain.ErrNotLoggedIn) {
		t.Fatalf("a non-member reads the history: %v", err)
	}
	// A switch into the room brings its last messages too.
	snap, err = carol.c.SwitchRoom(clienttest.Ctx(t), "elsewhere", "chat", client.SwitchOptions{History: 3})
	if err != nil {
		t.Fatal(err)
	}
	var switched []string
	for _, m := range snap.Messages {
		switched = append(switched, m.Message)
	}
	if want := []string{fmt.Sprint(total - 1), fmt.Sprint(total - 2), fmt.Sprint(total - 3)}; !slices.Equal(switched, want) {
		t.Fatalf("switch_room with history 3: messages %v, want %v", switched, want)
	}
}

// Two clients race a compare-and-set on one extra info key and on one room
// attribute: exactly one wins each, and the loser is told the winner's value
// and version.
func TestCompareAndSetRaceOneWins(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, fastNode(t, nil))
	alice := newPerson(t, n, n.HTTPAddr(), "alice", "alice", false)
	bob := newPerson(t, n, n.HTTPAddr(), "bob", "bob", false)
	alice.login("r", "")
	snap := bob.login("r", "")
	for round := range 5 {
		key := fmt.Sprint("slot", round)
		var mu sync.Mutex
		wins, conflicts := map[string]uint64{}, []client.Current{}
		var wg sync.WaitGroup
		for _, p := range []*person{alice, bob} {
			wg.Go(func() {
				v, err := p.c.SetRoomExtraInfoIf(clienttest.Ctx(t), "r", key, p.user.ID, 0)
				mu.Lock()
				defer mu.Unlock()
				if cur, ok := client.VersionConflict(err); ok {
					conflicts = append(conflicts, cur...)
				} else if err != nil {
					t.Errorf("%s: %v", p.user.ID, err)
				} else {
					wins[p.user.ID] = v
				}
			})
		}
		wg.Wait()
		if len(wins) != 1 || len(conflicts) != 1 {
			t.Fatalf("round %d: wins %v, conflicts %+v", round, wins, conflicts)
		}
		for who, v := range wins {
			if c := conflicts[0]; c.Key != key || c.Value != who || c.Version != v || !c.Exists || v <= snap.Seq {
				t.Fatalf("round %d: %s won at %d; the loser was told %+v", round, who, v, c)
			}
		}
	}
	// The same on a room attribute (forced, since the first writer owns it).
	res, err := alice.c.SetRoomAttributesWith(clienttest.Ctx(t), "r", map[string]string{"turn": "alice"}, client.AttributeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, p := range []*person{alice, bob} {
		wg.Go(func() {
			_, errs[i] = p.c.SetRoomAttributesWith(clienttest.Ctx(t), "r", map[string]string{"turn": p.user.ID + "!"},
				client.AttributeOptions{Force: true, Expect: map[string]uint64{"turn": res.Version}})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if cur, conflict := client.VersionConflict(err); !conflict || cur[0].Version <= res.Version {
			t.Fatalf("the attribute race's loser: %v %+v", err, cur)
		}
	}
	if ok != 1 {
		t.Fatalf("%d writers won the attribute race: %v", ok, errs)
	}
}

// A member's attribute survives another member's write without force, goes
// with its owner when it was set with deleteAfterOwnerLeft, and a batch
// reaches the others as one update.
func TestOwnedAttributesAndBatches(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, fastNode(t, nil))
	alice := newPerson(t, n, n.HTTPAddr(), "alice", "alice", true)
	bob := newPerson(t, n, n.HTTPAddr(), "bob", "bob", true)
	ctx := clienttest.Ctx(t)
	if _, err := alice.c.EnterRoom(ctx, client.RoomInfo{ID: "stage"}, alice.zimOptions(nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.c.EnterRoom(ctx, client.RoomInfo{ID: "stage"}, bob.zimOptions(nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.SetRoomAttributesWith(ctx, "stage", map[string]string{"mic": "alice"},
		client.AttributeOptions{DeleteAfterOwnerLeft: true}); err != nil {
		t.Fatal(err)
	}
	bob.waitFor("alice's mic", func(e clienttest.Event) bool { return e.Kind == "attrs" && e.Set["mic"] == "alice" })

	// Without force bob cannot take alice's key; a plain write of it and
	// another key writes the other one and names the skipped key.
	_, err := bob.c.SetRoomAttributesWith(ctx, "stage", map[string]string{"mic": "bob"}, client.AttributeOptions{})
	if !errors.Is(err, domain.ErrAttributeOwned) || !slices.Equal(client.ErrorKeys(err), []string{"mic"}) {
		t.Fatalf("bob overwrites alice's key: %v", err)
	}
	res, err := bob.c.SetRoomAttributesWith(ctx, "stage", map[string]string{"mic": "bob", "cam": "bob"}, client.AttributeOptions{})
	if err != nil || !slices.Equal(res.ErrorKeys, []string{"mic"}) {
		t.Fatalf("bob's partial write: %+v, %v", res, err)
	}
	if e := alice.waitFor("bob's cam", func(e clienttest.Event) bool { return e.Kind == "attrs" }); !maps.Equal(e.Set,
		map[string]string{"cam": "bob"}) {
		t.Fatalf("alice saw bob's partial write as %+v", e)
	}
	if _, err := bob.c.DeleteRoomAttributesWith(ctx, "stage", []string{"mic"}, client.AttributeOptions{}); !errors.Is(err, domain.ErrAttributeOwned) {
		t.Fatalf("bob deletes alice's key: %v", err)
	}
	attrs, err := bob.c.QueryRoomAllAttributes(ctx, "stage")
	if err != nil {
		t.Fatal(err)
	}
	if want := []client.RoomAttribute{{Key: "cam", Value: "bob", Owner: "bob", Version: res.Version},
		{Key: "mic", Value: "alice", Owner: "alice", Version: attrs.Attributes[1].Version, DeleteAfterOwnerLeft: true}}; !slices.Equal(attrs.Attributes, want) {
		t.Fatalf("attributes: %+v, want %+v", attrs.Attributes, want)
	}

	// A batch: several keys set and deleted, seen by alice as one update.
	mark := len(alice.seen)
	b := bob.c.BeginRoomAttributesBatch("stage", client.AttributeOptions{})
	b.Set(map[string]string{"seat-1": "bob", "seat-2": "carol"}).Delete("cam")
	if _, err := b.End(ctx); err != nil {
		t.Fatal(err)
	}
	e := alice.waitFor("bob's batch", func(e clienttest.Event) bool { return e.Kind == "attrs_batch" || e.Kind == "attrs" })
	if e.Kind != "attrs_batch" || !maps.Equal(e.Set, map[string]string{"seat-1": "bob", "seat-2": "carol"}) ||
		!slices.Equal(e.Deleted, []string{"cam"}) {
		t.Fatalf("alice saw the batch as %+v", e)
	}
	// A batch touching alice's key fails whole.
	b = bob.c.BeginRoomAttributesBatch("stage", client.AttributeOptions{}).Set(map[string]string{"mic": "bob", "seat-3": "x"})
	if _, err := b.End(ctx); !errors.Is(err, domain.ErrAttributeOwned) {
		t.Fatalf("a batch with an owned key: %v", err)
	}

	// Alice leaves: her mic goes with her, in the same step as her leaving.
	if err := alice.c.LeaveRoom(ctx, "stage"); err != nil {
		t.Fatal(err)
	}
	e = bob.waitFor("alice's mic to go", func(e clienttest.Event) bool { return e.Kind == "attrs" })
	if !slices.Equal(e.Deleted, []string{"mic"}) {
		t.Fatalf("bob saw %+v", e)
	}
	bob.waitFor("alice leaving", func(e clienttest.Event) bool { return e.Kind == "left" })
	for _, e := range alice.since(mark) {
		if e.Kind == "attrs" && e.Set["seat-3"] != "" {
			t.Fatalf("the failed batch reached alice: %+v", e)
		}
	}
	attrs, err = bob.c.QueryRoomAllAttributes(ctx, "stage")
	if err != nil {
		t.Fatal(err)
	}
	if len(attrs.Attributes) != 2 || attrs.Attributes[0].Key != "seat-1" {
		t.Fatalf("attributes after alice left: %+v", attrs.Attributes)
	}
}

// Member attributes: set for members (not for users who are not in the
// room), told to the room, queried, and gone when the member leaves.
func TestMemberAttributes(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, fastNode(t, nil))
	alice := newPerson(t, n, n.HTTPAddr(), "alice", "alice", false)
	bob := newPerson(t, n, n.HTTPAddr(), "bob", "bob", false)
	ctx := clienttest.Ctx(t)
	alice.login("class", "")
	bob.login("class", "")
	missing, err := alice.c.SetRoomMembersAttributes(ctx, "class", []string{"bob", "zoe"}, map[string]string{"seat": "3"}, nil)
	if err != nil || !slices.Equal(missing, []string{"zoe"}) {
		t.Fatalf("set bob's and zoe's attributes: %v, %v", missing, err)
	}
	e := bob.waitFor("his seat", func(e clienttest.Event) bool { return e.Kind == "member_attrs" })
	if len(e.Members) != 1 || e.Members[0].User != "bob" || e.Members[0].Set["seat"] != "3" || e.Users[0].ID != "alice" {
		t.Fatalf("bob was told %+v", e)
	}
	if _, err := alice.c.SetRoomMembersAttributes(ctx, "class", []string{"bob"}, map[string]string{"toolong!!": "x"}, nil); !errors.Is(err, domain.ErrMemberAttrsInvalid) {
		t.Fatalf("a 9-byte key: %v", err)
	}
	got, err := alice.c.QueryRoomMembersAttributes(ctx, "class", []string{"bob", "alice"})
	if err != nil || len(got) != 2 || got[0].Attributes["seat"] != "3" || len(got[1].Attributes) != 0 {
		t.Fatalf("members' attributes: %+v, %v", got, err)
	}
	page, err := alice.c.QueryRoomMemberAttributesList(ctx, "class", "", 10)
	if err != nil || len(page.Members) != 1 || page.Members[0].User != "bob" || page.NextFlag != "" {
		t.Fatalf("members with attributes: %+v, %v", page, err)
	}
	if err := bob.c.LogoutRoom(ctx, "class"); err != nil {
		t.Fatal(err)
	}
	bob.waitState("class", client.StateLogout)
	bob.login("class", "")
	got, err = alice.c.QueryRoomMembersAttributes(ctx, "class", []string{"bob"})
	if err != nil || len(got) != 1 || len(got[0].Attributes) != 0 {
		t.Fatalf("bob's attributes after he left and came back: %+v, %v", got, err)
	}
}

// Two nodes admitting logins into one room with a capacity at once never
// let it exceed the capacity, and fill it; the paged member list and the
// online count agree.
func TestCapacityAcrossTwoNodes(t *testing.T) {
	t.Parallel()
	a := fastNode(t, func(o *clienttest.NodeOptions) { o.NATSListen = "127.0.0.1:0" })
	nodeA := clienttest.StartNode(t, a)
	b := fastNode(t, func(o *clienttest.NodeOptions) { o.Join = nodeA })
	nodeB := clienttest.StartNode(t, b)
	const capacity, joiners = 4, 12
	owner := newPerson(t, nodeA, nodeA.HTTPAddr(), "owner", "owner", false)
	if _, err := owner.c.LoginRoom(clienttest.Ctx(t), "show", owner.user, client.LoginOptions{Token: owner.token(),
		MaxMemberCount: capacity}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted, full := 1, 0
	for i := range joiners {
		nd := nodeA
		if i%2 == 1 {
			nd = nodeB
		}
		p := newPerson(t, nd, nd.HTTPAddr(), fmt.Sprint("fan", i), fmt.Sprint("fan", i), false)
		wg.Go(func() {
			_, err := p.c.LoginRoom(clienttest.Ctx(t), "show", p.user, client.LoginOptions{Token: p.token()})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				admitted++
			case errors.Is(err, domain.ErrRoomFull):
				full++
				p.waitState("show", client.StateLoginFailed)
			default:
				t.Errorf("%s: %v", p.user.ID, err)
			}
		})
	}
	wg.Wait()
	if admitted != capacity || full != joiners+1-capacity {
		t.Fatalf("admitted %d and refused %d as full; want %d and %d", admitted, full, capacity, joiners+1-capacity)
	}
	var members []string
	for flag := ""; ; {
		users, next, err := owner.c.QueryRoomMemberList(clienttest.Ctx(t), "show", flag, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range users {
			members = append(members, u.ID)
		}
		if next == "" {
			break
		}
		flag = next
	}
	count, err := owner.c.QueryRoomOnlineMemberCount(clienttest.Ctx(t), "show")
	if err != nil || count != capacity || len(members) != capacity || !slices.IsSorted(members) {
		t.Fatalf("members %v, online count %d (%v)", members, count, err)
	}
}

// A member that logs in with user status notification off is not told of
// other users; the others are told of it.
func TestUserStatusNotifyOff(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, fastNode(t, nil))
	alice := newPerson(t, n, n.HTTPAddr(), "alice", "alice", false)
	quiet := newPerson(t, n, n.HTTPAddr(), "quiet", "quiet", false)
	bob := newPerson(t, n, n.HTTPAddr(), "bob", "bob", false)
	alice.login("hall", "")
	off := false
	if _, err := quiet.c.LoginRoom(clienttest.Ctx(t), "hall", quiet.user, client.LoginOptions{Token: quiet.token(),
		UserStatusNotify: &off}); err != nil {
		t.Fatal(err)
	}
	quiet.waitState("hall", client.StateLogined)
	alice.waitUsers("hall", client.UpdateAdd, "quiet")
	bob.login("hall", "")
	alice.waitUsers("hall", client.UpdateAdd, "bob")
	bob.broadcast("hall", "after bob")
	quiet.waitBroadcast("hall", "after bob")
	for _, e := range quiet.seen {
		if e.Kind == "user" || e.Kind == "joined" {
			t.Fatalf("the quiet member was told of users: %v", e)
		}
	}
}

// ZEGO's switchRoom takes a room config with isUserStatusNotify. A member
// that logged in with notification off and switches rooms stays quiet in
// the new room unless the switch says otherwise; before, the switch took
// no such option and the member was told of every user of the new room.
func TestUserStatusNotifyOffLastsAcrossASwitch(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, fastNode(t, nil))
	off, on := false, true
	quiet := newPerson(t, n, n.HTTPAddr(), "quiet", "quiet", false)
	loud := newPerson(t, n, n.HTTPAddr(), "loud", "loud", false)
	bob := newPerson(t, n, n.HTTPAddr(), "bob", "bob", false)
	for _, p := range []*person{quiet, loud} {
		if _, err := p.c.LoginRoom(clienttest.Ctx(t), "hall", p.user, client.LoginOptions{Token: p.token(),
			UserStatusNotify: &off}); err != nil {
			t.Fatal(err)
		}
		p.waitState("hall", client.StateLogined)
	}
	if _, err := quiet.c.SwitchRoom(clienttest.Ctx(t), "hall", "stage", client.SwitchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := loud.c.SwitchRoom(clienttest.Ctx(t), "hall", "stage", client.SwitchOptions{UserStatusNotify: &on}); err != nil {
		t.Fatal(err)
	}
	quiet.waitState("stage", client.StateLogined)
	mark := len(quiet.seen)
	bob.login("stage", "")
	loud.waitUsers("stage", client.UpdateAdd, "bob") // asked to be told again
	bob.broadcast("stage", "after bob")
	quiet.waitBroadcast("stage", "after bob")
	for _, e := range quiet.since(mark) {
		if e.Kind == "user" || e.Kind == "joined" {
			t.Fatalf("the member that switched quietly was told of users in the new room: %v", e)
		}
	}
}

// A compare-and-set loop feeds SetRoomExtraInfoIf's returned version into
// its next write. A write of the value the key already has writes nothing
// (no version in the reply): the SDK returns the version the key is still
// at, not 0, which the next write would take for "only if it does not
// exist" and be refused although nobody else wrote the key.
func TestExtraInfoIfOfTheSameValueKeepsAUsableVersion(t *testing.T) {
	n := clienttest.StartNode(t, fastNode(t, nil))
	alice := newPerson(t, n, n.HTTPAddr(), "alice", "alice", false)
	alice.login("r", "")
	ctx := clienttest.Ctx(t)
	v1, err := alice.c.SetRoomExtraInfoIf(ctx, "r", "topic", "maths", 0)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := alice.c.SetRoomExtraInfoIf(ctx, "r", "topic", "maths", v1) // same value
	if err != nil {
		t.Fatal(err)
	}
	if v2 == 0 {
		t.Errorf("writing the value the key has at version %d returned version 0", v1)
	}
	if _, err := alice.c.SetRoomExtraInfoIf(ctx, "r", "topic", "physics", v2); err != nil {
		cur, _ := client.VersionConflict(err)
		t.Errorf("the next compare-and-set with the returned version: %v (current %+v)", err, cur)
	}
}
