package client_test

import (
	"fmt"
	"testing"

	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/netcut"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/gateway"
)

// TestResumeLosesConcurrentEvent reproduces a gateway bug: a room event
// appended while the server replays a resumed session's missed events is
// neither replayed nor delivered live, and nothing tells the client (the
// next event's prev still chains).
//
// Cause (fixed; transport/gateway/resume.go, readRoom): when Search found no
// record after the client's seq, the stream position to continue from was
// taken from LastSeq() after the search. A record appended between the two
// was skipped by the later read, and its live dispatch had happened before
// the session was registered.
func TestResumeDoesNotLoseAConcurrentEvent(t *testing.T) {
	n := startNode(t, gateway.Config{})
	p := netcut.Start(t, n.HTTPAddr())
	ra, rb := newRec(t, "alice"), newRec(t, "bob")
	ra.AllowReconnects()
	a := dial(t, clienttest.URL(p.Addr()), ra, fastRetry)
	b := dial(t, wsURL(n), rb, nil)
	login(t, n, a, ra, "r1", "alice")
	login(t, n, b, rb, "r1", "bob")
	ra.WaitUsers("r1", client.UpdateAdd, "bob")
	for i := range 100 {
		p.Cut()
		ra.WaitState("r1", client.StateReconnected)
		// Sent the moment the client hears it is resumed: while the server
		// is still replaying.
		msg := fmt.Sprint("m", i)
		if _, err := b.SendCustomCommand(ctx(t), "r1", msg, []string{"alice"}); err != nil {
			t.Fatal(err)
		}
		// A request after the resume is handled after the replay: its reply
		// means anything for alice has been sent before it.
		if _, err := a.QueryRoom(ctx(t), "r1"); err != nil {
			t.Fatal(err)
		}
		for {
			e, ok := ra.TryNext(wait)
			if !ok {
				t.Fatalf("iteration %d: command %s (sent after Reconnected) never reached alice", i, msg)
			}
			if e.Kind == "online" {
				continue
			}
			if e.Kind != "command" || e.Cmd.Command != msg {
				t.Fatalf("iteration %d: alice got %v, want command %s", i, e, msg)
			}
			break
		}
	}
}
