package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/transport/protocol"
)

// conn is one WebSocket connection. Three goroutines serve it: the reader
// (decodes frames, answers bad ones at once, queues requests), the worker
// (runs the session's requests in order), and the writer (the only one that
// writes to the socket). Frames to the client wait in a bounded queue: a
// barrage message is dropped when the queue is half full, and a client that
// lets it fill up entirely is disconnected (slow_consumer) so that it never
// stalls a room.
//
// A client that stops reading fills its socket's kernel buffer. The writer
// never starts a frame the buffer cannot take whole, and always leaves room
// for its last words: so a client dropped as too slow finds, when it reads
// again, whole frames, then session_closing and a close frame saying why,
// never half a frame.
//
// A watchdog on the gateway's clock keeps silent sockets from lingering: a
// connection that has not logged in (or resumed) within LoginTimeout is
// closed, one silent for HeartbeatInterval is pinged, one that does not
// answer the ping within PongTimeout, or stays silent for HeartbeatTimeout,
// is closed. Any frame from the client counts.
type conn struct {
	srv *Server
	ws  *websocket.Conn
	// nc is the socket under ws, asked how much it can take (nil: not
	// asked); budget is how many bytes it took room for at the last asking
	// and has not used (the writer's alone).
	nc     net.Conn
	budget int
	// sess is the session the connection carries: a resume replaces it.
	sess atomic.Pointer[session]

	out *frameQueue
	// reqs holds pointers: a buffer of RequestQueue whole requests (72
	// bytes each, full of pointers) was the largest thing on the heap the
	// collector scans, for every connection, busy or idle.
	reqs chan *protocol.Request
	done chan struct{}
	// stopped is closed when the worker has returned: no request of the
	// connection runs any more.
	stopped chan struct{}
	// work is the worker's context, which outlives the reader's when the
	// client goes away (see serve); stopWork cancels it.
	work     context.Context
	stopWork context.CancelFunc
	// open is work until the connection closes: what a request that
	// exists only for its answer runs on (see outlivesConnection).
	open      context.Context
	closeOpen context.CancelFunc
	once      sync.Once
	limiter   *rate.Limiter
	dropped   atomic.Int64

	reasonMu sync.Mutex
	reason   *domain.Error

	// opened is when the connection was accepted; heard is when its last
	// frame arrived and pinged the heard value a ping was sent for (Unix
	// nanoseconds on the gateway's clock).
	opened  time.Time
	heard   atomic.Int64
	pinged  atomic.Int64
	watchMu sync.Mutex
	watch   engine.Timer
}

func newConn(srv *Server, ws *websocket.Conn, nc net.Conn, sess *session) *conn {
	cfg := srv.cfg
	c := &conn{srv: srv, ws: ws, nc: nc, out: newFrameQueue(cfg.QueueSize),
		reqs: make(chan *protocol.Request, cfg.RequestQueue), done: make(chan struct{}), stopped: make(chan struct{}),
		limiter: rate.NewLimiter(rate.Limit(cfg.RequestsPerSecond), cfg.RequestBurst)}
	c.work, c.stopWork = context.WithCancel(context.Background())
	c.open, c.closeOpen = context.WithCancel(c.work)
	c.sess.Store(sess)
	c.opened = cfg.Clock.Now()
	c.heard.Store(c.opened.UnixNano())
	return c
}

// check is the watchdog: it closes a connection past one of its deadlines,
// pings one gone quiet, and sets itself for the next deadline.
func (c *conn) check() {
	select {
	case <-c.done:
		return
	default:
	}
	cfg := c.srv.cfg
	now := cfg.Clock.Now()
	heard := c.heard.Load()
	last := time.Unix(0, heard)
	bound := c.sess.Load().isBound()
	if login := c.opened.Add(cfg.LoginTimeout); !bound && !now.Before(login) {
		c.close(protocol.ErrLoginTimeout.With("no login within %v", cfg.LoginTimeout))
		return
	}
	silence := last.Add(cfg.HeartbeatTimeout)
	if !now.Before(silence) {
		c.close(protocol.ErrSilent.With("nothing received for %v", now.Sub(last)))
		return
	}
	next := silence
	if !bound {
		next = earliest(next, c.opened.Add(cfg.LoginTimeout))
	}
	if ping := last.Add(cfg.HeartbeatInterval); c.pinged.Load() != heard {
		if now.Before(ping) {
			next = earliest(next, ping)
		} else if c.pinged.Swap(heard) != heard {
			go c.ping()
			// Quiet for an interval: presence learns of a last frame
			// it was not told of (beats are at most one an interval).
			go c.sess.Load().flush(context.Background())
		}
	}
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	select {
	case <-c.done:
	default:
		c.watch = cfg.Clock.AfterFunc(next.Sub(now), c.check)
	}
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// ping checks that the peer is still there (a half-open TCP connection
// otherwise looks silent only once the heartbeat timeout passes). A pong
// proves the socket, not the session: only frames keep the session alive.
func (c *conn) ping() {
	ctx, cancel := context.WithTimeout(context.Background(), c.srv.cfg.PongTimeout)
	defer cancel()
	if err := c.ws.Ping(ctx); err != nil { // also when the socket closes meanwhile
		c.close(protocol.ErrPingTimeout.With("no pong within %v", c.srv.cfg.PongTimeout))
	}
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
		c.slow(protocol.ErrSlowConsumer.With("%d frames queued", c.out.limit))
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
func (c *conn) close(reason *domain.Error) (closed bool) {
	c.once.Do(func() {
		c.reasonMu.Lock()
		c.reason = reason
		c.reasonMu.Unlock()
		close(c.done)
		c.closeOpen()
		closed = true
	})
	return closed
}

// slow closes the connection as a slow consumer (why), and counts it,
// unless it was closed already, for whatever reason.
func (c *conn) slow(why *domain.Error) {
	if c.close(why) {
		c.srv.stats.slowConsumers.Add(1)
	}
}

// replace closes the connection of a session taken over by a resume, here
// or on another node, and cancels what it was still running, a client's
// last requests included: the session is served elsewhere now.
func (c *conn) replace() {
	c.close(protocol.ErrSessionReplaced)
	c.stopWork()
}

// why is the reason the connection was closed for: nil while it is open,
// and when the client went away.
func (c *conn) why() *domain.Error {
	c.reasonMu.Lock()
	defer c.reasonMu.Unlock()
	return c.reason
}

// serve runs the connection until it ends. When the client goes away (it
// closes its socket, or the socket fails), the requests it sent before are
// still carried out, as if it had left after them: a browser tab that sends
// a logout and closes is logged out now, not at its heartbeat timeout. When
// the server closes the connection, the command running is cancelled and
// nothing more runs.
func (c *conn) serve(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer c.stopWork()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.writer(ctx) }()
	go func() { defer wg.Done(); c.worker(c.work) }()
	c.check()
	c.reader(ctx)
	c.close(nil)
	if c.why() != nil {
		c.stopWork()
	}
	cancel()
	c.watchMu.Lock()
	if c.watch != nil {
		c.watch.Stop()
	}
	c.watchMu.Unlock()
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
		// Any frame proves the client alive: the watchdog hears it at
		// once, presence through a heartbeat's own beat or, for any other
		// frame, through heard (a heartbeat's reply must not wait for two
		// writes to presence).
		c.heard.Store(c.srv.cfg.Clock.Now().UnixNano())
		req, err := c.parse(typ, data)
		if err != nil || req.Op != protocol.OpHeartbeat {
			c.sess.Load().heard(ctx)
		}
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
		case c.reqs <- &req:
		default:
			c.sess.Load().reply(req.ID, nil, protocol.ErrTooManyRequests.With("%d requests already waiting", cap(c.reqs)))
		}
	}
}

// parse reads one frame as a request; a frame that is not one gets the
// error to reply with (and the request's id when it can be read).
func (c *conn) parse(typ websocket.MessageType, data []byte) (protocol.Request, error) {
	if typ != websocket.MessageText {
		return protocol.Request{}, protocol.ErrMalformedRequest.With("binary frames are not part of the protocol")
	}
	if len(data) > c.srv.cfg.MaxFrameBytes {
		return protocol.Request{ID: protocol.PeekID(data)},
			protocol.ErrFrameTooLarge.With("%d bytes, at most %d", len(data), c.srv.cfg.MaxFrameBytes)
	}
	return protocol.ParseRequest(data)
}

func (c *conn) worker(ctx context.Context) {
	defer close(c.stopped)
	for {
		// A closed connection runs nothing more (select picks at random
		// among ready cases), but what a client that went away sent.
		select {
		case <-c.done:
			c.lastRequests(ctx)
			return
		default:
		}
		select {
		case <-c.done:
			c.lastRequests(ctx)
			return
		case r := <-c.reqs:
			c.run(ctx, r)
		}
	}
}

// lastRequests runs what a client that went away sent before it left,
// except what only answers it (the answer has nowhere to go). A connection
// the server closed (replaced, too slow, silent, shutting down) runs
// nothing more.
func (c *conn) lastRequests(ctx context.Context) {
	if c.why() != nil {
		return
	}
	for ctx.Err() == nil { // until a resume takes the session, or shutdown
		select {
		case r := <-c.reqs:
			if outlivesConnection(r.Op) {
				c.run(ctx, r)
			}
		default:
			return
		}
	}
}

func (c *conn) run(ctx context.Context, r *protocol.Request) {
	req := *r
	if !outlivesConnection(req.Op) {
		// Its answer has nowhere to go once the connection closes: a
		// resume the client gave up must not take the session from the
		// connection it resumed on instead.
		ctx = c.open
	}
	if req.Op == protocol.OpResume {
		c.resume(ctx, req)
		return
	}
	if obs := c.srv.cfg.ObserveRequest; obs != nil {
		start := time.Now()
		c.sess.Load().handle(ctx, req)
		obs(req.Op, time.Since(start))
		return
	}
	c.sess.Load().handle(ctx, req)
}

// outlivesConnection says whether a request does something once its
// connection is gone: a resume, a query, a token renewal and the media
// signalling that waits for an answer exist for the connection alone
// (media_close still closes).
func outlivesConnection(op protocol.Op) bool {
	switch op {
	case protocol.OpResume, protocol.OpRenewToken, protocol.OpMediaOffer, protocol.OpMediaCandidate,
		protocol.OpMediaICERestart:
		return false
	}
	return !op.Query()
}

// Room kept in the socket's buffer: for session_closing and the close
// frame (a few hundred bytes), pongs and pings (about a hundred each).
const (
	lastWordsRoom = 4 << 10
	frameHeader   = 14
)

// room waits until the socket can take a frame of n bytes whole and still
// have lastWordsRoom left, or nothing is queued in it (a frame larger than
// the buffer is written when the buffer is empty). It returns false when
// WriteTimeout passes first (the client stopped reading) or the connection
// ends. Asking the kernel costs two system calls, so the room found is
// spent before it asks again.
func (c *conn) room(n int) bool {
	need := n + frameHeader
	if c.nc == nil || need <= c.budget {
		c.budget -= need
		return true
	}
	deadline := time.Now().Add(c.srv.cfg.WriteTimeout) // a network timeout: the real clock
	wait := time.Millisecond
	for {
		room, empty, ok := sendRoom(c.nc)
		if !ok {
			c.nc = nil
			return true
		}
		if room-lastWordsRoom >= need || empty {
			c.budget = room - lastWordsRoom - need
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		t := time.NewTimer(wait)
		select {
		case <-c.done:
			t.Stop()
			return false
		case <-t.C:
		}
		wait = min(2*wait, 20*time.Millisecond)
	}
}

func (c *conn) writer(ctx context.Context) {
	// One timer bounds every write by WriteTimeout, armed before each and
	// stopped after it, and the connection's context ends a write once, for
	// the writer's life: given a context per write, the WebSocket library
	// registers a callback on it, and with the context's own timer that was
	// 11% of what a node allocated under a login burst. A write that outlasts
	// either fails: its connection is closed under it, as a slow consumer
	// if the timer fired (recorded first: closing the socket also ends the
	// reader, which closes the connection as a client that left).
	deadline := time.AfterFunc(time.Hour, func() {
		c.slow(protocol.ErrSlowConsumer.With("a write did not finish in %v", c.srv.cfg.WriteTimeout))
		c.ws.CloseNow()
	})
	deadline.Stop()
	defer deadline.Stop()
	defer context.AfterFunc(ctx, func() { c.ws.CloseNow() })()
	write := func(b []byte) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		deadline.Reset(c.srv.cfg.WriteTimeout)
		defer deadline.Stop()
		return c.ws.Write(context.Background(), websocket.MessageText, b)
	}
	for {
		select {
		case <-c.done:
		default:
			if b, ok := c.out.pop(); ok {
				if !c.room(len(b)) {
					// The client stopped reading (unless the connection
					// was closed meanwhile): drop it, with the room kept
					// for telling it why.
					c.slow(protocol.ErrSlowConsumer.With("its socket took nothing for %v", c.srv.cfg.WriteTimeout))
					continue
				}
				if err := write(b); err != nil {
					// Timed out (the timer closed it as a slow consumer),
					// or the client went away, or the connection ended.
					c.close(nil)
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
			reason := c.why()
			if reason == nil {
				c.ws.CloseNow()
				return
			}
			// Tell the client why, then close with the code in the reason.
			b, _ := json.Marshal(protocol.Event{Type: protocol.TypeEvent, Event: protocol.EvSessionClosing,
				Data: protocol.SessionClosing{Code: int(reason.Code), Error: reason.Name,
					Message: protocol.ReplyTo("", nil, reason).Message}})
			write(b)
			if errors.Is(reason, protocol.ErrPingTimeout) {
				// The peer is gone: no close handshake to wait for.
				c.ws.CloseNow()
				return
			}
			status := websocket.StatusPolicyViolation
			if errors.Is(reason, protocol.ErrShuttingDown) {
				status = websocket.StatusGoingAway
			}
			go c.ws.Close(status, reason.Name)
			return
		}
	}
}
