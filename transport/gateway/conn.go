package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/protocol"
)

// conn is one WebSocket connection. Three goroutines serve it: the reader
// (decodes frames, answers bad ones at once, queues requests), the worker
// (runs the session's requests in order), and the writer (the only one that
// writes to the socket). Frames to the client wait in a bounded queue: a
// barrage message is dropped when the queue is half full, and a client that
// lets it fill up entirely is disconnected (slow_consumer) so that it never
// stalls a room.
type conn struct {
	srv *Server
	ws  *websocket.Conn
	// sess is the session the connection carries: a resume replaces it.
	sess atomic.Pointer[session]

	out     *frameQueue
	reqs    chan protocol.Request
	done    chan struct{}
	once    sync.Once
	limiter *rate.Limiter
	dropped atomic.Int64

	reasonMu sync.Mutex
	reason   *domain.Error
}

func newConn(srv *Server, ws *websocket.Conn, sess *session) *conn {
	cfg := srv.cfg
	c := &conn{srv: srv, ws: ws, out: newFrameQueue(cfg.QueueSize),
		reqs: make(chan protocol.Request, cfg.RequestQueue), done: make(chan struct{}),
		limiter: rate.NewLimiter(rate.Limit(cfg.RequestsPerSecond), cfg.RequestBurst)}
	c.sess.Store(sess)
	return c
}

// enqueue queues a frame without ever blocking the caller (the hub fanning a
// room out must not wait for one client).
func (c *conn) enqueue(b []byte, droppable bool) {
	select {
	case <-c.done:
		return
	default:
	}
	switch queued, full := c.out.push(b, droppable); {
	case full:
		c.srv.stats.slowConsumers.Add(1)
		c.close(protocol.ErrSlowConsumer.With("%d frames queued", c.out.limit))
	case !queued:
		c.dropped.Add(1)
		c.srv.stats.droppedBarrage.Add(1)
	}
}

// enqueueWait queues a frame, waiting while the queue is full: only for what
// the connection's own worker sends (a resume's replay), never for the hub.
func (c *conn) enqueueWait(ctx context.Context, b []byte) error {
	for {
		if queued, _ := c.out.push(b, false); queued {
			return nil
		}
		select {
		case <-c.out.taken:
		case <-c.done:
			return errDetached
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// close ends the connection for reason (nil: the client went away). The
// reason is sent as a last frame when the writer can still send it.
func (c *conn) close(reason *domain.Error) {
	c.once.Do(func() {
		c.reasonMu.Lock()
		c.reason = reason
		c.reasonMu.Unlock()
		close(c.done)
	})
}

// serve runs the connection until it ends.
func (c *conn) serve(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.writer(ctx) }()
	go func() { defer wg.Done(); c.worker(ctx) }()
	c.reader(ctx)
	c.close(nil)
	cancel()
	wg.Wait()
}

func (c *conn) reader(ctx context.Context) {
	for {
		typ, data, err := c.ws.Read(ctx)
		if err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				// The library has already closed the connection with
				// status 1009 ("read limited at N bytes"); this records why.
				c.srv.cfg.Logger.Debug("frame over the hard limit; connection closed", "limit", c.srv.cfg.HardFrameBytes)
				c.close(protocol.ErrFrameTooLarge.With("more than %d bytes", c.srv.cfg.HardFrameBytes))
			}
			return
		}
		select {
		case <-c.done:
			return
		default:
		}
		c.sess.Load().touch()
		if typ != websocket.MessageText {
			c.sess.Load().reply("", nil, protocol.ErrMalformedRequest.With("binary frames are not part of the protocol"))
			continue
		}
		if len(data) > c.srv.cfg.MaxFrameBytes {
			c.sess.Load().reply(protocol.PeekID(data), nil, protocol.ErrFrameTooLarge.With("%d bytes, at most %d", len(data), c.srv.cfg.MaxFrameBytes))
			continue
		}
		req, err := protocol.ParseRequest(data)
		if err != nil {
			c.sess.Load().reply(req.ID, nil, err)
			continue
		}
		if req.Op == protocol.OpHeartbeat {
			// Answered here, never queued behind slow commands.
			s := c.sess.Load()
			s.reply(req.ID, s.heartbeat(ctx), nil)
			continue
		}
		if !c.limiter.AllowN(c.srv.cfg.Clock.Now(), 1) { // the injected clock, as everywhere
			c.sess.Load().reply(req.ID, nil, protocol.ErrTooManyRequests.With("%g requests per second", c.srv.cfg.RequestsPerSecond))
			continue
		}
		select {
		case c.reqs <- req:
		default:
			c.sess.Load().reply(req.ID, nil, protocol.ErrTooManyRequests.With("%d requests already waiting", cap(c.reqs)))
		}
	}
}

func (c *conn) worker(ctx context.Context) {
	for {
		select {
		case <-c.done:
			return
		case req := <-c.reqs:
			if req.Op == protocol.OpResume {
				c.resume(ctx, req)
				continue
			}
			if obs := c.srv.cfg.ObserveRequest; obs != nil {
				start := time.Now()
				c.sess.Load().handle(ctx, req)
				obs(req.Op, time.Since(start))
				continue
			}
			c.sess.Load().handle(ctx, req)
		}
	}
}

func (c *conn) writer(ctx context.Context) {
	write := func(b []byte) error {
		wctx, cancel := context.WithTimeout(ctx, c.srv.cfg.WriteTimeout)
		defer cancel()
		return c.ws.Write(wctx, websocket.MessageText, b)
	}
	for {
		select {
		case <-c.done:
		default:
			if b, ok := c.out.pop(); ok {
				if err := write(b); err != nil {
					c.srv.stats.slowConsumers.Add(1)
					c.close(protocol.ErrSlowConsumer.With("a write did not finish in %v", c.srv.cfg.WriteTimeout))
					c.ws.CloseNow()
					return
				}
				continue
			}
		}
		select {
		case <-c.out.ready:
			continue
		case <-c.done:
			c.reasonMu.Lock()
			reason := c.reason
			c.reasonMu.Unlock()
			if reason == nil {
				c.ws.CloseNow()
				return
			}
			// Tell the client why, then close with the code in the reason.
			b, _ := json.Marshal(protocol.Event{Type: protocol.TypeEvent, Event: protocol.EvSessionClosing,
				Data: protocol.SessionClosing{Code: int(reason.Code), Error: reason.Name, Message: reason.Error()}})
			write(b)
			status := websocket.StatusPolicyViolation
			if errors.Is(reason, protocol.ErrShuttingDown) {
				status = websocket.StatusGoingAway
			}
			go c.ws.Close(status, reason.Name)
			return
		}
	}
}
