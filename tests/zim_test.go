package tests

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/admin"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/gateway"
)

// zimOptions are the options of a ZIM room operation as p's user.
func (p *person) zimOptions(cfg *client.RoomConfig) client.RoomOptions {
	u := p.user
	return client.RoomOptions{User: &u, Token: p.token(), Config: cfg}
}

// zimJoinFails checks that p's ZIM joinRoom of room fails because the room
// does not exist, as a ZIM app sees it: the error, and LoginFailed with the
// RoomNotExist event.
func (p *person) zimJoinFails(room string) {
	p.t.Helper()
	_, err := p.c.JoinRoom(clienttest.Ctx(p.t), room, p.zimOptions(nil))
	if !errors.Is(err, domain.ErrRoomNotExist) {
		p.t.Fatalf("%s joins %s: %v, want room_not_exist", p.rec.Name(), room, err)
	}
	e := p.waitState(room, client.StateLoginFailed)
	if e.Code != domain.ErrRoomNotExist.Code || e.Info.ZIMState != "Disconnected" || e.Info.ZIMEvent != "RoomNotExist" {
		p.t.Errorf("%s: LoginFailed %+v", p.rec.Name(), e)
	}
}

// A ZIM room's life with its members: createRoom refuses a room that exists,
// joinRoom one that does not, enterRoom does either; attributes set at
// creation and changed later reach the members as updates and late joiners
// in the room's state; leaving tells the others.
func TestZIMRoomCreateJoinEnterAndAttributes(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, clienttest.NodeOptions{})
	addr := n.HTTPAddr()
	alice := newPerson(t, n, addr, "alice", "alice", false)
	bob := newPerson(t, n, addr, "bob", "bob", false)
	carol := newPerson(t, n, addr, "carol", "carol", false)

	// joinRoom of a room nobody created fails.
	bob.zimJoinFails("maths")

	// createRoom creates and joins, with the attributes of its config.
	snap, err := alice.c.CreateRoom(clienttest.Ctx(t), client.RoomInfo{ID: "maths", Name: "Maths"},
		alice.zimOptions(&client.RoomConfig{Attributes: map[string]string{"teacher": "alice"}}))
	if err != nil {
		t.Fatal(err)
	}
	if snap.Room != (client.RoomInfo{ID: "maths", Name: "Maths"}) || !maps.Equal(snap.Attributes, map[string]string{"teacher": "alice"}) ||
		!slices.Equal(userIDs(snap.Users), []string{"alice"}) {
		t.Errorf("maths as created: %+v", snap)
	}
	if e := alice.waitState("maths", client.StateLogined); e.Info.ZIMState != "Connected" || e.Info.ZIMEvent != "Success" {
		t.Errorf("alice's state after creating: %+v", e)
	}

	// createRoom of a room that exists fails, and changes nothing.
	_, err = bob.c.CreateRoom(clienttest.Ctx(t), client.RoomInfo{ID: "maths", Name: "Other"},
		bob.zimOptions(&client.RoomConfig{Attributes: map[string]string{"teacher": "bob"}}))
	if !errors.Is(err, domain.ErrRoomAlreadyExists) {
		t.Fatalf("bob creates maths again: %v", err)
	}
	if e := bob.waitState("maths", client.StateLoginFailed); e.Code != domain.ErrRoomAlreadyExists.Code {
		t.Errorf("bob's LoginFailed %+v", e)
	}
	// Also for alice, who is in it.
	_, err = alice.c.CreateRoom(clienttest.Ctx(t), client.RoomInfo{ID: "maths", Name: "Maths"}, alice.zimOptions(nil))
	if !errors.Is(err, domain.ErrRoomAlreadyExists) {
		t.Fatalf("alice, in maths, creates it again: %v", err)
	}

	// joinRoom of a room that exists joins it: the ZIM callbacks tell alice.
	snap, err = bob.c.JoinRoom(clienttest.Ctx(t), "maths", bob.zimOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	if snap.Room.Name != "Maths" || snap.Attributes["teacher"] != "alice" {
		t.Errorf("maths as bob joined it: %+v", snap)
	}
	bob.waitState("maths", client.StateLogined)
	if e := bob.waitFor("alice, already there", func(e clienttest.Event) bool { return e.Kind == "joined" }); e.Room != "maths" ||
		!slices.Equal(userIDs(e.Users), []string{"alice"}) {
		t.Errorf("bob's first member joined: %v", e)
	}
	alice.waitFor("roomMemberJoined bob", func(e clienttest.Event) bool {
		return e.Kind == "joined" && e.Room == "maths" && clienttest.HasUser(e.Users, "bob")
	})

	// enterRoom creates a room that does not exist (with its config) ...
	snap, err = bob.c.EnterRoom(clienttest.Ctx(t), client.RoomInfo{ID: "physics", Name: "Physics"},
		bob.zimOptions(&client.RoomConfig{Attributes: map[string]string{"lab": "3"}}))
	if err != nil {
		t.Fatal(err)
	}
	if snap.Room.Name != "Physics" || !maps.Equal(snap.Attributes, map[string]string{"lab": "3"}) {
		t.Errorf("physics as bob entered it: %+v", snap)
	}
	bob.waitState("physics", client.StateLogined)
	// ... and joins one that does: its config does not touch the room.
	snap, err = carol.c.EnterRoom(clienttest.Ctx(t), client.RoomInfo{ID: "physics", Name: "Renamed"},
		carol.zimOptions(&client.RoomConfig{Attributes: map[string]string{"lab": "9"}}))
	if err != nil {
		t.Fatal(err)
	}
	if snap.Room.Name != "Physics" || !maps.Equal(snap.Attributes, map[string]string{"lab": "3"}) ||
		!slices.Equal(userIDs(snap.Users), []string{"bob", "carol"}) {
		t.Errorf("physics as carol entered it: %+v", snap)
	}
	carol.waitState("physics", client.StateLogined)
	bob.waitFor("roomMemberJoined carol", func(e clienttest.Event) bool {
		return e.Kind == "joined" && e.Room == "physics" && clienttest.HasUser(e.Users, "carol")
	})

	// Attributes: set and delete reach the other members as updates (the
	// member who changed them is not told of its own change).
	if err := alice.c.SetRoomAttributes(clienttest.Ctx(t), "maths", map[string]string{"slide": "4", "poll": "open"}); err != nil {
		t.Fatal(err)
	}
	e := bob.waitFor("attributes set", func(e clienttest.Event) bool { return e.Kind == "attrs" })
	if e.Room != "maths" || !maps.Equal(e.Set, map[string]string{"slide": "4", "poll": "open"}) || len(e.Deleted) != 0 {
		t.Errorf("bob's attributes update: %+v", e)
	}
	if err := alice.c.DeleteRoomAttributes(clienttest.Ctx(t), "maths", []string{"poll"}); err != nil {
		t.Fatal(err)
	}
	e = bob.waitFor("attributes deleted", func(e clienttest.Event) bool { return e.Kind == "attrs" })
	if e.Room != "maths" || len(e.Set) != 0 || !slices.Equal(e.Deleted, []string{"poll"}) {
		t.Errorf("bob's attributes update: %+v", e)
	}
	// A late joiner finds the room's attributes as they are now.
	snap, err = carol.c.SwitchRoom(clienttest.Ctx(t), "physics", "maths", client.SwitchOptions{CreateIfMissing: new(false)})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"teacher": "alice", "slide": "4"}; !maps.Equal(snap.Attributes, want) {
		t.Errorf("maths's attributes as carol arrives: %v, want %v", snap.Attributes, want)
	}
	carol.waitState("maths", client.StateLogined)
	bob.waitFor("roomMemberLeft carol", func(e clienttest.Event) bool {
		return e.Kind == "left" && e.Room == "physics" && clienttest.HasUser(e.Users, "carol")
	})

	// leaveRoom: Disconnected (Success) for the member, roomMemberLeft for
	// the others.
	if err := bob.c.LeaveRoom(clienttest.Ctx(t), "maths"); err != nil {
		t.Fatal(err)
	}
	if e := bob.waitState("maths", client.StateLogout); e.Code != 0 || e.Info.Reason != "leave" ||
		e.Info.ZIMState != "Disconnected" || e.Info.ZIMEvent != "Success" {
		t.Errorf("bob's leave: %+v", e)
	}
	for _, p := range []*person{alice, carol} {
		p.waitFor("roomMemberLeft bob", func(e clienttest.Event) bool {
			return e.Kind == "left" && e.Room == "maths" && clienttest.HasUser(e.Users, "bob")
		})
	}
	// leaveAllRoom leaves every room of this client and names them.
	rooms, err := bob.c.LeaveAllRooms(clienttest.Ctx(t))
	if err != nil || !slices.Equal(rooms, []string{"physics"}) {
		t.Errorf("bob leaves all: %v, %v", rooms, err)
	}
	bob.waitState("physics", client.StateLogout)
	// physics had no destroy delay: its last member gone, it is gone.
	waitRoomGone(t, n, "physics")
	carol.zimJoinFails("physics")
}

// roomDestroyDelay is the destroy delay of the room in the test below.
const roomDestroyDelay = 60 * time.Second

// A room whose last member leaves outlives it by its destroy delay: someone
// who comes back within the delay finds it as it was and keeps it alive past
// the original deadline; once it has been empty for the whole delay, it is
// gone. Time is the node's fake clock.
func TestZIMRoomDestroyDelay(t *testing.T) {
	t.Parallel()
	clock := estest.NewClock(time.Now())
	// Sessions here stay alive however far the test moves the clock: the
	// heartbeat timeout and the login deadline are not what this test is
	// about.
	n := clienttest.StartNode(t, clienttest.NodeOptions{Clock: clock,
		Gateway: gateway.Config{HeartbeatTimeout: 24 * time.Hour, LoginTimeout: 24 * time.Hour}})
	addr := n.HTTPAddr()
	alice := newPerson(t, n, addr, "alice", "alice", false)
	bob := newPerson(t, n, addr, "bob", "bob", false)
	carol := newPerson(t, n, addr, "carol", "carol", false)
	attrs := map[string]string{"topic": "chess"}

	// A delay above ZIM's three hours is refused.
	_, err := alice.c.CreateRoom(clienttest.Ctx(t), client.RoomInfo{ID: "lobby"},
		alice.zimOptions(&client.RoomConfig{DestroyDelay: 10801}))
	if !errors.Is(err, domain.ErrDestroyDelayInvalid) {
		t.Fatalf("a destroy delay of 10801 s: %v", err)
	}
	cfg := &client.RoomConfig{Attributes: attrs, DestroyDelay: int(roomDestroyDelay / time.Second)}
	if _, err := alice.c.CreateRoom(clienttest.Ctx(t), client.RoomInfo{ID: "lobby", Name: "Lobby"}, alice.zimOptions(cfg)); err != nil {
		t.Fatal(err)
	}
	alice.waitState("lobby", client.StateLogined)
	var detail admin.RoomDetail
	if code := adminCall(t, n, "GET", roomPath("lobby"), nil, &detail); code != http.StatusOK ||
		detail.DestroyDelay != int(roomDestroyDelay/time.Second) {
		t.Fatalf("lobby as the backend sees it: %d %+v", code, detail)
	}

	// Alice leaves: the room is empty, its delay starts.
	if err := alice.c.LeaveRoom(clienttest.Ctx(t), "lobby"); err != nil {
		t.Fatal(err)
	}
	alice.waitState("lobby", client.StateLogout)
	waitDeadlines(t, n, 1)

	// Bob comes back within the delay: the room is there, as it was.
	clock.Advance(roomDestroyDelay * 2 / 3)
	snap, err := bob.c.JoinRoom(clienttest.Ctx(t), "lobby", bob.zimOptions(nil))
	if err != nil {
		t.Fatalf("bob joins %v after the room emptied (delay %v): %v", roomDestroyDelay*2/3, roomDestroyDelay, err)
	}
	if snap.Room.Name != "Lobby" || !maps.Equal(snap.Attributes, attrs) || len(snap.Users) != 1 {
		t.Errorf("lobby as bob finds it: %+v", snap)
	}
	bob.waitState("lobby", client.StateLogined)

	// Past the original deadline the room lives on, since bob is in it.
	clock.Advance(roomDestroyDelay / 2)
	snap, err = carol.c.JoinRoom(clienttest.Ctx(t), "lobby", carol.zimOptions(nil))
	if err != nil {
		t.Fatalf("carol joins past the original deadline: %v", err)
	}
	if !maps.Equal(snap.Attributes, attrs) || !slices.Equal(userIDs(snap.Users), []string{"bob", "carol"}) {
		t.Errorf("lobby as carol finds it: %+v", snap)
	}
	carol.waitState("lobby", client.StateLogined)
	bob.waitFor("roomMemberJoined carol", func(e clienttest.Event) bool {
		return e.Kind == "joined" && e.Room == "lobby" && clienttest.HasUser(e.Users, "carol")
	})

	// Both leave; the delay starts again, from now. Just before it runs out
	// the room is still there (creating it is refused, which changes
	// nothing); once it has, the room is destroyed and joining it fails.
	for _, p := range []*person{bob, carol} {
		if err := p.c.LeaveRoom(clienttest.Ctx(t), "lobby"); err != nil {
			t.Fatal(err)
		}
		p.waitState("lobby", client.StateLogout)
	}
	waitMembers(t, n, "lobby", "nobody", func(ms []admin.Member) bool { return len(ms) == 0 })
	waitDeadlines(t, n, 1)
	clock.Advance(roomDestroyDelay - time.Second)
	_, err = carol.c.CreateRoom(clienttest.Ctx(t), client.RoomInfo{ID: "lobby"}, carol.zimOptions(nil))
	if !errors.Is(err, domain.ErrRoomAlreadyExists) {
		t.Fatalf("creating lobby a second before its delay runs out: %v", err)
	}
	carol.waitState("lobby", client.StateLoginFailed)
	clock.Advance(time.Second)
	waitRoomGone(t, n, "lobby")
	bob.zimJoinFails("lobby")
	// enterRoom now makes a new room, which starts without the old one's
	// attributes.
	snap, err = bob.c.EnterRoom(clienttest.Ctx(t), client.RoomInfo{ID: "lobby"}, bob.zimOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Attributes) != 0 || snap.Room.Name != "" {
		t.Errorf("a new lobby inherited %+v", snap)
	}
}

// waitDeadlines waits until the node's timekeeper has want destroy
// deadlines scheduled. The timekeeper learns of a room emptying from the
// node's projection, a moment after the leave's reply; moving the fake
// clock before that would test nothing.
func waitDeadlines(t *testing.T, n *node.Node, want int) {
	t.Helper()
	deadline := time.Now().Add(clienttest.Wait)
	for n.Timekeeper.Pending() != want {
		if time.Now().After(deadline) {
			t.Fatalf("the timekeeper has %d deadlines, want %d", n.Timekeeper.Pending(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A room too large for its destroy to be one event (here a log whose
// messages hold 64 KiB, about 400 such members; by default 1 MiB, about
// 12,000) is destroyed all the same: its members are sent away in steps of
// one message each, every one told the room is gone and none told of the
// others' departures, and every claim is released.
func TestTheBackendDestroysARoomTooLargeForOneEvent(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, clienttest.NodeOptions{Edit: func(c *node.Config) {
		c.Log.MaxMsgSize = 64 << 10
	}})
	addr := n.HTTPAddr()
	// Members leave in user order: the first is sent away in the first
	// step, the last is listed by the room.destroyed.
	first := newPerson(t, n, addr, "aaa-first", "first", false)
	last := newPerson(t, n, addr, "zzz-last", "last", false)
	first.login("hall", "")
	last.login("hall", "")
	first.publish("first-cam", "hall")
	last.waitStreams("hall", client.UpdateAdd, "first-cam")
	const others = 600
	for i := range others {
		u, s := domain.UserID(fmt.Sprintf("mmm-%060d", i)), domain.SessionID(fmt.Sprintf("session-%056d", i))
		if _, err := execute(t, n.Engine, clienttest.App, domain.JoinRoom{Session: s, User: domain.User{ID: u},
			Mode: domain.SingleRoom, Room: "hall", Role: domain.Audience, Grant: domain.Grant{User: u, AllRooms: true},
			Create: domain.CreateIfMissing, Via: domain.ViaLogin}); err != nil {
			t.Fatalf("member %d joins: %v", i, err)
		}
	}

	var done admin.Done
	if code := adminCall(t, n, "DELETE", roomPath("hall"), admin.DestroyRequest{Reason: "closing"}, &done); code != http.StatusOK || done.Seq == 0 {
		t.Fatalf("destroy: %d %+v", code, done)
	}
	for _, p := range []*person{first, last} {
		e := p.waitFor("the room's end", func(e clienttest.Event) bool { return e.Kind == "state" && e.Room == "hall" })
		if e.State != client.StateLogout || e.Code != domain.ErrRoomNotExist.Code || e.Info.Reason != "room_destroyed" {
			t.Errorf("%s was told %v", p.rec.Name(), e)
		}
	}
	for _, e := range last.seen {
		if (e.Kind == "user" || e.Kind == "stream") && e.Type == client.UpdateDelete || e.Kind == "left" {
			t.Errorf("the last member was told of a departure before the room's end: %v", e)
		}
	}
	var code int
	if code = adminCall(t, n, "GET", roomPath("hall"), nil, nil); code != http.StatusNotFound {
		t.Errorf("the destroyed room as the backend sees it: %d", code)
	}

	// The log: members sent away in several messages, then the room.destroyed.
	steps, left := map[uint64]bool{}, 0
	events := roomEvents(t, n, "hall")
	for _, e := range events {
		if d, ok := e.Data.(*domain.MemberLeftData); ok && d.Reason == domain.ReasonRoomDestroyed {
			left++
			steps[e.Seq] = true
		}
	}
	if end, ok := events[len(events)-1].Data.(*domain.RoomDestroyedData); !ok || end.Detail != "closing" ||
		left == 0 || left+len(end.Members) != others+2 || end.Members[len(end.Members)-1].User != "zzz-last" {
		t.Fatalf("the room's history ends with %d members sent away and %+v", left, events[len(events)-1].Data)
	}
	// Every claim the room held is released.
	deadline := time.Now().Add(clienttest.Wait)
	for {
		held := heldClaims(t, n)
		if len(held) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d claims still held %v after the destroy, e.g. %v", len(held), clienttest.Wait, held[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// heldClaims lists the claims the node's log has sessions and streams still
// holding, folded as an auditor would.
func heldClaims(t *testing.T, n *node.Node) []string {
	t.Helper()
	sessions, streams := map[string]*domain.Session{}, map[string]*domain.StreamEntry{}
	_, err := n.Log.Read(estest.Ctx(t), allFilter(n.Log), 1, func(rec eventstore.Record) error {
		events, err := domain.DecodeEvents(rec.Data)
		if err != nil {
			return err
		}
		for i := range events {
			e := &events[i]
			switch e.Aggregate {
			case domain.KindSession:
				if sessions[e.AggregateID] == nil {
					sessions[e.AggregateID] = &domain.Session{}
				}
				sessions[e.AggregateID].Apply(e)
			case domain.KindStream:
				if streams[e.AggregateID] == nil {
					streams[e.AggregateID] = &domain.StreamEntry{}
				}
				streams[e.AggregateID].Apply(e)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var held []string
	for id, s := range sessions {
		for room := range s.Claims {
			held = append(held, "session "+id+" in "+string(room))
		}
	}
	for id, s := range streams {
		if s.Claimed {
			held = append(held, "stream "+id)
		}
	}
	return held
}

// The backend destroys a room (admin API): every member is disconnected
// with ZIM's RoomNotExist and the code the SDK reports for it, their streams
// end with the room, and the room is gone for later joiners.
func TestZIMBackendDestroysARoom(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, clienttest.NodeOptions{})
	addr := n.HTTPAddr()
	alice := newPerson(t, n, addr, "alice", "alice", false)
	bob := newPerson(t, n, addr, "bob", "bob", false)
	if _, err := alice.c.CreateRoom(clienttest.Ctx(t), client.RoomInfo{ID: "debate"},
		alice.zimOptions(&client.RoomConfig{Attributes: map[string]string{"motion": "tabs"}, DestroyDelay: 300})); err != nil {
		t.Fatal(err)
	}
	alice.waitState("debate", client.StateLogined)
	if _, err := bob.c.JoinRoom(clienttest.Ctx(t), "debate", bob.zimOptions(nil)); err != nil {
		t.Fatal(err)
	}
	bob.waitState("debate", client.StateLogined)
	alice.publish("alice-cam", "debate")
	bob.waitStreams("debate", client.UpdateAdd, "alice-cam")
	// Alice is in a second room, which the destroy must not touch.
	if _, err := alice.c.EnterRoom(clienttest.Ctx(t), client.RoomInfo{ID: "lounge"}, alice.zimOptions(nil)); err != nil {
		t.Fatal(err)
	}
	alice.waitState("lounge", client.StateLogined)

	var done admin.Done
	if code := adminCall(t, n, "DELETE", roomPath("debate"), admin.DestroyRequest{Reason: "motion carried"}, &done); code != http.StatusOK || done.Seq == 0 {
		t.Fatalf("destroy: %d %+v", code, done)
	}
	for _, p := range []*person{alice, bob} {
		e := p.waitFor("the room's end", func(e clienttest.Event) bool { return e.Kind == "state" && e.Room == "debate" })
		if e.State != client.StateLogout || e.Code != domain.ErrRoomNotExist.Code || e.Info.Reason != "room_destroyed" ||
			e.Info.ZIMState != "Disconnected" || e.Info.ZIMEvent != "RoomNotExist" {
			t.Errorf("%s was told %v", p.rec.Name(), e)
		}
		// The room no longer takes their messages.
		if _, err := p.c.SendBroadcastMessage(clienttest.Ctx(t), "debate", "hello?"); !errors.Is(err, domain.ErrNotLoggedIn) {
			t.Errorf("%s sends to the destroyed room: %v", p.rec.Name(), err)
		}
	}
	end := findEvent(t, n, "debate", func(e domain.Event) bool { return e.Type == domain.RoomDestroyed })
	if d := end.Data.(*domain.RoomDestroyedData); d.Detail != "motion carried" || d.Admin != "scenario" {
		t.Errorf("the destroy as the log has it: %+v, want the reason and admin scenario", d)
	}
	alice.broadcast("lounge", "still here")
	if q, err := alice.c.QueryRoom(clienttest.Ctx(t), "lounge"); err != nil || !slices.Equal(userIDs(q.Users), []string{"alice"}) {
		t.Errorf("alice's other room after the destroy: %+v, %v", q, err)
	}
	var e adminError
	if code := adminCall(t, n, "GET", roomPath("debate"), nil, &e); code != http.StatusNotFound || e.Code != domain.ErrRoomNotExist.Code {
		t.Errorf("the destroyed room as the backend sees it: %d %+v", code, e)
	}
	// Despite its destroy delay, the room is gone now; its stream ID is free.
	bob.zimJoinFails("debate")
	if _, err := bob.c.EnterRoom(clienttest.Ctx(t), client.RoomInfo{ID: "debate"}, bob.zimOptions(nil)); err != nil {
		t.Fatal(err)
	}
	bob.waitState("debate", client.StateLogined)
	if _, err := bob.c.StartPublishingStream(clienttest.Ctx(t), "alice-cam", client.PublishOptions{Room: "debate"}); err != nil {
		t.Errorf("the destroyed room's stream ID is still taken: %v", err)
	}
}
