package client

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/protocol"
)

// bare returns a client with no connection, to feed frames to directly.
func bare(h Handlers) *Client {
	o := Options{Handlers: h, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	o.setDefaults()
	return &Client{opts: o, log: o.Logger, clock: o.Clock, changed: make(chan struct{}), disp: newDispatcher(),
		rooms: map[string]*roomTrack{}, loginFailed: map[string]bool{}}
}

func frame(t *testing.T, name protocol.EventName, room string, seq, prev uint64, data any) *protocol.Frame {
	t.Helper()
	b, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	return &protocol.Frame{Type: protocol.TypeEvent, Event: name, Room: room, Seq: seq, Prev: prev, Data: b}
}

// The sequence check: events chain from the snapshot; one that does not is
// a gap; frames without a sequence are not checked; a departure ends the
// room's tracking.
func TestSequenceCheck(t *testing.T) {
	type gap struct {
		room          string
		expected, got uint64
	}
	gaps := make(chan gap, 10)
	c := bare(Handlers{OnGap: func(room string, expected, got uint64) { gaps <- gap{room, expected, got} }})
	defer c.disp.stop()
	c.entered("r1", 5, entry{op: protocol.OpLogin})
	msg := protocol.Message{MessageID: "m"}
	for _, f := range []*protocol.Frame{
		frame(t, protocol.EvBroadcastMessage, "r1", 6, 5, msg),
		frame(t, protocol.EvRoomOnlineUserCount, "r1", 0, 0, protocol.OnlineUserCount{Count: 2}),
		frame(t, protocol.EvBroadcastMessage, "r1", 9, 7, msg), // 7 and 8 were lost
		frame(t, protocol.EvBroadcastMessage, "r1", 10, 9, msg),
		frame(t, protocol.EvRoomStateChanged, "r1", 11, 10, protocol.RoomStateChanged{State: "Logout"}),
		frame(t, protocol.EvBroadcastMessage, "r1", 20, 3, msg), // after leaving: not checked
	} {
		c.event(nil, f)
	}
	select {
	case g := <-gaps:
		if g != (gap{"r1", 6, 7}) {
			t.Errorf("gap %+v", g)
		}
	case <-time.After(30 * time.Second): // generous: a loaded machine (clienttest.Wait; this package cannot import it)
		t.Fatal("no gap reported")
	}
	c.mu.Lock()
	_, tracked := c.rooms["r1"]
	c.mu.Unlock()
	if tracked {
		t.Error("the room is still tracked after the session's departure")
	}
	c.disp.push(func() { close(gaps) })
	for g := range gaps {
		t.Errorf("extra gap %+v", g)
	}
}

func TestBackoff(t *testing.T) {
	c := bare(Handlers{})
	defer c.disp.stop()
	c.opts.BackoffMin, c.opts.BackoffMax = 100*time.Millisecond, 2*time.Second
	for n := 1; n < 40; n++ {
		d := min(c.opts.BackoffMin<<min(n-1, 20), c.opts.BackoffMax)
		for range 20 {
			if got := c.backoff(n); got < d/2 || got > d {
				t.Fatalf("attempt %d: %v, want within [%v, %v]", n, got, d/2, d)
			}
		}
	}
}

func TestErrorMatching(t *testing.T) {
	err := error(&Error{Op: protocol.OpLogin, Code: 1002033, Name: "token_invalid", Message: "expired"})
	if !errors.Is(err, domain.ErrTokenInvalid) || errors.Is(err, domain.ErrTimeout) {
		t.Error("errors.Is against the domain sentinels")
	}
	if !errors.Is(err, &Error{Code: 1002033}) {
		t.Error("errors.Is against another *Error of the same code")
	}
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != 1002033 || de.Name != "token_invalid" {
		t.Errorf("errors.As *domain.Error: %+v", de)
	}
	if got := err.Error(); got != "roomlog: login: token_invalid (1002033): expired" {
		t.Errorf("message %q", got)
	}
	if !errors.Is(errReconnectFailed, domain.ErrTimeout) || !errors.Is(errReplaced, protocol.ErrSessionReplaced) ||
		!errors.Is(errConnLost(protocol.OpBroadcast), domain.ErrReconnecting) {
		t.Error("the SDK's own errors carry the documented codes")
	}
	if !isLocal(errConnLost(protocol.OpBroadcast)) || isLocal(err) {
		t.Error("isLocal")
	}
}

// Rooms are entered again the way they were first entered; a created room
// is entered (creating it again would fail while it exists).
func TestReentryRequests(t *testing.T) {
	u := User{ID: "alice", Name: "Alice"}
	cfg := &RoomConfig{DestroyDelay: 60}
	for _, tc := range []struct {
		e    entry
		want any
	}{
		{entry{op: protocol.OpLogin, user: &u, token: "t", role: "audience"},
			protocol.LoginRequest{Room: "r", User: u, Token: "t", Role: "audience"}},
		{entry{op: protocol.OpJoinRoom, token: "t"}, protocol.JoinRoomRequest{Room: "r", Token: "t"}},
		{entry{op: protocol.OpEnterRoom, user: &u, name: "Room", token: "t", config: cfg},
			protocol.CreateRoomRequest{Room: RoomInfo{ID: "r", Name: "Room"}, User: &u, Token: "t", Config: cfg}},
		// Quiet (a switch out of a quiet room keeps the flag) and the
		// capacity, whichever way the room was entered.
		{entry{op: protocol.OpLogin, user: &u, token: "t", quiet: true, capacity: 2},
			protocol.LoginRequest{Room: "r", User: u, Token: "t", MaxMemberCount: 2, UserStatusNotify: new(false)}},
		{entry{op: protocol.OpJoinRoom, token: "t", quiet: true},
			protocol.JoinRoomRequest{Room: "r", Token: "t", UserStatusNotify: new(false)}},
		{entry{op: protocol.OpEnterRoom, token: "t", config: cfg, quiet: true},
			protocol.CreateRoomRequest{Room: RoomInfo{ID: "r"}, Token: "t", Config: cfg, UserStatusNotify: new(false)}},
	} {
		got, _ := json.Marshal(tc.e.request("r"))
		want, _ := json.Marshal(tc.want)
		if string(got) != string(want) {
			t.Errorf("%s: %s, want %s", tc.e.op, got, want)
		}
	}
}
