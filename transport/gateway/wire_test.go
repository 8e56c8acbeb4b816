package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
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

// wire is a raw protocol client: frames in, frames out, nothing else.
type wire struct {
	t  *testing.T
	ws *websocket.Conn
}

func dial(t *testing.T, n *node.Node) *wire {
	t.Helper()
	ws, _, err := websocket.Dial(estest.Ctx(t), "ws://"+n.HTTPAddr()+"/ws",
		&websocket.DialOptions{Subprotocols: []string{protocol.Subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	w := &wire{t: t, ws: ws}
	if f := w.next(); f.Event != protocol.EvHello {
		t.Fatalf("first frame %+v, want hello", f)
	}
	return w
}

func (w *wire) sendRaw(s string) {
	w.t.Helper()
	if err := w.ws.Write(estest.Ctx(w.t), websocket.MessageText, []byte(s)); err != nil {
		w.t.Fatal(err)
	}
}

func (w *wire) send(id string, op protocol.Op, data any) {
	w.t.Helper()
	b, _ := json.Marshal(data)
	req, _ := json.Marshal(protocol.Request{ID: id, Op: op, Data: b})
	w.sendRaw(string(req))
}

func (w *wire) next() protocol.Frame {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := w.ws.Read(ctx)
	if err != nil {
		w.t.Fatalf("read: %v", err)
	}
	var f protocol.Frame
	if err := json.Unmarshal(b, &f); err != nil {
		w.t.Fatalf("frame %s: %v", b, err)
	}
	return f
}

// until reads frames until one matches, failing on a reply with another id.
func (w *wire) until(match func(protocol.Frame) bool) protocol.Frame {
	w.t.Helper()
	for {
		if f := w.next(); match(f) {
			return f
		}
	}
}

func (w *wire) reply(id string) protocol.Frame {
	w.t.Helper()
	return w.until(func(f protocol.Frame) bool { return f.Type == protocol.TypeReply && f.ID == id })
}

func TestWireLoginAndBroadcast(t *testing.T) {
	n := startNode(t, gateway.Config{})
	a, b := dial(t, n), dial(t, n)
	a.send("1", protocol.OpLogin, protocol.LoginRequest{Room: "r1", User: protocol.User{ID: "alice", Name: "Alice"}, Token: token(t, n, "alice")})
	if f := a.reply("1"); f.Code != 0 {
		t.Fatalf("login: %+v", f)
	}
	b.send("1", protocol.OpLogin, protocol.LoginRequest{Room: "r1", User: protocol.User{ID: "bob", Name: "Bob"}, Token: token(t, n, "bob")})
	f := b.reply("1")
	var snap protocol.RoomSnapshot
	json.Unmarshal(f.Data, &snap)
	if f.Code != 0 || len(snap.Users) != 2 {
		t.Fatalf("bob's login: %+v %+v", f, snap)
	}
	joined := a.until(func(f protocol.Frame) bool { return f.Event == protocol.EvRoomUserUpdate })
	if !strings.Contains(string(joined.Data), `"bob"`) || joined.Room != "r1" || joined.Prev == 0 || joined.Seq <= joined.Prev {
		t.Fatalf("alice heard of bob as %+v", joined)
	}
	b.send("2", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "hi alice"})
	if f := b.reply("2"); f.Code != 0 {
		t.Fatalf("broadcast: %+v", f)
	}
	msg := a.until(func(f protocol.Frame) bool { return f.Event == protocol.EvBroadcastMessage })
	if !strings.Contains(string(msg.Data), "hi alice") || msg.Prev != joined.Seq {
		t.Fatalf("alice got %+v after %+v", msg, joined)
	}
}

func TestWireBadInput(t *testing.T) {
	n := startNode(t, gateway.Config{MaxFrameBytes: 2048})
	w := dial(t, n)
	w.sendRaw(`{"id":"1","op":`)
	if f := w.next(); f.Code != protocol.ErrMalformedRequest.Code {
		t.Errorf("malformed JSON: %+v", f)
	}
	w.send("2", "teleport", map[string]string{})
	if f := w.reply("2"); f.Code != protocol.ErrUnknownOperation.Code {
		t.Errorf("unknown op: %+v", f)
	}
	w.sendRaw(`{"id":"3","op":"broadcast","data":{"room":"r1","message":"` + strings.Repeat("x", 3000) + `"}}`)
	if f := w.reply("3"); f.Code != protocol.ErrFrameTooLarge.Code {
		t.Errorf("oversize frame: %+v", f)
	}
	w.send("4", protocol.OpLogin, protocol.LoginRequest{Room: "r1", User: protocol.User{ID: "alice"}, Token: "not a token"})
	if f := w.reply("4"); f.Code != domain.ErrTokenInvalid.Code {
		t.Errorf("bad token: %+v", f)
	}
	// The connection still works after all of it.
	w.send("5", protocol.OpLogin, protocol.LoginRequest{Room: "r1", User: protocol.User{ID: "alice"}, Token: token(t, n, "alice")})
	if f := w.reply("5"); f.Code != 0 {
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
