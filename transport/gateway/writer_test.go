package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/roomlog/roomlog/transport/protocol"
)

// stalledConn returns a connection of a server with cfg whose client never
// reads, with as many large frames queued as it can take: writing them
// fills the socket's buffers, and then a write blocks. The connection's
// socket is not asked for room (as on systems without that question), so
// the writer's own bound is what ends such a write.
func stalledConn(t *testing.T, cfg Config) *conn {
	t.Helper()
	accepted := make(chan *websocket.Conn, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		accepted <- ws
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
	c := newConn(&Server{cfg: cfg}, <-accepted, nil, nil)
	t.Cleanup(func() { c.ws.CloseNow() })
	frame := []byte(`"` + strings.Repeat("x", 60<<10) + `"`)
	for {
		if queued, full := c.out.push(frame, false); !queued || full {
			break
		}
	}
	return c
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
	c := stalledConn(t, Config{QueueSize: 4096, WriteTimeout: 200 * time.Millisecond})
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
	c := stalledConn(t, Config{QueueSize: 4096, WriteTimeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := runWriter(c, ctx)
	// Once a write blocks, the queue stops shrinking.
	deadline := time.Now().Add(30 * time.Second)
	for last := -1; ; {
		n := c.out.len()
		if n == last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer never blocked")
		}
		last = n
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the writer still blocks 30 s after its connection's context ended")
	}
}
