package tests

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/protocol"
)

func timeoutsIn(t *testing.T, n *node.Node) int {
	t.Helper()
	count := 0
	_, err := n.Log.Read(estest.Ctx(t), []string{n.Log.Prefix() + ".>"}, 1, func(rec eventstore.Record) error {
		events, _ := domain.DecodeEvents(rec.Data)
		for _, e := range events {
			if _, ok := e.Data.(*domain.SessionTimedOutData); ok {
				count++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return count
}

func isMember(n *node.Node, room string, user string, s string) (in bool) {
	n.Live.Read(func(m *projections.Model) {
		if a := m.App(clienttest.App); a != nil && a.Rooms[domain.RoomID(room)] != nil {
			_, in = a.Rooms[domain.RoomID(room)].MemberBySession(domain.UserID(user), domain.SessionID(s))
		}
	})
	return in
}

// A session resumed on node B while node A still holds its old connection:
// A closes the old connection (session_replaced) and stops sending to it,
// and nothing on A (its presence, its watchdog, its token timer) times the
// session out later while it lives on B.
func TestATakeoverAcrossNodesKeepsTheSessionAlive(t *testing.T) {
	clock := estest.NewClock(time.Now())
	nodeA := clienttest.StartNode(t, clienttest.NodeOptions{Clock: clock, NATSListen: "127.0.0.1:0"})
	nodeB := clienttest.StartNode(t, clienttest.NodeOptions{Clock: clock, Join: nodeA})

	alice := wire.Dial(t, nodeA.HTTPAddr())
	hello := alice.Hello
	alice.Login("r1", "alice", clienttest.Token(t, nodeA, "alice"))
	bob := wire.Dial(t, nodeA.HTTPAddr())
	bob.Login("r1", "bob", clienttest.Token(t, nodeA, "bob"))
	last := alice.Until(func(f protocol.Frame) bool { return f.Event == protocol.EvRoomUserUpdate }).Seq
	estest.Eventually(t, "both nodes track both sessions", func() bool {
		return nodeA.Presence.Tracked() == 2 && nodeB.Presence.Tracked() == 2
	})

	again := wire.Dial(t, nodeB.HTTPAddr())
	again.Send("r", protocol.OpResume, protocol.ResumeRequest{ResumeToken: hello.ResumeToken,
		Rooms: map[string]uint64{"r1": last}, Token: clienttest.Token(t, nodeB, "alice")})
	f := again.Reply("r")
	var rr protocol.ResumeReply
	if f.Code != 0 || json.Unmarshal(f.Data, &rr) != nil || rr.Rooms["r1"].Status != "resumed" {
		t.Fatalf("resume on B: %+v", f)
	}
	// A closes the old connection.
	replaced := false
	for {
		f, err := alice.TryNext(10 * time.Second)
		if err != nil {
			break
		}
		if f.Event == protocol.EvSessionClosing && strings.Contains(string(f.Data), protocol.ErrSessionReplaced.Name) {
			replaced = true
		}
	}
	if !replaced {
		t.Errorf("node A did not close the old connection with session_replaced")
	}
	bob.Do("m1", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "to alice on B"})
	again.Until(func(f protocol.Frame) bool { return strings.Contains(string(f.Data), "to alice on B") })

	// Four minutes pass; alice heartbeats on B, bob on A.
	for range 8 {
		clock.Advance(30 * time.Second)
		again.Do("hb", protocol.OpHeartbeat, nil)
		bob.Do("hb", protocol.OpHeartbeat, nil)
	}
	bob.Do("m2", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "still there?"})
	again.Until(func(f protocol.Frame) bool { return strings.Contains(string(f.Data), "still there?") })
	if n := timeoutsIn(t, nodeA); n != 0 {
		t.Errorf("%d timeouts recorded for sessions that heartbeat", n)
	}
	if !isMember(nodeB, "r1", "alice", hello.Session) {
		t.Errorf("alice is no longer in r1")
	}
}
