package client

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/protocol"
)

// link is one WebSocket connection. Its reader goroutine is the only one
// that reads; writes (requests, heartbeats) come from any goroutine and are
// serialized by the websocket library. A link is never reused: a lost
// connection is replaced by a new link.
type link struct {
	c     *Client
	ws    *websocket.Conn
	hello protocol.Hello
	// ctx ends when the link dies; reads and writes use it rather than a
	// caller's context, because the websocket library closes the whole
	// connection when the context of a read or write ends.
	ctx    context.Context
	cancel context.CancelFunc

	// last is when the last frame arrived (Clock time, Unix nanoseconds).
	last atomic.Int64
	// replaced: the server said the session was resumed on another
	// connection (session_replaced); this link's loss is final.
	replaced atomic.Bool

	// sendMu keeps requests' numbering (call.seq) in the order their
	// frames are written, which is the order the server runs them in.
	sendMu sync.Mutex

	mu      sync.Mutex
	pending map[string]*call
	dead    bool
	why     error
	// beatTimer and watchTimer are the pending heartbeat and watchdog.
	beatTimer, watchTimer Timer
}

// call is a request waiting for its reply.
type call struct {
	op   protocol.Op
	done chan result // buffered: a late reply never blocks the reader
	hook func(data []byte) error
	lost func() // see hooks.lost
	seq  uint64 // the order it was written in (its id's number; see sendMu)
}

type result struct {
	data []byte
	err  error
}

// connect dials the gateway, reads the hello frame and starts the link's
// reader and heartbeats.
func (c *Client) connect(ctx context.Context) (*link, error) {
	ws, _, err := websocket.Dial(ctx, c.url, &websocket.DialOptions{Subprotocols: []string{protocol.Subprotocol},
		HTTPHeader: c.opts.HTTPHeader})
	if err != nil {
		return nil, fmt.Errorf("roomlog: dial %s: %w", c.url, err)
	}
	if ws.Subprotocol() != protocol.Subprotocol {
		ws.CloseNow()
		return nil, fmt.Errorf("roomlog: %s did not accept the %s subprotocol", c.url, protocol.Subprotocol)
	}
	ws.SetReadLimit(c.opts.ReadLimit)
	hello, err := readHello(ctx, ws)
	if err != nil {
		ws.CloseNow()
		return nil, err
	}
	l := &link{c: c, ws: ws, hello: hello, pending: map[string]*call{}}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.touch()
	go l.read()
	l.startHeartbeat()
	return l, nil
}

func readHello(ctx context.Context, ws *websocket.Conn) (protocol.Hello, error) {
	var h protocol.Hello
	_, b, err := ws.Read(ctx)
	if err != nil {
		return h, fmt.Errorf("roomlog: read hello: %w", err)
	}
	var f protocol.Frame
	if err := json.Unmarshal(b, &f); err != nil || f.Type != protocol.TypeEvent || f.Event != protocol.EvHello {
		return h, fmt.Errorf("roomlog: the first frame is not hello: %.200s", b)
	}
	if err := json.Unmarshal(f.Data, &h); err != nil {
		return h, fmt.Errorf("roomlog: hello: %w", err)
	}
	if h.Protocol != protocol.Version {
		return h, fmt.Errorf("roomlog: the server speaks protocol %d, this client %d", h.Protocol, protocol.Version)
	}
	if h.Session == "" {
		return h, errors.New("roomlog: hello names no session")
	}
	return h, nil
}

func (l *link) touch() { l.last.Store(l.c.clock.Now().UnixNano()) }

func (l *link) isDead() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dead
}

func (l *link) cause() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.why
}

// kill ends the link and fails its pending requests; it reports whether
// this call did it (false if the link was dead already).
func (l *link) kill(why error) bool {
	l.mu.Lock()
	if l.dead {
		l.mu.Unlock()
		return false
	}
	l.dead, l.why = true, why
	pending := l.pending
	l.pending = nil
	for _, t := range []Timer{l.beatTimer, l.watchTimer} {
		if t != nil {
			t.Stop()
		}
	}
	l.mu.Unlock()
	l.cancel()
	l.ws.CloseNow()
	// In the order the requests were sent, which is the order the server
	// ran them in: a lost request's hook may depend on what the lost ones
	// before it may have done (see switchLost).
	calls := slices.SortedFunc(maps.Values(pending), func(a, b *call) int { return cmp.Compare(a.seq, b.seq) })
	for _, call := range calls {
		err := error(errConnLost(call.op))
		if why == ErrClosed {
			err = ErrClosed
		} else if call.lost != nil {
			call.lost()
		}
		call.done <- result{err: err}
	}
	return true
}

// closeNormally ends the link with a normal closure, so that the server
// knows the client went away on purpose (it still keeps the session).
func (l *link) closeNormally() {
	// Close performs the closing handshake, which the library bounds by 5 s
	// per step: a connection that went silent must not hold Close up that
	// long, so the handshake gets a second and the socket is then dropped.
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.ws.Close(websocket.StatusNormalClosure, "client closed")
	}()
	t := time.NewTimer(closeHandshake)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	l.kill(ErrClosed)
}

// closeHandshake bounds the closing handshake of Close.
const closeHandshake = time.Second

// write sends one request frame, bounded by the request timeout.
func (l *link) write(req protocol.Request) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(l.ctx, l.c.opts.RequestTimeout)
	defer cancel()
	return l.ws.Write(ctx, websocket.MessageText, b)
}

// roundTrip sends a request on this link and waits for its reply, for ctx
// to end, or for expired to close (the request timeout).
func (l *link) roundTrip(ctx context.Context, expired <-chan struct{}, op protocol.Op, payload any, key string,
	h hooks) ([]byte, error) {
	var data json.RawMessage
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return nil, fmt.Errorf("roomlog: %s: %w", op, err)
		}
		data = b
	}
	l.sendMu.Lock()
	seq := l.c.ids.Add(1)
	id := strconv.FormatUint(seq, 10)
	cl := &call{op: op, done: make(chan result, 1), hook: h.reply, lost: h.lost, seq: seq}
	l.mu.Lock()
	if l.dead {
		l.mu.Unlock()
		l.sendMu.Unlock()
		return nil, errNotSent
	}
	l.pending[id] = cl
	l.mu.Unlock()
	err := l.write(protocol.Request{ID: id, Op: op, Data: data, IdempotencyKey: key})
	l.sendMu.Unlock()
	if err != nil {
		l.c.lost(l, fmt.Errorf("write: %w", err))
		// kill failed the call; fall through to collect that result.
	}
	select {
	case r := <-cl.done:
		return r.data, r.err
	case <-ctx.Done():
	case <-expired:
	}
	// An outcome that is there already (the reply, or the connection's
	// loss, which says the request may have taken effect) wins over the
	// caller's giving up at the same moment.
	select {
	case r := <-cl.done:
		return r.data, r.err
	default:
	}
	l.abandon(id)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("roomlog: %s: %w", op, err)
	}
	return nil, localError(op, domain.ErrTimeout, "no reply within %v", l.c.opts.RequestTimeout)
}

// abandon forgets a request whose caller stopped waiting, unless its
// outcome changes what the client tracks (entering a room, or a room a lost
// switch may have left): then the reply, or the connection's loss, is still
// handled when it comes, so that the client follows the server.
func (l *link) abandon(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cl := l.pending[id]; cl != nil && cl.hook == nil && cl.lost == nil {
		delete(l.pending, id)
	}
}

// read is the link's reader goroutine.
func (l *link) read() {
	for {
		_, b, err := l.ws.Read(l.ctx)
		if err != nil {
			l.c.lost(l, err)
			return
		}
		l.touch()
		var f protocol.Frame
		if err := json.Unmarshal(b, &f); err != nil {
			l.c.log.Warn("roomlog: unreadable frame", "err", err, "frame", string(b[:min(len(b), 200)]))
			continue
		}
		switch f.Type {
		case protocol.TypeReply:
			l.reply(&f)
		case protocol.TypeEvent:
			l.c.event(l, &f)
		default:
			l.c.log.Debug("roomlog: frame of unknown type", "type", f.Type)
		}
	}
}

// heartbeatID is the id heartbeats carry; request ids are numbers, so it
// never names a request.
const heartbeatID = "hb"

// reply completes the request f answers. Replies without an id answer
// requests the server could not read.
func (l *link) reply(f *protocol.Frame) {
	if f.ID == heartbeatID {
		l.heartbeatReply(f)
		return
	}
	l.mu.Lock()
	cl := l.pending[f.ID]
	delete(l.pending, f.ID)
	l.mu.Unlock()
	if cl == nil {
		if f.Code != 0 {
			// A request whose caller stopped waiting, or a frame the
			// server could not read.
			l.c.log.Debug("roomlog: error reply to no pending request", "id", f.ID, "code", f.Code, "error", f.Error,
				"message", f.Message)
		}
		return
	}
	if f.Code != 0 {
		cl.done <- result{err: serverError(cl.op, f)}
		return
	}
	if cl.hook != nil {
		if err := cl.hook(f.Data); err != nil {
			cl.done <- result{err: err}
			return
		}
	}
	cl.done <- result{data: f.Data}
}

// heartbeatReply adopts the fresh resume token a heartbeat reply may carry:
// the server renews it while the connection lives, so a resume works however
// long the session has been up.
func (l *link) heartbeatReply(f *protocol.Frame) {
	if f.Code != 0 || len(f.Data) == 0 {
		return
	}
	var rep protocol.HeartbeatReply
	if err := json.Unmarshal(f.Data, &rep); err != nil || rep.ResumeToken == "" {
		return
	}
	l.c.mu.Lock()
	if l.c.link == l {
		l.c.resumeToken = rep.ResumeToken
	}
	l.c.mu.Unlock()
}

// startHeartbeat schedules the heartbeats and the silence watchdog at the
// interval the hello named.
func (l *link) startHeartbeat() {
	every := time.Duration(l.hello.HeartbeatMS) * time.Millisecond
	if every <= 0 {
		return
	}
	l.arm(&l.beatTimer, every, func() { l.beat(every) })
	l.arm(&l.watchTimer, 2*every, func() { l.watch(every) })
}

// arm sets the timer in slot to run f after d, unless the link is dead.
func (l *link) arm(slot *Timer, d time.Duration, f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.dead {
		*slot = l.c.clock.AfterFunc(d, f)
	}
}

func (l *link) beat(every time.Duration) {
	if l.isDead() {
		return
	}
	if err := l.write(protocol.Request{ID: heartbeatID, Op: protocol.OpHeartbeat}); err != nil {
		l.c.lost(l, fmt.Errorf("heartbeat: %w", err))
		return
	}
	l.arm(&l.beatTimer, every, func() { l.beat(every) })
}

// watch declares the connection lost when no frame arrived for two
// heartbeat intervals (the server answers every heartbeat, so a live
// connection is never that quiet).
func (l *link) watch(every time.Duration) {
	if l.isDead() {
		return
	}
	silent := l.c.clock.Now().Sub(time.Unix(0, l.last.Load()))
	if silent >= 2*every {
		l.c.lost(l, fmt.Errorf("no frame for %v (heartbeat every %v)", silent.Round(time.Millisecond), every))
		return
	}
	l.arm(&l.watchTimer, 2*every-silent, func() { l.watch(every) })
}
