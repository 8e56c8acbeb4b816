package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// writer opens the log in data folder dir and an engine writing to it on
// clock, with multi-room sessions allowed.
func writer(t *testing.T, dir string, clock *estest.Clock) (*eventstore.Log, *engine.Engine) {
	t.Helper()
	log, err := eventstore.Open(context.Background(), eventstore.Config{DataDir: dir, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	p := domain.DefaultPolicy()
	p.MultiRoom = true
	d, _ := domain.NewDecider(domain.Config{Default: p})
	e, err := engine.New(engine.Config{Log: log, Decider: d, Clock: clock.Now, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return log, e
}

// history writes a small history into a fresh data folder and closes it, as
// a stopped roomd leaves it.
func history(t *testing.T, tamper bool) (dir string, mid time.Time) {
	t.Helper()
	dir = t.TempDir()
	ctx := context.Background()
	clock := estest.NewClock(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC))
	log, e := writer(t, dir, clock)
	do := func(c domain.Command) {
		if _, err := e.Execute(ctx, domain.Meta{App: "dev"}, c); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
	}
	join := func(s domain.SessionID, u domain.UserID) domain.JoinRoom {
		return domain.JoinRoom{Session: s, User: domain.User{ID: u, Name: string(u)}, Mode: domain.MultiRoom,
			Room: "class 1.A", Role: domain.Anchor, Grant: domain.Grant{User: u, AllRooms: true, CanPublish: true},
			Create: domain.CreateIfMissing, Via: domain.ViaLogin}
	}
	do(join("s1", "teacher"))
	do(join("s2", "student"))
	mid = clock.Now()
	do(domain.SetRoomExtraInfo{Session: "s1", Room: "class 1.A", Key: "topic", Value: "fractions"})
	do(domain.LeaveRoom{Session: "s2", Room: "class 1.A"})
	if tamper {
		// A message appended behind the engine's back, breaking the chain.
		body, _, _ := domain.EncodeEvents("not the previous hash", []domain.Event{{ID: e.NewID(clock.Now()),
			Type: domain.RoomBroadcastSent, App: "dev", Aggregate: domain.KindRoom, AggregateID: "class 1.A", Seq: 9,
			Time: clock.Now(), Data: &domain.BroadcastSentData{From: "x", Session: "x", Body: "forged"}}})
		subject := log.Subject("dev", "room", "class 1.A")
		last, _, _ := log.Last(ctx, subject)
		if _, err := log.Append(ctx, eventstore.Message{Subject: subject, MsgID: "forged", Expected: last.Seq, Data: body}); err != nil {
			t.Fatal(err)
		}
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, mid
}

func roomctl(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return out.String() + errOut.String(), code
}

func TestVerify(t *testing.T) {
	dir, _ := history(t, false)
	out, code := roomctl(t, "verify", "-data", dir)
	if code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("verify of a sound log: exit %d\n%s", code, out)
	}
	dir, _ = history(t, true)
	out, code = roomctl(t, "verify", "-data", dir)
	if code != 1 || !strings.Contains(out, "room:dev:class 1.A: seqs 6..8 are missing") {
		t.Fatalf("verify of a tampered log: exit %d\n%s", code, out)
	}
}

func TestReplayToATimeAndASequence(t *testing.T) {
	dir, mid := history(t, false)
	state := func(args ...string) domain.Room {
		t.Helper()
		out, code := roomctl(t, append([]string{"replay", "-data", dir, "-room", "class 1.A"}, args...)...)
		if code != 0 {
			t.Fatalf("replay %v: exit %d\n%s", args, code, out)
		}
		var r domain.Room
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("replay output: %v\n%s", err, out)
		}
		return r
	}
	end := state()
	if len(end.Members) != 1 || end.ExtraInfo["topic"].Value != "fractions" {
		t.Errorf("at the end: %+v", end)
	}
	before := state("-at", mid.Add(-time.Millisecond).Format(time.RFC3339Nano))
	if len(before.Members) != 2 || before.ExtraInfo != nil {
		t.Errorf("before the extra info was set: %+v", before)
	}
	first := state("-to-seq", "2")
	if len(first.Members) != 1 || first.Members["teacher"] == nil {
		t.Errorf("after the room's second event: %+v", first)
	}
	if out, code := roomctl(t, "replay", "-data", dir, "-room", "nowhere"); code != 1 {
		t.Errorf("replay of an unknown room: exit %d\n%s", code, out)
	}
}

// tailLine is one line of roomctl tail.
type tailLine struct {
	Cursor string `json:"cursor"`
	Event  struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	} `json:"event"`
}

func tailLines(t *testing.T, out string) []tailLine {
	t.Helper()
	var lines []tailLine
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var v tailLine
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		lines = append(lines, v)
	}
	return lines
}

func TestTailFromACursor(t *testing.T) {
	dir, _ := history(t, false)
	out, code := roomctl(t, "tail", "-data", dir, "-app", "dev", "-room", "class 1.A")
	if code != 0 {
		t.Fatalf("tail: exit %d\n%s", code, out)
	}
	var types []string
	lines := tailLines(t, out)
	for _, l := range lines {
		types = append(types, l.Event.Type)
	}
	want := "room.created room.member_joined room.member_joined room.extra_info_updated room.member_left"
	if got := strings.Join(types, " "); got != want {
		t.Errorf("tail printed %s, want %s", got, want)
	}
	// The room's first message holds two events: created, joined.
	if lines[0].Cursor[:len(lines[0].Cursor)-2] != lines[1].Cursor[:len(lines[1].Cursor)-2] ||
		!strings.HasSuffix(lines[0].Cursor, ".0") || !strings.HasSuffix(lines[1].Cursor, ".1") {
		t.Errorf("the two events of one message have cursors %s and %s", lines[0].Cursor, lines[1].Cursor)
	}
	// Resuming after the first event prints the second event of its message, and the rest.
	out, _ = roomctl(t, "tail", "-data", dir, "-app", "dev", "-room", "class 1.A", "-after", lines[0].Cursor)
	if got := tailLines(t, out); len(got) != 4 || got[0].Cursor != lines[1].Cursor {
		t.Errorf("tail -after %s printed:\n%s", lines[0].Cursor, out)
	}
	if _, code := roomctl(t, "tail", "-data", dir, "-after", "1.x"); code != 2 {
		t.Errorf("a malformed cursor: exit %d, want 2", code)
	}
}

// failAfter is a writer that fails after n lines, as a consumer killed
// right after printing them.
type failAfter struct {
	n   int
	buf bytes.Buffer
}

func (w *failAfter) Write(p []byte) (int, error) {
	if w.n == 0 {
		return 0, errors.New("killed")
	}
	w.n -= bytes.Count(p, []byte("\n"))
	return w.buf.Write(p)
}

// A consumer killed after every single event of a run of multi-event
// commands, and resumed from the last cursor it printed, sees every event
// exactly once.
func TestTailResumedAfterEveryEventSeesEachOnce(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	clock := estest.NewClock(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC))
	log, e := writer(t, dir, clock)
	var do func(meta domain.Meta, c domain.Command)
	do = func(meta domain.Meta, c domain.Command) {
		res, err := e.Execute(ctx, meta, c)
		if err != nil {
			t.Fatalf("%s: %v", c.CommandName(), err)
		}
		clock.Advance(time.Second)
		for _, ap := range res.Appended {
			for i := range ap.Events {
				for _, f := range domain.FollowUps(&ap.Events[i]) {
					do(domain.Meta{App: "dev", Causation: f.Cause.ID.String(), Correlation: f.Cause.Correlation}, f.Command)
				}
			}
		}
	}
	multi := 0
	for i := range 5 {
		s, u := domain.SessionID(fmt.Sprint("s", i)), domain.UserID(fmt.Sprint("u", i))
		do(domain.Meta{App: "dev"}, domain.JoinRoom{Session: s, User: domain.User{ID: u}, Mode: domain.MultiRoom, Room: "class",
			Role: domain.Anchor, Grant: domain.Grant{User: u, AllRooms: true, CanPublish: true}, Create: domain.CreateIfMissing,
			Via: domain.ViaLogin})
		do(domain.Meta{App: "dev"}, domain.PublishStream{Session: s, Stream: domain.StreamID(fmt.Sprint("cam", i)), Room: "class"})
		do(domain.Meta{App: "dev"}, domain.PublishStream{Session: s, Stream: domain.StreamID(fmt.Sprint("mic", i)), Room: "class"})
		// A logout while publishing: stream_stopped twice and member_left, one message.
		do(domain.Meta{App: "dev"}, domain.LeaveRoom{Session: s, Room: "class", Reason: domain.ReasonLogout})
		multi++
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	full, code := roomctl(t, "tail", "-data", dir)
	if code != 0 {
		t.Fatal(full)
	}
	all := tailLines(t, full)
	var seen []tailLine
	cur := ""
	for runs := 0; ; runs++ {
		if runs > len(all)+1 {
			t.Fatalf("%d resumptions for %d events", runs, len(all))
		}
		w := &failAfter{n: 1}
		args := []string{"tail", "-data", dir}
		if cur != "" {
			args = append(args, "-after", cur)
		}
		run(ctx, args, w, io.Discard)
		got := tailLines(t, w.buf.String())
		if len(got) == 0 {
			break
		}
		seen = append(seen, got...)
		cur = got[len(got)-1].Cursor
	}
	if len(seen) != len(all) {
		t.Fatalf("resumed after every event, the consumer saw %d events; the log has %d", len(seen), len(all))
	}
	for i := range all {
		if seen[i] != all[i] {
			t.Fatalf("event %d: resumed consumer saw %+v, the log has %+v", i, seen[i], all[i])
		}
	}
	threes := 0
	for i := 2; i < len(all); i++ {
		if all[i].Event.Type == "room.member_left" && all[i-1].Event.Type == "room.stream_stopped" &&
			strings.HasSuffix(all[i].Cursor, ".2") {
			threes++
		}
	}
	if threes != multi {
		t.Errorf("%d logouts stored as one three-event message, want %d: the test proves little", threes, multi)
	}
}

func TestReplayTimelineAndDiff(t *testing.T) {
	dir, _ := history(t, false)
	out, code := roomctl(t, "replay", "-data", dir, "-room", "class 1.A", "-timeline")
	if code != 0 {
		t.Fatalf("replay -timeline: exit %d\n%s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{"room created by teacher", "teacher joined as anchor", "student joined as anchor",
		`teacher set extra info "topic" to "fractions"`, "student left: logout"}
	if len(lines) != len(want) {
		t.Fatalf("timeline:\n%s", out)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], "#"+strconv.Itoa(i+1)+" ") || !strings.Contains(lines[i], w) {
			t.Errorf("line %d is %q, want seq %d: %s", i, lines[i], i+1, w)
		}
	}
	out, _ = roomctl(t, "replay", "-data", dir, "-room", "class 1.A", "-timeline", "-json", "-since", "4", "-to-seq", "4")
	var e struct {
		Cursor string `json:"cursor"`
		Seq    uint64 `json:"seq"`
		Type   string `json:"type"`
		Event  struct {
			Data struct{ Key string } `json:"data"`
		} `json:"event"`
	}
	if err := json.Unmarshal([]byte(out), &e); err != nil || e.Seq != 4 || e.Type != "room.extra_info_updated" ||
		e.Event.Data.Key != "topic" || !strings.HasSuffix(e.Cursor, ".0") {
		t.Fatalf("replay -timeline -json -since 4 -to-seq 4: %v\n%s", err, out)
	}
	out, code = roomctl(t, "replay", "-data", dir, "-room", "class 1.A", "-diff", "3")
	if code != 0 || !strings.Contains(out, `+ extra info "topic" set to "fractions" by teacher`) ||
		!strings.Contains(out, "- student left (session s2)") || strings.Contains(out, "teacher joined") {
		t.Fatalf("replay -diff 3: exit %d\n%s", code, out)
	}
	out, _ = roomctl(t, "replay", "-data", dir, "-room", "class 1.A", "-diff", "1", "-to-seq", "3", "-json")
	var changes []struct{ What, ID, Op string }
	if err := json.Unmarshal([]byte(out), &changes); err != nil || len(changes) != 2 ||
		changes[0] != (struct{ What, ID, Op string }{"member", "student", "added"}) || changes[1].ID != "teacher" {
		t.Fatalf("replay -diff 1 -to-seq 3 -json: %v\n%s", err, out)
	}
	if _, code := roomctl(t, "replay", "-data", dir, "-room", "class 1.A", "-diff", "yesterday"); code != 2 {
		t.Errorf("a -diff point that is neither a sequence nor a time: exit %d, want 2", code)
	}
}

// roomctl -h, and every command's -h, print the help asked for on stdout and
// exit 0, with nothing on stderr; without a command, the help goes to stderr
// with status 2, as for any bad usage.
func TestHelpExplainsEveryCommand(t *testing.T) {
	run2 := func(args ...string) (stdout, stderr string, code int) {
		t.Helper()
		var out, errOut bytes.Buffer
		code = run(context.Background(), args, &out, &errOut)
		return out.String(), errOut.String(), code
	}
	for _, h := range []string{"-h", "-help", "--help", "help"} {
		out, errOut, code := run2(h)
		if code != 0 || errOut != "" {
			t.Errorf("roomctl %s: exit %d, stderr %q; want 0 and nothing", h, code, errOut)
		}
		for _, c := range commands() {
			if !strings.Contains(out, "  "+c.name+" ") {
				t.Errorf("roomctl %s does not list %s:\n%s", h, c.name, out)
			}
		}
	}
	if out, errOut, code := run2(); code != 2 || out != "" || !strings.Contains(errOut, "commands:") {
		t.Errorf("roomctl alone: exit %d, stdout %q, stderr %q; want 2 and the help on stderr", code, out, errOut)
	}

	// Each command's flags, as its usage must name them.
	log := []string{"nats", "nats-password", "data"}
	admin := []string{"http", "secret", "app"}
	flags := map[string][]string{
		"verify":  append([]string{"multi-room", "max-rooms", "pubkey", "min-round"}, log...),
		"replay":  append([]string{"app", "room", "to-seq", "at", "timeline", "since", "diff", "json"}, log...),
		"tail":    append([]string{"app", "room", "after", "from", "since", "follow"}, log...),
		"kick":    append([]string{"room", "user", "reason"}, admin...),
		"destroy": append([]string{"room", "reason"}, admin...),
		"rooms":   append([]string{"room"}, admin...),
		"token":   {"secret", "admin", "subject", "app", "user", "name", "rooms", "publish", "ttl"},
	}
	if len(flags) != len(commands()) {
		t.Fatalf("the test knows the flags of %d commands, roomctl has %d", len(flags), len(commands()))
	}
	for _, c := range commands() {
		for _, h := range [][]string{{c.name, "-h"}, {c.name, "-help"}, {c.name, "--help"}, {"help", c.name}} {
			out, errOut, code := run2(h...)
			if code != 0 || errOut != "" {
				t.Errorf("roomctl %s: exit %d, stderr %q; want 0 and nothing", strings.Join(h, " "), code, errOut)
			}
			if strings.Contains(out, "\nroomctl:") || strings.Contains(out, "help requested") {
				t.Errorf("roomctl %s prints an error:\n%s", strings.Join(h, " "), out)
			}
			if !strings.HasPrefix(out, "usage: roomctl "+c.name+" ") {
				t.Errorf("roomctl %s does not start with the command's synopsis:\n%s", strings.Join(h, " "), out)
			}
			// A synopsis, then a paragraph that says what the command does.
			if parts := strings.SplitN(out, "\n\n", 3); len(parts) < 3 || len(parts[1]) < 60 {
				t.Errorf("roomctl %s does not say what %s does:\n%s", strings.Join(h, " "), c.name, out)
			}
			for _, f := range flags[c.name] {
				if !strings.Contains(out, "\n  -"+f+" ") && !strings.Contains(out, "\n  -"+f+"\n") {
					t.Errorf("roomctl %s does not describe -%s:\n%s", strings.Join(h, " "), f, out)
				}
			}
		}
		// A bad flag is bad usage: status 2, the error and the usage on stderr.
		out, errOut, code := run2(c.name, "-no-such-flag")
		if code != 2 || out != "" || !strings.HasPrefix(errOut, "roomctl: "+c.name+": flag provided but not defined: -no-such-flag") ||
			!strings.Contains(errOut, "usage: roomctl "+c.name) {
			t.Errorf("roomctl %s -no-such-flag: exit %d, stdout %q, stderr:\n%s", c.name, code, out, errOut)
		}
	}
}

// A running node's NATS port takes roomctl with the node's password only; a
// folder a running node holds is refused with a message naming the holder.
func TestVerifyARunningNode(t *testing.T) {
	dir, _ := history(t, false)
	log, err := eventstore.Open(context.Background(), eventstore.Config{DataDir: dir, Listen: "127.0.0.1:-1",
		Password: estest.Password, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	url := log.ClientURL()
	if out, code := roomctl(t, "verify", "-nats", url, "-nats-password", estest.Password); code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("verify with the password: exit %d\n%s", code, out)
	}
	t.Setenv("ROOMLOG_NATS_PASSWORD", estest.Password)
	if out, code := roomctl(t, "verify", "-nats", url); code != 0 {
		t.Fatalf("verify with ROOMLOG_NATS_PASSWORD: exit %d\n%s", code, out)
	}
	if out, code := roomctl(t, "verify", "-nats", url, "-nats-password", ""); code == 0 || !strings.Contains(strings.ToLower(out), "authorization") ||
		!strings.Contains(out, "-nats-password") {
		t.Fatalf("verify without the password: exit %d\n%s", code, out)
	}
	if out, code := roomctl(t, "verify", "-data", dir); code == 0 || !strings.Contains(out, "in use by process") {
		t.Fatalf("verify of the folder the node holds: exit %d\n%s", code, out)
	}
}
