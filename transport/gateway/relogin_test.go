package gateway_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/protocol"
)

// A member that logs in again into a room it is in (a ZEGO app calling
// loginRoom twice, a retry after a lost reply) loses nothing of the room:
// every custom command sent to it meanwhile reaches it, and its sequence runs on without
// a gap: the events before the reply's snapshot come before the reply, the
// later ones after it, each naming the one before.
func TestALoginIntoTheSameRoomLosesNoEvent(t *testing.T) {
	n := startNode(t, gateway.Config{})
	alice, bob := dial(t, n), dial(t, n)
	tok := token(t, n, "alice")
	snap := alice.Login("r1", "alice", tok)
	bob.Login("r1", "bob", token(t, n, "bob"))
	const rounds, burst = 30, 4
	got := map[string]bool{}
	cur, gaps := snap.Seq, 0
	// read reads alice's frames up to the frame stop matches, checking the
	// room's sequence as the SDKs do.
	read := func(stop func(protocol.Frame) bool) {
		for {
			f := alice.Next()
			if f.Type == protocol.TypeReply && f.Code != 0 {
				t.Fatalf("alice's request %s: %+v", f.ID, f)
			}
			if f.Type == protocol.TypeReply && strings.HasPrefix(f.ID, "in-") {
				var s protocol.RoomSnapshot
				if err := json.Unmarshal(f.Data, &s); err != nil {
					t.Fatal(err)
				}
				cur = s.Seq
			}
			if f.Room == "r1" && f.Seq != 0 {
				if f.Prev != cur {
					gaps++
					t.Logf("%s after seq %d names %d as the one before", f.Event, cur, f.Prev)
				}
				cur = max(cur, f.Seq)
			}
			if f.Event == protocol.EvCustomCommand {
				var m protocol.CustomCommand
				json.Unmarshal(f.Data, &m)
				got[m.Command] = true
			}
			if stop(f) {
				return
			}
		}
	}
	for i := range rounds {
		for j := range burst {
			bob.Send(fmt.Sprint("b-", i, "-", j), protocol.OpCustomCommand,
				protocol.CustomCommandRequest{Room: "r1", To: []string{"alice"}, Command: fmt.Sprint("m-", i, "-", j)})
		}
		in := fmt.Sprint("in-", i)
		alice.Send(in, protocol.OpLogin, protocol.LoginRequest{Room: "r1", User: protocol.User{ID: "alice", Name: "alice"}, Token: tok})
		read(func(f protocol.Frame) bool { return f.Type == protocol.TypeReply && f.ID == in })
		for j := range burst {
			if f := bob.Reply(fmt.Sprint("b-", i, "-", j)); f.Code != 0 {
				t.Fatalf("custom command: %+v", f)
			}
		}
	}
	bob.Do("end", protocol.OpCustomCommand, protocol.CustomCommandRequest{Room: "r1", To: []string{"alice"}, Command: "end"})
	read(func(f protocol.Frame) bool {
		return f.Event == protocol.EvCustomCommand && strings.Contains(string(f.Data), `"end"`)
	})
	if missing := rounds*burst + 1 - len(got); missing > 0 || gaps > 0 {
		t.Errorf("alice, logging in again %d times, missed %d of %d custom commands; %d events named the wrong one before",
			rounds, missing, rounds*burst+1, gaps)
	}
}
