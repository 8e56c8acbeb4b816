package main

import (
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
