package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/roomlog/roomlog/transport/protocol"
)

// stalledConn returns a connection of a server with cfg whose client (also
// returned) never reads, with as many large frames queued as it can take:
// writing them fills the socket's buffers, and then a write blocks. Unless
// askRoom, the connection's socket is not asked for room (as on systems
// without that question), so the writer's own bound is what ends such a
// write.
func stalledConn(t *testing.T, cfg Config, askRoom bool) (*conn, *websocket.Conn) {
	t.Helper()
	type accept struct {
		ws *websocket.Conn
		nc net.Conn
	}
	accepted := make(chan accept, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj := &hijacked{ResponseWriter: w}
		ws, err := websocket.Accept(hj, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		accepted <- accept{ws, hj.conn}
		<-r.Context().Done()
	}))
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.CloseNow() })
	cfg.setDefaults()
	a := <-accepted
	if !askRoom {
		a.nc = nil
	}
	c := newConn(&Server{cfg: cfg}, a.ws, a.nc, nil)
	t.Cleanup(func() { c.ws.CloseNow() })
	frame := []byte(`"` + strings.Repeat("x", 60<<10) + `"`)
	for {
		if queued, full := c.out.push(frame, false); !queued || full {
			break
		}
	}
	return c, client
}

// runWriter runs c's writer on ctx and returns a channel closed when it
// has returned.
func runWriter(c *conn, ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.writer(ctx)
	}()
	return done
}

// A write the client does not take within WriteTimeout ends the
// connection as a slow consumer: one timer, armed for each write, bounds
// them all.
func TestAWriteThatOutlastsWriteTimeoutEndsTheConnection(t *testing.T) {
	c, _ := stalledConn(t, Config{QueueSize: 4096, WriteTimeout: 200 * time.Millisecond}, false)
	done := runWriter(c, context.Background())
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the writer still blocks 30 s after its client stopped reading (WriteTimeout 200 ms)")
	}
	if why := c.why(); !errors.Is(why, protocol.ErrSlowConsumer) {
		t.Errorf("closed for %v, want %s", why, protocol.ErrSlowConsumer.Name)
	}
	if n := c.srv.stats.slowConsumers.Load(); n != 1 {
		t.Errorf("%d slow consumers counted, want 1", n)
	}
}

// The connection's end (its context) ends a write that is blocked, long
// before WriteTimeout.
func TestTheConnectionsEndEndsABlockedWrite(t *testing.T) {
	c, _ := stalledConn(t, Config{QueueSize: 4096, WriteTimeout: time.Hour}, false)
	ctx, cancel := context.WithCancel(context.Background())
	done := runWriter(c, ctx)
	blocked(t, c)
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the writer still blocks 30 s after its connection's context ended")
	}
}

// blocked waits until c's writer blocks: the queue stops shrinking.
func blocked(t *testing.T, c *conn) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for last := -1; ; {
		n := c.out.len()
		if n == last {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer never blocked")
		}
		last = n
		time.Sleep(100 * time.Millisecond)
	}
}

// A client whose socket takes nothing for WriteTimeout (the socket asked
// for room, as on Linux, so that no write is cut mid-frame) is dropped as a
// slow consumer, and counted as one in the metrics
// (roomlog_gateway_slow_consumer_disconnects_total). Before, only the
// writes that timed out and the full queues were counted: on Linux, most
// slow consumers were dropped this way, uncounted.
func TestASocketThatTakesNothingIsCountedAsASlowConsumer(t *testing.T) {
	c, _ := stalledConn(t, Config{QueueSize: 4096, WriteTimeout: 200 * time.Millisecond}, true)
	done := runWriter(c, context.Background())
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the writer still runs 30 s after its client stopped reading (WriteTimeout 200 ms)")
	}
	if why := c.why(); !errors.Is(why, protocol.ErrSlowConsumer) {
		t.Errorf("closed for %v, want %s", why, protocol.ErrSlowConsumer.Name)
	}
	if n := c.srv.stats.slowConsumers.Load(); n != 1 {
		t.Errorf("%d slow consumers counted, want 1", n)
	}
}

// A client that goes away while a write to it is under way is not a slow
// consumer: the write fails, and the connection ends as any client's that
// left, counted as nothing. Before, any failed write was counted as a slow
// consumer, and the connection closed as one.
func TestAClientGoneMidWriteIsNotASlowConsumer(t *testing.T) {
	c, client := stalledConn(t, Config{QueueSize: 4096, WriteTimeout: time.Hour}, false)
	done := runWriter(c, context.Background())
	blocked(t, c)
	client.CloseNow() // with unread data: the server's socket is reset
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the writer still blocks 30 s after its client went away")
	}
	if why := c.why(); why != nil {
		t.Errorf("closed for %v, want nothing (the client left)", why)
	}
	if n := c.srv.stats.slowConsumers.Load(); n != 0 {
		t.Errorf("%d slow consumers counted, want 0", n)
	}
}
