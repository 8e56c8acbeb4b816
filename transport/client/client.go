// Package client is roomlog's Go SDK: a WebSocket client of the gateway
// (transport/gateway, protocol transport/protocol) with the room semantics
// and the names of ZEGO Express (loginRoom, onRoomStateChanged, ...) and ZIM
// (createRoom, roomMemberJoined, ...).
//
// A Client is one connection-backed session. Every operation is a method
// that takes a context, sends one protocol request and waits for its reply;
// the server's refusals come back as *Error, which matches the domain and
// protocol sentinels with errors.Is. What the server pushes (room state
// changes, users, streams, messages, ...) is delivered to the callbacks in
// Options.Handlers.
//
// # Callbacks
//
// All callbacks of one client run on one goroutine, one at a time, in the
// order their frames arrived (and SDK-made state changes such as
// Reconnecting take their place in that order). That goroutine is not the
// socket reader: frames are buffered between the two without bound, so a slow
// callback never stalls the connection or the room, and a callback may call
// the client's methods (LoginRoom from OnRoomStateChanged, ...). While a
// callback runs, later callbacks wait.
//
// # Sequence checks
//
// Every room event carries the room's sequence number and the sequence of
// the previous event the connection was sent for that room. The client tracks
// the last one per room, starting from the snapshot of the reply that entered
// the room, and calls OnGap when an event does not follow on. Against a
// correct server that never happens. It proves that nothing the server sent
// was lost or reordered on the way; since prev names the previous event sent
// to this connection, it cannot reveal an event the server never sent.
//
// # Reconnection
//
// The client sends a heartbeat every interval the server's hello names. When
// the socket fails or nothing at all arrives for two intervals, every room
// the client is in gets OnRoomStateChanged(Reconnecting, 1002051) and the
// client redials with jittered exponential backoff for up to
// Options.ReconnectWindow (ZEGO's 20 minutes by default):
//
//   - it first asks the server to resume the original session (its latest
//     resume token: the hello's, renewed by heartbeat replies while the
//     connection lives, and the last sequence of each room); each room
//     resumed gets Reconnected (code 0), and the server replays what the
//     client missed, in order; a room the session entered by a request
//     whose reply was lost (the app got 1002051) is left again; a room the
//     reply leaves out (the session is not in it) gets LoginFailed
//     (1002002, reason not_resumed: enter it again), or Logout if the app
//     was leaving it;
//   - if the server cannot resume (the session timed out: resume_failed,
//     1906010) or issues no resume token, the client adopts the new
//     connection's session, restores its room mode and enters each room
//     again as it originally did (ZEGO login, ZIM join; ZIM create and
//     enter as enter, since the room may still exist; a switch as the room
//     it left was entered), with the last token it knows (RenewToken's
//     replaces the login's, even while that call still waits for the
//     connection; the resume carries it too); a room the app had left
//     whose departure was lost with the old session is not entered again
//     but gets the Logout the departure would have brought (code 0, reason
//     logout, leave or switch); the server sends Logining, then the users and
//     streams that left meanwhile (their departures went with the old
//     session) get a DELETE as the reply arrives, then the server sends
//     Logined and the rooms' current state, and other members see the user
//     ADDed again. A room whose re-login is refused gets LoginFailed with
//     the code. A room the app asks to leave (LogoutRoom, LeaveRoom,
//     LogoutAllRooms, LeaveAllRooms; a room still being entered included)
//     whose leave had no reply before the session was lost (even if the
//     app had stopped waiting for it: it may have taken effect), or made
//     while the client is away or the rooms are being entered again, is not
//     entered again either (nor tried again with another token): it gets
//     Logout (code 0, reason logout or leave) and the leave returns without
//     a request, unless the room's re-login was already on its way and
//     entered it, or got an answer after which it may have (1002053 and the
//     other transient codes): then the leave is sent; likewise the room a
//     SwitchRoom leaves, when the switch's reply was lost (the app got
//     1002051, or had stopped waiting): it gets Logout (reason switch), as
//     the switch may have taken effect, unless a resume says the session is
//     still in it;
//   - if the window runs out, every room gets ReconnectFailed (1002053) and
//     every method returns an error with code 1002053: dial again and log in.
//
// Requests made while reconnecting wait for the restored connection, bounded
// by their context and Options.RequestTimeout. A request whose reply was
// lost with the connection fails with code 1002051 (it may or may not have
// taken effect). A room the user was kicked out of (KickOut) is not
// re-entered, even one its session was kicked out of while the client was
// away and that the server names when it refuses a resume after the
// timeout (the app then gets the KickOut it missed), and a connection the server closed with session_replaced
// (1906009, the session was resumed elsewhere) is not reconnected at all.
//
// # Room state
//
// Beyond members, streams and messages the client reads and writes the
// room state ZIM apps keep: LoginOptions.History brings the room's last
// messages with the snapshot (as of its seq) and QueryHistoryMessage pages
// back through the rest; SetRoomAttributesWith, DeleteRoomAttributesWith and
// BeginRoomAttributesBatch / End write owned room attributes (ZIM isForce,
// isDeleteAfterOwnerLeft, isUpdateOwner; a plain write partly succeeds and
// returns the skipped keys, a batch is all or nothing and reaches others as
// one OnRoomAttributesBatchUpdated); SetRoomExtraInfoIf and
// AttributeOptions.Expect are compare-and-set writes whose refusal
// (1905005) carries the current values (VersionConflict);
// SetRoomMembersAttributes and the member queries are ZIM's member
// attributes (OnRoomMemberAttributesUpdated); LoginOptions.MaxMemberCount
// and UserStatusNotify are ZEGO's room config; QueryRoomMemberList and
// QueryRoomOnlineMemberCount page through large rooms.
package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/protocol"
)

// Options configures a client. The zero value of every field is its default.
type Options struct {
	// Logger receives the client's diagnostics (default slog.Default()).
	Logger *slog.Logger
	// HTTPHeader is sent with every WebSocket handshake, reconnections included.
	HTTPHeader http.Header
	// DialTimeout bounds one connection attempt: the handshake and the
	// hello frame (default 10 s).
	DialTimeout time.Duration
	// RequestTimeout bounds every request, waiting for a connection
	// included; past it the request fails with code 1002053
	// (domain.ErrTimeout), or 1002051 if it was sent and its reply lost
	// with the connection (it may have taken effect). Default 15 s.
	RequestTimeout time.Duration
	// ReconnectWindow is how long the client tries to restore a lost
	// connection before it gives up with ReconnectFailed (default 20 min,
	// ZEGO's retry window).
	ReconnectWindow time.Duration
	// BackoffMin and BackoffMax bound the delay between reconnection
	// attempts, which doubles from one to the next, with jitter (defaults
	// 250 ms and 10 s).
	BackoffMin, BackoffMax time.Duration
	// ReadLimit is the largest frame accepted from the server (default
	// 16 MiB: a room snapshot lists every member).
	ReadLimit int64
	// ICEDisconnectedGrace is how long a publisher's or player's ICE may
	// stay disconnected before the client restarts it (default 3 s, as the
	// browser SDK). A failed ICE is restarted at once; restarts that do
	// not bring the connection back are spaced as reconnection attempts
	// (BackoffMin doubling to BackoffMax). See MediaPlayer.RestartICE.
	ICEDisconnectedGrace time.Duration
	// Clock is the time source (default the real clock); see Clock.
	Clock Clock
	// Handlers are the callbacks; nil ones are skipped.
	Handlers Handlers
}

func (o *Options) setDefaults() {
	defd := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defd(&o.DialTimeout, 10*time.Second)
	defd(&o.RequestTimeout, 15*time.Second)
	defd(&o.ReconnectWindow, 20*time.Minute)
	defd(&o.BackoffMin, 250*time.Millisecond)
	defd(&o.BackoffMax, 10*time.Second)
	defd(&o.ICEDisconnectedGrace, 3*time.Second)
	if o.ReadLimit == 0 {
		o.ReadLimit = 16 << 20
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// validate reports every problem at once.
func (o *Options) validate() error {
	var errs []error
	for name, d := range map[string]time.Duration{"DialTimeout": o.DialTimeout, "RequestTimeout": o.RequestTimeout,
		"ReconnectWindow": o.ReconnectWindow, "BackoffMin": o.BackoffMin, "BackoffMax": o.BackoffMax,
		"ICEDisconnectedGrace": o.ICEDisconnectedGrace} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("client: %s must not be negative, got %v", name, d))
		}
	}
	if o.BackoffMin > o.BackoffMax {
		errs = append(errs, fmt.Errorf("client: BackoffMin %v exceeds BackoffMax %v", o.BackoffMin, o.BackoffMax))
	}
	if o.ReadLimit < 0 {
		errs = append(errs, fmt.Errorf("client: ReadLimit must not be negative, got %d", o.ReadLimit))
	}
	return errors.Join(errs...)
}

// Client is one session with a roomlog gateway. Its methods are safe for
// concurrent use, callbacks included.
type Client struct {
	url   string
	opts  Options
	log   *slog.Logger
	clock Clock
	disp  *dispatcher
	ids   atomic.Uint64
	// keys makes idempotency keys: keyPrefix, random per client, and a
	// counter.
	keys      atomic.Uint64
	keyPrefix string

	// players are the media players (PlayMedia) by stream, which follow
	// their stream when it moves to another media node; publishers the
	// media publishers (PublishMedia). A resume checks both.
	mediaMu    sync.Mutex
	players    map[string]*MediaPlayer
	publishers map[string]*MediaPublisher
	// goneTold holds the publishers and players whose connection the
	// client found gone (an ICE restart refused, a check after a resume)
	// and told the app of itself: a publisher it ended (NO_PUBLISH gone), a
	// player it connects again. The server's own ending of that connection
	// (NO_PUBLISH / NO_PLAY), which may still be on its way, is neither told
	// again nor ends the player's new connection or a new PublishMedia of
	// the stream: until the answer to the stream's next offer (mediaOffer),
	// or the session's end (endMedia).
	goneTold map[mediaKey]bool
	// offers are the PublishMedia and PlayMedia calls in flight, whose media
	// is not registered yet (see mediaCall).
	offers map[*mediaCall]struct{}
	// testHookAnswered, set by tests only (export_test.go), runs in
	// PublishMedia and PlayMedia once the answer came, before it is applied
	// and the media registered.
	testHookAnswered func(stream, kind string)

	// ctx ends when the client is closed; it stops reconnection.
	ctx    context.Context
	cancel context.CancelFunc

	mu sync.Mutex
	// link is the connection requests go to: nil while reconnecting (and
	// during the re-logins that follow a reconnection).
	link *link
	// changed is closed (and replaced) whenever link or stopErr changes, to
	// wake the requests waiting for a connection.
	changed chan struct{}
	// stopErr is set once the client can no longer serve: ErrClosed,
	// errReconnectFailed or errReplaced.
	stopErr error
	closed  bool
	// session and resumeToken are those of the session the client speaks
	// for: the first connection's, until a resume fails and a new
	// connection's session is adopted.
	session     string
	resumeToken string
	// mode is the room mode set by SetRoomMode ("" if never set);
	// modeApplied says whether the current session has it (a new session
	// must get it before the re-logins).
	mode        domain.RoomMode
	modeApplied bool
	// user is the session's user as the last LoginRoom gave it, for
	// switches re-entered with a login.
	user *User
	// token is the latest token the client sent (login or renew): rooms
	// entered without one are re-entered with it.
	token string
	// renewing is the token of the latest RenewToken still in flight (""
	// when none): newer than token, it is the one a reconnection resumes
	// and re-enters rooms with, since the renew_token request itself waits
	// for the restored connection.
	renewing string
	// rooms is every room the session is in, or on its way in or out of.
	rooms     map[string]*roomTrack
	nextOrder uint64
	// resumes counts the resumes the server accepted (see
	// roomTrack.confirmed).
	resumes uint64
	// entering counts, per room, the requests that enter it (an entry, a
	// re-login) under way; leaves are the leaves under way (see leave).
	entering map[string]int
	leaves   map[*leaveMarks]struct{}
	// loginFailed records the rooms for which the server sent LoginFailed
	// since the flag was cleared, so that a failed re-login is reported once.
	loginFailed map[string]bool
}

// roomTrack is what the client keeps per room: the sequence check and what
// it needs to enter the room again.
type roomTrack struct {
	seq   uint64
	entry entry
	order uint64 // rooms are re-entered in the order they were first entered
	// leaving: the session asked to leave (logout, leave, the from room of a
	// switch) and the departure event is on its way; never re-entered.
	leaving bool
	// exit is why the app is leaving the room (logout, leave or switch: the
	// reason its departure carries), so that the app can be told Logout for
	// it if the departure never comes (lost with a session that then timed
	// out, or left out by a resume). Empty for a room the server said the
	// session left (resume's left) without the app asking. A leave sets it
	// as it starts, before its reply (exiting counts the leaves in flight):
	// a room whose session is lost meanwhile is not entered again on a new
	// one (see relogin).
	exit    string
	exiting int
	// unsure: a leave of the room (or a switch from it) was sent and its
	// reply lost with the connection: whether the session is still in the
	// room is unknown until a resume says so (or a new session is adopted,
	// which is in none), so exit stays set even if a later leave fails (see
	// exited).
	unsure bool
	// confirmed is the resumes count of the last resume that said the
	// session is still in the room: a leave's reply lost on a connection
	// before that one leaves no doubt (see exited).
	confirmed uint64
	// left: the room was dropped while the app was leaving it (relogin did
	// not enter it again on a new session, or a resume left it out): the
	// leaves waiting for it are done without a request.
	left bool
	// relogin: the session the room was entered with is gone; the room is
	// entered again on the next connection.
	relogin bool
	// inside: a resume said the session is in the room while it still had
	// to be entered again (a re-login whose reply was lost): a leave asked
	// for meanwhile must reach the server, so the room is not dropped.
	inside bool
	// users and streams are the other users and streams the app was told of
	// (ADD, not yet DELETE), so that a re-login tells it of those that left
	// with the lost session (vanished).
	users   map[string]User
	streams map[string]Stream
}

// entry is how a room was entered, to enter it again after a reconnection.
type entry struct {
	op     protocol.Op // OpLogin, OpEnterRoom or OpJoinRoom
	user   *User
	name   string // the room's name, for enter
	token  string
	role   string
	config *RoomConfig
	// quiet: a login with UserStatusNotify false, kept on a re-login and
	// named in a resume.
	quiet bool
	// capacity: a login's MaxMemberCount (config holds enter's), asked for
	// again by a re-login, which may create the room again.
	capacity int
}

// Dial connects to the gateway at url (ws://host/ws or wss://host/ws),
// reads the hello frame (the session, its resume token and heartbeat
// interval) and returns the client. The session logs into nothing yet.
func Dial(ctx context.Context, url string, opts Options) (*Client, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	c := &Client{url: url, opts: opts, log: opts.Logger, clock: opts.Clock, changed: make(chan struct{}),
		rooms: map[string]*roomTrack{}, entering: map[string]int{}, leaves: map[*leaveMarks]struct{}{},
		loginFailed: map[string]bool{}, keyPrefix: rand.Text()[:16]}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.disp = newDispatcher()
	dctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	l, err := c.connect(dctx)
	if err == nil {
		c.mu.Lock()
		c.session, c.resumeToken = l.hello.Session, l.hello.ResumeToken
		c.mu.Unlock()
		err = c.install(l)
	}
	if err != nil {
		c.cancel()
		c.disp.stop()
		return nil, err
	}
	return c, nil
}

// Session returns the ID of the session the client speaks for. It changes
// only when a reconnection could not resume the session and a new one was
// adopted.
func (c *Client) Session() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

// Close closes the connection and stops reconnecting; every method then
// returns ErrClosed, and callbacks still queued are dropped. The peer
// connections of its publishers and players are closed too.
//
// Closing is not a logout: the server keeps the session in its rooms (other
// members still see the user) until its heartbeat times out. Call
// LogoutAllRooms or LeaveAllRooms first to leave at once.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	l := c.link
	c.link = nil
	c.stopLocked(ErrClosed)
	c.mu.Unlock()
	c.cancel()
	if l != nil {
		l.closeNormally()
	}
	c.dropMedia()
	c.disp.stop()
	return nil
}

// stopLocked puts the client in its final state; c.mu is held.
func (c *Client) stopLocked(err error) {
	if c.stopErr == nil || err == ErrClosed {
		c.stopErr = err
	}
	c.signalLocked()
}

// signalLocked wakes every request waiting for a connection; c.mu is held.
func (c *Client) signalLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// install makes l the connection requests go to, unless it died already or
// the client stopped.
func (c *Client) install(l *link) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopErr != nil {
		go l.closeNormally()
		return c.stopErr
	}
	if l.isDead() {
		return fmt.Errorf("roomlog: the connection failed: %w", l.cause())
	}
	c.link = l
	c.signalLocked()
	return nil
}

// reachesState reports the requests whose effect is a state (out of a
// room): sent again on a new session, they reach it there too.
func reachesState(op protocol.Op) bool {
	switch op {
	case protocol.OpLogout, protocol.OpLeaveRoom, protocol.OpLeaveAllRooms:
		// A new session publishes and plays nothing (its media ended with
		// the old one), so stops are not repeated: they would be refused.
		return true
	}
	return false
}

// do sends one request and waits for its reply: on the current connection,
// or on the next one while reconnecting. hook, if not nil, runs on the
// reader goroutine when the reply succeeds, before any later frame is
// handled (it records what a reply changes, such as the sequence a room's
// events start from); it runs even if the caller stopped waiting.
//
// A request that changes state carries an idempotency key. If the
// connection is lost after it was sent, before its reply, it is sent again
// with the same key once the session is back (within the request timeout):
// the server answers a key it already ran with the original outcome, so the
// operation takes effect once. The server remembers keys per session: when
// the session was lost too (a re-login on a new one), a request that does
// something (a message, a publish) is not sent again and fails as lost
// (1002051: it may or may not have taken effect), while a logout or leave
// is sent again on the new session, unless it became moot there (the
// re-logins did not enter the rooms it leaves: see leave).
// A query carries no key: one whose reply was lost is simply asked again. A
// request whose ctx is done is never sent.
func (c *Client) do(ctx context.Context, op protocol.Op, payload any, hook func(data []byte) error) ([]byte, error) {
	return c.doWith(ctx, op, payload, hooks{reply: hook})
}

// hooks are what a request's outcome changes in what the client tracks,
// beyond its reply's data.
type hooks struct {
	// reply, if not nil, runs on the reader goroutine when the reply
	// succeeds (see do).
	reply func(data []byte) error
	// lost, if not nil, runs when the connection is lost after the request
	// was sent and before its reply, even if the caller stopped waiting:
	// the request may have taken effect. It runs as the connection is
	// found dead, before the client reconnects, so before any resume or
	// re-login can look at what it marks.
	lost func()
	// moot, if not nil, is asked each time a connection is there to send
	// the request on: once it says true the request is not sent, and
	// doWith returns no data and no error (reply does not run).
	moot func() bool
}

// doWith is do with the hooks h.
func (c *Client) doWith(ctx context.Context, op protocol.Op, payload any, h hooks) ([]byte, error) {
	expired := make(chan struct{})
	t := c.clock.AfterFunc(c.opts.RequestTimeout, func() { close(expired) })
	defer t.Stop()
	var key string
	if op.Idempotent() {
		key = c.keyPrefix + "-" + strconv.FormatUint(c.keys.Add(1), 10)
	}
	var sentOn string // the session a lost attempt went to
	var lost error
	var resumes uint64 // c.resumes when the attempt was sent
	for {
		if err := ctx.Err(); err != nil {
			if lost != nil {
				return nil, lost // sent once: it may have taken effect
			}
			return nil, fmt.Errorf("roomlog: %s: %w", op, err)
		}
		c.mu.Lock()
		l, changed, stopErr, session := c.link, c.changed, c.stopErr, c.session
		resumes = c.resumes
		c.mu.Unlock()
		if stopErr != nil {
			return nil, stopErr
		}
		if l != nil && sentOn != "" && session != sentOn && !reachesState(op) {
			return nil, lost // the new session knows nothing of its key
		}
		if l != nil && h.moot != nil && h.moot() {
			return nil, nil
		}
		if l != nil {
			data, err := l.roundTrip(ctx, expired, op, payload, key, h)
			var e *Error
			if errors.As(err, &e) && e.lost {
				e.resumes = resumes
			}
			switch {
			case err == errNotSent:
				// The link died before the request left: wait for the next.
			case op.Query() && isConnLost(err):
				// The reply was lost with the connection: a query changes
				// nothing, so it is asked again on the next one, whatever
				// its session.
				lost = err
			case key != "" && isConnLost(err):
				// Sent, but the reply was lost with the connection: send it
				// again, same key, on the next one of the same session.
				sentOn, lost = session, err
				c.log.Debug("roomlog: reply lost with the connection; sending the request again", "op", op, "idempotency_key", key)
			default:
				return data, err
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if lost != nil {
				return nil, lost
			}
			return nil, fmt.Errorf("roomlog: %s: %w", op, ctx.Err())
		case <-expired:
			if lost != nil {
				return nil, lost // sent once: it may have taken effect
			}
			return nil, localError(op, domain.ErrTimeout, "no connection within %v", c.opts.RequestTimeout)
		}
	}
}
