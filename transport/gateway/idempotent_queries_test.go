package gateway_test

import (
	"encoding/json"
	"testing"

	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/protocol"
)

// A query sent again with the same idempotency key (a client that repeats
// whatever it had in flight after a reconnect) asks for the state as it is
// now: before, the node answered the room-state queries and media_check
// with their first answer, for 2 minutes.
func TestARepeatedQueryIsAnsweredAfresh(t *testing.T) {
	n := startNode(t, gateway.Config{})
	alice, bob := dial(t, n), dial(t, n)
	alice.Login("r1", "alice", token(t, n, "alice"))
	count := func(id string) int {
		t.Helper()
		b, _ := json.Marshal(protocol.RoomRequest{Room: "r1"})
		raw, _ := json.Marshal(protocol.Request{ID: id, Op: protocol.OpQueryOnlineCount, Data: b, IdempotencyKey: "k-count"})
		alice.SendRaw(string(raw))
		f := alice.Reply(id)
		var oc protocol.OnlineUserCount
		if err := json.Unmarshal(f.Data, &oc); err != nil || f.Code != 0 {
			t.Fatalf("query_online_count: %d %s %s (%v)", f.Code, f.Error, f.Data, err)
		}
		return oc.Count
	}
	if got := count("q1"); got != 1 {
		t.Fatalf("online count with alice alone: %d", got)
	}
	bob.Login("r1", "bob", token(t, n, "bob"))
	if got := count("q2"); got != 2 {
		t.Fatalf("online count after bob joined, asked again with the same key: %d, want 2", got)
	}
}
