package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// roomctl tail is a logical export of the log whose events have the
// envelope of events.md, where `prev` is absent only for the first event of
// a history. tail decoded without it: every event it printed looked like
// the first of its history.
func TestTailPrintsEachEventWithItsHashLink(t *testing.T) {
	dir, _ := history(t, false)
	out, code := roomctl(t, "tail", "-data", dir, "-app", "dev", "-room", "class 1.A")
	if code != 0 {
		t.Fatalf("tail: exit %d\n%s", code, out)
	}
	var missing []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var v struct {
			Cursor string `json:"cursor"`
			Event  struct {
				Seq  uint64 `json:"seq"`
				Prev string `json:"prev"`
			} `json:"event"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if v.Event.Seq > 1 && v.Event.Prev == "" {
			missing = append(missing, fmt.Sprintf("seq %d (cursor %s)", v.Event.Seq, v.Cursor))
		}
	}
	if len(missing) > 0 {
		t.Fatalf("tail printed events without the prev their stored bytes hold: %s\n%s", strings.Join(missing, ", "), out)
	}
}

// roomd takes per-app policies (-apps, README "Per-app policies": e.g.
// "classroom": {"multi_room": true, "max_rooms": 8}); roomctl verify took
// one -max-rooms for every app, and an untouched log where a classroom
// session is in 6 rooms, as its app allows, was reported broken. verify
// -apps reads roomd's file: each app is checked against its own limit.
func TestVerifyChecksEachAppAgainstItsOwnPolicy(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	log, err := eventstore.Open(ctx, eventstore.Config{DataDir: dir, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	def := domain.DefaultPolicy()
	def.MultiRoom = true
	classroom := def
	classroom.MaxRooms = 8
	d, err := domain.NewDecider(domain.Config{Default: def, Apps: map[domain.AppID]domain.Policy{"classroom": classroom}})
	if err != nil {
		t.Fatal(err)
	}
	clock := estest.NewClock(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC))
	e, _ := engine.New(engine.Config{Log: log, Decider: d, Clock: clock.Now, Logger: estest.Logger(t)})
	for i := range 6 {
		if _, err := e.Execute(ctx, domain.Meta{App: "classroom"}, domain.JoinRoom{Session: "s1",
			User: domain.User{ID: "teacher", Name: "teacher"}, Mode: domain.MultiRoom, Room: domain.RoomID(fmt.Sprint("room", i)),
			Role: domain.Anchor, Grant: domain.Grant{User: "teacher", AllRooms: true}, Create: domain.CreateIfMissing,
			Via: domain.ViaLogin}); err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
		clock.Advance(time.Second)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	// The node ran with the default -max-rooms (5) and -apps giving
	// classroom 8: verify "as the node was configured".
	apps := filepath.Join(t.TempDir(), "apps.json")
	if err := os.WriteFile(apps, []byte(`{"classroom": {"multi_room": true, "max_rooms": 8}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := roomctl(t, "verify", "-data", dir, "-max-rooms", "5", "-apps", apps); code != 0 {
		t.Fatalf("verify -apps of an untouched log written under a per-app max_rooms of 8: exit %d\n%s", code, out)
	}
	// Without the file, the 6 rooms are over the default 5.
	if out, code := roomctl(t, "verify", "-data", dir, "-max-rooms", "5"); code != 1 || !strings.Contains(out, "at most 5 allowed") {
		t.Fatalf("verify without -apps: exit %d, want 1 naming the limit of 5\n%s", code, out)
	}
}

// A room's messages copied, by someone holding the NATS password (who may
// append, architecture.md "Threat model"), onto the empty subject of
// another room. Their chain is whole (it starts at seq 1 with no prev), so
// roomctl replay (and the admin API's state/diff/history, which use the
// same timeline.Replay/Page) folded them and answered with the other
// room's members and extra info as the state of "class 1.B", a room the
// engine never wrote. Now each event must be the requested room's: the
// replay fails, naming the misplaced event, as roomctl verify does.
func TestReplayRefusesAnotherRoomsEventsCopiedOntoItsSubject(t *testing.T) {
	dir, _ := history(t, false)
	withLog(t, dir, func(log *eventstore.Log) {
		ctx := estest.Ctx(t)
		var bodies [][]byte
		if _, err := log.Read(ctx, []string{log.Subject("dev", "room", "class 1.A")}, 1, func(rec eventstore.Record) error {
			bodies = append(bodies, rec.Data)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		subject := log.Subject("dev", "room", "class 1.B")
		var expected uint64
		for i, b := range bodies {
			ack, err := log.Append(ctx, eventstore.Message{Subject: subject, MsgID: fmt.Sprint("copy-", i), Expected: expected, Data: b})
			if err != nil {
				t.Fatal(err)
			}
			expected = ack.Seq
		}
	})
	if out, code := roomctl(t, "verify", "-data", dir); code != 1 || !strings.Contains(out, "stored on the subject of") {
		t.Errorf("verify: exit %d, want 1 naming the misplaced events\n%s", code, out)
	}
	out, code := roomctl(t, "replay", "-data", dir, "-room", "class 1.B")
	if code == 0 || !strings.Contains(out, "stored on the subject of room:dev:class 1.B") {
		t.Fatalf("replay of room \"class 1.B\", whose subject holds only room \"class 1.A\"'s events: exit %d, "+
			"want a refusal naming the misplaced event:\n%s", code, out)
	}
}

// roomctl verify -multi-room=false says the apps allow no multi-room
// session (as the node was configured), but the audit looked only at the
// session's recorded mode: a log in which a session is in two rooms at
// once passed, exit 0, "no invariant was broken".
func TestVerifyMultiRoomFalseLimitsEverySessionToOneRoom(t *testing.T) {
	dir, _ := history(t, false) // written with multi-room sessions allowed
	ctx := context.Background()
	log, e := writer(t, dir, estest.NewClock(time.Date(2026, 11, 21, 13, 0, 0, 0, time.UTC)))
	// s1 (teacher, multi-room mode, in "class 1.A") enters a second room.
	if _, err := e.Execute(ctx, domain.Meta{App: "dev"}, domain.JoinRoom{Session: "s1",
		User: domain.User{ID: "teacher", Name: "teacher"}, Mode: domain.MultiRoom, Room: "class 2.B",
		Role: domain.Anchor, Grant: domain.Grant{User: "teacher", AllRooms: true}, Create: domain.CreateIfMissing,
		Via: domain.ViaLogin}); err != nil {
		t.Fatal(err)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	out, code := roomctl(t, "verify", "-data", dir, "-multi-room=false")
	if code != 1 {
		t.Fatalf("verify -multi-room=false of a log where session s1 is in two rooms at once: exit %d, want 1\n%s", code, out)
	}
}

// -min-round without -pubkey (ROOMLOG_CHECKPOINT_PUBKEY unset in a
// script) was silently ignored: exit 0, though the round it names was
// never checked. It is bad usage (exit 2), as other flags that cannot
// apply are.
func TestVerifyMinRoundNeedsAPubkey(t *testing.T) {
	t.Setenv("ROOMLOG_CHECKPOINT_PUBKEY", "")
	dir, _ := history(t, false)
	out, code := roomctl(t, "verify", "-data", dir, "-min-round", "1042")
	if code != 2 || !strings.Contains(out, "-min-round needs -pubkey") {
		t.Fatalf("verify -min-round 1042 without -pubkey: exit %d, want 2\n%s", code, out)
	}
}
