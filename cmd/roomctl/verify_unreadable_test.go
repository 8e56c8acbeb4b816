package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A message no engine could have written (garbage on a room's subject) is
// flagged by the audit, which goes on past it as the nodes do
// (audit.Apply, TestAuditFlagsARecordItCannotReadAndGoesOn). roomctl verify
// must too: stopped there, it would never check, or report, an event
// removed later in the same room.
func TestVerifyGoesOnPastAnUnreadableMessage(t *testing.T) {
	dir, _ := history(t, false)
	// The room's history: [created 1, joined 2], [joined 3],
	// [extra_info_updated 4], [member_left 5].
	forged := forge(t, dir, func(msgs []rawMsg) []rawMsg {
		idx := roomMsgs(msgs)
		junk := rawMsg{Subject: msgs[idx[0]].Subject, Header: nats.Header{jetstream.MsgIDHeader: []string{"junk"}},
			Data: []byte("garbage")}
		var out []rawMsg
		for i, m := range msgs {
			if i == idx[2] {
				continue // seq 4 removed
			}
			out = append(out, m)
			if i == idx[0] {
				out = append(out, junk)
			}
		}
		return out
	})
	out, code := roomctl(t, "verify", "-data", forged)
	if code != 1 || !strings.Contains(out, "VIOLATION") || !strings.Contains(out, "unreadable message") ||
		!strings.Contains(out, "room:dev:class 1.A: seq 4 is missing") {
		t.Fatalf("verify of a log with an unreadable message, then seq 4 removed: exit %d, want 1 with a VIOLATION "+
			"for the unreadable message and one for seq 4\n%s", code, out)
	}
}

// tail, the continuous export, passes over such a message as the nodes do,
// naming it on stderr, and prints what comes after it; resumed after the
// last cursor it printed, it goes on the same way. It used to stop there
// for good with exit 1.
func TestTailGoesOnPastAnUnreadableMessage(t *testing.T) {
	dir, _ := history(t, false)
	forged := forge(t, dir, func(msgs []rawMsg) []rawMsg {
		idx := roomMsgs(msgs)
		junk := rawMsg{Subject: msgs[idx[0]].Subject, Header: nats.Header{jetstream.MsgIDHeader: []string{"junk"}},
			Data: []byte("garbage")}
		return append(append(slices.Clone(msgs[:idx[2]]), junk), msgs[idx[2]:]...)
	})
	out, errOut, code := roomctl2(t, "tail", "-data", forged, "-app", "dev")
	if code != 0 || !strings.Contains(out, `"room.extra_info_updated"`) || !strings.Contains(out, `"room.member_left"`) ||
		!strings.Contains(errOut, "passed over a message no engine wrote") {
		t.Fatalf("tail of a log with an unreadable message before the room's seq 4: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var before struct{ Cursor string }
	for _, l := range lines {
		if strings.Contains(l, `"room.extra_info_updated"`) {
			break
		}
		if err := json.Unmarshal([]byte(l), &before); err != nil {
			t.Fatal(err)
		}
	}
	again, _, code := roomctl2(t, "tail", "-data", forged, "-app", "dev", "-after", before.Cursor)
	if code != 0 || !strings.HasSuffix(out, again) || !strings.HasPrefix(again, `{"cursor"`) ||
		!strings.Contains(again, `"room.extra_info_updated"`) {
		t.Errorf("tail -after %s, the cursor before the unreadable message: exit %d\n%s", before.Cursor, code, again)
	}
}
