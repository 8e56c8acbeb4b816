package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// history writes a small history into a fresh data folder and closes it, as
// a stopped roomd leaves it.
func history(t *testing.T, tamper bool) (dir string, mid time.Time) {
	t.Helper()
	dir = t.TempDir()
	ctx := context.Background()
	log, err := eventstore.Open(ctx, eventstore.Config{DataDir: dir, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	p := domain.DefaultPolicy()
	p.MultiRoom = true
	d, _ := domain.NewDecider(domain.Config{Default: p})
	clock := estest.NewClock(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC))
	e, _ := engine.New(engine.Config{Log: log, Decider: d, Clock: clock.Now, Logger: estest.Logger(t)})
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
	if code != 1 || !strings.Contains(out, "broken hash chain") {
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

func TestTailFromACursor(t *testing.T) {
	dir, _ := history(t, false)
	out, code := roomctl(t, "tail", "-data", dir, "-app", "dev", "-room", "class 1.A")
	if code != 0 {
		t.Fatalf("tail: exit %d\n%s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var types []string
	var cursors []uint64
	for _, l := range lines {
		var v struct {
			Cursor uint64 `json:"cursor"`
			Event  struct {
				Type string `json:"type"`
			} `json:"event"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		types, cursors = append(types, v.Event.Type), append(cursors, v.Cursor)
	}
	want := "room.created room.member_joined room.member_joined room.extra_info_updated room.member_left"
	if got := strings.Join(types, " "); got != want {
		t.Errorf("tail printed %s, want %s", got, want)
	}
	// Resuming after the third line's cursor prints only what came after it.
	out, _ = roomctl(t, "tail", "-data", dir, "-app", "dev", "-room", "class 1.A", "-from", strconv.FormatUint(cursors[2]+1, 10))
	if n := len(strings.Split(strings.TrimSpace(out), "\n")); n != 2 {
		t.Errorf("tail from cursor %d printed %d lines, want 2:\n%s", cursors[2]+1, n, out)
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
