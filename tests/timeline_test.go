package tests

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections/timeline"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/client"
)

// view is a room as a client sees it: members, streams, extra info.
type view struct {
	Seq     uint64
	Users   []string
	Streams []string // "<stream>/<user>"
	Extra   []string // "<key>=<value>"
}

func viewOfSnapshot(s *client.RoomSnapshot) view {
	v := view{Seq: s.Seq}
	for _, u := range s.Users {
		v.Users = append(v.Users, u.ID)
	}
	for _, st := range s.Streams {
		v.Streams = append(v.Streams, st.Stream+"/"+st.User.ID)
	}
	for _, x := range s.ExtraInfo {
		v.Extra = append(v.Extra, x.Key+"="+x.Value)
	}
	slices.Sort(v.Users)
	slices.Sort(v.Streams)
	slices.Sort(v.Extra)
	return v
}

func viewOfRoom(r *domain.Room) view {
	v := view{Seq: r.Seq}
	for _, u := range slices.Sorted(maps.Keys(r.Members)) {
		v.Users = append(v.Users, string(u))
	}
	for _, id := range slices.Sorted(maps.Keys(r.Streams)) {
		v.Streams = append(v.Streams, string(id)+"/"+string(r.Streams[id].User))
	}
	for _, k := range slices.Sorted(maps.Keys(r.ExtraInfo)) {
		v.Extra = append(v.Extra, k+"="+r.ExtraInfo[k].Value)
	}
	return v
}

// An auditor's replay of a room at any sequence is what live clients saw
// there, and its timeline tells exactly what happened: a scripted session
// with joins, a switch, a stream, a message, extra info, a kick and a
// heartbeat timeout, the room's state recorded by a member after each step.
func TestReplayAtEachSequenceIsWhatClientsSaw(t *testing.T) {
	t.Parallel()
	clock := estest.NewClock(time.Now())
	n := clienttest.StartNode(t, clienttest.NodeOptions{Clock: clock})
	addr := n.HTTPAddr()
	teacher := newBeatingPerson(t, n, addr, "teacher", "teacher")
	student := newBeatingPerson(t, n, addr, "student", "student")
	carol := newBeatingPerson(t, n, addr, "carol", "carol")
	dave := newPerson(t, n, addr, "dave", "dave", false)
	ctx := clienttest.Ctx(t)

	var seen []view
	// record waits until the teacher's view of the room has caught up with
	// the room's last event in the log, and keeps it.
	record := func(what string) {
		t.Helper()
		events := roomEvents(t, n, "class")
		last := events[len(events)-1].Seq
		deadline := time.Now().Add(clienttest.Wait)
		for {
			snap, err := teacher.c.QueryRoom(ctx, "class")
			if err != nil {
				t.Fatalf("%s: query: %v", what, err)
			}
			if snap.Seq >= last {
				seen = append(seen, viewOfSnapshot(snap))
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the teacher's view stayed at seq %d, the log is at %d", what, snap.Seq, last)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	teacher.login("class", "")
	record("teacher joined")
	student.login("class", "audience")
	record("student joined")
	carol.login("lab", "")
	if _, err := carol.c.SwitchRoom(ctx, "lab", "class", client.SwitchOptions{Token: carol.token()}); err != nil {
		t.Fatal(err)
	}
	record("carol switched in")
	carolSession := carol.c.Session()
	teacher.publish("teacher-cam", "class")
	record("stream published")
	student.broadcast("class", "hello")
	record("broadcast")
	if err := teacher.c.SetRoomExtraInfo(ctx, "class", "topic", "fractions"); err != nil {
		t.Fatal(err)
	}
	record("extra info")
	dave.login("class", "audience")
	record("dave joined")
	if code := adminCall(t, n, "POST", roomPath("class")+"/kick", map[string]string{"user": "dave", "reason": "spam"}, nil); code != 200 {
		t.Fatalf("kick: HTTP %d", code)
	}
	dave.waitState("class", client.StateKickOut)
	record("dave kicked")
	// carol's client goes away without logging out (closed, so that it
	// cannot come back and log in again, which would add to the script);
	// the others keep heartbeating past the timeout.
	carol.c.Close()
	advance(t, n, clock, 91*time.Second, teacher.beating(), student.beating())
	teacher.waitUsers("class", client.UpdateDelete, "carol")
	record("carol timed out")

	for _, v := range seen {
		r, err := timeline.Replay(ctx, n.Log, clienttest.App, "class", timeline.Point{Seq: v.Seq}, nil, nil)
		if err != nil {
			t.Fatalf("replay to seq %d: %v", v.Seq, err)
		}
		if got := viewOfRoom(r); !slices.Equal(got.Users, v.Users) || !slices.Equal(got.Streams, v.Streams) ||
			!slices.Equal(got.Extra, v.Extra) || got.Seq != v.Seq {
			t.Errorf("at seq %d clients saw %+v, the replay gives %+v", v.Seq, v, got)
		}
	}

	// The timeline lists every event of the room, in order, and says what
	// each step of the script did.
	var lines []string
	var seqs []uint64
	if _, err := timeline.Replay(ctx, n.Log, clienttest.App, "class", timeline.Point{}, func(e timeline.Entry, _ *domain.Room) error {
		lines = append(lines, e.Text)
		seqs = append(seqs, e.Seq)
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	events := roomEvents(t, n, "class")
	if len(seqs) != len(events) || seqs[0] != 1 || seqs[len(seqs)-1] != events[len(events)-1].Seq {
		t.Fatalf("the timeline has seqs %v, the room has %d events", seqs, len(events))
	}
	want := []string{
		"room created by teacher",
		"teacher (Teacher) joined as anchor",
		"student (Student) joined as audience",
		"carol (Carol) joined as anchor (session " + carolSession + ", via switch",
		"teacher (Teacher) published stream teacher-cam",
		`student (Student) said "hello"`,
		`teacher (Teacher) set extra info "topic" to "fractions"`,
		"dave (Dave) joined as audience",
		"dave (Dave) left: kicked_by_backend",
		"carol (Carol) left: heartbeat_timeout",
	}
	i := 0
	for _, l := range lines {
		if i < len(want) && strings.HasPrefix(l, want[i]) {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("the timeline lacks %q (in order); it reads:\n%s", want[i], strings.Join(lines, "\n"))
	}
	if len(lines) != len(want) {
		t.Errorf("the timeline has %d events for the script's %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
}
