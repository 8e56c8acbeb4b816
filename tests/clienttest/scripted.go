package clienttest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/protocol"
)

// ScriptedGateway is a WebSocket server on loopback whose every frame the
// test writes by hand: for the orders of frames a real node produces only
// by chance (a connection lost between a reply and the room event behind
// it, a resume reply that leaves a room out). A client (the Go SDK, or an
// engine of a browser page) connects to its URL. Each accepted connection
// is handed to the test (Next); the requests it reads, heartbeats aside,
// wait for Req.
type ScriptedGateway struct {
	srv   *httptest.Server
	conns chan *ScriptedConn
}

// ScriptedConn is one connection to a ScriptedGateway.
type ScriptedConn struct {
	t    testing.TB
	ws   *websocket.Conn
	reqs chan protocol.Request
}

// StartScripted starts a ScriptedGateway until the test ends, accepting the
// browser origins given (none: clients without an Origin header).
func StartScripted(t testing.TB, origins ...string) *ScriptedGateway {
	t.Helper()
	g := &ScriptedGateway{conns: make(chan *ScriptedConn, 16)}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{protocol.Subprotocol},
			OriginPatterns: origins})
		if err != nil {
			return
		}
		c := &ScriptedConn{t: t, ws: ws, reqs: make(chan protocol.Request, 64)}
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

// URL is where clients connect.
func (g *ScriptedGateway) URL() string { return "ws" + strings.TrimPrefix(g.srv.URL, "http") + "/ws" }

// Next returns the next connection the gateway accepted.
func (g *ScriptedGateway) Next(t testing.TB) *ScriptedConn {
	t.Helper()
	select {
	case c := <-g.conns:
		return c
	case <-time.After(Wait):
		t.Fatal("no connection reached the scripted gateway")
		return nil
	}
}

// Send writes one frame.
func (c *ScriptedConn) Send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	_ = c.ws.Write(context.Background(), websocket.MessageText, b)
}

// Hello sends the first frame of a connection (no heartbeats asked for).
func (c *ScriptedConn) Hello(session, resume string) {
	c.t.Helper()
	d, _ := json.Marshal(protocol.Hello{Protocol: protocol.Version, Session: session, ResumeToken: resume})
	c.Send(protocol.Frame{Type: protocol.TypeEvent, Event: protocol.EvHello, Data: d})
}

// Req returns the next request the client sent, failing the test unless it
// is op.
func (c *ScriptedConn) Req(op protocol.Op) protocol.Request {
	c.t.Helper()
	select {
	case r := <-c.reqs:
		if r.Op != op {
			c.t.Fatalf("scripted gateway got %s, want %s", r.Op, op)
		}
		return r
	case <-time.After(Wait):
		c.t.Fatalf("scripted gateway: no %s request", op)
		return protocol.Request{}
	}
}

// ReqSkipping is Req that first passes over, unanswered, the requests whose
// op is one of skip: those a client may or may not send meanwhile, such as
// the ICE candidates a browser trickles (media_candidate) when gathering
// outlasts its wait.
func (c *ScriptedConn) ReqSkipping(op protocol.Op, skip ...protocol.Op) protocol.Request {
	c.t.Helper()
	deadline := time.After(Wait)
	for {
		select {
		case r := <-c.reqs:
			if r.Op == op {
				return r
			}
			if !slices.Contains(skip, r.Op) {
				c.t.Fatalf("scripted gateway got %s, want %s", r.Op, op)
			}
			c.t.Logf("scripted gateway: passing over a %s", r.Op)
		case <-deadline:
			c.t.Fatalf("scripted gateway: no %s request", op)
			return protocol.Request{}
		}
	}
}

// Reply answers request id with data.
func (c *ScriptedConn) Reply(id string, data any) {
	c.t.Helper()
	var raw json.RawMessage
	if data != nil {
		raw, _ = json.Marshal(data)
	}
	c.Send(protocol.Frame{Type: protocol.TypeReply, ID: id, Data: raw})
}

// Refuse answers request id with the error e.
func (c *ScriptedConn) Refuse(id string, e *domain.Error) {
	c.t.Helper()
	c.Send(protocol.Frame{Type: protocol.TypeReply, ID: id, Code: e.Code, Error: e.Name, Message: e.Message})
}

// Event sends an event of room (seq and prev 0: not a room event).
func (c *ScriptedConn) Event(ev protocol.EventName, room string, seq, prev uint64, data any) {
	c.t.Helper()
	raw, _ := json.Marshal(data)
	c.Send(protocol.Frame{Type: protocol.TypeEvent, Event: ev, Room: room, Seq: seq, Prev: prev, Data: raw})
}

// State sends a room_state_changed that is not a room event.
func (c *ScriptedConn) State(room, st string) {
	c.t.Helper()
	c.Event(protocol.EvRoomStateChanged, room, 0, 0, protocol.RoomStateChanged{State: st})
}

// ServeEntry answers the request r that enters room (a login, a switch) as
// a node does: Logining, the reply with the room's snapshot at seq, Logined.
func (c *ScriptedConn) ServeEntry(r protocol.Request, room string, seq uint64) {
	c.t.Helper()
	c.State(room, "Logining")
	c.Reply(r.ID, protocol.RoomSnapshot{Room: protocol.RoomInfo{ID: room}, Seq: seq})
	c.State(room, "Logined")
}

// Drop breaks the connection at once, without a close handshake, as a lost
// network does.
func (c *ScriptedConn) Drop() { c.ws.CloseNow() }
