package client_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/protocol"
)

// scriptedGateway is a WebSocket server on loopback whose every frame the
// test writes by hand: for the orders of frames a real node produces only
// by chance (a connection lost between a reply and the room event behind
// it, a resume reply that leaves a room out). Each accepted connection is
// handed to the test; the requests it reads, heartbeats aside, wait in its
// reqs.
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
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{protocol.Subprotocol}})
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
	case <-time.After(wait):
		t.Fatal("no connection reached the scripted gateway")
		return nil
	}
}

// dialScripted connects a client, recorded by r and quick to reconnect, to
// g, and answers its connection with a hello of session: it returns the
// client and its connection.
func dialScripted(t *testing.T, g *scriptedGateway, r *rec, session string) (*client.Client, *scriptedConn) {
	t.Helper()
	dialed := make(chan *client.Client, 1)
	go func() {
		a, err := client.Dial(ctx(t), g.url(), client.Options{Handlers: r.Handlers(), Logger: clienttest.Logger(t),
			BackoffMin: time.Millisecond, BackoffMax: 2 * time.Millisecond})
		if err != nil {
			t.Error(err)
		}
		dialed <- a
	}()
	c := g.next(t)
	c.hello(session, "rt-"+session)
	a := <-dialed
	if a == nil {
		t.FailNow()
	}
	t.Cleanup(func() { a.Close() })
	return a, c
}

// send writes one frame.
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

// req returns the next request the client sent, failing the test unless it
// is op.
func (c *scriptedConn) req(op protocol.Op) protocol.Request {
	c.t.Helper()
	select {
	case r := <-c.reqs:
		if r.Op != op {
			c.t.Fatalf("scripted gateway got %s, want %s", r.Op, op)
		}
		return r
	case <-time.After(wait):
		c.t.Fatalf("scripted gateway: no %s request", op)
		return protocol.Request{}
	}
}

// reply answers request id with data.
func (c *scriptedConn) reply(id string, data any) {
	c.t.Helper()
	var raw json.RawMessage
	if data != nil {
		raw, _ = json.Marshal(data)
	}
	c.send(protocol.Frame{Type: protocol.TypeReply, ID: id, Data: raw})
}

// refuse answers request id with the error e.
func (c *scriptedConn) refuse(id string, e *domain.Error) {
	c.t.Helper()
	c.send(protocol.Frame{Type: protocol.TypeReply, ID: id, Code: e.Code, Error: e.Name, Message: e.Message})
}

// event sends an event of room (seq and prev 0: not a room event).
func (c *scriptedConn) event(ev protocol.EventName, room string, seq, prev uint64, data any) {
	c.t.Helper()
	raw, _ := json.Marshal(data)
	c.send(protocol.Frame{Type: protocol.TypeEvent, Event: ev, Room: room, Seq: seq, Prev: prev, Data: raw})
}

// state sends a room_state_changed that is not a room event.
func (c *scriptedConn) state(room, st string) {
	c.t.Helper()
	c.event(protocol.EvRoomStateChanged, room, 0, 0, protocol.RoomStateChanged{State: st})
}

// serveEntry answers the request r that enters room (a login, a switch) as
// a node does: Logining, the reply with the room's snapshot at seq, Logined.
func (c *scriptedConn) serveEntry(r protocol.Request, room string, seq uint64) {
	c.t.Helper()
	c.state(room, "Logining")
	c.reply(r.ID, protocol.RoomSnapshot{Room: protocol.RoomInfo{ID: room}, Seq: seq})
	c.state(room, "Logined")
}

// scriptedLogin logs a into room through c, the room at seq.
func scriptedLogin(t *testing.T, c *scriptedConn, a *client.Client, room string, seq uint64) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := a.LoginRoom(ctx(t), room, client.User{ID: "alice", Name: "Alice"}, client.LoginOptions{Token: "tok"})
		errc <- err
	}()
	c.serveEntry(c.req(protocol.OpLogin), room, seq)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// settle has c answer the client's next request (a query it makes here)
// and then send a token_will_expire, and waits for that callback: every
// callback queued before it has run by then. It returns those, in order.
func settle(t *testing.T, a *client.Client, c *scriptedConn, r *rec) []ev {
	t.Helper()
	go a.QueryRoom(ctx(t), "settle") //nolint:errcheck
	q := c.req(protocol.OpQueryRoom)
	c.refuse(q.ID, domain.ErrNotInRoom)
	c.event(protocol.EvTokenWillExpire, "", 0, 0, protocol.TokenWillExpire{RemainSeconds: 7})
	var seen []ev
	for {
		e := r.Next()
		if e.Kind == "token" && e.Count == 7 {
			return seen
		}
		seen = append(seen, e)
	}
}

// finalStates returns the last state each room was told of in evs.
func finalStates(evs []ev) map[string]ev {
	last := map[string]ev{}
	for _, e := range evs {
		if e.Kind == "state" {
			last[e.Room] = e
		}
	}
	return last
}
