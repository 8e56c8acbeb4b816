package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/protocol"
)

// Helpers of errors_test.go and badinput_test.go: every refusal is checked
// the same way (the code and the stable name that came over the wire), and
// every room has bystanders whose view proves nothing else was disturbed.

// limitsPolicy is the default policy with multi-room allowed (as StartNode's
// default), edited by edit.
func limitsPolicy(edit func(*domain.Policy)) *domain.Policy {
	p := domain.DefaultPolicy()
	p.MultiRoom = true
	if edit != nil {
		edit(&p)
	}
	return &p
}

// dialMember dials an SDK client as user, logs it into room and returns it
// with the recorder of its callbacks.
func dialMember(t *testing.T, n *node.Node, room, user string) (*client.Client, *clienttest.Recorder) {
	t.Helper()
	r := clienttest.NewRecorder(t, user)
	c := clienttest.Dial(t, clienttest.URL(n.HTTPAddr()), r, nil)
	clienttest.Login(t, n, c, r, room, user)
	return c, r
}

// dialMulti dials an SDK client as user in multi-room mode, logged in to no room.
func dialMulti(t *testing.T, n *node.Node, user string) (*client.Client, *clienttest.Recorder) {
	t.Helper()
	r := clienttest.NewRecorder(t, user)
	c := clienttest.Dial(t, clienttest.URL(n.HTTPAddr()), r, nil)
	if err := c.SetRoomMode(clienttest.Ctx(t), client.MultiRoom); err != nil {
		t.Fatalf("%s chooses multi-room mode: %v", user, err)
	}
	return c, r
}

// refusedWith fails the test unless err is the server's refusal want: a
// *client.Error carrying want's code and stable name as the reply sent them,
// matching the sentinel with errors.Is.
func refusedWith(t *testing.T, what string, err error, want *domain.Error) {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) {
		t.Fatalf("%s: %v, want %s (%d)", what, err, want.Name, want.Code)
	}
	if ce.Code != want.Code || ce.Name != want.Name || !errors.Is(err, want) || ce.Message == "" {
		t.Fatalf("%s: %d %q %q, want %d %q with a message", what, ce.Code, ce.Name, ce.Message, want.Code, want.Name)
	}
}

// wireRefusedWith fails the test unless f is the reply to request id with
// want's code, stable name and a message.
func wireRefusedWith(t *testing.T, what string, f protocol.Frame, id string, want *domain.Error) {
	t.Helper()
	if f.Type != protocol.TypeReply || f.ID != id || f.Code != want.Code || f.Error != want.Name || f.Message == "" {
		t.Fatalf("%s: %+v, want the reply to %q with %d %q and a message", what, f, id, want.Code, want.Name)
	}
}

// waitState waits for the state st in room and checks its code.
func waitState(t *testing.T, r *clienttest.Recorder, room string, st client.RoomState, code domain.Code) {
	t.Helper()
	if e := r.WaitState(room, st); e.Code != code {
		t.Fatalf("%s: %s in %s with code %d, want %d", r.Name(), st, room, e.Code, code)
	}
}

// nextText waits for r's next callback of kind in room, skipping others,
// and returns what it carried as text: a message body, a command, a
// "key=value" extra info item, "ADD stream@publisher" for a stream update or
// "ADD user" for a user update.
func nextText(t *testing.T, r *clienttest.Recorder, kind, room string) string {
	t.Helper()
	e := r.WaitKind(kind, room)
	switch kind {
	case "broadcast", "barrage":
		if len(e.Msgs) != 1 {
			t.Fatalf("%s: %d messages in one %s callback, want 1", r.Name(), len(e.Msgs), kind)
		}
		return e.Msgs[0].Message
	case "command":
		return e.Cmd.Command
	case "extra_info":
		if len(e.Items) != 1 {
			t.Fatalf("%s: %d extra info items in one callback, want 1", r.Name(), len(e.Items))
		}
		return e.Items[0].Key + "=" + e.Items[0].Value
	case "stream":
		var ids []string
		for _, s := range e.Streams {
			ids = append(ids, s.Stream+"@"+s.User.ID)
		}
		return string(e.Type) + " " + strings.Join(ids, ",")
	case "user":
		var ids []string
		for _, u := range e.Users {
			ids = append(ids, u.ID)
		}
		return string(e.Type) + " " + strings.Join(ids, ",")
	}
	t.Fatalf("nextText: no text for kind %q", kind)
	return ""
}

// eventsUntil returns r's callbacks up to and including the first that
// matches, failing the test if none comes in time.
func eventsUntil(t *testing.T, r *clienttest.Recorder, what string, match func(clienttest.Event) bool) []clienttest.Event {
	t.Helper()
	deadline := time.Now().Add(clienttest.Wait)
	var seen []clienttest.Event
	for {
		e, ok := r.TryNext(time.Until(deadline))
		if !ok {
			t.Fatalf("%s: no %s within %v; saw %v", r.Name(), what, clienttest.Wait, seen)
		}
		seen = append(seen, e)
		if match(e) {
			return seen
		}
	}
}

// roomUsers returns the IDs of the users in room as c's query sees them.
func roomUsers(t *testing.T, c *client.Client, room string) []string {
	t.Helper()
	snap, err := c.QueryRoom(clienttest.Ctx(t), room)
	if err != nil {
		t.Fatalf("query %s: %v", room, err)
	}
	var ids []string
	for _, u := range snap.Users {
		ids = append(ids, u.ID)
	}
	return ids
}

// startNodeFailFast is clienttest.StartNode for a test that takes the log
// away. Its shutdown must not wait for a log that no longer answers: the
// log's connection is closed first, so that the requests the node makes as
// it stops (deleting its consumers) fail at once instead of each waiting out
// nats.go's 5 s default. The log's connect timeout, which also bounds the
// embedded server's start, is generous (a loaded machine): measured, the
// shutdown does not wait it out.
func startNodeFailFast(t *testing.T, gc gateway.Config) *node.Node {
	t.Helper()
	if gc.HeartbeatInterval == 0 {
		gc.HeartbeatInterval = clienttest.Heartbeat
	}
	n, err := node.Start(clienttest.Ctx(t), node.Config{
		Log:    eventstore.Config{DataDir: t.TempDir(), ConnectTimeout: 10 * time.Second},
		Policy: domain.Config{Default: *limitsPolicy(nil)}, Secret: clienttest.Secret, HTTPListen: "127.0.0.1:0",
		Gateway: gc, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// ---- a raw connection that can stop reading ----

// stallConn is a raw protocol connection whose owner decides when to read:
// between reads the server's frames pile up in the socket buffers and then
// in the server's queue for it, as they do for a client that hangs. Its
// receive buffer is fixed and small, so that how much the network can hold
// for it is known (see socketSlack).
type stallConn struct {
	t     *testing.T
	ws    *websocket.Conn
	hello protocol.Hello
	// rcvbuf is the receive buffer the kernel gave the socket, in bytes.
	rcvbuf int
}

// dialStalling connects to the node's gateway with a receive buffer of
// about rcvbuf bytes and reads the hello frame.
func dialStalling(t *testing.T, addr string, rcvbuf int) *stallConn {
	t.Helper()
	sc := &stallConn{t: t}
	dialer := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			// Set before connect, so the kernel neither autotunes it nor
			// advertises a larger window.
			if serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf); serr != nil {
				return
			}
			sc.rcvbuf, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		})
		return errors.Join(err, serr)
	}}
	hc := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{HTTPClient: hc,
		Subprotocols: []string{protocol.Subprotocol}})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	ws.SetReadLimit(4 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	sc.ws = ws
	f, err := sc.next(10 * time.Second)
	if err != nil || f.Event != protocol.EvHello || json.Unmarshal(f.Data, &sc.hello) != nil {
		t.Fatalf("first frame %+v (%v), want hello", f, err)
	}
	return sc
}

func (c *stallConn) send(id string, op protocol.Op, data any) {
	c.t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		c.t.Fatal(err)
	}
	b, _ := json.Marshal(protocol.Request{ID: id, Op: op, Data: raw})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("send %s: %v", op, err)
	}
}

// next reads one frame within d; the error is the connection's (a
// websocket.CloseError when the server closed it with a status).
func (c *stallConn) next(d time.Duration) (protocol.Frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		return protocol.Frame{}, err
	}
	var f protocol.Frame
	if err := json.Unmarshal(b, &f); err != nil {
		return protocol.Frame{}, fmt.Errorf("frame %.200s: %w", b, err)
	}
	return f, nil
}

// reply reads until the reply to id, skipping other frames.
func (c *stallConn) reply(id string) protocol.Frame {
	c.t.Helper()
	for {
		f, err := c.next(10 * time.Second)
		if err != nil {
			c.t.Fatalf("waiting for the reply to %s: %v", id, err)
		}
		if f.Type == protocol.TypeReply && f.ID == id {
			return f
		}
	}
}

// socketSlack bounds how many bytes the network can hold for a client that
// does not read: the server's send buffer, which Linux autotunes up to the
// third field of tcp_wmem, and the client's fixed receive buffer. Whatever
// a server sends beyond that has to wait in the server's own queue.
func socketSlack(t *testing.T, rcvbuf int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem")
	if err != nil {
		t.Fatalf("the socket send buffer limit is unknown: %v", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 3 {
		t.Fatalf("tcp_wmem %q: want three fields", b)
	}
	wmem, err := strconv.Atoi(f[2])
	if err != nil {
		t.Fatal(err)
	}
	return wmem + rcvbuf
}
