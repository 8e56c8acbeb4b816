package tests

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/protocol"
)

// Two nodes share one log (README, "Several nodes"). A member on node B
// keeps broadcasting while members log into the same room on node A
// one after another. A's engine last saw the room at its own previous
// login, so B's broadcasts keep landing between A's snapshot and A's next
// event: each member on A must still get a snapshot and then an unbroken
// chain of room events (every frame's prev is the seq before it), holding
// every broadcast after its snapshot exactly once.
func TestTwoNodesOneRoomNoGapAcrossNodes(t *testing.T) {
	t.Parallel()
	const joiners, perJoiner = 8, 12
	opts := clienttest.NodeOptions{Gateway: gateway.Config{RequestsPerSecond: 1e6, RequestBurst: 1e6},
		Policy: limitsPolicy(func(p *domain.Policy) { p.Limits.BroadcastPerSecond = 1 << 20 })}
	a := opts
	a.NATSListen = "127.0.0.1:0"
	nodeA := clienttest.StartNode(t, a)
	b := opts
	b.Join = nodeA
	nodeB := clienttest.StartNode(t, b)

	sender := wire.Dial(t, nodeB.HTTPAddr())
	sender.Login("r1", "bob", clienttest.Token(t, nodeB, "bob"))

	// Bob broadcasts until the last member on A has logged in and seen some
	// of his messages; the seq of each broadcast comes back in its reply.
	stop := make(chan struct{})
	var mu sync.Mutex
	var sent []uint64
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			id := fmt.Sprint("b", i)
			sender.Send(id, protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: id})
			f, err := untilReply(sender, id)
			if err != nil || f.Code != 0 {
				done <- fmt.Errorf("broadcast %s: %v %+v", id, err, f)
				return
			}
			var r protocol.MessageReply
			if err := json.Unmarshal(f.Data, &r); err != nil {
				done <- err
				return
			}
			mu.Lock()
			sent = append(sent, r.Seq)
			mu.Unlock()
			time.Sleep(2 * time.Millisecond) // 500/s: 50 times ZEGO's limit for a room
		}
	}()

	members := make([]*member, joiners)
	for i := range members {
		user := fmt.Sprint("ann", i)
		c := wire.Dial(t, nodeA.HTTPAddr())
		snap := c.Login("r1", user, clienttest.Token(t, nodeA, user))
		m := &member{conn: c, snap: snap.Seq, last: snap.Seq}
		members[i] = m
		// Read a few broadcasts before the next member logs in, so that
		// logins and broadcasts interleave.
		for len(m.got) < perJoiner/2 {
			m.read(t)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	all := sent
	mu.Unlock()
	final := all[len(all)-1]
	for i, m := range members {
		for m.last < final {
			m.read(t)
		}
		var want []uint64
		for _, s := range all {
			if s > m.snap {
				want = append(want, s)
			}
		}
		if fmt.Sprint(m.got) != fmt.Sprint(want) {
			t.Errorf("ann%d (snapshot at seq %d) got broadcasts %v, want %v", i, m.snap, m.got, want)
		}
	}
	t.Logf("%d broadcasts from node B, %d members logged in on node A", len(all), joiners)
}

// member is a member on node A and what it received.
type member struct {
	conn *wire.Conn
	snap uint64   // the seq of the room's snapshot at login
	got  []uint64 // seqs of the broadcasts received
	last uint64   // seq of the last room event received
}

// untilReply reads c's frames until the reply to id, without failing the
// test (it runs off the test's goroutine).
func untilReply(c *wire.Conn, id string) (protocol.Frame, error) {
	for {
		f, err := c.TryNext(10 * time.Second)
		if err != nil || (f.Type == protocol.TypeReply && f.ID == id) {
			return f, err
		}
	}
}

// read reads m's next frame: a room event must chain from the one before.
func (m *member) read(t *testing.T) {
	t.Helper()
	f := m.conn.Next()
	if f.Type != protocol.TypeEvent || f.Seq == 0 {
		return // a reply or an event outside the room's log (online count)
	}
	if f.Prev != m.last {
		t.Fatalf("event %s at seq %d follows seq %d, but the last one received was %d", f.Event, f.Seq, f.Prev, m.last)
	}
	m.last = f.Seq
	if f.Event == protocol.EvBroadcastMessage {
		m.got = append(m.got, f.Seq)
	}
}
