package admin_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/checkpoint"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/transport/admin"
	"github.com/roomlog/roomlog/transport/protocol"
)

// chat writes a room's history through the node's engine: a join, then n
// broadcasts, each a second apart on the node's clock; it returns the time
// of the first broadcast.
func chat(t *testing.T, n *node.Node, clock *estest.Clock, room domain.RoomID, msgs int) time.Time {
	t.Helper()
	do := func(c domain.Command) {
		if _, err := n.Engine.Execute(estest.Ctx(t), domain.Meta{App: "dev"}, c); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
	}
	do(domain.JoinRoom{Session: "s1", User: domain.User{ID: "alice", Name: "Alice"}, Mode: domain.MultiRoom, Room: room,
		Role: domain.Anchor, Grant: domain.Grant{User: "alice", AllRooms: true, CanPublish: true},
		Create: domain.CreateIfMissing, Via: domain.ViaLogin})
	first := clock.Now()
	for i := range msgs {
		do(domain.SendBroadcast{Session: "s1", Room: room, Body: fmt.Sprint("message ", i+1)})
	}
	return first
}

func TestAdminHistoryPagesAndStateAt(t *testing.T) {
	clock := estest.NewClock(time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC))
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	p := domain.DefaultPolicy()
	p.MultiRoom = true
	p.Limits.BroadcastPerSecond = 1000
	n, err := node.Start(estest.Ctx(t), node.Config{Log: eventstore.Config{DataDir: t.TempDir()},
		Policy: domain.Config{Default: p}, Secret: []byte("admin-test-secret-0123456789abcdef"), HTTPListen: "127.0.0.1:0",
		Clock: clock, CheckpointKey: key, CheckpointEvery: time.Hour, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	adm := admin_(t, n)
	first := chat(t, n, clock, "class 1.A", 7) // seqs 1, 2 (created, joined), 3..9 (broadcasts)
	chat(t, n, clock, "other", 3)

	// Paging by sequence: pages of 4 cover the history once, in order.
	var texts []string
	after := uint64(0)
	for pages := 0; ; pages++ {
		var page admin.HistoryPage
		if code := call(t, n, adm, "GET", fmt.Sprintf("/rooms/class%%201.A/history?after_seq=%d&limit=4", after), nil, &page); code != 200 {
			t.Fatalf("history after %d: HTTP %d", after, code)
		}
		for i, e := range page.Events {
			if e.Seq != after+uint64(i)+1 || e.Event == nil || e.Event.AggregateID != "class 1.A" {
				t.Fatalf("page after %d: entry %d is %+v", after, i, e)
			}
			texts = append(texts, e.Text)
		}
		if page.Next != after+uint64(len(page.Events)) || pages > 5 {
			t.Fatalf("page after %d: next %d", after, page.Next)
		}
		after = page.Next
		if !page.More {
			break
		}
	}
	if len(texts) != 9 || texts[0] != "room created by alice (s1, via login)" || texts[8] != `alice (Alice) said "message 7"` {
		t.Fatalf("history read in pages:\n%s", strings.Join(texts, "\n"))
	}
	// By time: from the third broadcast on.
	var page admin.HistoryPage
	since := first.Add(2 * time.Second).Format(time.RFC3339Nano)
	if code := call(t, n, adm, "GET", "/rooms/class%201.A/history?limit=2&since="+since, nil, &page); code != 200 ||
		len(page.Events) != 2 || page.Events[0].Seq != 5 || !page.More || page.Next != 6 {
		t.Fatalf("history since %s: HTTP %d %+v", since, code, page)
	}
	// The state at a sequence and at a time.
	var r domain.Room
	if code := call(t, n, adm, "GET", "/rooms/class%201.A/state?seq=1", nil, &r); code != 200 || r.Seq != 1 || len(r.Members) != 0 {
		t.Fatalf("state at seq 1: HTTP %d %+v", code, r)
	}
	if code := call(t, n, adm, "GET", "/rooms/class%201.A/state?at="+first.Format(time.RFC3339Nano), nil, &r); code != 200 ||
		r.Seq != 3 || r.Members["alice"] == nil {
		t.Fatalf("state at %v: HTTP %d %+v", first, code, r)
	}
	// What changed from the join to the end: seven messages, nothing else.
	var d admin.RoomDiff
	if code := call(t, n, adm, "GET", "/rooms/class%201.A/diff?from=2", nil, &d); code != 200 || d.FromSeq != 2 || d.ToSeq != 9 ||
		len(d.Changes) != 0 {
		t.Fatalf("diff from 2: HTTP %d %+v", code, d)
	}
	if code := call(t, n, adm, "GET", "/rooms/class%201.A/diff?from=1&to=2", nil, &d); code != 200 || len(d.Changes) != 1 ||
		d.Changes[0].What != "member" || d.Changes[0].ID != "alice" || d.Changes[0].Op != "added" {
		t.Fatalf("diff from 1 to 2: HTTP %d %+v", code, d)
	}
	var e errBody
	if code := call(t, n, adm, "GET", "/rooms/class%201.A/diff?from=soon", nil, &e); code != 400 {
		t.Errorf("a diff from nowhere: HTTP %d %+v", code, e)
	}
	if code := call(t, n, adm, "GET", "/rooms/nowhere/state", nil, &e); code != http.StatusNotFound || e.Code != domain.ErrRoomNotExist.Code {
		t.Errorf("state of a room with no history: HTTP %d %+v", code, e)
	}
	if code := call(t, n, adm, "GET", "/rooms/class%201.A/history?limit=0", nil, &e); code != 400 || e.Code != domain.ErrInvalidArgument.Code {
		t.Errorf("limit 0: HTTP %d %+v", code, e)
	}
	// After the last event: the end of paging. Past it: not found, as for
	// /state and /diff (an after_seq of 999 used to get an empty last page,
	// telling a backend that passed a wrong sequence, such as a cursor's
	// stream sequence, that the history was over).
	if code := call(t, n, adm, "GET", "/rooms/class%201.A/history?after_seq=9", nil, &page); code != 200 ||
		len(page.Events) != 0 || page.More || page.Next != 9 {
		t.Errorf("history after the last event (9): HTTP %d %+v, want an empty last page", code, page)
	}
	e = errBody{}
	if code := call(t, n, adm, "GET", "/rooms/class%201.A/history?after_seq=999", nil, &e); code != http.StatusNotFound ||
		e.Code != protocol.ErrNotFound.Code || !strings.Contains(e.Message, "last event is seq 9") {
		t.Errorf("history after seq 999 of a room whose last event is seq 9: HTTP %d %+v, want 404 not_found naming seq 9",
			code, e)
	}

	// A checkpoint on demand signs every head now.
	req, _ := http.NewRequest("POST", "http://"+n.HTTPAddr()+"/admin/v1/checkpoints", nil)
	req.Header.Set("Authorization", "Bearer "+adm)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("POST /admin/v1/checkpoints: HTTP %d", res.StatusCode)
	}
	store, err := checkpoint.OpenStore(estest.Ctx(t), n.Log, 1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := checkpoint.Load(estest.Ctx(t), store, key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if h := s.Heads[domain.RoomKey("dev", "class 1.A")]; s.Round == nil || s.Round.Round != 1 || h.Seq != 9 || len(s.Problems) > 0 {
		t.Fatalf("after the on-demand checkpoint: round %+v, head %+v, problems %q", s.Round, h, s.Problems)
	}
}

// A room with no event kept has no end to page past: /history after any
// sequence is an empty last page, whether the room never existed or
// retention removed every message of it (a room idle for the max age) and
// a backend that had paged to its end (seq 9) polls again. Found by the
// second reader: the past-the-end check took such a room's end for seq 0
// and answered 404, "its last event is seq 0".
func TestHistoryOfARoomWithNoEventKeptIsAnEmptyPage(t *testing.T) {
	n, adm := historyNode(t)
	estest.Purge(t, n.Log, 0) // retention removed every message of the log
	for _, path := range []string{"/rooms/class%201.A/history?after_seq=9", "/rooms/nowhere/history?after_seq=5"} {
		var page admin.HistoryPage
		if code := call(t, n, adm, "GET", path, nil, &page); code != 200 || len(page.Events) != 0 || page.More {
			t.Errorf("GET %s: HTTP %d %+v, want an empty last page", path, code, page)
		}
	}
}
