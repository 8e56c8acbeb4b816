package history_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/eventstore/history"
)

func body(m history.Message) string {
	switch d := m.Event.Data.(type) {
	case *domain.BroadcastSentData:
		return d.Body
	case *domain.CustomCommandSentData:
		return "cmd:" + d.Body
	}
	return "?"
}

// A member pages back through the room's broadcasts and the commands
// addressed to it, newest first; a page can stop at a snapshot's seq; the
// room's earlier life (before it was destroyed) is not in it.
func TestHistoryPages(t *testing.T) {
	log := estest.Open(t, nil)
	clock := estest.NewClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	e := estest.Engine(t, log, nil, clock)
	estest.Exec(t, e, estest.Login("s1", "u1", "r1"))
	estest.Exec(t, e, domain.SendBroadcast{Session: "s1", Room: "r1", Body: "old life"})
	estest.Exec(t, e, domain.DestroyRoom{Room: "r1"})
	estest.Exec(t, e, estest.Login("s1", "u1", "r1"))
	estest.Exec(t, e, estest.Login("s2", "u2", "r1"))
	estest.Exec(t, e, estest.Login("s3", "u3", "r1"))
	var want []string // newest first, as u2 sees it
	var atSeq uint64
	for i := range 25 {
		clock.Advance(time.Second) // stay under the per-second limits
		res := estest.Exec(t, e, domain.SendBroadcast{Session: "s1", Room: "r1", Body: fmt.Sprint("b", i)})
		want = append([]string{fmt.Sprint("b", i)}, want...)
		estest.Exec(t, e, domain.SendCustomCommand{Session: "s1", Room: "r1", To: []domain.UserID{"u3"}, Body: "secret"})
		estest.Exec(t, e, domain.SendCustomCommand{Session: "s3", Room: "r1", To: []domain.UserID{"u2"}, Body: fmt.Sprint(i)})
		want = append([]string{fmt.Sprint("cmd:", i)}, want...)
		if i == 9 {
			atSeq = res.Appended[len(res.Appended)-1].Events[0].Seq
		}
	}
	h, err := history.New(history.Config{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	room := domain.RoomKey(estest.App, "r1")
	var got []string
	pages := 0
	for before := uint64(0); ; pages++ {
		p, err := h.Read(estest.Ctx(t), history.Query{Room: room, For: "u2", Before: before, Count: 7})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Messages) > 7 {
			t.Fatalf("a page of %d messages", len(p.Messages))
		}
		for _, m := range p.Messages {
			got = append(got, body(m))
		}
		if p.Next == 0 {
			break
		}
		before = p.Next
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || pages != 7 {
		t.Fatalf("history in %d pages:\n got %v\nwant %v", pages+1, got, want)
	}
	p, err := h.Read(estest.Ctx(t), history.Query{Room: room, For: "u2", AtMost: atSeq, Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Messages) != 3 || body(p.Messages[0]) != "b9" || body(p.Messages[1]) != "cmd:8" || p.Next == 0 {
		t.Fatalf("the last 3 messages as of seq %d: %v (next %d)", atSeq, p.Messages, p.Next)
	}
}

// A page of a room with few messages among many other events stops after
// MaxScan records with a next page, and paging on finds every message.
func TestHistoryPageScanIsBounded(t *testing.T) {
	log := estest.Open(t, nil)
	e := estest.Engine(t, log, nil, nil)
	estest.Exec(t, e, estest.Login("s1", "u1", "r1"))
	for i := range 3 {
		estest.Exec(t, e, domain.SendBroadcast{Session: "s1", Room: "r1", Body: fmt.Sprint("m", i)})
		for range 10 { // churn: a member comes and goes
			estest.Exec(t, e, estest.Login("s2", "u2", "r1"))
			estest.Exec(t, e, domain.LeaveRoom{Session: "s2", Room: "r1"})
		}
	}
	h, err := history.New(history.Config{Log: log, MaxScan: 8})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	pages := 0
	for before := uint64(0); ; pages++ {
		p, err := h.Read(estest.Ctx(t), history.Query{Room: domain.RoomKey(estest.App, "r1"), For: "u1", Before: before, Count: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Messages {
			got = append(got, body(m))
		}
		if p.Next == 0 {
			break
		}
		before = p.Next
	}
	if fmt.Sprint(got) != "[m2 m1 m0]" || pages < 3 {
		t.Fatalf("history %v in %d pages", got, pages+1)
	}
}
