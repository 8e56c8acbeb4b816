package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/projections/cursor"
	"github.com/roomlog/roomlog/projections/stats"
)

func TestItServesMetricsJSONAndAPageWithPlots(t *testing.T) {
	st := stats.New()
	at := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	for i, p := range []domain.Payload{
		&domain.MemberJoinedData{User: "a", Session: "sa"},
		&domain.BroadcastSentData{From: "a", Body: "hi"},
		&domain.MemberLeftData{User: "a", Session: "sa", Reason: domain.ReasonHeartbeatTimeout},
	} {
		st.Apply(cursor.Cursor{Seq: uint64(i + 1)}, &domain.Event{Type: p.EventType(), App: "app", Aggregate: domain.KindRoom,
			AggregateID: "class", Seq: uint64(i + 1), Time: at.Add(time.Duration(i) * time.Minute), Data: p})
	}
	srv := httptest.NewServer((&server{stats: st}).routes())
	defer srv.Close()
	get := func(path string) string {
		t.Helper()
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, res.StatusCode, b)
		}
		return string(b)
	}
	metrics := get("/metrics")
	for _, want := range []string{`roomlog_leaves_total{reason="heartbeat_timeout"} 1`, `roomlog_room_messages_total{app="app",room="class"} 1`,
		`roomlog_session_duration_seconds_bucket{le="300"} 1`, "roomlog_stats_cursor_stream_seq 3"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, metrics)
		}
	}
	var js struct {
		Events uint64 `json:"events"`
		Cursor string `json:"cursor"`
	}
	if err := json.Unmarshal([]byte(get("/stats.json")), &js); err != nil || js.Events != 3 || js.Cursor != "3.0" {
		t.Errorf("/stats.json: %+v %v", js, err)
	}
	page := get("/")
	if !strings.Contains(page, "<polyline") || !strings.Contains(page, "heartbeat_timeout") {
		t.Errorf("the page has no plot or no leave reasons:\n%s", page)
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "https://") || strings.Contains(page, `src="http`) {
		t.Error("the page loads something from elsewhere")
	}
}
