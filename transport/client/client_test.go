package client_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/protocol"
)

func TestLoginUsersAndLogout(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	ra, rb := newRec(t, "alice"), newRec(t, "bob")
	a, b := dial(t, wsURL(n), ra, nil), dial(t, wsURL(n), rb, nil)
	if a.Session() == "" || a.Session() == b.Session() {
		t.Fatalf("sessions %q and %q", a.Session(), b.Session())
	}

	snap, err := a.LoginRoom(ctx(t), "r1", client.User{ID: "alice", Name: "Alice"}, client.LoginOptions{Token: token(t, n, "alice")})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Room.ID != "r1" || snap.Seq == 0 || len(snap.Users) != 1 || snap.Users[0].ID != "alice" || snap.Online != 1 {
		t.Fatalf("alice's snapshot %+v", snap)
	}
	// Logining comes first, then Logined, both with code 0.
	if e := ra.Next(); e.Kind != "state" || e.State != client.StateLogining || e.Code != 0 || e.Room != "r1" {
		t.Fatalf("first callback %v, want Logining", e)
	}
	if e := ra.Next(); e.Kind != "state" || e.State != client.StateLogined || e.Code != 0 || e.Info.ZIMState != "Connected" {
		t.Fatalf("second callback %v, want Logined", e)
	}

	snap, err = b.LoginRoom(ctx(t), "r1", client.User{ID: "bob", Name: "Bob"}, client.LoginOptions{Token: token(t, n, "bob"), Role: client.RoleAudience})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Users) != 2 || snap.Online != 2 {
		t.Fatalf("bob's snapshot %+v", snap)
	}
	// Bob hears of the users already there, as ADD, right after Logined;
	// the ZIM callback follows the ZEGO one.
	rb.WaitState("r1", client.StateLogined)
	if e := rb.Next(); e.Kind != "user" || e.Type != client.UpdateAdd || len(e.Users) != 1 || e.Users[0] != (client.User{ID: "alice", Name: "Alice", Role: client.RoleAnchor}) {
		t.Fatalf("bob's callback after Logined: %v", e)
	}
	if e := rb.Next(); e.Kind != "joined" || !clienttest.HasUser(e.Users, "alice") {
		t.Fatalf("bob's member joined: %v", e)
	}
	// Alice hears of Bob (ZEGO and ZIM), then of the count.
	ra.WaitUsers("r1", client.UpdateAdd, "bob")
	if e := ra.Next(); e.Kind != "joined" || !clienttest.HasUser(e.Users, "bob") {
		t.Fatalf("alice's member joined: %v", e)
	}
	ra.WaitFor("online count 2", func(e ev) bool { return e.Kind == "online" && e.Room == "r1" && e.Count == 2 })

	if err := b.LogoutRoom(ctx(t), "r1"); err != nil {
		t.Fatal(err)
	}
	e := rb.WaitState("r1", client.StateLogout)
	if e.Code != 0 || e.Info.Reason != "logout" || e.Info.ZIMState != "Disconnected" {
		t.Errorf("bob's Logout %+v", e)
	}
	ra.WaitUsers("r1", client.UpdateDelete, "bob")
	if e := ra.Next(); e.Kind != "left" || !clienttest.HasUser(e.Users, "bob") {
		t.Fatalf("alice's member left: %v", e)
	}
	ra.WaitFor("online count 1", func(e ev) bool { return e.Kind == "online" && e.Room == "r1" && e.Count == 1 })

	// Logging out of a room the session is not in: 1002002 and LogoutFailed.
	err = b.LogoutRoom(ctx(t), "r1")
	if !errors.Is(err, domain.ErrNotInRoom) {
		t.Fatalf("second logout: %v", err)
	}
	if e := rb.WaitState("r1", client.StateLogoutFailed); e.Code != domain.ErrNotInRoom.Code {
		t.Errorf("LogoutFailed %+v", e)
	}
	if err := b.LogoutRoom(ctx(t), ""); !errors.Is(err, domain.ErrInvalidArgument) {
		t.Errorf("logout of the empty room: %v", err)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	ra := newRec(t, "alice")
	a := dial(t, wsURL(n), ra, nil)

	// A bad token: 1002033, as error and as LoginFailed.
	_, err := a.LoginRoom(ctx(t), "r1", client.User{ID: "alice"}, client.LoginOptions{Token: "not a token"})
	if !errors.Is(err, domain.ErrTokenInvalid) {
		t.Fatalf("bad token: %v", err)
	}
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != 1002033 || ce.Name != "token_invalid" || ce.Op != protocol.OpLogin || ce.Message == "" {
		t.Errorf("bad token as *client.Error: %#v", ce)
	}
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != 1002033 {
		t.Errorf("bad token as *domain.Error: %#v", de)
	}
	if errors.Is(err, domain.ErrNotInRoom) {
		t.Error("a token error matches another code")
	}
	if e := ra.WaitState("r1", client.StateLoginFailed); e.Code != 1002033 || e.Info.ZIMState != "Disconnected" {
		t.Errorf("LoginFailed %+v", e)
	}
	// A token for another user.
	_, err = a.LoginRoom(ctx(t), "r1", client.User{ID: "alice"}, client.LoginOptions{Token: token(t, n, "mallory")})
	if !errors.Is(err, domain.ErrTokenInvalid) {
		t.Errorf("someone else's token: %v", err)
	}

	// Multi-room mode: publishing needs a room.
	if err := a.SetRoomMode(ctx(t), client.MultiRoom); err != nil {
		t.Fatal(err)
	}
	login(t, n, a, ra, "r1", "alice")
	if err := a.SetRoomMode(ctx(t), client.SingleRoom); !errors.Is(err, domain.ErrRoomModeAfterLogin) {
		t.Errorf("room mode after login: %v", err)
	}
	if _, err := a.StartPublishingStream(ctx(t), "s1", client.PublishOptions{}); !errors.Is(err, domain.ErrPublishRoomRequired) {
		t.Errorf("publish without room in multi-room mode: %v", err)
	} else if errors.As(err, &ce); ce.Code != 1003070 {
		t.Errorf("code %d", ce.Code)
	}
	// Messages over 1 KB.
	if _, err := a.SendBroadcastMessage(ctx(t), "r1", strings.Repeat("x", 1025)); !errors.Is(err, domain.ErrMessageTooLarge) {
		t.Errorf("1025-byte broadcast: %v", err)
	}
	if _, err := a.SendBroadcastMessage(ctx(t), "r1", strings.Repeat("x", 1024)); err != nil {
		t.Errorf("1024-byte broadcast: %v", err)
	}
	// Rooms the session is not in.
	if err := a.LogoutRoom(ctx(t), "nowhere"); !errors.Is(err, domain.ErrNotInRoom) {
		t.Errorf("logout of a room not in: %v", err)
	}
	if _, err := a.QueryRoom(ctx(t), "nowhere"); !errors.Is(err, domain.ErrRoomNotExist) {
		t.Errorf("query of a room that does not exist: %v", err)
	}
	if err := a.SetRoomAttributes(ctx(t), "r1", map[string]string{strings.Repeat("k", 17): "v"}); !errors.Is(err, domain.ErrAttributesInvalid) {
		t.Errorf("attribute key over 16 bytes: %v", err)
	}
	// The session is bound to alice: another user fails.
	_, err = a.LoginRoom(ctx(t), "r2", client.User{ID: "bob"}, client.LoginOptions{Token: token(t, n, "bob")})
	if !errors.Is(err, domain.ErrUserMismatch) {
		t.Errorf("another user on the session: %v", err)
	}

	// Single-room mode: a second room needs a switch.
	rb := newRec(t, "bob")
	b := dial(t, wsURL(n), rb, nil)
	login(t, n, b, rb, "r1", "bob")
	_, err = b.LoginRoom(ctx(t), "r2", client.User{ID: "bob", Name: "Bob"}, client.LoginOptions{})
	if !errors.Is(err, domain.ErrAlreadyInAnotherRoom) {
		t.Errorf("second room in single-room mode: %v", err)
	}
	// An operation before any login.
	c := dial(t, wsURL(n), newRec(t, "carol"), nil)
	if _, err := c.SendBroadcastMessage(ctx(t), "r1", "hi"); !errors.Is(err, domain.ErrNotLoggedIn) {
		t.Errorf("broadcast before login: %v", err)
	}
}

func TestStreams(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	ra, rb := newRec(t, "alice"), newRec(t, "bob")
	a, b := dial(t, wsURL(n), ra, nil), dial(t, wsURL(n), rb, nil)
	login(t, n, a, ra, "r1", "alice")
	login(t, n, b, rb, "r1", "bob")

	room, err := a.StartPublishingStream(ctx(t), "s1", client.PublishOptions{ExtraInfo: "720p"})
	if err != nil || room != "r1" {
		t.Fatalf("publish: %q, %v", room, err)
	}
	e := rb.WaitKind("stream", "r1")
	if e.Type != client.UpdateAdd || len(e.Streams) != 1 || e.Streams[0].Stream != "s1" || e.Streams[0].User.ID != "alice" ||
		e.Streams[0].ExtraInfo != "720p" {
		t.Fatalf("bob's stream update %+v", e)
	}
	if err := a.SetStreamExtraInfo(ctx(t), "s1", "1080p"); err != nil {
		t.Fatal(err)
	}
	if e := rb.WaitKind("stream_extra", "r1"); len(e.Streams) != 1 || e.Streams[0].ExtraInfo != "1080p" {
		t.Errorf("bob's stream extra info update %+v", e)
	}
	if room, err := b.StartPlayingStream(ctx(t), "s1", "r1"); err != nil || room != "r1" {
		t.Errorf("play: %q, %v", room, err)
	}
	if err := b.StopPlayingStream(ctx(t), "s1", "r1"); err != nil {
		t.Errorf("stop playing: %v", err)
	}
	// The stream ID is the app's while published.
	if _, err := b.StartPublishingStream(ctx(t), "s1", client.PublishOptions{}); !errors.Is(err, domain.ErrStreamIDInUse) {
		t.Errorf("second publisher of s1: %v", err)
	}

	// A late joiner gets the room's streams as ADD right after Logined; an
	// audience member may not publish.
	rc := newRec(t, "carol")
	c := dial(t, wsURL(n), rc, nil)
	if _, err := c.LoginRoom(ctx(t), "r1", client.User{ID: "carol"}, client.LoginOptions{Token: token(t, n, "carol"), Role: client.RoleAudience}); err != nil {
		t.Fatal(err)
	}
	rc.WaitState("r1", client.StateLogined)
	rc.WaitUsers("r1", client.UpdateAdd, "bob")
	if e := rc.Next(); e.Kind != "joined" {
		t.Fatalf("carol: %v", e)
	}
	if e := rc.Next(); e.Kind != "stream" || e.Type != client.UpdateAdd || len(e.Streams) != 1 || e.Streams[0].ExtraInfo != "1080p" {
		t.Fatalf("carol's streams after login: %+v", e)
	}
	if _, err := c.StartPublishingStream(ctx(t), "s2", client.PublishOptions{}); !errors.Is(err, domain.ErrPublishNotAllowed) {
		t.Errorf("audience publishes: %v", err)
	}

	if err := a.StopPublishingStream(ctx(t), "s1"); err != nil {
		t.Fatal(err)
	}
	for i, r := range []*rec{rb, rc} {
		e := r.WaitFor("stream DELETE", func(e ev) bool { return e.Kind == "stream" && e.Type == client.UpdateDelete })
		if len(e.Streams) != 1 || e.Streams[0].Stream != "s1" {
			t.Errorf("member %d: stream DELETE %+v", i, e)
		}
	}
}

func TestMessages(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	ra, rb, rc := newRec(t, "alice"), newRec(t, "bob"), newRec(t, "carol")
	a, b, c := dial(t, wsURL(n), ra, nil), dial(t, wsURL(n), rb, nil), dial(t, wsURL(n), rc, nil)
	login(t, n, a, ra, "r1", "alice")
	login(t, n, b, rb, "r1", "bob")
	login(t, n, c, rc, "r1", "carol")

	res, err := a.SendBroadcastMessage(ctx(t), "r1", "hello room")
	if err != nil || res.ID == "" || res.Seq == 0 {
		t.Fatalf("broadcast: %+v, %v", res, err)
	}
	for _, r := range []*rec{rb, rc} {
		e := r.WaitKind("broadcast", "r1")
		m := e.Msgs[0]
		if len(e.Msgs) != 1 || m.MessageID != res.ID || m.Message != "hello room" || m.From.ID != "alice" || m.SendTime == 0 {
			t.Errorf("%s got broadcast %+v, sent %+v", r.Name(), e.Msgs, res)
		}
	}

	res, err = a.SendBarrageMessage(ctx(t), "r1", "woo")
	if err != nil || res.ID == "" || res.Seq != 0 {
		t.Fatalf("barrage: %+v, %v", res, err)
	}
	if e := rb.WaitKind("barrage", "r1"); e.Msgs[0].MessageID != res.ID || e.Msgs[0].Message != "woo" || e.Msgs[0].From.ID != "alice" {
		t.Errorf("bob got barrage %+v", e.Msgs)
	}

	// To one user: only Bob. Then to all: Bob and Carol; Carol's first
	// command is that one.
	one, err := a.SendCustomCommand(ctx(t), "r1", "for bob", []string{"bob"})
	if err != nil || one.ID == "" || one.Seq == 0 {
		t.Fatalf("custom command: %+v, %v", one, err)
	}
	all, err := a.SendCustomCommand(ctx(t), "r1", "for all", nil)
	if err != nil {
		t.Fatal(err)
	}
	if e := rb.WaitKind("command", "r1"); e.Cmd.Command != "for bob" || e.Cmd.MessageID != one.ID || e.Cmd.From.ID != "alice" {
		t.Errorf("bob's first command %+v", e.Cmd)
	}
	if e := rb.WaitKind("command", "r1"); e.Cmd.Command != "for all" || e.Cmd.MessageID != all.ID {
		t.Errorf("bob's second command %+v", e.Cmd)
	}
	if e := rc.WaitKind("command", "r1"); e.Cmd.Command != "for all" {
		t.Errorf("carol's first command %+v (the one for bob leaked?)", e.Cmd)
	}
}

func TestRoomExtraInfoAndAttributes(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	ra, rb := newRec(t, "alice"), newRec(t, "bob")
	a, b := dial(t, wsURL(n), ra, nil), dial(t, wsURL(n), rb, nil)
	snap, err := a.EnterRoom(ctx(t), client.RoomInfo{ID: "r1", Name: "Room one"}, client.RoomOptions{
		User: &client.User{ID: "alice", Name: "Alice"}, Token: token(t, n, "alice"),
		Config: &client.RoomConfig{Attributes: map[string]string{"theme": "dark"}}})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Room.Name != "Room one" || snap.Attributes["theme"] != "dark" {
		t.Fatalf("snapshot %+v", snap)
	}
	if _, err := b.JoinRoom(ctx(t), "r1", client.RoomOptions{User: &client.User{ID: "bob"}, Token: token(t, n, "bob")}); err != nil {
		t.Fatal(err)
	}
	rb.WaitState("r1", client.StateLogined)

	if err := a.SetRoomExtraInfo(ctx(t), "r1", "topic", "go"); err != nil {
		t.Fatal(err)
	}
	e := rb.WaitKind("extra_info", "r1")
	if len(e.Items) != 1 || e.Items[0].Key != "topic" || e.Items[0].Value != "go" || e.Items[0].UpdateUser.ID != "alice" ||
		e.Items[0].UpdateTime == 0 {
		t.Errorf("bob's extra info update %+v", e.Items)
	}

	// A late joiner gets the room's extra info right after its login.
	rc := newRec(t, "carol")
	c := dial(t, wsURL(n), rc, nil)
	if _, err := c.LoginRoom(ctx(t), "r1", client.User{ID: "carol"}, client.LoginOptions{Token: token(t, n, "carol")}); err != nil {
		t.Fatal(err)
	}
	rc.WaitState("r1", client.StateLogined)
	e = rc.WaitFor("extra info", func(e ev) bool { return e.Kind == "extra_info" || e.Kind == "state" })
	if e.Kind != "extra_info" || len(e.Items) != 1 || e.Items[0].Value != "go" {
		t.Errorf("carol after login: %+v", e)
	}

	if err := a.SetRoomAttributes(ctx(t), "r1", map[string]string{"seats": "8"}); err != nil {
		t.Fatal(err)
	}
	if e := rb.WaitKind("attrs", "r1"); !maps.Equal(e.Set, map[string]string{"seats": "8"}) || len(e.Deleted) != 0 {
		t.Errorf("attributes set: %+v", e)
	}
	if err := a.DeleteRoomAttributes(ctx(t), "r1", []string{"theme"}); err != nil {
		t.Fatal(err)
	}
	if e := rb.WaitKind("attrs", "r1"); !slices.Equal(e.Deleted, []string{"theme"}) || len(e.Set) != 0 {
		t.Errorf("attributes deleted: %+v", e)
	}
	q, err := b.QueryRoom(ctx(t), "r1")
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(q.Attributes, map[string]string{"seats": "8"}) || len(q.Users) != 3 || len(q.ExtraInfo) != 1 || q.Seq < snap.Seq {
		t.Errorf("query %+v", q)
	}
}

func TestZIMRooms(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	ra, rb := newRec(t, "alice"), newRec(t, "bob")
	a, b := dial(t, wsURL(n), ra, nil), dial(t, wsURL(n), rb, nil)
	alice := client.RoomOptions{User: &client.User{ID: "alice", Name: "Alice"}, Token: token(t, n, "alice")}
	bob := client.RoomOptions{User: &client.User{ID: "bob", Name: "Bob"}, Token: token(t, n, "bob")}

	// join fails on a room that does not exist: RoomNotExist.
	if _, err := a.JoinRoom(ctx(t), "z1", alice); !errors.Is(err, domain.ErrRoomNotExist) {
		t.Fatalf("join of a missing room: %v", err)
	}
	if e := ra.WaitState("z1", client.StateLoginFailed); e.Info.ZIMEvent != "RoomNotExist" {
		t.Errorf("LoginFailed %+v", e)
	}
	snap, err := a.CreateRoom(ctx(t), client.RoomInfo{ID: "z1", Name: "Zed"}, alice)
	if err != nil || snap.Room.Name != "Zed" {
		t.Fatalf("create: %+v, %v", snap, err)
	}
	ra.WaitState("z1", client.StateLogined)
	if _, err := b.CreateRoom(ctx(t), client.RoomInfo{ID: "z1"}, bob); !errors.Is(err, domain.ErrRoomAlreadyExists) {
		t.Fatalf("create of an existing room: %v", err)
	}
	if _, err := b.JoinRoom(ctx(t), "z1", bob); err != nil {
		t.Fatal(err)
	}
	rb.WaitState("z1", client.StateLogined)
	ra.WaitUsers("z1", client.UpdateAdd, "bob")
	// ZIM sessions may be in several rooms without choosing a mode.
	if _, err := a.EnterRoom(ctx(t), client.RoomInfo{ID: "z2"}, client.RoomOptions{}); err != nil {
		t.Fatal(err)
	}
	ra.WaitState("z2", client.StateLogined)

	// switch z2 → z3: Logout in z2 (reason switch), Logining, Logined in z3.
	snap, err = a.SwitchRoom(ctx(t), "z2", "z3", client.SwitchOptions{ToName: "Three"})
	if err != nil || snap.Room.ID != "z3" {
		t.Fatalf("switch: %+v, %v", snap, err)
	}
	got := map[string]bool{}
	for len(got) < 3 {
		e := ra.WaitFor("switch states", func(e ev) bool { return e.Kind == "state" })
		got[fmt.Sprintf("%s %s %s", e.Room, e.State, e.Info.Reason)] = true
	}
	for _, want := range []string{"z2 Logout switch", "z3 Logining ", "z3 Logined "} {
		if !got[want] {
			t.Errorf("after the switch: %v, missing %q", got, want)
		}
	}
	no := false
	if _, err := a.SwitchRoom(ctx(t), "z3", "nowhere", client.SwitchOptions{CreateIfMissing: &no}); !errors.Is(err, domain.ErrRoomNotExist) {
		t.Errorf("switch to a missing room without creating it: %v", err)
	}

	if err := b.LeaveRoom(ctx(t), "z1"); err != nil {
		t.Fatal(err)
	}
	if e := rb.WaitState("z1", client.StateLogout); e.Info.Reason != "leave" {
		t.Errorf("bob's leave: %+v", e)
	}
	ra.WaitUsers("z1", client.UpdateDelete, "bob")
	rooms, err := a.LeaveAllRooms(ctx(t))
	slices.Sort(rooms)
	if err != nil || !slices.Equal(rooms, []string{"z1", "z3"}) {
		t.Fatalf("leave all: %v, %v", rooms, err)
	}
	ra.WaitState("z1", client.StateLogout)
	ra.WaitState("z3", client.StateLogout)
}

func TestSwitchAndLogoutAll(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	ra, rb := newRec(t, "alice"), newRec(t, "bob")
	a, b := dial(t, wsURL(n), ra, nil), dial(t, wsURL(n), rb, nil)
	login(t, n, a, ra, "r1", "alice")
	login(t, n, b, rb, "r2", "bob")

	// ZEGO single-room switch.
	snap, err := a.SwitchRoom(ctx(t), "r1", "r2", client.SwitchOptions{})
	if err != nil || len(snap.Users) != 2 {
		t.Fatalf("switch: %+v, %v", snap, err)
	}
	ra.WaitState("r2", client.StateLogined)
	rb.WaitUsers("r2", client.UpdateAdd, "alice")
	// The new room's events follow on from the snapshot (the recorder
	// checks the sequence).
	if _, err := b.SendBroadcastMessage(ctx(t), "r2", "welcome"); err != nil {
		t.Fatal(err)
	}
	ra.WaitKind("broadcast", "r2")

	// Multi-room: logout of everything.
	rc := newRec(t, "carol")
	c := dial(t, wsURL(n), rc, nil)
	if err := c.SetRoomMode(ctx(t), client.MultiRoom); err != nil {
		t.Fatal(err)
	}
	login(t, n, c, rc, "r1", "carol")
	login(t, n, c, rc, "r2", "carol")
	rooms, err := c.LogoutAllRooms(ctx(t))
	slices.Sort(rooms)
	if err != nil || !slices.Equal(rooms, []string{"r1", "r2"}) {
		t.Fatalf("logout all: %v, %v", rooms, err)
	}
	rc.WaitState("r1", client.StateLogout)
	rc.WaitState("r2", client.StateLogout)
}

func TestTokenWillExpire(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{TokenWarning: time.Hour})
	ra := newRec(t, "alice")
	a := dial(t, wsURL(n), ra, nil)
	if _, err := a.LoginRoom(ctx(t), "r1", client.User{ID: "alice"}, client.LoginOptions{Token: tokenFor(t, n, "alice", time.Minute)}); err != nil {
		t.Fatal(err)
	}
	e := ra.WaitKind("token", "")
	if e.Count <= 0 || e.Count > 60 {
		t.Errorf("remain %d seconds, want (0, 60]", e.Count)
	}
	if err := a.RenewToken(ctx(t), tokenFor(t, n, "alice", time.Minute)); err != nil {
		t.Fatal(err)
	}
	ra.WaitKind("token", "") // the renewed token is warned about too
	if err := a.RenewToken(ctx(t), token(t, n, "bob")); !errors.Is(err, domain.ErrTokenInvalid) {
		t.Errorf("renewal with another user's token: %v", err)
	}
}

func TestKickOut(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	ra, rb := newRec(t, "alice"), newRec(t, "bob")
	a, b := dial(t, wsURL(n), ra, nil), dial(t, wsURL(n), rb, nil)
	login(t, n, a, ra, "r1", "alice")
	login(t, n, b, rb, "r1", "bob")

	// The backend kicks Bob through the admin API.
	admin, err := n.Signer.MintAdmin("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx(t), "POST", "http://"+n.HTTPAddr()+"/admin/v1/apps/dev/rooms/r1/kick",
		strings.NewReader(`{"user":"bob","reason":"spam"}`))
	req.Header.Set("Authorization", "Bearer "+admin)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("kick: %s", res.Status)
	}
	e := rb.WaitFor("KickOut", func(e ev) bool { return e.Kind == "state" && e.State == client.StateKickOut })
	if e.Code != 1002055 || e.Info.Reason != "kicked_by_backend" || e.Info.ZIMEvent != "KickedOut" {
		t.Errorf("bob's KickOut %+v", e)
	}
	ra.WaitUsers("r1", client.UpdateDelete, "bob")

	// Duplicate login: Alice logs in from a second client.
	ra2 := newRec(t, "alice2")
	a2 := dial(t, wsURL(n), ra2, nil)
	login(t, n, a2, ra2, "r1", "alice")
	e = ra.WaitFor("KickOut", func(e ev) bool { return e.Kind == "state" && e.State == client.StateKickOut })
	if e.Code != 1002050 || e.Info.Reason != "kicked_duplicate_login" || e.Info.BySession != a2.Session() {
		t.Errorf("alice's first client KickOut %+v (second session %s)", e, a2.Session())
	}
	// The kicked client is out of the room.
	if _, err := a.SendBroadcastMessage(ctx(t), "r1", "still here?"); err == nil {
		t.Error("the kicked session could still broadcast")
	}
}

func TestCallbacksInOrderAndReentrant(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	ra := newRec(t, "alice")
	a := dial(t, wsURL(n), ra, nil)

	// Bob's command callback blocks on the first command until released,
	// answers "ping" by calling the client from the callback, and records
	// the rest in order.
	var bp atomic.Pointer[client.Client]
	release := make(chan struct{})
	blocked := make(chan struct{})
	got := make(chan string, 100)
	rb := newRec(t, "bob")
	h := rb.Handlers()
	h.OnIMRecvCustomCommand = func(room string, cmd client.CustomCommand) {
		switch cmd.Command {
		case "block":
			close(blocked)
			<-release
		case "ping":
			_, err := bp.Load().SendCustomCommand(context.Background(), room, "pong", []string{cmd.From.ID})
			got <- fmt.Sprintf("ping answered: %v", err)
		default:
			got <- cmd.Command
		}
	}
	b := dial(t, wsURL(n), rb, func(o *client.Options) { o.Handlers = h })
	bp.Store(b)
	login(t, n, a, ra, "r1", "alice")
	login(t, n, b, rb, "r1", "bob")

	if _, err := a.SendCustomCommand(ctx(t), "r1", "block", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-blocked:
	case <-time.After(wait):
		t.Fatal("the first command never reached bob")
	}
	// While Bob's callback is stuck, his client still reads: requests get
	// replies, and frames queue up.
	const count = 30
	for i := range count {
		if _, err := a.SendCustomCommand(ctx(t), "r1", fmt.Sprint(i), []string{"bob"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.QueryRoom(ctx(t), "r1"); err != nil {
		t.Fatalf("bob's query while a callback blocks: %v", err)
	}
	if _, err := a.SendCustomCommand(ctx(t), "r1", "ping", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	close(release)
	for i := range count {
		select {
		case s := <-got:
			if s != fmt.Sprint(i) {
				t.Fatalf("command %d arrived as %q", i, s)
			}
		case <-time.After(wait):
			t.Fatalf("command %d never arrived", i)
		}
	}
	select {
	case s := <-got:
		if s != "ping answered: <nil>" {
			t.Fatal(s)
		}
	case <-time.After(wait):
		t.Fatal("ping never answered")
	}
	if e := ra.WaitKind("command", "r1"); e.Cmd.Command != "pong" || e.Cmd.From.ID != "bob" {
		t.Errorf("alice got %+v", e.Cmd)
	}
}

func TestCloseIsNotLogout(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	ra, rb := newRec(t, "alice"), newRec(t, "bob")
	a, b := dial(t, wsURL(n), ra, nil), dial(t, wsURL(n), rb, nil)
	login(t, n, a, ra, "r1", "alice")
	login(t, n, b, rb, "r1", "bob")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	q, err := b.QueryRoom(ctx(t), "r1")
	if err != nil {
		t.Fatal(err)
	}
	if !clienttest.HasUser(q.Users, "alice") {
		t.Errorf("alice left the room when her client closed: %+v", q.Users)
	}
	if _, err := a.SendBroadcastMessage(ctx(t), "r1", "hi"); !errors.Is(err, client.ErrClosed) {
		t.Errorf("broadcast after close: %v", err)
	}
}

func TestDialFailures(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	if _, err := client.Dial(ctx(t), "ws://"+n.HTTPAddr()+"/nothing", client.Options{Logger: clienttest.Logger(t)}); err == nil {
		t.Error("dial of a path that is not the gateway succeeded")
	}
	_, err := client.Dial(ctx(t), wsURL(n), client.Options{RequestTimeout: -1, BackoffMin: time.Minute, BackoffMax: time.Second})
	if err == nil || !strings.Contains(err.Error(), "RequestTimeout") || !strings.Contains(err.Error(), "BackoffMin") {
		t.Errorf("invalid options: %v", err)
	}
}
