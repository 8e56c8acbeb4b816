// Package gateway is roomlog's WebSocket gateway: it speaks the protocol of
// transport/protocol to app clients, turns their requests into commands for
// the engine, and fans the log's room events out to the sessions in each room.
package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/history"
	"github.com/roomlog/roomlog/eventstore/presence"
	"github.com/roomlog/roomlog/media"
	"github.com/roomlog/roomlog/projections"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/protocol"
)

// Config configures a gateway.
type Config struct {
	// ObserveRequest, if set, is called after each request a session's
	// worker handles, with how long it took from dequeue to reply queued
	// (the node's metrics). It must be quick.
	ObserveRequest func(op protocol.Op, took time.Duration)
	Engine         *engine.Engine
	Live           *projections.Live
	// Log is read when a session resumes: what it missed comes from the log.
	Log *eventstore.Log
	// Bus carries what goes to every node and is never stored: barrage and
	// session takeovers (an *eventstore.Bus).
	Bus    Bus
	Signer *auth.Signer
	// Presence tracks live sessions (heartbeats) so that a silent one times
	// out and a reconnecting one can resume. Without it sessions end with
	// their connection and resume is refused.
	Presence Presence
	// Node names this node (in presence records and takeover notices).
	Node string
	// Media is the media plane (nil: the media operations answer
	// media_unavailable). Its state events come over the Bus.
	Media Media
	// ResumeWindow is how long after a disconnect a client may resume
	// (the validity of the resume token). Default 20 minutes.
	ResumeWindow time.Duration
	// Policy returns an app's policy (the barrage rate limit is enforced here).
	Policy func(domain.AppID) domain.Policy
	Clock  engine.Clock
	Logger *slog.Logger

	// OriginPatterns are the browser origins allowed to connect (host
	// patterns, as in coder/websocket). Clients without an Origin header
	// (SDKs, servers) are always allowed.
	OriginPatterns []string
	// MaxFrameBytes is the largest request answered (larger ones get
	// frame_too_large); HardFrameBytes closes the connection. Defaults 64 KiB, 1 MiB.
	MaxFrameBytes  int
	HardFrameBytes int
	// QueueSize is how many frames may wait for a slow client (default 1024).
	QueueSize int
	// RequestQueue is how many requests may wait for the session (default 64).
	RequestQueue int
	// RequestsPerSecond and RequestBurst limit each connection (defaults 100, 200).
	RequestsPerSecond float64
	RequestBurst      int
	// CommandTimeout bounds every command, logins included (default 10 s):
	// past it a login fails with 1002053.
	CommandTimeout time.Duration
	// WriteTimeout bounds one write to a client (default 10 s).
	WriteTimeout time.Duration
	// TokenWarning is how long before its token expires a session is warned
	// (default 30 s).
	TokenWarning time.Duration
	// HeartbeatInterval and HeartbeatTimeout are advertised in hello
	// (defaults 30 s and 90 s). Any frame from the client proves it alive,
	// not only heartbeats. A connection silent for HeartbeatInterval is
	// pinged; one silent for HeartbeatTimeout is closed (heartbeat_timeout),
	// as is one whose session's timeout is recorded in the log.
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
	// LoginTimeout is how long a new connection may go without logging in
	// or resuming before it is closed (login_timeout; default 30 s).
	LoginTimeout time.Duration
	// PongTimeout is how long the client has to answer a ping before the
	// connection is closed as dead (ping_timeout; default 10 s). It is a
	// network timeout, like WriteTimeout, measured on the real clock.
	PongTimeout time.Duration
	// OnlineCountEvery is how often changed room member counts are pushed
	// (default 1 s).
	OnlineCountEvery time.Duration
}

// Bus is the ephemeral channel between nodes (an *eventstore.Bus).
type Bus interface {
	// Publish sends data to every node subscribed to subject.
	Publish(subject string, data []byte) error
	// Subscribe calls fn with each message on subject (wildcards allowed)
	// until the returned function is called.
	Subscribe(subject string, fn func(subject string, data []byte)) (func() error, error)
	// Serve answers requests on subject with what fn returns, until the
	// returned function is called.
	Serve(subject string, fn func(ctx context.Context, data []byte) []byte) (func() error, error)
	// Request sends data to a node serving subject and returns its answer
	// (eventstore.ErrNoResponders when none does).
	Request(ctx context.Context, subject string, data []byte) ([]byte, error)
}

// Presence is where sessions' heartbeats are kept (a *presence.Presence).
type Presence interface {
	// BeatAt records that session s of app was heard from at seen.
	BeatAt(ctx context.Context, app domain.AppID, s domain.SessionID, seen time.Time) error
	// Seen records that s was last heard from at seen, if that is later
	// than its record says.
	Seen(ctx context.Context, s domain.SessionID, seen time.Time) error
	// Detach records that s has no connection, last heard from at seen; it
	// times out unless it resumes.
	Detach(ctx context.Context, s domain.SessionID, seen time.Time) error
	// Forget removes s's record: it is neither resumable nor timed out.
	Forget(ctx context.Context, s domain.SessionID) error
	// Lookup returns s's record; alive is false once s timed out.
	Lookup(ctx context.Context, s domain.SessionID) (r presence.Record, alive bool, err error)
	// Revive refreshes s's record as this node's, attached, if s is still
	// alive, exclusively of its timeout: alive is false if the timeout came
	// first.
	Revive(ctx context.Context, s domain.SessionID) (r presence.Record, alive bool, err error)
}

var (
	_ Bus      = (*eventstore.Bus)(nil)
	_ Presence = (*presence.Presence)(nil)
)

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxFrameBytes, 64<<10)
	def(&c.HardFrameBytes, 1<<20)
	def(&c.QueueSize, 1024)
	def(&c.RequestQueue, 64)
	def(&c.RequestBurst, 200)
	if c.RequestsPerSecond == 0 {
		c.RequestsPerSecond = 100
	}
	defd(&c.CommandTimeout, 10*time.Second)
	defd(&c.WriteTimeout, 10*time.Second)
	defd(&c.TokenWarning, 30*time.Second)
	defd(&c.HeartbeatInterval, 30*time.Second)
	defd(&c.HeartbeatTimeout, 90*time.Second)
	defd(&c.LoginTimeout, 30*time.Second)
	defd(&c.PongTimeout, 10*time.Second)
	defd(&c.OnlineCountEvery, time.Second)
	defd(&c.ResumeWindow, 20*time.Minute)
	if c.Clock == nil {
		c.Clock = engine.SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate() error {
	var errs []error
	for name, missing := range map[string]bool{"Engine": c.Engine == nil, "Live": c.Live == nil, "Log": c.Log == nil,
		"Bus": c.Bus == nil, "Signer": c.Signer == nil, "Policy": c.Policy == nil} {
		if missing {
			errs = append(errs, fmt.Errorf("gateway: %s is required", name))
		}
	}
	if c.MaxFrameBytes > c.HardFrameBytes {
		errs = append(errs, fmt.Errorf("gateway: MaxFrameBytes %d exceeds HardFrameBytes %d", c.MaxFrameBytes, c.HardFrameBytes))
	}
	if c.QueueSize < 2 || c.RequestQueue < 1 || c.RequestBurst < 1 || c.RequestsPerSecond <= 0 {
		errs = append(errs, errors.New("gateway: queue sizes and request limits must be positive"))
	}
	if c.HeartbeatTimeout <= c.HeartbeatInterval {
		// Clients send one heartbeat per interval: every one of them would
		// time out between two heartbeats.
		errs = append(errs, fmt.Errorf("gateway: HeartbeatTimeout %v must exceed HeartbeatInterval %v (3 times it is usual)",
			c.HeartbeatTimeout, c.HeartbeatInterval))
	}
	return errors.Join(errs...)
}

// Server is a running gateway.
type Server struct {
	cfg Config
	hub *hub

	mu       sync.Mutex
	sessions map[domain.SessionID]*session
	// awayMedia keeps, for a session whose connection went, where its
	// media connections' peers are, for a resume on this node: a player
	// waiting for its stream holds its peer on the node it played from.
	// It goes when the session resumes (here or elsewhere), times out, or
	// can no longer be resumed (sweepAway).
	awayMedia map[domain.SessionID]awayPeers
	conns     map[*conn]struct{}
	closing   bool
	wg        sync.WaitGroup

	unsubscribe []func() error // from the bus
	node        string
	limits      *roomLimits // barrage, per room
	history     *history.Reader

	stop context.CancelFunc
	// replies remembers the outcomes of requests with idempotency keys.
	replies replies

	stats struct {
		slowConsumers, droppedBarrage atomic.Uint64
	}
}

// Stats is what a gateway holds and has done since it started.
type Stats struct {
	// Connections and Sessions are open now.
	Connections, Sessions int
	// QueuedFrames is how many frames wait in all connections' queues.
	QueuedFrames int
	// SlowConsumers counts clients disconnected for not reading (a full
	// queue or a write that did not finish in time).
	SlowConsumers uint64
	// DroppedBarrage counts barrage messages not sent to a client whose
	// queue was half full.
	DroppedBarrage uint64
}

// Stats returns the gateway's figures.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := Stats{Connections: len(s.conns), Sessions: len(s.sessions)}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		st.QueuedFrames += c.out.len()
	}
	st.SlowConsumers, st.DroppedBarrage = s.stats.slowConsumers.Load(), s.stats.droppedBarrage.Load()
	return st
}

// New validates cfg, subscribes the gateway to the live projection and to
// barrage messages, and returns it. Call it before the projection runs, so
// that no room event is missed.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, hub: newHub(cfg.Live, cfg.Logger), sessions: map[domain.SessionID]*session{},
		conns: map[*conn]struct{}{}, limits: newRoomLimits()}
	var err error
	if s.history, err = history.New(history.Config{Log: cfg.Log}); err != nil {
		return nil, err
	}
	s.node = cfg.Node
	if s.node == "" {
		s.node = cfg.Engine.NewID(cfg.Clock.Now()).String()
	}
	for subject, fn := range map[string]func(string, []byte){barrageSubject + ".>": s.onBarrage,
		takeoverSubject + ".*": s.onTakeover, media.StateSubject: s.onMediaState} {
		unsub, err := cfg.Bus.Subscribe(subject, fn)
		if err != nil {
			s.unsubscribeAll()
			return nil, err
		}
		s.unsubscribe = append(s.unsubscribe, unsub)
	}
	unserve, err := cfg.Bus.Serve(releaseSubject+"."+eventstore.Token(s.node), s.onRelease)
	if err != nil {
		s.unsubscribeAll()
		return nil, err
	}
	s.unsubscribe = append(s.unsubscribe, unserve)
	cfg.Live.Subscribe(s.hub.dispatch, projections.Named("gateway-hub"))
	cfg.Live.Subscribe(s.onTimedOut, projections.Named("gateway-timeouts"))
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go s.tick(ctx)
	return s, nil
}

// tick pushes changed online counts.
func (s *Server) tick(ctx context.Context) {
	t := time.NewTicker(s.cfg.OnlineCountEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.hub.onlineCounts(ctx)
			s.sweepAway()
		}
	}
}

// awayPeers is what awayMedia keeps of a session: its media book, and when
// its connection went.
type awayPeers struct {
	media mediaCarry
	since time.Time
}

// sweepAway drops what awayMedia keeps of sessions away for longer than
// any resume can come: twice the heartbeat timeout, after which presence
// has timed the session out (the recorded timeout drops it at once, in
// onTimedOut) or, for a session in no room any more (kicked while away,
// its rooms destroyed), forgotten it with no event to say so.
func (s *Server) sweepAway() {
	cutoff := s.cfg.Clock.Now().Add(-2 * s.cfg.HeartbeatTimeout)
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, a := range s.awayMedia {
		if a.since.Before(cutoff) {
			delete(s.awayMedia, id)
		}
	}
}

// ServeHTTP accepts a WebSocket connection and serves it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	hj := &hijacked{ResponseWriter: w}
	ws, err := websocket.Accept(hj, r, &websocket.AcceptOptions{Subprotocols: []string{protocol.Subprotocol},
		OriginPatterns: s.cfg.OriginPatterns})
	if err != nil {
		return // Accept has answered the request
	}
	if ws.Subprotocol() != protocol.Subprotocol {
		ws.Close(websocket.StatusPolicyViolation, "the client must ask for the "+protocol.Subprotocol+" subprotocol")
		return
	}
	ws.SetReadLimit(int64(s.cfg.HardFrameBytes))
	id := domain.SessionID(s.cfg.Engine.NewID(s.cfg.Clock.Now()).String())
	sess := newSession(s, id)
	sess.fresh = true
	resume, err := s.mintResume(sess)
	if err != nil {
		ws.Close(websocket.StatusInternalError, "cannot mint a resume token")
		return
	}
	c := newConn(s, ws, hj.conn, sess)
	sess.conn = c
	sess.touch()
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ws.Close(websocket.StatusGoingAway, "shutting down")
		return
	}
	s.sessions[id], s.conns[c] = sess, struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.detach(c)
		s.wg.Done()
	}()
	c.enqueue(eventFrame(protocol.EvHello, "", protocol.Hello{Protocol: protocol.Version, Session: string(id),
		ResumeToken: resume, HeartbeatMS: s.cfg.HeartbeatInterval.Milliseconds(),
		TimeoutMS: s.cfg.HeartbeatTimeout.Milliseconds(), ServerTime: s.cfg.Clock.Now().UnixMilli()}), false)
	c.serve(context.Background())
}

// onTimedOut closes the connection of a session whose heartbeat timeout the
// log records (by this node's presence timer or another's): the session is
// over, and its socket must not linger.
func (s *Server) onTimedOut(rec projections.Record) {
	for i := range rec.Events {
		e := &rec.Events[i]
		if _, ok := e.Data.(*domain.SessionTimedOutData); !ok {
			continue
		}
		s.mu.Lock()
		sess := s.sessions[domain.SessionID(e.AggregateID)]
		delete(s.awayMedia, domain.SessionID(e.AggregateID))
		s.mu.Unlock()
		if sess == nil {
			continue
		}
		sess.mu.Lock()
		c := sess.conn
		sess.mu.Unlock()
		if c != nil {
			c.close(protocol.ErrSilent.With("the session's heartbeat timeout was recorded"))
		}
	}
}

// hijacked keeps the socket websocket.Accept takes over, so that the writer
// can ask it how much it can take (see conn.room).
type hijacked struct {
	http.ResponseWriter
	conn net.Conn
}

func (h *hijacked) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	h.conn = c
	return c, rw, err
}

// detach ends what connection c carried: its session leaves this node's
// rooms (it will resume from the log, here or elsewhere) and presence keeps
// its last heartbeat, so it times out unless it comes back.
func (s *Server) detach(c *conn) {
	sess := c.sess.Load()
	if sess.unhook(c) == nil {
		return // taken over by another connection
	}
	sess.mu.Lock()
	app, bound, seen := sess.app, sess.bound, sess.lastSeen
	sess.mu.Unlock()
	s.hub.forget(sess)
	at := sess.mediaConns.carry()
	s.mu.Lock()
	if s.sessions[sess.id] == sess {
		delete(s.sessions, sess.id)
		if !at.empty() {
			if s.awayMedia == nil {
				s.awayMedia = map[domain.SessionID]awayPeers{}
			}
			s.awayMedia[sess.id] = awayPeers{at, s.cfg.Clock.Now()}
		}
	}
	s.mu.Unlock()
	if bound && s.cfg.Presence != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.cfg.Presence.Detach(ctx, sess.id, seen); err != nil {
			s.cfg.Logger.Warn("presence detach failed", "session", sess.id, "app", app, "err", err)
		}
	}
}

// Subjects on the bus.
const (
	// barrageSubject.<app>.<room> carries a barrage message to every node.
	barrageSubject = "barrage"
	// takeoverSubject.<session> tells every node that the session was
	// resumed by the node the message names.
	takeoverSubject = "takeover"
	// releaseSubject.<node> asks that node to let go of a session (named by
	// the request) that another node is resuming, and answers once the
	// command its connection was running has ended.
	releaseSubject = "release"
)

// unsubscribeAll drops the bus subscriptions. Shutdown may run twice at
// once (a node's Close while another Shutdown waits), so the list is taken
// under the lock and dropped once.
func (s *Server) unsubscribeAll() {
	s.mu.Lock()
	unsubs := s.unsubscribe
	s.unsubscribe = nil
	s.mu.Unlock()
	for _, unsub := range unsubs {
		unsub()
	}
}

// onTakeover closes this node's connection of a session another node resumed.
func (s *Server) onTakeover(subject string, data []byte) {
	if string(data) == s.node {
		return // our own notice: the resume already took the session over here
	}
	i := strings.LastIndexByte(subject, '.')
	id, err := eventstore.ParseToken(subject[i+1:])
	if err != nil {
		return
	}
	s.release(domain.SessionID(id))
}

// onRelease lets go of the session another node is resuming (the request
// names it) and answers once the command its connection was running has
// ended, so that the resuming node reads what that command stored.
func (s *Server) onRelease(ctx context.Context, data []byte) []byte {
	c := s.release(domain.SessionID(data))
	if c == nil {
		return []byte("released")
	}
	select {
	case <-c.stopped:
		return []byte("released")
	case <-ctx.Done():
		return []byte("still running")
	}
}

// release takes session id off this node, closing its connection
// (session_replaced), and returns the connection whose worker may still be
// running one of its commands (nil if none).
func (s *Server) release(id domain.SessionID) *conn {
	s.mu.Lock()
	delete(s.awayMedia, id)
	sess := s.sessions[id]
	if sess != nil {
		delete(s.sessions, sess.id)
	}
	s.mu.Unlock()
	if sess == nil {
		return nil
	}
	s.hub.forget(sess)
	c := sess.takeConn()
	if c != nil {
		c.replace()
	}
	return c
}

// Sessions returns how many sessions are connected.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Shutdown stops accepting connections, tells every client why it is
// closed, and waits (until ctx ends) for the connections to finish.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.close(protocol.ErrShuttingDown)
		c.stopWork() // also the last requests of a client that went away
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.stop()
	s.unsubscribeAll()
	return err
}

// barrage checks a barrage message against the room's node-local rate limit
// and publishes it to every node. It is never logged: best effort by design.
func (s *session) barrage(ctx context.Context, r protocol.MessageRequest) (any, error) {
	res, err := s.exec(ctx, domain.SendBarrage{Session: s.id, Room: domain.RoomID(r.Room), Body: r.Message})
	if err != nil {
		return nil, err
	}
	b := res.Barrage
	key := s.roomKey(b.Room)
	if !s.srv.allowBarrage(key) {
		return nil, domain.ErrRateLimited.With("%d barrage messages per second per room",
			s.srv.cfg.Policy(key.App).Limits.BarragePerSecond)
	}
	id := s.srv.cfg.Engine.NewID(b.Time).String()
	msg, err := json.Marshal(barrageWire{App: key.App, Barrage: *b, ID: id})
	if err != nil {
		return nil, domain.ErrInternal.With("%v", err)
	}
	subj := barrageSubject + "." + eventstore.Token(string(key.App)) + "." + eventstore.Token(string(b.Room))
	if err := s.srv.cfg.Bus.Publish(subj, msg); err != nil {
		return nil, domain.ErrUnavailable.With("%v", err)
	}
	return protocol.MessageReply{MessageID: id}, nil
}

// barrageWire is a barrage message between nodes.
type barrageWire struct {
	App     domain.AppID   `json:"app"`
	ID      string         `json:"id"`
	Barrage domain.Barrage `json:"barrage"`
}

func (s *Server) onBarrage(_ string, data []byte) {
	var w barrageWire
	if err := json.Unmarshal(data, &w); err != nil {
		s.cfg.Logger.Warn("unreadable barrage message", "err", err)
		return
	}
	f, err := barrageFrame(&w.Barrage, w.ID)
	if err != nil {
		return
	}
	s.hub.broadcastEphemeral(domain.RoomKey(w.App, w.Barrage.Room), f)
}

func (s *Server) allowBarrage(key domain.Key) bool {
	// The gateway's clock, not the wall's: a node on an injected clock
	// counts barrage in the same seconds as the log counts broadcasts.
	return s.limits.allow(key, s.cfg.Clock.Now(), s.cfg.Policy(key.App).Limits.BarragePerSecond)
}
