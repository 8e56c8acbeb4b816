package tests

import (
	"fmt"
	"slices"
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/admin"
	"github.com/roomlog/roomlog/transport/client"
)

// The ZEGO "super small class": a teacher publishes in the big class room,
// every student plays that stream there and also sits in a small group room
// where the group chats and co-hosts, and an assistant moves from group to
// group. Multi-room mode is what keeps the rooms apart: a group's messages
// and streams never reach the other groups or the class as a whole.
func TestSuperSmallClass(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, clienttest.NodeOptions{})
	addr := n.HTTPAddr()
	const class, cam = "class", "teacher-cam"
	group := func(g int) string { return fmt.Sprintf("group-%d", g) }

	teacher := newPerson(t, n, addr, "teacher", "teacher", true)
	teacher.login(class, client.RoleAnchor)
	var students []*person
	for i := 1; i <= 6; i++ {
		id := fmt.Sprintf("s%d", i)
		students = append(students, newPerson(t, n, addr, id, id, true))
	}
	// groupOf is the group room of student i (0-based): pairs 1, 2, 3.
	groupOf := func(i int) string { return group(i/2 + 1) }
	partnerOf := func(i int) *person { return students[i^1] }

	// Two students are early: they hear of the teacher's stream as it starts.
	for _, s := range students[:2] {
		s.login(class, client.RoleAudience)
	}
	if _, err := teacher.c.StartPublishingStream(clienttest.Ctx(t), cam, client.PublishOptions{Room: class,
		ExtraInfo: "fractions"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range students[:2] {
		e := s.waitStreams(class, client.UpdateAdd, cam)
		if st := e.Streams[0]; len(e.Streams) != 1 || st.User != teacher.user || st.ExtraInfo != "fractions" {
			t.Errorf("%s: the teacher's stream as %+v", s.rec.Name(), e.Streams)
		}
	}
	// The others are late: their login brings the stream as ADD, right
	// after Logined and the users already there, as ZEGO SDKs call back.
	for _, s := range students[2:] {
		snap := s.login(class, client.RoleAudience)
		if len(snap.Streams) != 1 || snap.Streams[0].Stream != cam {
			t.Errorf("%s: the class's streams at login: %+v", s.rec.Name(), snap.Streams)
		}
		e := s.waitFor("the class's streams after Logined", func(e clienttest.Event) bool {
			return e.Kind == "stream" || e.Kind == "state"
		})
		if e.Kind != "stream" || e.Room != class || e.Type != client.UpdateAdd || len(e.Streams) != 1 ||
			e.Streams[0].Stream != cam || e.Streams[0].User != teacher.user {
			t.Errorf("%s: after Logined %v, want the teacher's stream as ADD", s.rec.Name(), e)
		}
	}
	// Everyone plays the teacher, naming the room as multi-room mode wants;
	// the backend sees who watches.
	for _, s := range students {
		s.play(cam, class)
	}
	waitMembers(t, n, class, "every student playing the teacher", func(ms []admin.Member) bool {
		for _, s := range students {
			if m, ok := memberOf(ms, s.user.ID); !ok || !slices.Equal(m.Playing, []string{cam}) {
				return false
			}
		}
		return true
	})

	// The assistant watches the class too (as audience) and starts in
	// group 1.
	assistant := newPerson(t, n, addr, "assistant", "assistant", true)
	assistant.login(class, client.RoleAudience)
	assistant.waitStreams(class, client.UpdateAdd, cam)

	// The groups form: each pair logs into its group room and sees the other.
	for i, s := range students {
		s.login(groupOf(i), "")
		if i%2 == 1 {
			s.waitUsers(groupOf(i), client.UpdateAdd, partnerOf(i).user.ID)
			partnerOf(i).waitUsers(groupOf(i), client.UpdateAdd, s.user.ID)
		}
	}
	assistant.login(group(1), client.RoleAudience)
	for _, s := range students[:2] {
		s.waitUsers(group(1), client.UpdateAdd, "assistant")
	}

	// Each group chats: a broadcast to the group, and a custom command to
	// one user (the first student), which the assistant in group 1 does
	// not get.
	for i := 0; i < len(students); i += 2 {
		first, second, g := students[i], students[i+1], groupOf(i)
		sent := first.broadcast(g, "question from "+g)
		m := second.waitBroadcast(g, "question from "+g)
		if m.From != first.user || m.MessageID != sent.ID || m.SendTime == 0 {
			t.Errorf("%s got %+v in %s, sent %+v", second.rec.Name(), m, g, sent)
		}
		if _, err := second.c.SendCustomCommand(clienttest.Ctx(t), g, "raise-hand", []string{first.user.ID}); err != nil {
			t.Fatal(err)
		}
		e := first.waitFor("the command in "+g, func(e clienttest.Event) bool { return e.Kind == "command" })
		if e.Room != g || e.Cmd.Command != "raise-hand" || e.Cmd.From != second.user {
			t.Errorf("%s got the command %+v in %s", first.rec.Name(), e.Cmd, e.Room)
		}
	}
	assistant.waitBroadcast(group(1), "question from group-1")

	// Each group co-hosts: its first student publishes in the group room,
	// the partner (and the assistant in group 1) get ADD and play it.
	for i := 0; i < len(students); i += 2 {
		first, second, g := students[i], students[i+1], groupOf(i)
		first.publish(first.user.ID+"-cam", g)
		second.waitStreams(g, client.UpdateAdd, first.user.ID+"-cam")
		second.play(first.user.ID+"-cam", g)
	}
	assistant.waitStreams(group(1), client.UpdateAdd, "s1-cam")

	// The assistant moves to group 2, then group 3. Each move: Logout in
	// the old group (reason switch), Logining and Logined in the new one,
	// then the new group's users and streams; the old group sees the
	// assistant DELETEd, the new one ADDed.
	for g := 1; g <= 2; g++ {
		from, to := group(g), group(g+1)
		snap, err := assistant.c.SwitchRoom(clienttest.Ctx(t), from, to, client.SwitchOptions{Token: assistant.token(),
			Role: client.RoleAudience})
		if err != nil {
			t.Fatalf("switch %s → %s: %v", from, to, err)
		}
		inTo := []string{"assistant", students[2*g].user.ID, students[2*g+1].user.ID}
		if got := userIDs(snap.Users); !slices.Equal(got, inTo) {
			t.Errorf("%s's users at the switch: %v, want %v", to, got, inTo)
		}
		var states []string
		for len(states) < 3 {
			e := assistant.waitFor("the switch's states", func(e clienttest.Event) bool { return e.Kind == "state" })
			states = append(states, fmt.Sprintf("%s %s %d %s", e.Room, e.State, e.Code, e.Info.Reason))
		}
		if slices.Index(states, to+" Logining 0 ") > slices.Index(states, to+" Logined 0 ") {
			t.Errorf("the assistant's states at the switch: %q, Logined before Logining", states)
		}
		slices.Sort(states)
		want := []string{from + " Logout 0 switch", to + " Logined 0 ", to + " Logining 0 "}
		if !slices.Equal(states, want) {
			t.Errorf("the assistant's states at the switch: %q, want %q", states, want)
		}
		assistant.waitStreams(to, client.UpdateAdd, students[2*g].user.ID+"-cam")
		for _, s := range students[2*g-2 : 2*g] {
			s.waitUsers(from, client.UpdateDelete, "assistant")
		}
		for _, s := range students[2*g : 2*g+2] {
			s.waitUsers(to, client.UpdateAdd, "assistant")
		}
	}
	// The assistant now talks to group 3 only, and no longer hears group 1.
	assistant.broadcast(group(3), "any questions?")
	for _, s := range students[4:] {
		s.waitBroadcast(group(3), "any questions?")
	}
	students[0].broadcast(group(1), "has the assistant gone?")
	students[1].waitBroadcast(group(1), "has the assistant gone?")

	// Each switch is one recorded step: its leaving half in the old room
	// and its joining half in the new one share one correlation ID, so an
	// auditor sees one move, not a logout and an unrelated login.
	for g := 1; g <= 2; g++ {
		left := findEvent(t, n, group(g), func(e domain.Event) bool {
			d, ok := e.Data.(*domain.MemberLeftData)
			return ok && d.User == "assistant" && d.Reason == domain.ReasonSwitch
		})
		joined := findEvent(t, n, group(g+1), func(e domain.Event) bool {
			d, ok := e.Data.(*domain.MemberJoinedData)
			return ok && d.User == "assistant" && d.Via == domain.ViaSwitch
		})
		if left.Correlation == "" || left.Correlation != joined.Correlation {
			t.Errorf("switch %s → %s: correlations %q and %q", group(g), group(g+1), left.Correlation, joined.Correlation)
		}
	}

	// The teacher stops: everyone in the class sees the stream DELETEd.
	if err := teacher.c.StopPublishingStream(clienttest.Ctx(t), cam); err != nil {
		t.Fatal(err)
	}
	for _, p := range append([]*person{assistant}, students...) {
		e := p.waitStreams(class, client.UpdateDelete, cam)
		if len(e.Streams) != 1 || e.Streams[0].User != teacher.user {
			t.Errorf("%s: DELETE %+v", p.rec.Name(), e.Streams)
		}
	}

	// A last message in the class marks the end of what each person was
	// told (a connection gets its rooms' events in log order). Up to it,
	// nobody heard of a room they are not in, and what they heard of their
	// group came from their group.
	teacher.broadcast(class, "class over")
	for _, p := range append([]*person{assistant}, students...) {
		p.waitBroadcast(class, "class over")
	}
	assistant.broadcast(class, "bye")
	teacher.waitBroadcast(class, "bye")

	teacher.onlyIn(class)
	for _, e := range teacher.seen {
		if e.Kind == "stream" || e.Kind == "command" || (e.Kind == "broadcast" && e.Msgs[0].Message != "bye") {
			t.Errorf("the teacher was told %v", e)
		}
	}
	for i, s := range students {
		g, partner := groupOf(i), partnerOf(i)
		s.onlyIn(class, g)
		for _, e := range s.seen {
			switch {
			case e.Kind == "stream" && e.Room == class && !hasStream(e.Streams, cam),
				e.Kind == "stream" && e.Room == g && (len(e.Streams) != 1 || e.Streams[0].User != partner.user):
				t.Errorf("%s was told of a stream not its partner's or the teacher's: %v", s.rec.Name(), e)
			case e.Kind == "broadcast" && e.Room == g && e.Msgs[0].From != partner.user && e.Msgs[0].From.ID != "assistant":
				t.Errorf("%s got a message in %s from %v", s.rec.Name(), g, e.Msgs[0].From)
			case e.Kind == "command" && (i%2 == 1 || e.Cmd.From != partner.user):
				t.Errorf("%s got a command meant for someone else: %+v", s.rec.Name(), e.Cmd)
			}
		}
	}
	assistant.onlyIn(class, group(1), group(2), group(3))
	left := map[string]bool{}
	for _, e := range assistant.seen {
		switch {
		case e.Kind == "command":
			t.Errorf("the assistant got a command addressed to one student: %+v", e.Cmd)
		case left[e.Room]:
			t.Errorf("the assistant heard of %s after leaving it: %v", e.Room, e)
		case e.Kind == "state" && e.State == client.StateLogout:
			left[e.Room] = true
		}
	}
}
