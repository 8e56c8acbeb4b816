package tests

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/gateway"
)

// The error codes of SEMANTICS.md sections 1–3, each triggered over a real
// socket through the SDK (which sends every one of these requests as it is),
// each checked by number and stable name, and each shown to leave the room
// as it was: the other members get the next valid event and never the
// refused one.

// ---- section 1: sessions, users, room modes ----

// A single-room session (the default) that has logged in can neither change
// its mode (1001020) nor log into a second room (1902001: switchRoom is the
// way); neither refusal moves it out of its room or into the other one.
func TestSingleRoomSessionRefusals(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, clienttest.NodeOptions{})
	ctx := clienttest.Ctx(t)
	alice, ra := dialMember(t, n, "r1", "alice")
	_, rb := dialMember(t, n, "r1", "bob")
	carol, rc := dialMember(t, n, "r2", "carol")
	rb.WaitUsers("r1", client.UpdateAdd, "alice")

	refusedWith(t, "set_room_mode after a login", alice.SetRoomMode(ctx, client.MultiRoom), domain.ErrRoomModeAfterLogin)

	// Still single-room: the mode was not changed by the refused request.
	_, err := alice.LoginRoom(ctx, "r2", clienttest.User("alice"), client.LoginOptions{Token: clienttest.Token(t, n, "alice")})
	refusedWith(t, "a second login of a single-room session", err, domain.ErrAlreadyInAnotherRoom)
	waitState(t, ra, "r2", client.StateLoginFailed, domain.ErrAlreadyInAnotherRoom.Code)

	// r2 never had alice in it; r1 still has her.
	if got := roomUsers(t, carol, "r2"); !slices.Equal(got, []string{"carol"}) {
		t.Errorf("r2's users after the refused login: %v", got)
	}
	if _, err := alice.SendBroadcastMessage(ctx, "r1", "still in r1"); err != nil {
		t.Fatal(err)
	}
	if got := nextText(t, rb, "broadcast", "r1"); got != "still in r1" {
		t.Errorf("bob's next broadcast: %q", got)
	}
	// The next user update each room's member gets is a newcomer, not a
	// departure from r1 nor an arrival in r2.
	dialMember(t, n, "r1", "dave")
	dialMember(t, n, "r2", "erin")
	if got := nextText(t, rb, "user", "r1"); got != "ADD dave" {
		t.Errorf("bob's next user update in r1: %q", got)
	}
	if got := nextText(t, rc, "user", "r2"); got != "ADD erin" {
		t.Errorf("carol's next user update in r2: %q", got)
	}
}

// Multi-room mode needs the app's permission (1002036), a per-app setting:
// the same node lets another app's sessions into several rooms. The refused
// session may still choose single-room mode and log in.
func TestMultiRoomNeedsTheAppsPermission(t *testing.T) {
	t.Parallel()
	strict := domain.DefaultPolicy() // multi-room off, as in the seed
	n := clienttest.StartNode(t, clienttest.NodeOptions{Apps: map[domain.AppID]domain.Policy{clienttest.App: strict}})
	ctx := clienttest.Ctx(t)
	bob, rb := dialMember(t, n, "r1", "bob")

	alice, ra := dialMulti(t, n, "alice") // the mode itself is accepted: it is the login that is refused
	_, err := alice.LoginRoom(ctx, "r1", clienttest.User("alice"), client.LoginOptions{Token: clienttest.Token(t, n, "alice")})
	refusedWith(t, "a multi-room login in an app without multi-room", err, domain.ErrMultiRoomNotAllowed)
	waitState(t, ra, "r1", client.StateLoginFailed, domain.ErrMultiRoomNotAllowed.Code)
	if got := roomUsers(t, bob, "r1"); !slices.Equal(got, []string{"bob"}) {
		t.Errorf("r1's users after the refused login: %v", got)
	}

	// The session never logged in, so it may still choose single-room mode.
	if err := alice.SetRoomMode(ctx, client.SingleRoom); err != nil {
		t.Fatal(err)
	}
	clienttest.Login(t, n, alice, ra, "r1", "alice")
	if got := nextText(t, rb, "user", "r1"); got != "ADD alice" {
		t.Errorf("bob's next user update: %q", got)
	}

	// Another app on the same node keeps the default: multi-room allowed.
	zed, rz := dialMulti(t, n, "zed")
	tok := clienttest.Mint(t, n, auth.Claims{App: "zoo", User: "zed", AllRooms: true, ExpiresAt: time.Now().Add(time.Hour)})
	for _, room := range []string{"z1", "z2"} {
		if _, err := zed.LoginRoom(ctx, room, clienttest.User("zed"), client.LoginOptions{Token: tok}); err != nil {
			t.Fatalf("zoo's multi-room session logs into %s: %v", room, err)
		}
		rz.WaitState(room, client.StateLogined)
	}
}

// A multi-room session may be in MaxRooms rooms at once (configurable per
// app; 2 here): one more login fails with 1002037 and leaves the session,
// its rooms and the target room as they were. Leaving a room frees a slot.
func TestTooManyRooms(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, clienttest.NodeOptions{Apps: map[domain.AppID]domain.Policy{
		clienttest.App: *limitsPolicy(func(p *domain.Policy) { p.MaxRooms = 2 })}})
	ctx := clienttest.Ctx(t)
	_, rb := dialMember(t, n, "r1", "bob")
	carol, rc := dialMember(t, n, "r3", "carol")
	alice, ra := dialMulti(t, n, "alice")
	clienttest.Login(t, n, alice, ra, "r1", "alice")
	clienttest.Login(t, n, alice, ra, "r2", "alice")
	rb.WaitUsers("r1", client.UpdateAdd, "alice")

	_, err := alice.LoginRoom(ctx, "r3", clienttest.User("alice"), client.LoginOptions{Token: clienttest.Token(t, n, "alice")})
	refusedWith(t, "a third room with a limit of two", err, domain.ErrTooManyRooms)
	waitState(t, ra, "r3", client.StateLoginFailed, domain.ErrTooManyRooms.Code)
	if got := roomUsers(t, carol, "r3"); !slices.Equal(got, []string{"carol"}) {
		t.Errorf("r3's users after the refused login: %v", got)
	}
	// Alice is still in both rooms: bob hears her in r1.
	if _, err := alice.SendBroadcastMessage(ctx, "r1", "two rooms still"); err != nil {
		t.Fatal(err)
	}
	if got := nextText(t, rb, "broadcast", "r1"); got != "two rooms still" {
		t.Errorf("bob's next broadcast: %q", got)
	}

	if err := alice.LogoutRoom(ctx, "r2"); err != nil {
		t.Fatal(err)
	}
	clienttest.Login(t, n, alice, ra, "r3", "alice")
	if got := nextText(t, rc, "user", "r3"); got != "ADD alice" {
		t.Errorf("carol's next user update: %q", got)
	}
}

// Every login of one session carries the same user: another user ID, or the
// same ID under another name, fails with 1002018 (with a token that is valid
// for the user it names, so that the token is not what is refused).
func TestOneSessionOneUser(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, clienttest.NodeOptions{})
	ctx := clienttest.Ctx(t)
	bob, rb := dialMember(t, n, "r2", "bob")
	alice, ra := dialMulti(t, n, "alice")
	clienttest.Login(t, n, alice, ra, "r1", "alice")

	for _, tc := range []struct {
		name string
		user client.User
	}{
		{"another user ID", clienttest.User("alan")},
		{"the same ID under another name", client.User{ID: "alice", Name: "Not Alice"}},
	} {
		_, err := alice.LoginRoom(ctx, "r2", tc.user, client.LoginOptions{Token: clienttest.Token(t, n, tc.user.ID)})
		refusedWith(t, tc.name, err, domain.ErrUserMismatch)
		waitState(t, ra, "r2", client.StateLoginFailed, domain.ErrUserMismatch.Code)
	}
	if got := roomUsers(t, bob, "r2"); !slices.Equal(got, []string{"bob"}) {
		t.Errorf("r2's users after the refused logins: %v", got)
	}
	clienttest.Login(t, n, alice, ra, "r2", "alice")
	if got := nextText(t, rb, "user", "r2"); got != "ADD alice" {
		t.Errorf("bob's next user update: %q", got)
	}
}

// A login fails with 1002033 when its token is missing, malformed, forged,
// expired, of the wrong kind, or not for this app, user or room; the client
// gets LoginFailed with the same code, and the room never sees the user.
func TestTokenRefusals(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, clienttest.NodeOptions{})
	ctx := clienttest.Ctx(t)
	bob, rb := dialMember(t, n, "B", "bob")

	valid := auth.Claims{App: clienttest.App, User: "alice", AllRooms: true, Publish: true,
		ExpiresAt: time.Now().Add(time.Hour)}
	forger, err := auth.NewSigner(auth.Config{Secret: []byte("another secret of thirty-two bytes!")})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := forger.Mint(valid)
	if err != nil {
		t.Fatal(err)
	}
	// Minted two hours ago for one minute, by a signer whose clock says so.
	past := time.Now().Add(-2 * time.Hour)
	old, err := auth.NewSigner(auth.Config{Secret: clienttest.Secret, Clock: func() time.Time { return past }})
	if err != nil {
		t.Fatal(err)
	}
	expiredClaims := valid
	expiredClaims.ExpiresAt = past.Add(time.Minute)
	expired, err := old.Mint(expiredClaims)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := n.Signer.MintAdmin("alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	roomA := valid
	roomA.AllRooms, roomA.Rooms = false, []string{"A"}
	onlyA := clienttest.Mint(t, n, roomA)

	for _, tc := range []struct{ name, token string }{
		{"missing", ""},
		{"malformed", "not-a-jwt"},
		{"signed with another secret", forged},
		{"expired", expired},
		{"an admin token", admin},
		{"for another user", clienttest.Token(t, n, "mallory")},
		{"for room A only", onlyA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := clienttest.NewRecorder(t, "alice")
			c := clienttest.Dial(t, clienttest.URL(n.HTTPAddr()), r, nil)
			_, err := c.LoginRoom(ctx, "B", clienttest.User("alice"), client.LoginOptions{Token: tc.token})
			refusedWith(t, "login with a token "+tc.name, err, domain.ErrTokenInvalid)
			waitState(t, r, "B", client.StateLoginFailed, domain.ErrTokenInvalid.Code)
		})
	}

	// The resume token of a connection is not a login token either.
	t.Run("a resume token", func(t *testing.T) {
		r := clienttest.NewRecorder(t, "alice")
		c := clienttest.Dial(t, clienttest.URL(n.HTTPAddr()), r, nil)
		tok, err := n.Signer.MintResume("01KAK3J7Q8ZX5V2B8T9W0N3E4V", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.LoginRoom(ctx, "B", clienttest.User("alice"), client.LoginOptions{Token: tok})
		refusedWith(t, "login with a resume token", err, domain.ErrTokenInvalid)
	})

	// A token for another app, on a session that is in this app already.
	t.Run("for another app", func(t *testing.T) {
		c, r := dialMulti(t, n, "alice")
		clienttest.Login(t, n, c, r, "A", "alice")
		zoo := valid
		zoo.App = "zoo"
		_, err := c.LoginRoom(ctx, "B", clienttest.User("alice"), client.LoginOptions{Token: clienttest.Mint(t, n, zoo)})
		refusedWith(t, "login with another app's token", err, domain.ErrTokenInvalid)
		waitState(t, r, "B", client.StateLoginFailed, domain.ErrTokenInvalid.Code)
	})

	// The positive control of "for room A only": such a token opens room A.
	t.Run("room A's token in room A", func(t *testing.T) {
		amyA := roomA
		amyA.User = "amy"
		r := clienttest.NewRecorder(t, "amy")
		c := clienttest.Dial(t, clienttest.URL(n.HTTPAddr()), r, nil)
		if _, err := c.LoginRoom(ctx, "A", clienttest.User("amy"), client.LoginOptions{Token: clienttest.Mint(t, n, amyA)}); err != nil {
			t.Fatalf("room A's token for room A: %v", err)
		}
		r.WaitState("A", client.StateLogined)
	})

	// None of it reached room B: its only member saw nobody come, and the
	// first user it hears of is the one who logs in properly.
	if got := roomUsers(t, bob, "B"); !slices.Equal(got, []string{"bob"}) {
		t.Errorf("B's users after the refused logins: %v", got)
	}
	dialMember(t, n, "B", "carol")
	if got := nextText(t, rb, "user", "B"); got != "ADD carol" {
		t.Errorf("bob's next user update: %q", got)
	}
}

// A login the log cannot serve fails, never hangs: whether JetStream refuses
// every request at once (it is disabled on the server) or nothing answers at
// all (the server is gone), the client gets 1002053, ZEGO's login timeout,
// as the reply and as LoginFailed, within the command timeout.
func TestLoginFailsInTimeWhenTheLogIsUnavailable(t *testing.T) {
	t.Parallel()
	const commandTimeout = 500 * time.Millisecond
	n := startNodeFailFast(t, gateway.Config{CommandTimeout: commandTimeout})
	ctx := clienttest.Ctx(t)

	login := func(user string) time.Duration {
		t.Helper()
		r := clienttest.NewRecorder(t, user)
		// The client's own request timeout is far longer than the bound
		// below, so that a login that hangs on the server stays
		// distinguishable from one the server failed in time.
		c := clienttest.Dial(t, clienttest.URL(n.HTTPAddr()), r, func(o *client.Options) { o.RequestTimeout = 60 * time.Second })
		start := time.Now()
		_, err := c.LoginRoom(ctx, "r1", clienttest.User(user), client.LoginOptions{Token: clienttest.Token(t, n, user)})
		took := time.Since(start)
		refusedWith(t, user+"'s login with the log unavailable", err, domain.ErrTimeout)
		if took > commandTimeout+20*time.Second { // generous: only a hang exceeds it
			t.Errorf("%s's login failed after %v; the command timeout is %v", user, took, commandTimeout)
		}
		e := r.WaitState("r1", client.StateLoginFailed)
		if e.Code != domain.ErrTimeout.Code || e.Info.ZIMEvent != "NetworkInterrupted" {
			t.Errorf("%s's LoginFailed: %+v", user, e)
		}
		return took
	}

	srv := n.Log.Server()
	if err := srv.DisableJetStream(); err != nil {
		t.Fatal(err)
	}
	login("alice")
	srv.Shutdown()
	if took := login("bob"); took < commandTimeout {
		t.Errorf("bob's login failed after %v, before the command timeout: nothing answered, so it must be the timeout", took)
	}
}

// Logging out of a room the session is not in fails with 1002002 and
// LogoutFailed, whatever the session's mode and even before its first
// login; the session stays where it was. ZIM's leaveRoom answers the same.
func TestLogoutOfARoomNotIn(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, clienttest.NodeOptions{})
	ctx := clienttest.Ctx(t)
	_, rb := dialMember(t, n, "r1", "bob")
	alice, ra := dialMember(t, n, "r1", "alice")
	rb.WaitUsers("r1", client.UpdateAdd, "alice")

	refusedWith(t, "single-room logout of another room", alice.LogoutRoom(ctx, "r2"), domain.ErrNotInRoom)
	waitState(t, ra, "r2", client.StateLogoutFailed, domain.ErrNotInRoom.Code)
	refusedWith(t, "ZIM leave of another room", alice.LeaveRoom(ctx, "r2"), domain.ErrNotInRoom)
	waitState(t, ra, "r2", client.StateLogoutFailed, domain.ErrNotInRoom.Code)

	carol, rc := dialMulti(t, n, "carol")
	clienttest.Login(t, n, carol, rc, "r1", "carol")
	refusedWith(t, "multi-room logout of another room", carol.LogoutRoom(ctx, "r2"), domain.ErrNotInRoom)
	waitState(t, rc, "r2", client.StateLogoutFailed, domain.ErrNotInRoom.Code)

	// A session that never logged in is in no room either.
	rf := clienttest.NewRecorder(t, "fred")
	fred := clienttest.Dial(t, clienttest.URL(n.HTTPAddr()), rf, nil)
	refusedWith(t, "logout before any login", fred.LogoutRoom(ctx, "r1"), domain.ErrNotInRoom)
	waitState(t, rf, "r1", client.StateLogoutFailed, domain.ErrNotInRoom.Code)

	// Alice is still in r1 (a non-member's broadcast would be refused) and
	// bob hears her; the first departure he hears of is her real logout.
	if _, err := alice.SendBroadcastMessage(ctx, "r1", "not gone"); err != nil {
		t.Fatal(err)
	}
	if err := alice.LogoutRoom(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	waitState(t, ra, "r1", client.StateLogout, 0)
	var seen []string
	for _, e := range eventsUntil(t, rb, "alice's departure", func(e clienttest.Event) bool {
		return e.Kind == "user" && e.Type == client.UpdateDelete
	}) {
		if e.Kind == "user" || e.Kind == "broadcast" {
			seen = append(seen, e.String())
		}
	}
	want := []string{"user r1 ADD [{carol Carol anchor}]", "broadcast r1", "user r1 DELETE [{alice Alice }]"}
	if !slices.Equal(seen, want) {
		t.Errorf("bob saw %q, want %q", seen, want)
	}
}

// ---- section 2: streams ----

// In multi-room mode publishing needs a room (1003070) and so does playing
// (1004070), except, as the Web SDK does it, a stream published in one of
// the session's own rooms, which plays by its ID alone. A single-room
// session never needs the room.
func TestStreamsNeedARoomInMultiRoomMode(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, clienttest.NodeOptions{})
	ctx := clienttest.Ctx(t)
	bob, rb := dialMember(t, n, "r1", "bob")
	carol, _ := dialMember(t, n, "r3", "carol")
	alice, ra := dialMulti(t, n, "alice")
	clienttest.Login(t, n, alice, ra, "r1", "alice")
	clienttest.Login(t, n, alice, ra, "r2", "alice")
	for c, stream := range map[*client.Client]string{bob: "bob-cam", carol: "carol-cam"} {
		if _, err := c.StartPublishingStream(ctx, stream, client.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ra.WaitStreams("r1", client.UpdateAdd, "bob-cam")

	_, err := alice.StartPublishingStream(ctx, "alice-cam", client.PublishOptions{})
	refusedWith(t, "multi-room publish without a room", err, domain.ErrPublishRoomRequired)
	_, err = alice.StartPlayingStream(ctx, "nobody-cam", "")
	refusedWith(t, "multi-room play of an unpublished stream without a room", err, domain.ErrPlayRoomRequired)
	_, err = alice.StartPlayingStream(ctx, "carol-cam", "")
	refusedWith(t, "multi-room play of another room's stream without a room", err, domain.ErrPlayRoomRequired)

	// The Web SDK's way: the stream is in one of alice's rooms.
	if room, err := alice.StartPlayingStream(ctx, "bob-cam", ""); err != nil || room != "r1" {
		t.Errorf("play bob-cam by its ID alone: %q, %v; want r1", room, err)
	}
	if room, err := alice.StartPublishingStream(ctx, "alice-cam", client.PublishOptions{Room: "r1"}); err != nil || room != "r1" {
		t.Fatalf("publish with a room: %q, %v", room, err)
	}
	// A single-room session plays without naming its room.
	if room, err := bob.StartPlayingStream(ctx, "alice-cam", ""); err != nil || room != "r1" {
		t.Errorf("single-room play by ID: %q, %v; want r1", room, err)
	}
	// Bob's first stream update from alice is the publish that succeeded.
	if got := nextText(t, rb, "stream", "r1"); got != "ADD alice-cam@alice" {
		t.Errorf("bob's next stream update: %q", got)
	}
}

// A stream ID is unique in the app while it is published: a second publisher,
// in the same room or another, gets 1903001 and the room's members see only
// the first publisher's stream; once it stops, the ID is free again.
func TestStreamIDInUse(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, clienttest.NodeOptions{})
	ctx := clienttest.Ctx(t)
	alice, _ := dialMember(t, n, "r1", "alice")
	bob, _ := dialMember(t, n, "r1", "bob")
	carol, _ := dialMember(t, n, "r2", "carol")
	_, rd := dialMember(t, n, "r1", "dave")
	if _, err := alice.StartPublishingStream(ctx, "cam", client.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := bob.StartPublishingStream(ctx, "cam", client.PublishOptions{})
	refusedWith(t, "a second publisher of cam in the same room", err, domain.ErrStreamIDInUse)
	_, err = carol.StartPublishingStream(ctx, "cam", client.PublishOptions{})
	refusedWith(t, "a second publisher of cam in another room", err, domain.ErrStreamIDInUse)

	if err := alice.StopPublishingStream(ctx, "cam"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.StartPublishingStream(ctx, "cam", client.PublishOptions{}); err != nil {
		t.Fatalf("bob publishes cam once alice stopped: %v", err)
	}
	for _, want := range []string{"ADD cam@alice", "DELETE cam@alice", "ADD cam@bob"} {
		if got := nextText(t, rd, "stream", "r1"); got != want {
			t.Fatalf("dave's stream update: %q, want %q", got, want)
		}
	}
}

// An audience member plays but cannot publish, and neither can an anchor
// whose token does not allow publishing: 1903002 for both, and the room sees
// no stream from them.
func TestPublishNotAllowed(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, clienttest.NodeOptions{})
	ctx := clienttest.Ctx(t)
	alice, _ := dialMember(t, n, "r1", "alice")
	_, rd := dialMember(t, n, "r1", "dave")
	if _, err := alice.StartPublishingStream(ctx, "alice-cam", client.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := nextText(t, rd, "stream", "r1"); got != "ADD alice-cam@alice" {
		t.Fatalf("dave's first stream update: %q", got)
	}

	re := clienttest.NewRecorder(t, "erin")
	erin := clienttest.Dial(t, clienttest.URL(n.HTTPAddr()), re, nil)
	if _, err := erin.LoginRoom(ctx, "r1", clienttest.User("erin"), client.LoginOptions{Token: clienttest.Token(t, n, "erin"),
		Role: client.RoleAudience}); err != nil {
		t.Fatal(err)
	}
	_, err := erin.StartPublishingStream(ctx, "erin-cam", client.PublishOptions{})
	refusedWith(t, "an audience member publishes", err, domain.ErrPublishNotAllowed)
	if room, err := erin.StartPlayingStream(ctx, "alice-cam", ""); err != nil || room != "r1" {
		t.Errorf("the audience member plays: %q, %v", room, err)
	}

	rf := clienttest.NewRecorder(t, "fred")
	fred := clienttest.Dial(t, clienttest.URL(n.HTTPAddr()), rf, nil)
	noPublish := clienttest.Mint(t, n, auth.Claims{App: clienttest.App, User: "fred", AllRooms: true,
		ExpiresAt: time.Now().Add(time.Hour)})
	if _, err := fred.LoginRoom(ctx, "r1", clienttest.User("fred"), client.LoginOptions{Token: noPublish}); err != nil {
		t.Fatal(err)
	}
	_, err = fred.StartPublishingStream(ctx, "fred-cam", client.PublishOptions{})
	refusedWith(t, "an anchor whose token cannot publish", err, domain.ErrPublishNotAllowed)

	if _, err := alice.StartPublishingStream(ctx, "alice-screen", client.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := nextText(t, rd, "stream", "r1"); got != "ADD alice-screen@alice" {
		t.Errorf("dave's next stream update: %q", got)
	}
}

// ---- section 3: room messages ----

// The published size limits, at their edges: a 1 KB body passes and one byte
// more fails (1905001, empty bodies too) for broadcast, barrage and custom
// command; an extra info key must be under 128 bytes and a value under 4096
// (1905003). The other member gets every message that passed and none that
// failed.
func TestMessageSizeLimits(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, clienttest.NodeOptions{})
	ctx := clienttest.Ctx(t)
	alice, _ := dialMember(t, n, "r1", "alice")
	_, rb := dialMember(t, n, "r1", "bob")
	l := domain.DefaultLimits()
	body := func(size int, tag string) string { return tag + strings.Repeat(".", size-len(tag)) }

	for _, tc := range []struct {
		kind string // the callback bob gets
		send func(string) error
	}{
		{"broadcast", func(s string) error { _, err := alice.SendBroadcastMessage(ctx, "r1", s); return err }},
		{"barrage", func(s string) error { _, err := alice.SendBarrageMessage(ctx, "r1", s); return err }},
		{"command", func(s string) error { _, err := alice.SendCustomCommand(ctx, "r1", s, []string{"bob"}); return err }},
	} {
		refusedWith(t, tc.kind+" one byte over", tc.send(body(l.MessageBytes+1, "over")), domain.ErrMessageTooLarge)
		refusedWith(t, "an empty "+tc.kind, tc.send(""), domain.ErrMessageTooLarge)
		exact := body(l.MessageBytes, tc.kind+" at the limit")
		if err := tc.send(exact); err != nil {
			t.Fatalf("a %s of exactly %d bytes: %v", tc.kind, l.MessageBytes, err)
		}
		if got := nextText(t, rb, tc.kind, "r1"); got != exact {
			t.Errorf("bob's next %s: %.20q… (%d bytes), want the one at the limit", tc.kind, got, len(got))
		}
	}

	key127, key128 := body(l.ExtraInfoKeyBytes-1, "k"), body(l.ExtraInfoKeyBytes, "k")
	val4095, val4096 := body(l.ExtraInfoValueBytes-1, "v"), body(l.ExtraInfoValueBytes, "v")
	for _, tc := range []struct{ name, key, value string }{
		{"a 128-byte key", key128, "x"},
		{"an empty key", "", "x"},
		{"a 4096-byte value", "topic", val4096},
	} {
		refusedWith(t, "room extra info with "+tc.name, alice.SetRoomExtraInfo(ctx, "r1", tc.key, tc.value), domain.ErrExtraInfoInvalid)
	}
	if err := alice.SetRoomExtraInfo(ctx, "r1", key127, "x"); err != nil {
		t.Fatalf("a 127-byte key: %v", err)
	}
	if err := alice.SetRoomExtraInfo(ctx, "r1", "topic", val4095); err != nil {
		t.Fatalf("a 4095-byte value: %v", err)
	}
	for _, want := range []string{key127 + "=x", "topic=" + val4095} {
		if got := nextText(t, rb, "extra_info", "r1"); got != want {
			t.Errorf("bob's next extra info: %.30q…, want %.30q…", got, want)
		}
	}
}

// The published rate limits, with the node on a fake clock so that each
// one-second window is exact: per room 10 broadcasts, 20 barrages, 10 extra
// info updates and 10 custom commands to several users, and 200 custom
// commands to one user. One more in the same second fails with 1905002, for
// any sender in the room; the next second it passes again. The other members
// get exactly what passed.
func TestMessageRateLimits(t *testing.T) {
	t.Parallel()
	clock := estest.NewClock(time.Now().Truncate(time.Second))
	// The connection's own request limit (100/s, burst 200) would refuse
	// the 200 commands first: it is not what this test is about.
	n := clienttest.StartNode(t, clienttest.NodeOptions{Clock: clock,
		Gateway: gateway.Config{RequestsPerSecond: 1e6, RequestBurst: 1e6}})
	ctx := clienttest.Ctx(t)
	alice, _ := dialMember(t, n, "r1", "alice")
	bob, rb := dialMember(t, n, "r1", "bob")
	_, rc := dialMember(t, n, "r1", "carol")
	l := domain.DefaultLimits()

	type sender func(c *client.Client, text string) error
	broadcast := func(c *client.Client, s string) error { _, err := c.SendBroadcastMessage(ctx, "r1", s); return err }
	barrage := func(c *client.Client, s string) error { _, err := c.SendBarrageMessage(ctx, "r1", s); return err }
	toBob := func(c *client.Client, s string) error {
		_, err := c.SendCustomCommand(ctx, "r1", s, []string{"bob"})
		return err
	}
	toAll := func(c *client.Client, s string) error { _, err := c.SendCustomCommand(ctx, "r1", s, nil); return err }
	// One key, so that the room's limit of ten keys is not what refuses.
	extra := func(c *client.Client, s string) error { return c.SetRoomExtraInfo(ctx, "r1", "topic", s) }
	for _, tc := range []struct {
		name  string
		limit int
		send  sender
		kind  string // the callback bob gets
		// also is another request counted in the same window, refused too.
		also func() error
		text func(string) string // what bob's callback carries for a sent text
		// otherWindow sends a request counted in another window, which
		// passes, and returns what bob gets of it ("": nothing).
		otherWindow func() (string, error)
	}{
		{name: "broadcast", limit: l.BroadcastPerSecond, send: broadcast, kind: "broadcast",
			also: func() error { return broadcast(bob, "bob's, in the same second") }},
		{name: "barrage", limit: l.BarragePerSecond, send: barrage, kind: "barrage",
			also: func() error { return barrage(bob, "bob's, in the same second") }},
		{name: "command to one user", limit: l.CommandToOnePerSecond, send: toBob, kind: "command",
			// The limit is per recipient: carol's window is her own.
			otherWindow: func() (string, error) {
				_, err := alice.SendCustomCommand(ctx, "r1", "to carol: her own window", []string{"carol"})
				return "", err
			}},
		{name: "command to several users", limit: l.CommandToManyPerSecond, send: toAll, kind: "command",
			also: func() error {
				_, err := alice.SendCustomCommand(ctx, "r1", "to bob and carol", []string{"bob", "carol"})
				return err
			},
			// Commands to one user are counted apart.
			otherWindow: func() (string, error) { return "to bob: another window", toBob(alice, "to bob: another window") }},
		{name: "room extra info", limit: l.ExtraInfoPerSecond, send: extra, kind: "extra_info",
			also: func() error { return extra(bob, "bob's, in the same second") },
			text: func(s string) string { return "topic=" + s }},
	} {
		text := tc.text
		if text == nil {
			text = func(s string) string { return s }
		}
		for i := range tc.limit {
			if err := tc.send(alice, fmt.Sprintf("%s %d", tc.name, i)); err != nil {
				t.Fatalf("%s %d of %d in one second: %v", tc.name, i+1, tc.limit, err)
			}
		}
		refusedWith(t, fmt.Sprintf("%s %d in one second", tc.name, tc.limit+1),
			tc.send(alice, tc.name+" over the limit"), domain.ErrRateLimited)
		if tc.also != nil {
			refusedWith(t, tc.name+": another request in the same window", tc.also(), domain.ErrRateLimited)
		}
		var other string
		if tc.otherWindow != nil {
			var err error
			if other, err = tc.otherWindow(); err != nil {
				t.Fatalf("%s: a request counted in another window: %v", tc.name, err)
			}
		}
		clock.Advance(time.Second)
		if err := tc.send(alice, tc.name+" next second"); err != nil {
			t.Fatalf("%s in the next second: %v", tc.name, err)
		}
		// Bob gets exactly what passed: the limit's worth, [the request of
		// the other window,] then the next second's; never a refused one.
		for i := range tc.limit {
			if got, want := nextText(t, rb, tc.kind, "r1"), text(fmt.Sprintf("%s %d", tc.name, i)); got != want {
				t.Fatalf("bob's %s %d: %q, want %q", tc.kind, i, got, want)
			}
		}
		if other != "" {
			if got := nextText(t, rb, tc.kind, "r1"); got != other {
				t.Fatalf("bob's %s of another window: %q, want %q", tc.kind, got, other)
			}
		}
		if got, want := nextText(t, rb, tc.kind, "r1"), text(tc.name+" next second"); got != want {
			t.Fatalf("bob's %s after the refusals: %q, want %q", tc.kind, got, want)
		}
	}
	// Carol, who took no part, got every broadcast that passed and only those.
	for i := range l.BroadcastPerSecond {
		if got, want := nextText(t, rc, "broadcast", "r1"), fmt.Sprintf("broadcast %d", i); got != want {
			t.Fatalf("carol's broadcast %d: %q, want %q", i, got, want)
		}
	}
	if got := nextText(t, rc, "broadcast", "r1"); got != "broadcast next second" {
		t.Fatalf("carol's last broadcast: %q", got)
	}
	// Her first command is the one sent to her alone while bob's window was full.
	if got := nextText(t, rc, "command", "r1"); got != "to carol: her own window" {
		t.Fatalf("carol's first command: %q", got)
	}
}
