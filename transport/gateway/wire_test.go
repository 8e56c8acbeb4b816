package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/protocol"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func startNode(t *testing.T, gc gateway.Config) *node.Node {
	t.Helper()
	p := domain.DefaultPolicy()
	p.MultiRoom = true
	n, err := node.Start(estest.Ctx(t), node.Config{Log: eventstore.Config{DataDir: t.TempDir()},
		Policy: domain.Config{Default: p}, Secret: secret, HTTPListen: "127.0.0.1:0", Gateway: gc,
		Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func token(t *testing.T, n *node.Node, user string) string {
	t.Helper()
	tok, err := n.Signer.Mint(auth.Claims{App: "dev", User: user, AllRooms: true, Publish: true,
		ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func dial(t *testing.T, n *node.Node) *wire.Conn { return wire.Dial(t, n.HTTPAddr()) }

func TestWireLoginAndBroadcast(t *testing.T) {
	n := startNode(t, gateway.Config{})
	a, b := dial(t, n), dial(t, n)
	a.Send("1", protocol.OpLogin, protocol.LoginRequest{Room: "r1", User: protocol.User{ID: "alice", Name: "Alice"}, Token: token(t, n, "alice")})
	if f := a.Reply("1"); f.Code != 0 {
		t.Fatalf("login: %+v", f)
	}
	b.Send("1", protocol.OpLogin, protocol.LoginRequest{Room: "r1", User: protocol.User{ID: "bob", Name: "Bob"}, Token: token(t, n, "bob")})
	f := b.Reply("1")
	var snap protocol.RoomSnapshot
	json.Unmarshal(f.Data, &snap)
	if f.Code != 0 || len(snap.Users) != 2 {
		t.Fatalf("bob's login: %+v %+v", f, snap)
	}
	joined := a.Until(func(f protocol.Frame) bool { return f.Event == protocol.EvRoomUserUpdate })
	if !strings.Contains(string(joined.Data), `"bob"`) || joined.Room != "r1" || joined.Prev == 0 || joined.Seq <= joined.Prev {
		t.Fatalf("alice heard of bob as %+v", joined)
	}
	b.Send("2", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "hi alice"})
	if f := b.Reply("2"); f.Code != 0 {
		t.Fatalf("broadcast: %+v", f)
	}
	msg := a.Until(func(f protocol.Frame) bool { return f.Event == protocol.EvBroadcastMessage })
	if !strings.Contains(string(msg.Data), "hi alice") || msg.Prev != joined.Seq {
		t.Fatalf("alice got %+v after %+v", msg, joined)
	}
}

func TestWireBadInput(t *testing.T) {
	n := startNode(t, gateway.Config{MaxFrameBytes: 2048})
	w := dial(t, n)
	w.SendRaw(`{"id":"1","op":`)
	if f := w.Next(); f.Code != protocol.ErrMalformedRequest.Code {
		t.Errorf("malformed JSON: %+v", f)
	}
	w.Send("2", "teleport", map[string]string{})
	if f := w.Reply("2"); f.Code != protocol.ErrUnknownOperation.Code {
		t.Errorf("unknown op: %+v", f)
	}
	w.SendRaw(`{"id":"3","op":"broadcast","data":{"room":"r1","message":"` + strings.Repeat("x", 3000) + `"}}`)
	if f := w.Reply("3"); f.Code != protocol.ErrFrameTooLarge.Code {
		t.Errorf("oversize frame: %+v", f)
	}
	w.Send("4", protocol.OpLogin, protocol.LoginRequest{Room: "r1", User: protocol.User{ID: "alice"}, Token: "not a token"})
	if f := w.Reply("4"); f.Code != domain.ErrTokenInvalid.Code {
		t.Errorf("bad token: %+v", f)
	}
	// The connection still works after all of it.
	w.Send("5", protocol.OpLogin, protocol.LoginRequest{Room: "r1", User: protocol.User{ID: "alice"}, Token: token(t, n, "alice")})
	if f := w.Reply("5"); f.Code != 0 {
		t.Errorf("login after bad input: %+v", f)
	}
	// Health.
	for _, p := range []string{"/healthz", "/readyz"} {
		res, err := http.Get("http://" + n.HTTPAddr() + p)
		if err != nil || res.StatusCode != 200 {
			t.Errorf("%s: %v %v", p, res.Status, err)
		}
	}
}

// An empty, missing or too long room ID in any operation naming a room gets
// invalid_argument (1906001), from a session that has not logged in yet too
// (not not_in_room, with a LogoutFailed echoing the junk).
func TestBadRoomIDsBeforeAnyLoginAreInvalidArgument(t *testing.T) {
	n := startNode(t, gateway.Config{})
	w := dial(t, n)
	long := strings.Repeat("x", 200)
	cases := []struct{ name, op, data string }{
		{"logout of a room ID over 128 bytes", "logout", `{"room":"` + long + `"}`},
		{"leave a room ID over 128 bytes", "leave_room", `{"room":"` + long + `"}`},
		{"switch from an empty room", "switch_room", `{"from":"","to":"r2"}`},
		{"switch to an empty room", "switch_room", `{"from":"r1","to":""}`},
		{"switch from a room ID over 128 bytes", "switch_room", `{"from":"` + long + `","to":"r2"}`},
	}
	for i, c := range cases {
		id := "bad" + string(rune('a'+i))
		w.SendRaw(`{"id":"` + id + `","op":"` + c.op + `","data":` + c.data + `}`)
		f := w.Reply(id)
		if f.Code != domain.ErrInvalidArgument.Code {
			t.Errorf("%s, before any login: %d %s %q, want 1906001 invalid_argument", c.name, f.Code, f.Error, f.Message)
		}
	}
}
