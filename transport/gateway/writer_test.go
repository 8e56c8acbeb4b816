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
	droppedAsSlow(t, false)
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
	droppedAsSlow(t, true)
}

// droppedAsSlow runs the writer of a connection whose client stopped
// reading (askRoom: as stalledConn) with a WriteTimeout of 200 ms, and
// checks that it ends, closed as a slow consumer and counted as one, once.
func droppedAsSlow(t *testing.T, askRoom bool) {
	t.Helper()
	c, _ := stalledConn(t, Config{QueueSize: 4096, WriteTimeout: 200 * time.Millisecond}, askRoom)
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

// A connection closed for another reason (here the node's shutdown, as
// Server.Shutdown closes each connection) while the writer is blocked in a
// write to a client that stopped reading: the write then times out, and
// nothing is counted as a slow consumer; the connection stays closed as
// shutting_down. Found by the second reader.
func TestAConnectionClosedForAnotherReasonIsNotCountedSlow(t *testing.T) {
	c, _ := stalledConn(t, Config{QueueSize: 4096, WriteTimeout: 300 * time.Millisecond}, false)
	done := runWriter(c, context.Background())
	blocked(t, c)
	c.close(protocol.ErrShuttingDown)
	c.stopWork()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the writer still runs 30 s after its connection was closed")
	}
	if why := c.why(); !errors.Is(why, protocol.ErrShuttingDown) {
		t.Fatalf("closed for %v, want shutting_down", why)
	}
	if n := c.srv.stats.slowConsumers.Load(); n != 0 {
		t.Errorf("a connection closed as shutting_down counted as %d slow consumer(s)", n)
	}
}

// In a served connection (its reader running), a write that times out ends
// it as a slow consumer, every time: closing the socket also ends the
// reader's Read, and serve then closes the connection as a client that
// left (no reason), racing the writer. Found by the second reader: in 5 of
// 8 runs the reader won, and the client's last requests ran instead of
// being cancelled.
func TestAWriteTimeoutInAServedConnectionEndsItAsSlowConsumer(t *testing.T) {
	const runs = 8
	nilReasons := 0
	for i := range runs {
		c, _ := stalledConn(t, Config{QueueSize: 4096, WriteTimeout: 200 * time.Millisecond}, false)
		c.sess.Store(newSession(c.srv, "s-review"))
		done := make(chan struct{})
		go func() { defer close(done); c.serve(context.Background()) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("run %d: serve still runs 30 s after its client stopped reading", i)
		}
		if c.srv.stats.slowConsumers.Load() != 1 {
			t.Fatalf("run %d: %d slow consumers counted, want 1", i, c.srv.stats.slowConsumers.Load())
		}
		if why := c.why(); why == nil {
			nilReasons++
		} else if !errors.Is(why, protocol.ErrSlowConsumer) {
			t.Fatalf("run %d: closed for %v", i, why)
		}
	}
	if nilReasons > 0 {
		t.Errorf("%d of %d connections dropped for a write timeout (each counted as a slow consumer) ended "+
			"with no reason, as a client that left: their last requests ran", nilReasons, runs)
	}
}

// One slow client is counted once. Its writer is blocked in a write (a
// socket not asked for room, or a frame larger than its buffer); the hub's
// next frame finds the queue full, and enqueue closes it as a slow
// consumer; then the blocked write times out. Found by the second reader:
// it was counted twice.
func TestASlowConsumerIsCountedOnce(t *testing.T) {
	c, _ := stalledConn(t, Config{QueueSize: 4096, WriteTimeout: 300 * time.Millisecond}, false)
	done := runWriter(c, context.Background())
	blocked(t, c)
	for c.out.len() < c.out.limit { // refill what the writer took
		if queued, _ := c.out.push([]byte(`"x"`), false); !queued {
			break
		}
	}
	c.enqueue([]byte(`"x"`), false) // the hub's next frame: the queue is full
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the writer still runs 30 s after its client stopped reading")
	}
	if n := c.srv.stats.slowConsumers.Load(); n != 1 {
		t.Errorf("one slow client counted %d times (why: %v)", n, c.why())
	}
}
