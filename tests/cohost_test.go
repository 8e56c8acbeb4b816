package tests

import (
	"errors"
	"slices"
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/admin"
	"github.com/roomlog/roomlog/transport/client"
)

// Cross-room co-hosting the ZEGO way: each anchor has one multi-room session,
// logged into its own room as anchor (publishing) and into the other
// anchor's room as audience (playing the other's stream). Each room's member
// list shows the visiting anchor as audience; the visitor hears of the
// stream as the room's members do, and may play but not publish there.
func TestCrossRoomCoHostingOneSessionPerAnchor(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, clienttest.NodeOptions{})
	addr := n.HTTPAddr()
	a := newPerson(t, n, addr, "anchor-a", "anchor-a", true)
	b := newPerson(t, n, addr, "anchor-b", "anchor-b", true)
	u := newPerson(t, n, addr, "viewer-u", "viewer-u", false) // watches A in room 1000
	x := newPerson(t, n, addr, "viewer-x", "viewer-x", false) // watches B in room 2000

	a.login("1000", client.RoleAnchor)
	a.publish("a-cam", "1000")
	b.login("2000", client.RoleAnchor)
	b.publish("b-cam", "2000")
	u.login("1000", client.RoleAudience)
	u.play("a-cam", "1000")
	x.login("2000", client.RoleAudience)
	x.play("b-cam", "2000")

	// A visits room 2000 as audience: the login brings B's stream as ADD,
	// and A plays it there; X sees A arrive.
	snap := a.login("2000", client.RoleAudience)
	if got := userIDs(snap.Users); !slices.Equal(got, []string{"anchor-a", "anchor-b", "viewer-x"}) {
		t.Errorf("room 2000 as A entered it: %v", got)
	}
	if e := a.waitStreams("2000", client.UpdateAdd, "b-cam"); e.Streams[0].User != b.user {
		t.Errorf("A was told of b-cam as %+v", e.Streams)
	}
	a.play("b-cam", "2000")
	if e := x.waitUsers("2000", client.UpdateAdd, "anchor-a"); e.Users[0].Role != client.RoleAudience {
		t.Errorf("X was told A arrived as %+v, want audience", e.Users)
	}
	b.waitUsers("2000", client.UpdateAdd, "anchor-a")

	// B visits room 1000 and plays A's stream by its ID alone, the Web
	// SDK's way: the stream is published in one of B's rooms, so that room
	// is the one it is played in.
	b.login("1000", client.RoleAudience)
	b.waitStreams("1000", client.UpdateAdd, "a-cam")
	if room, err := b.c.StartPlayingStream(clienttest.Ctx(t), "a-cam", ""); err != nil || room != "1000" {
		t.Fatalf("B plays a-cam without naming the room: %q, %v", room, err)
	}
	u.waitUsers("1000", client.UpdateAdd, "anchor-b")
	a.waitUsers("1000", client.UpdateAdd, "anchor-b")

	// Each room's member list shows its own anchor as anchor (publishing)
	// and the visiting anchor as audience (playing, may not publish).
	for _, room := range []struct{ id, host, guest, hostCam, guestPlays string }{
		{"1000", "anchor-a", "anchor-b", "a-cam", "a-cam"},
		{"2000", "anchor-b", "anchor-a", "b-cam", "b-cam"},
	} {
		ms := waitMembers(t, n, room.id, "the visiting anchor playing", func(ms []admin.Member) bool {
			g, ok := memberOf(ms, room.guest)
			return ok && slices.Equal(g.Playing, []string{room.guestPlays})
		})
		host, _ := memberOf(ms, room.host)
		guest, _ := memberOf(ms, room.guest)
		if host.Role != client.RoleAnchor || !host.CanPublish || !slices.Equal(host.Publishing, []string{room.hostCam}) {
			t.Errorf("room %s: its anchor %+v", room.id, host)
		}
		if guest.Role != client.RoleAudience || guest.CanPublish || len(guest.Publishing) != 0 {
			t.Errorf("room %s: the visiting anchor %+v", room.id, guest)
		}
		// One session per anchor: the same session is in both rooms.
		if want := map[string]string{"anchor-a": a.c.Session(), "anchor-b": b.c.Session()}; host.Session != want[room.host] ||
			guest.Session != want[room.guest] {
			t.Errorf("room %s: sessions %s and %s, want %v", room.id, host.Session, guest.Session, want)
		}
	}
	// The audiences see the visitors in their member lists.
	for _, c := range []struct {
		p    *person
		room string
	}{{u, "1000"}, {x, "2000"}} {
		q, err := c.p.c.QueryRoom(clienttest.Ctx(t), c.room)
		if err != nil {
			t.Fatal(err)
		}
		if got := userIDs(q.Users); !slices.Equal(got, []string{"anchor-a", "anchor-b", c.p.user.ID}) {
			t.Errorf("room %s's users as %s sees them: %v", c.room, c.p.user.ID, got)
		}
		// With their roles: the room's own anchor, the visiting one as audience.
		host := map[string]string{"1000": "anchor-a", "2000": "anchor-b"}[c.room]
		for _, u := range q.Users {
			if want := map[bool]string{true: client.RoleAnchor, false: client.RoleAudience}[u.ID == host]; u.Role != want {
				t.Errorf("room %s lists %s as %q, want %q", c.room, u.ID, u.Role, want)
			}
		}
	}

	// A visitor is audience in the other room: it may not publish there,
	// though it publishes in its own.
	_, err := a.c.StartPublishingStream(clienttest.Ctx(t), "a-cam-2", client.PublishOptions{Room: "2000"})
	var ce *client.Error
	if !errors.Is(err, domain.ErrPublishNotAllowed) || !errors.As(err, &ce) || ce.Code != 1903002 {
		t.Errorf("A publishes in room 2000 as audience: %v", err)
	}

	// The co-hosting ends: A leaves room 2000. In multi-room mode that
	// stops only what A did in room 2000: A still publishes in room 1000,
	// where B and U still see A.
	if err := a.c.LogoutRoom(clienttest.Ctx(t), "2000"); err != nil {
		t.Fatal(err)
	}
	if e := a.waitState("2000", client.StateLogout); e.Code != 0 || e.Info.Reason != "logout" {
		t.Errorf("A's logout of room 2000: %v", e)
	}
	x.waitUsers("2000", client.UpdateDelete, "anchor-a")
	waitMembers(t, n, "2000", "A gone", func(ms []admin.Member) bool { _, in := memberOf(ms, "anchor-a"); return !in })
	if err := a.c.SetStreamExtraInfo(clienttest.Ctx(t), "a-cam", "solo again"); err != nil {
		t.Fatalf("A's stream in room 1000 after leaving room 2000: %v", err)
	}
	for _, p := range []*person{b, u} {
		mark := len(p.seen)
		e := p.waitFor("a-cam's extra info", func(e clienttest.Event) bool { return e.Kind == "stream_extra" })
		if e.Room != "1000" || len(e.Streams) != 1 || e.Streams[0].ExtraInfo != "solo again" {
			t.Errorf("%s: %v", p.rec.Name(), e)
		}
		for _, e := range p.since(mark) {
			if e.Room == "1000" && (e.Kind == "stream" || e.Kind == "user") && e.Type == client.UpdateDelete {
				t.Errorf("%s saw %v in room 1000 when A left room 2000", p.rec.Name(), e)
			}
		}
	}

	// A stops its stream: its visitor B and its viewer U see it go.
	if err := a.c.StopPublishingStream(clienttest.Ctx(t), "a-cam"); err != nil {
		t.Fatal(err)
	}
	b.waitStreams("1000", client.UpdateDelete, "a-cam")
	u.waitStreams("1000", client.UpdateDelete, "a-cam")
}

// Cross-room co-hosting the TRTC way: one client (connection, session) per
// room. Anchor A's second client joins room 2000 as audience, B's joins room
// 1000. The same user ID in another room on another session is not a
// duplicate login (that is one session per user and room), so the anchors'
// first clients are not kicked: each user is anchor in one room and
// audience in the other.
func TestCrossRoomCoHostingOneClientPerRoom(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, clienttest.NodeOptions{})
	addr := n.HTTPAddr()
	a1 := newPerson(t, n, addr, "anchor-a", "anchor-a@1000", false)
	b1 := newPerson(t, n, addr, "anchor-b", "anchor-b@2000", false)
	u := newPerson(t, n, addr, "viewer-u", "viewer-u", false)
	x := newPerson(t, n, addr, "viewer-x", "viewer-x", false)
	a1.login("1000", client.RoleAnchor)
	a1.publish("a-cam", "1000")
	b1.login("2000", client.RoleAnchor)
	b1.publish("b-cam", "2000")
	u.login("1000", client.RoleAudience)
	x.login("2000", client.RoleAudience)

	a2 := newPerson(t, n, addr, "anchor-a", "anchor-a@2000", false)
	a2.login("2000", client.RoleAudience)
	a2.waitStreams("2000", client.UpdateAdd, "b-cam")
	a2.play("b-cam", "2000")
	b2 := newPerson(t, n, addr, "anchor-b", "anchor-b@1000", false)
	b2.login("1000", client.RoleAudience)
	b2.waitStreams("1000", client.UpdateAdd, "a-cam")
	b2.play("a-cam", "1000")
	x.waitUsers("2000", client.UpdateAdd, "anchor-a")
	u.waitUsers("1000", client.UpdateAdd, "anchor-b")

	// An audience client cannot publish (1903002), and nobody hears of it.
	for _, c := range []struct {
		p    *person
		room string
	}{{a2, "2000"}, {b2, "1000"}} {
		_, err := c.p.c.StartPublishingStream(clienttest.Ctx(t), c.p.user.ID+"-guest-cam", client.PublishOptions{})
		var ce *client.Error
		if !errors.Is(err, domain.ErrPublishNotAllowed) || !errors.As(err, &ce) || ce.Code != 1903002 {
			t.Errorf("%s publishes in %s as audience: %v", c.p.rec.Name(), c.room, err)
		}
	}

	// Each room: its anchor's first client as anchor, the other anchor's
	// second client as audience, playing.
	sessions := map[string]string{"1000": a1.c.Session(), "2000": b1.c.Session()}
	guests := map[string]string{"1000": b2.c.Session(), "2000": a2.c.Session()}
	for room, host := range map[string]string{"1000": "anchor-a", "2000": "anchor-b"} {
		guest, cam := "anchor-b", "a-cam"
		if room == "2000" {
			guest, cam = "anchor-a", "b-cam"
		}
		ms := waitMembers(t, n, room, "the guest playing", func(ms []admin.Member) bool {
			g, ok := memberOf(ms, guest)
			return ok && slices.Equal(g.Playing, []string{cam})
		})
		h, _ := memberOf(ms, host)
		g, _ := memberOf(ms, guest)
		if h.Role != client.RoleAnchor || h.Session != sessions[room] || !slices.Equal(h.Publishing, []string{cam}) {
			t.Errorf("room %s: anchor %+v", room, h)
		}
		if g.Role != client.RoleAudience || g.Session != guests[room] || g.CanPublish || len(g.Publishing) != 0 {
			t.Errorf("room %s: guest %+v", room, g)
		}
		if len(ms) != 3 {
			t.Errorf("room %s: %d members, want anchor, guest and viewer: %+v", room, len(ms), ms)
		}
	}

	// The viewers say goodbye; up to that, the anchors' first clients were
	// never kicked and never saw their own user leave, and nobody saw a
	// guest's stream.
	u.broadcast("1000", "bye from 1000")
	x.broadcast("2000", "bye from 2000")
	for _, p := range []*person{a1, b2} {
		p.waitBroadcast("1000", "bye from 1000")
	}
	for _, p := range []*person{b1, a2} {
		p.waitBroadcast("2000", "bye from 2000")
	}
	for _, p := range []*person{a1, b1, a2, b2, u, x} {
		for _, e := range p.seen {
			switch {
			case e.Kind == "state" && (e.State == client.StateKickOut || e.State == client.StateLogout):
				t.Errorf("%s: %v", p.rec.Name(), e)
			case e.Kind == "user" && e.Type == client.UpdateDelete:
				t.Errorf("%s saw someone leave: %v", p.rec.Name(), e)
			case e.Kind == "stream" && slices.ContainsFunc(e.Streams, func(s client.Stream) bool {
				return s.Stream != "a-cam" && s.Stream != "b-cam"
			}):
				t.Errorf("%s heard of a guest's stream: %v", p.rec.Name(), e)
			}
		}
	}
}
