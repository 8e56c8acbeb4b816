package admin_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/transport/admin"
	"github.com/roomlog/roomlog/transport/protocol"
)

// The retention tests purge the start of the log, as roomd -retention does;
// the stream denies that to any client unless tampering is allowed.
func TestMain(m *testing.M) {
	eventstore.AllowTamperingInTests()
	os.Exit(m.Run())
}

// historyNode starts a node on a fake clock and writes room "class 1.A": seqs
// 1, 2 (created, joined), then 3..9 (seven broadcasts).
func historyNode(t *testing.T) (*node.Node, string) {
	t.Helper()
	clock := estest.NewClock(time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC))
	p := domain.DefaultPolicy()
	p.MultiRoom = true
	p.Limits.BroadcastPerSecond = 1000
	n, err := node.Start(estest.Ctx(t), node.Config{Log: eventstore.Config{DataDir: t.TempDir()},
		Policy: domain.Config{Default: p}, Secret: []byte("admin-test-secret-0123456789abcdef"), HTTPListen: "127.0.0.1:0",
		Clock: clock, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	chat(t, n, clock, "class 1.A", 7)
	return n, admin_(t, n)
}

// docs/architecture.md, Retention: a room whose first events retention
// removed cannot be replayed, and the answer says so; it is no outage to
// retry (503 unavailable) but gone for good.
func TestStateAndDiffOfARoomWhoseStartWasRemovedAreGone(t *testing.T) {
	n, adm := historyNode(t)
	last, err := n.Log.LastSeq(estest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	estest.Purge(t, n.Log, last) // only the room's last broadcast is kept
	for _, path := range []string{"/rooms/class%201.A/state", "/rooms/class%201.A/state?seq=9", "/rooms/class%201.A/diff?from=2"} {
		var e errBody
		code := call(t, n, adm, "GET", path, nil, &e)
		if code != http.StatusGone || e.Code != 1906015 || e.Error != "history_removed" ||
			!strings.Contains(e.Message, "the start of the history was removed by retention") {
			t.Errorf("GET %s: HTTP %d %+v, want 410 history_removed saying the start of the history was removed by retention",
				path, code, e)
		}
	}
}

// A diff whose from point comes after its to point is refused, rather than
// answered "nothing changed".
func TestADiffWithAReversedRangeIsRefused(t *testing.T) {
	n, adm := historyNode(t)
	var d admin.RoomDiff
	if code := call(t, n, adm, "GET", "/rooms/class%201.A/diff?from=3&to=3", nil, &d); code != 200 || len(d.Changes) != 0 {
		t.Fatalf("diff from 3 to 3: HTTP %d %+v", code, d)
	}
	at := func(sec int) string {
		return time.Date(2026, 11, 21, 9, 0, sec, 0, time.UTC).Format(time.RFC3339)
	}
	// The last: a to time before the room's first event, which used to
	// be answered 404 room_not_exist for a room that exists.
	beforeTheRoom := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC).Format(time.RFC3339)
	for _, q := range []string{"from=9&to=3", "from=" + at(8) + "&to=" + at(2), "from=9&to=" + at(2), "from=" + at(8) + "&to=3",
		"from=3&to=" + beforeTheRoom} {
		var e errBody
		if code := call(t, n, adm, "GET", "/rooms/class%201.A/diff?"+q, nil, &e); code != http.StatusBadRequest ||
			e.Code != domain.ErrInvalidArgument.Code || !strings.Contains(e.Message, "after") {
			t.Errorf("diff?%s: HTTP %d %+v, want 400 invalid_argument", q, code, e)
		}
	}
}

// A point past the room's last event is refused, not answered with the
// state at the end.
func TestAPointPastTheRoomsEndIsRefused(t *testing.T) {
	n, adm := historyNode(t)
	var r domain.Room
	if code := call(t, n, adm, "GET", "/rooms/class%201.A/state?seq=9", nil, &r); code != 200 || r.Seq != 9 {
		t.Fatalf("state at seq 9 (the end): HTTP %d %+v", code, r)
	}
	var e errBody
	if code := call(t, n, adm, "GET", "/rooms/class%201.A/state?seq=3&at=2026-11-21T09:00:05Z", nil, &e); code != 400 ||
		e.Code != domain.ErrInvalidArgument.Code {
		t.Errorf("state with both seq and at: HTTP %d %+v, want 400 invalid_argument", code, e)
	}
	for _, path := range []string{"/rooms/class%201.A/state?seq=999", "/rooms/class%201.A/state?seq=10",
		"/rooms/class%201.A/diff?from=2&to=999", "/rooms/class%201.A/diff?from=999"} {
		var e errBody
		if code := call(t, n, adm, "GET", path, nil, &e); code != http.StatusNotFound || e.Code != protocol.ErrNotFound.Code ||
			!strings.Contains(e.Message, "last event is seq 9") {
			t.Errorf("GET %s: HTTP %d %+v, want 404 not_found naming the last event", path, code, e)
		}
	}
}

// Only an absent rooms field or ["*"] means every room: an empty list, or
// one that holds "*" among rooms, is a mistake, not an all-rooms token.
func TestATokenForAnEmptyRoomListIsRefused(t *testing.T) {
	n := start(t)
	adm := admin_(t, n)
	var e errBody
	code := rawCall(t, n, adm, "POST", "/tokens", []byte(`{"user":"alice","rooms":[]}`), &e)
	if code != http.StatusBadRequest || e.Code != domain.ErrInvalidArgument.Code || !strings.Contains(e.Message, "rooms") {
		t.Errorf(`"rooms": []: HTTP %d %+v, want 400 invalid_argument`, code, e)
	}
	// A list naming rooms and "*" (a backend's selection holding a room
	// called "*") is not every room either: roomctl token refuses it too.
	// It used to mint an all-rooms token.
	e = errBody{}
	code = rawCall(t, n, adm, "POST", "/tokens", []byte(`{"user":"alice","rooms":["class-1","*"]}`), &e)
	if code != http.StatusBadRequest || e.Code != domain.ErrInvalidArgument.Code || !strings.Contains(e.Message, `"*"`) {
		t.Errorf(`"rooms": ["class-1","*"]: HTTP %d %+v, want 400 invalid_argument`, code, e)
	}
	for _, body := range []string{`{"user":"alice"}`, `{"user":"alice","rooms":["*"]}`} {
		var tr admin.TokenReply
		if code := rawCall(t, n, adm, "POST", "/tokens", []byte(body), &tr); code != 200 {
			t.Fatalf("%s: HTTP %d", body, code)
		}
		if c, err := n.Signer.Verify(tr.Token); err != nil || !c.AllRooms {
			t.Errorf("%s: claims %+v, %v; want every room", body, c, err)
		}
	}
}

// docs/admin.md: "a request without a valid admin token is logged with its
// address and the reason", one with no bearer token at all included.
func TestARequestWithoutABearerTokenIsLogged(t *testing.T) {
	var buf lockedBuf
	p := domain.DefaultPolicy()
	n, err := node.Start(estest.Ctx(t), node.Config{Log: eventstore.Config{DataDir: t.TempDir()},
		Policy: domain.Config{Default: p}, Secret: []byte("admin-test-secret-0123456789abcdef"), HTTPListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	for i, auth := range []string{"", "Basic YWRtaW46YWRtaW4="} {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/admin/v1/apps/dev/rooms?probe=%d", n.HTTPAddr(), i), nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("Authorization %q: HTTP %d", auth, res.StatusCode)
		}
	}
	var lines []string
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, "admin request unauthorized") && strings.Contains(l, "no bearer token") &&
			strings.Contains(l, "remote=127.0.0.1:") && strings.Contains(l, "path=/admin/v1/apps/dev/rooms") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 {
		t.Errorf("%d of 2 requests without a bearer token logged with address and reason; log:\n%s", len(lines), buf.String())
	}
}

// The Bearer scheme's name is case-insensitive (RFC 9110, section 11.1): a
// client writing "bearer" is let in. Before, it was refused as having no
// bearer token.
func TestTheBearerSchemeIsCaseInsensitive(t *testing.T) {
	n := start(t)
	tok := admin_(t, n)
	for _, scheme := range []string{"bearer", "BEARER", "Bearer"} {
		req, _ := http.NewRequest("GET", "http://"+n.HTTPAddr()+"/admin/v1/apps/dev/rooms", nil)
		req.Header.Set("Authorization", scheme+" "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("Authorization %q with an admin token: HTTP %d", scheme, res.StatusCode)
		}
	}
}
