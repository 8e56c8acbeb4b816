// Package wire is a raw protocol client for tests: frames in, frames out,
// nothing else. Tests of the gateway's behaviour on the wire (bad input,
// ordering, reconnection) use it instead of the SDK, which hides frames.
package wire

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/roomlog/roomlog/transport/protocol"
)

// Conn is one raw protocol connection.
type Conn struct {
	t     testing.TB
	WS    *websocket.Conn
	Hello protocol.Hello
	wmu   sync.Mutex // requests and heartbeats may be sent from two goroutines
}

// wait bounds a dial, a write and Next: generous, for a loaded machine (it
// costs nothing when the frame comes).
const wait = 30 * time.Second

// Dial connects to ws://addr/ws and reads the hello frame.
func Dial(t testing.TB, addr string) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{Subprotocols: []string{protocol.Subprotocol}})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	ws.SetReadLimit(4 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	c := &Conn{t: t, WS: ws}
	f := c.Next()
	if f.Event != protocol.EvHello || json.Unmarshal(f.Data, &c.Hello) != nil {
		t.Fatalf("first frame %+v, want hello", f)
	}
	return c
}

// SendRaw sends s as one text frame.
func (c *Conn) SendRaw(s string) {
	c.t.Helper()
	if err := c.write(s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *Conn) write(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return c.WS.Write(ctx, websocket.MessageText, []byte(s))
}

// Heartbeat sends a heartbeat every d until ctx ends or the connection
// fails (replies are read, and ignored, by whoever reads the connection).
func (c *Conn) Heartbeat(ctx context.Context, d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if c.write(`{"id":"hb","op":"heartbeat"}`) != nil {
				return
			}
		}
	}
}

// Send sends a request.
func (c *Conn) Send(id string, op protocol.Op, data any) {
	c.t.Helper()
	var raw json.RawMessage
	if data != nil {
		raw, _ = json.Marshal(data)
	}
	b, _ := json.Marshal(protocol.Request{ID: id, Op: op, Data: raw})
	c.SendRaw(string(b))
}

// Next reads the next frame, failing the test after wait.
func (c *Conn) Next() protocol.Frame {
	c.t.Helper()
	f, err := c.TryNext(wait)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

// TryNext reads the next frame within d.
func (c *Conn) TryNext(d time.Duration) (protocol.Frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, b, err := c.WS.Read(ctx)
	if err != nil {
		return protocol.Frame{}, err
	}
	var f protocol.Frame
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("frame %s: %v", b, err)
	}
	return f, nil
}

// Until reads frames until one matches and returns it.
func (c *Conn) Until(match func(protocol.Frame) bool) protocol.Frame {
	c.t.Helper()
	for {
		if f := c.Next(); match(f) {
			return f
		}
	}
}

// Reply reads until the reply to request id.
func (c *Conn) Reply(id string) protocol.Frame {
	c.t.Helper()
	return c.Until(func(f protocol.Frame) bool { return f.Type == protocol.TypeReply && f.ID == id })
}

// Do sends a request and fails the test unless it succeeds.
func (c *Conn) Do(id string, op protocol.Op, data any) protocol.Frame {
	c.t.Helper()
	c.Send(id, op, data)
	f := c.Reply(id)
	if f.Code != 0 {
		c.t.Fatalf("%s: %d %s %s", op, f.Code, f.Error, f.Message)
	}
	return f
}

// Login logs into room as user with token and returns the room snapshot.
func (c *Conn) Login(room, user, token string) protocol.RoomSnapshot {
	c.t.Helper()
	f := c.Do("login-"+room, protocol.OpLogin, protocol.LoginRequest{Room: room, User: protocol.User{ID: user, Name: user}, Token: token})
	var snap protocol.RoomSnapshot
	if err := json.Unmarshal(f.Data, &snap); err != nil {
		c.t.Fatal(err)
	}
	return snap
}
