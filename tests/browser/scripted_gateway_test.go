package browser

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/protocol"
)

// scriptedGateway is a WebSocket server on loopback whose every frame the
// test writes by hand, for the orders of frames a real node produces only
// by chance (a connection lost between a reply and the room event behind
// it, a resume reply that leaves a room out). An engine of a harness page
// (loaded from a real node) connects to its url(). Each accepted connection
// is handed to the test; the requests it reads, heartbeats aside, wait in
// its reqs. (transport/client's tests have the same for the Go SDK.)
type scriptedGateway struct {
	srv   *httptest.Server
	conns chan *scriptedConn
}

// scriptedConn is one connection to a scriptedGateway.
type scriptedConn struct {
	t    *testing.T
	ws   *websocket.Conn
	reqs chan protocol.Request
}

func startScripted(t *testing.T) *scriptedGateway {
	t.Helper()
	g := &scriptedGateway{conns: make(chan *scriptedConn, 16)}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{protocol.Subprotocol},
			OriginPatterns: []string{"127.0.0.1:*"}})
		if err != nil {
			return
		}
		c := &scriptedConn{t: t, ws: ws, reqs: make(chan protocol.Request, 64)}
		g.conns <- c
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			var req protocol.Request
			if json.Unmarshal(b, &req) == nil && req.Op != protocol.OpHeartbeat {
				c.reqs <- req
			}
		}
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *scriptedGateway) url() string { return "ws" + strings.TrimPrefix(g.srv.URL, "http") + "/ws" }

// next returns the next connection the gateway accepted.
func (g *scriptedGateway) next(t *testing.T) *scriptedConn {
	t.Helper()
	select {
	case c := <-g.conns:
		return c
	case <-time.After(clienttest.Wait):
		t.Fatal("no connection reached the scripted gateway")
		return nil
	}
}

func (c *scriptedConn) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	_ = c.ws.Write(context.Background(), websocket.MessageText, b)
}

// hello sends the first frame of a connection (no heartbeats asked for).
func (c *scriptedConn) hello(session, resume string) {
	c.t.Helper()
	d, _ := json.Marshal(protocol.Hello{Protocol: protocol.Version, Session: session, ResumeToken: resume})
	c.send(protocol.Frame{Type: protocol.TypeEvent, Event: protocol.EvHello, Data: d})
}

// req returns the next request the engine sent, failing the test unless it
// is op.
func (c *scriptedConn) req(op protocol.Op) protocol.Request {
	c.t.Helper()
	select {
	case r := <-c.reqs:
		if r.Op != op {
			c.t.Fatalf("scripted gateway got %s, want %s", r.Op, op)
		}
		return r
	case <-time.After(clienttest.Wait):
		c.t.Fatalf("scripted gateway: no %s request", op)
		return protocol.Request{}
	}
}

func (c *scriptedConn) reply(id string, data any) {
	c.t.Helper()
	var raw json.RawMessage
	if data != nil {
		raw, _ = json.Marshal(data)
	}
	c.send(protocol.Frame{Type: protocol.TypeReply, ID: id, Data: raw})
}

// state sends a room_state_changed that is not a room event.
func (c *scriptedConn) state(room, st string) {
	c.t.Helper()
	d, _ := json.Marshal(protocol.RoomStateChanged{State: st})
	c.send(protocol.Frame{Type: protocol.TypeEvent, Event: protocol.EvRoomStateChanged, Room: room, Data: d})
}

// serveEntry answers the request r that enters room as a node does:
// Logining, the reply with the room's snapshot at seq, Logined.
func (c *scriptedConn) serveEntry(r protocol.Request, room string, seq uint64) {
	c.t.Helper()
	c.state(room, "Logining")
	c.reply(r.ID, protocol.RoomSnapshot{Room: protocol.RoomInfo{ID: room}, Seq: seq})
	c.state(room, "Logined")
}
