package tests

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/netcut"
	"github.com/roomlog/roomlog/transport/admin"
	"github.com/roomlog/roomlog/transport/client"
)

// The backend kicks a user out of one room (admin API): the user gets
// KickOut 1002055 there, the others see its stream and then the user
// DELETEd, and the user's other room is untouched. A kick is final: when the
// user's connection later fails and the client has to log in again, it
// enters its other room, never the one it was kicked out of.
func TestBackendKick(t *testing.T) {
	t.Parallel()
	// The node's clock is the test's, so that a lost connection costs the
	// session when the test says (the client must then log in again rather
	// than resume); the others heartbeat on their own clocks meanwhile.
	clock := estest.NewClock(time.Now())
	n := clienttest.StartNode(t, clienttest.NodeOptions{Clock: clock})
	proxy := netcut.Start(t, n.HTTPAddr())
	alice := newPerson(t, n, proxy.Addr(), "alice", "alice", true)
	alice.rec.AllowReconnects()
	bob := newBeatingPerson(t, n, n.HTTPAddr(), "bob", "bob")
	dave := newBeatingPerson(t, n, n.HTTPAddr(), "dave", "dave")
	carol := newBeatingPerson(t, n, n.HTTPAddr(), "carol", "carol")
	alice.login("stage", "")
	alice.login("backstage", "")
	alice.publish("alice-cam", "stage")
	bob.login("stage", "")
	bob.waitStreams("stage", client.UpdateAdd, "alice-cam")
	dave.login("stage", "")
	carol.login("backstage", "")

	// Only the backend may kick: a client's token is not an admin's.
	req, err := http.NewRequestWithContext(clienttest.Ctx(t), "POST",
		"http://"+n.HTTPAddr()+"/admin/v1/apps/"+clienttest.App+roomPath("stage")+"/kick",
		strings.NewReader(`{"user":"bob"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+alice.token())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("a kick with a client token: %s", res.Status)
	}

	var done admin.Done
	if code := adminCall(t, n, "POST", roomPath("stage")+"/kick", admin.KickRequest{User: "alice", Reason: "spam"}, &done); code != http.StatusOK || done.Seq == 0 {
		t.Fatalf("kick: %d %+v", code, done)
	}
	e := alice.waitFor("KickOut", func(e clienttest.Event) bool { return e.Kind == "state" && e.State == client.StateKickOut })
	if e.Room != "stage" || e.Code != 1002055 || e.Info.Reason != "kicked_by_backend" || e.Info.ZIMState != "Disconnected" ||
		e.Info.ZIMEvent != "KickedOut" {
		t.Errorf("alice's KickOut %v %+v", e, e.Info)
	}
	bob.waitStreams("stage", client.UpdateDelete, "alice-cam")
	bob.waitUsers("stage", client.UpdateDelete, "alice")
	// The log says which admin asked: the subject of its token.
	kick := findEvent(t, n, "stage", func(e domain.Event) bool {
		d, ok := e.Data.(*domain.MemberLeftData)
		return ok && d.User == "alice"
	}).Data.(*domain.MemberLeftData)
	if kick.Reason != domain.ReasonKickedByBackend || kick.Detail != "spam" || kick.Admin != "scenario" {
		t.Errorf("the kick as the log has it: %+v, want kicked_by_backend, spam, by admin scenario", kick)
	}
	bobAfterKick := len(bob.seen)
	var refused adminError
	if code := adminCall(t, n, "POST", roomPath("stage")+"/kick", admin.KickRequest{User: "alice"}, &refused); code != http.StatusNotFound ||
		refused.Code != domain.ErrUserNotInRoom.Code {
		t.Errorf("kicking alice again: %d %+v", code, refused)
	}
	// Alice is out of the stage and still backstage.
	if _, err := alice.c.SendBroadcastMessage(clienttest.Ctx(t), "stage", "let me in"); !errors.Is(err, domain.ErrNotLoggedIn) {
		t.Errorf("alice broadcasts on the stage after the kick: %v", err)
	}
	alice.broadcast("backstage", "still here")
	carol.waitBroadcast("backstage", "still here")

	// Alice's network fails for longer than the heartbeat timeout: the
	// server times her session out (carol sees her leave), and when the
	// network is back the client logs in again where it was: backstage only.
	proxy.Refuse(true)
	proxy.Cut()
	alice.waitState("backstage", client.StateReconnecting)
	advance(t, n, clock, 91*time.Second, bob.beating(), dave.beating(), carol.beating())
	carol.waitUsers("backstage", client.UpdateDelete, "alice")
	proxy.Refuse(false)
	alice.waitState("backstage", client.StateLogined)
	carol.waitUsers("backstage", client.UpdateAdd, "alice")
	alice.broadcast("backstage", "back again")
	carol.waitBroadcast("backstage", "back again")
	// By now a re-entry of the stage would have happened: the client enters
	// its rooms again in the order it first entered them, the stage first.
	// Alice was told nothing more of the stage after her KickOut, and bob
	// never saw her come back (dave's message marks the end of what bob was
	// told).
	after := false
	for _, e := range alice.seen {
		if after && e.Room == "stage" {
			t.Errorf("alice heard of the stage after her KickOut: %v", e)
		}
		after = after || (e.Kind == "state" && e.State == client.StateKickOut)
	}
	dave.broadcast("stage", "the show goes on")
	bob.waitBroadcast("stage", "the show goes on")
	for _, e := range bob.since(bobAfterKick) {
		if e.Kind == "user" && e.Type == client.UpdateAdd && clienttest.HasUser(e.Users, "alice") {
			t.Errorf("bob saw alice come back to the stage: %v", e)
		}
	}
	ms := waitMembers(t, n, "stage", "bob and dave", func(ms []admin.Member) bool { return len(ms) == 2 })
	if _, in := memberOf(ms, "alice"); in {
		t.Errorf("the stage's members: %+v", ms)
	}
}

// A second live session of the same user logging into a room the first one
// is in is a duplicate login: the older session is kicked out of all its
// rooms (KickOut 1002050 in each, naming the session that caused it), and
// its streams stop. In the room of the new login the others see the user
// leave and come back (the older session's departure and the newer one's
// arrival, one recorded step); in the other rooms they see the user leave.
// The kicked client does not come back.
func TestDuplicateLoginKicksTheOlderSessionOutOfAllRooms(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, clienttest.NodeOptions{})
	addr := n.HTTPAddr()
	laptop := newPerson(t, n, addr, "alice", "alice-laptop", true)
	bob := newPerson(t, n, addr, "bob", "bob", false)
	carol := newPerson(t, n, addr, "carol", "carol", false)
	laptop.login("stage", "")
	laptop.login("backstage", "")
	laptop.publish("alice-cam", "backstage")
	bob.login("stage", "")
	bob.waitUsers("stage", client.UpdateAdd, "alice") // already there
	carol.login("backstage", "")
	carol.waitStreams("backstage", client.UpdateAdd, "alice-cam")

	phone := newPerson(t, n, addr, "alice", "alice-phone", true)
	phone.login("stage", "")
	if e := phone.waitFor("bob, already there", func(e clienttest.Event) bool { return e.Kind == "user" }); e.Room != "stage" ||
		e.Type != client.UpdateAdd || !slices.Equal(userIDs(e.Users), []string{"bob"}) {
		t.Errorf("the phone's users after login: %v", e)
	}

	// The laptop is kicked out of both rooms, each time naming the phone.
	kicked := map[string]clienttest.Event{}
	for len(kicked) < 2 {
		e := laptop.waitFor("KickOut", func(e clienttest.Event) bool { return e.Kind == "state" })
		if e.State != client.StateKickOut {
			t.Fatalf("the laptop got %v before its KickOuts", e)
		}
		kicked[e.Room] = e
	}
	for _, room := range []string{"stage", "backstage"} {
		e, ok := kicked[room]
		if !ok || e.Code != 1002050 || e.Info.Reason != "kicked_duplicate_login" || e.Info.BySession != phone.c.Session() ||
			e.Info.ZIMEvent != "KickedOutByOtherDevice" {
			t.Errorf("the laptop's KickOut in %s: %v %+v (the phone is %s)", room, e, e.Info, phone.c.Session())
		}
	}

	// On the stage bob sees alice leave and come back, in that order; she is
	// there once, as the phone's session.
	mark := len(bob.seen)
	bobsUpdates := func() []string {
		var updates []string
		for _, e := range bob.since(mark) {
			if e.Kind == "user" {
				updates = append(updates, string(e.Type)+" "+strings.Join(userIDs(e.Users), ","))
			}
		}
		return updates
	}
	bob.waitUsers("stage", client.UpdateDelete, "alice")
	bob.waitUsers("stage", client.UpdateAdd, "alice")
	if got := bobsUpdates(); !slices.Equal(got, []string{"DELETE alice", "ADD alice"}) {
		t.Errorf("bob's user updates at the duplicate login: %v", got)
	}
	q, err := bob.c.QueryRoom(clienttest.Ctx(t), "stage")
	if err != nil {
		t.Fatal(err)
	}
	if got := userIDs(q.Users); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Errorf("the stage's users: %v", got)
	}
	ms := waitMembers(t, n, "stage", "alice", func(ms []admin.Member) bool { _, ok := memberOf(ms, "alice"); return ok })
	if m, _ := memberOf(ms, "alice"); m.Session != phone.c.Session() {
		t.Errorf("alice is on the stage as session %s, want the phone's %s", m.Session, phone.c.Session())
	}

	// Backstage carol sees alice's stream stop and alice leave; the phone
	// never logged in there, so alice is gone.
	carol.waitStreams("backstage", client.UpdateDelete, "alice-cam")
	carol.waitUsers("backstage", client.UpdateDelete, "alice")
	q, err = carol.c.QueryRoom(clienttest.Ctx(t), "backstage")
	if err != nil {
		t.Fatal(err)
	}
	if got := userIDs(q.Users); !slices.Equal(got, []string{"carol"}) {
		t.Errorf("backstage's users: %v", got)
	}

	// The laptop stays out: it is in no room and does not try to get back.
	for _, room := range []string{"stage", "backstage"} {
		if _, err := laptop.c.SendBroadcastMessage(clienttest.Ctx(t), room, "am I in?"); !errors.Is(err, domain.ErrNotLoggedIn) {
			t.Errorf("the laptop broadcasts in %s after the kick: %v", room, err)
		}
	}
	// The phone publishes the stream the laptop had (its ID was freed) and
	// speaks on the stage; by the time bob hears it, a laptop that tried to
	// come back would have shown up as a second DELETE and ADD.
	phone.publish("alice-cam", "stage")
	bob.waitStreams("stage", client.UpdateAdd, "alice-cam")
	phone.broadcast("stage", "on my phone now")
	bob.waitBroadcast("stage", "on my phone now")
	if got := bobsUpdates(); !slices.Equal(got, []string{"DELETE alice", "ADD alice"}) {
		t.Errorf("bob's user updates since the duplicate login: %v", got)
	}
	// Nor is the phone ever told about its own user leaving or arriving.
	bob.broadcast("stage", "welcome, phone")
	phone.waitBroadcast("stage", "welcome, phone")
	for _, e := range phone.seen {
		if e.Kind == "user" && clienttest.HasUser(e.Users, "alice") {
			t.Errorf("the phone was told %v", e)
		}
	}

	// In the rooms' histories each kick is an event with its reason and the
	// session that caused it; on the stage the laptop's departure and the
	// phone's arrival are one step (one correlation).
	kicks := map[string]domain.Event{}
	for _, room := range []string{"stage", "backstage"} {
		kicks[room] = findEvent(t, n, room, func(e domain.Event) bool {
			d, ok := e.Data.(*domain.MemberLeftData)
			return ok && d.User == "alice" && string(d.Session) == laptop.c.Session()
		})
		d := kicks[room].Data.(*domain.MemberLeftData)
		if d.Reason != domain.ReasonKickedDuplicateLogin || string(d.BySession) != phone.c.Session() {
			t.Errorf("the laptop's departure from %s as recorded: %+v", room, d)
		}
	}
	arrival := findEvent(t, n, "stage", func(e domain.Event) bool {
		d, ok := e.Data.(*domain.MemberJoinedData)
		return ok && string(d.Session) == phone.c.Session()
	})
	if arrival.Seq != kicks["stage"].Seq+1 || arrival.Correlation != kicks["stage"].Correlation {
		t.Errorf("the kick (seq %d, correlation %s) and the phone's arrival (seq %d, correlation %s) are apart",
			kicks["stage"].Seq, kicks["stage"].Correlation, arrival.Seq, arrival.Correlation)
	}
}
