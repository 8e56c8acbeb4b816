package admin_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/transport/admin"
)

// docs/admin.md, History: the routes check the hash chain as they go. An
// event forged onto a room's subject (it decodes, but its prev is not the
// hash of the event before it) is never served as genuine: /history used
// to serve it with 200, and /state and /diff answered 503 "retry later",
// which a backend retries for ever. Every read that reaches it is answered
// 500 history_broken; pages before it are still served.
func TestReadsThatReachAForgedEventAnswerHistoryBroken(t *testing.T) {
	n, adm := historyNode(t) // room "class 1.A": seqs 1..9
	forge(t, n.Log)          // seq 10
	for _, path := range []string{
		"/rooms/class%201.A/history?after_seq=8",
		"/rooms/class%201.A/history?after_seq=9", // the page starts at the forged event
		"/rooms/class%201.A/history?since=2026-11-21T09:00:08Z",
		"/rooms/class%201.A/state",
		"/rooms/class%201.A/diff?from=2",
	} {
		var e errBody
		code := call(t, n, adm, "GET", path, nil, &e)
		if code != http.StatusInternalServerError || e.Code != 1906016 || e.Error != "history_broken" ||
			!strings.Contains(e.Message, "seq 10") {
			t.Errorf("GET %s: HTTP %d %+v, want 500 history_broken naming seq 10", path, code, e)
		}
	}
	var page admin.HistoryPage
	if code := call(t, n, adm, "GET", "/rooms/class%201.A/history?limit=9", nil, &page); code != http.StatusOK ||
		len(page.Events) != 9 || page.Events[8].Seq != 9 {
		t.Errorf("the nine genuine events: HTTP %d, %d events", code, len(page.Events))
	}
	var r domain.Room
	if code := call(t, n, adm, "GET", "/rooms/class%201.A/state?seq=9", nil, &r); code != http.StatusOK || r.Seq != 9 {
		t.Errorf("the state before the forged event: HTTP %d, seq %d", code, r.Seq)
	}
}

// forge appends to room "class 1.A" a decodable broadcast, the next
// sequence, whose prev is not the hash of the event before it, as someone
// with the NATS credentials could.
func forge(t *testing.T, log *eventstore.Log) {
	t.Helper()
	ctx := estest.Ctx(t)
	subject := log.Subject("dev", string(domain.KindRoom), "class 1.A")
	last, _, err := log.Last(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	events, err := domain.DecodeEvents(last.Data)
	if err != nil {
		t.Fatal(err)
	}
	forged := events[len(events)-1]
	forged.ID = ulid.Make()
	forged.Seq++
	forged.Time = forged.Time.Add(time.Second)
	forged.Data = &domain.BroadcastSentData{From: "alice", FromName: "Alice", Session: "s1", Body: "forged"}
	body, _, err := domain.EncodeEvents(strings.Repeat("0", 64), []domain.Event{forged})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := log.Append(ctx, eventstore.Message{Subject: subject, MsgID: forged.ID.String(), Expected: last.Seq, Data: body}); err != nil {
		t.Fatal(err)
	}
}
