package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/projections"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/protocol"
)

// session is one client session: its identity, its token, the rooms it is in
// on this node, and the connection it currently talks through. Its requests
// run one at a time, in order, on its worker: a session is a single writer of
// its own commands.
type session struct {
	id  domain.SessionID
	srv *Server

	mu    sync.Mutex
	app   domain.AppID
	user  domain.User // bound by the first successful login
	bound bool
	// unsure: a login of the unbound session may have been stored (the
	// log did not answer in time): its presence record is kept for good,
	// so that it times out of whatever room that login entered.
	unsure bool
	// resumeRefused is set on a connection's new session once a resume of
	// a timed-out session was refused on it: it may not try again.
	resumeRefused bool
	mode          domain.RoomMode
	claims        *auth.Claims // the current token's
	expiry        engine.Timer // warns before the token expires
	rooms         map[domain.RoomID]bool
	// quiet holds the rooms the session asked not to be told of other
	// users in (ZEGO isUserStatusNotify = false).
	quiet map[domain.RoomID]bool
	conn  *conn
	// last is the connection the session was last unhooked from.
	last     *conn
	lastSeen time.Time
	// lastBeat is when presence last recorded the session as heard from.
	lastBeat time.Time
	// resumeAt is when the session's current resume token was minted.
	resumeAt time.Time
	// fresh marks a session this node minted for a new connection, with
	// nothing in the log yet, until its app is known (its first token).
	fresh bool
	// mediaConns is what the gateway knows of the session's media
	// connections: the node and peer that answered each (media.go). It
	// has its own lock.
	mediaConns mediaBook

	// forgotten: the hub let the session go (its connection ended, or
	// another took it over); under the hub's lock. A command of it still
	// running registers it in no room.
	forgotten bool
}

func newSession(srv *Server, id domain.SessionID) *session {
	return &session{id: id, srv: srv, mode: domain.SingleRoom, rooms: map[domain.RoomID]bool{}}
}

// unhook detaches the session from connection c (any connection if c is
// nil) and returns the connection it had, nil if that was not c. Nothing
// can reach a detached session: its token warning would only pin it in
// memory until the token expires (up to a day), so it stops; the session's
// claims stay, for a resume on this node to carry over.
func (s *session) unhook(c *conn) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	had := s.conn
	if had == nil || (c != nil && had != c) {
		return nil
	}
	s.conn, s.last = nil, had
	if s.expiry != nil {
		s.expiry.Stop()
		s.expiry = nil
	}
	return had
}

// takeConn unhooks the session from its connection and returns the
// connection whose worker may still be running one of its commands: the one
// it carried, or, if unhooked already (its client went away, or a resume
// that then failed took it), the last one, unless that went on to carry
// another session. nil if none.
func (s *session) takeConn() *conn {
	if c := s.unhook(nil); c != nil {
		return c
	}
	if c := s.lastConn(); c != nil && c.sess.Load() == s {
		return c
	}
	return nil
}

// lastConn is the connection the session was last unhooked from (nil if
// none): a resume waits for its worker too.
func (s *session) lastConn() *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// send queues a frame on the session's connection; a detached session drops
// it (it resumes from the log).
func (s *session) send(b []byte, droppable bool) {
	s.mu.Lock()
	c := s.conn
	s.mu.Unlock()
	if c != nil {
		c.enqueue(b, droppable)
	}
}

// sendWait queues a frame on the session's connection, waiting while its
// queue is full (only for what the connection's own worker sends: the hub
// never waits for a client). It fails once the connection is gone.
func (s *session) sendWait(ctx context.Context, b []byte) error {
	s.mu.Lock()
	c := s.conn
	s.mu.Unlock()
	if c == nil {
		return errDetached
	}
	return c.enqueueWait(ctx, b)
}

// errDetached is sendWait's error once the session has no connection.
var errDetached = errors.New("the session's connection is gone")

func (s *session) userID() domain.UserID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.user.ID
}

// leftRoom is called by the hub once the session's departure was sent.
func (s *session) leftRoom(room domain.RoomID) {
	s.mu.Lock()
	delete(s.rooms, room)
	s.mu.Unlock()
}

func (s *session) roomKey(room domain.RoomID) domain.Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return domain.RoomKey(s.app, room)
}

// errReplied tells handle that the operation sent its own reply (it had to
// go out before the room's next event).
var errReplied = errors.New("replied")

// handle runs one request and replies to it. A request with an idempotency
// key that this node already ran for the session, to a definite end, is
// answered with the original outcome instead of running again; one that
// another node ran (or this one, before a restart) runs again, and the
// engine finds its appends in the log instead of storing them twice.
func (s *session) handle(ctx context.Context, req protocol.Request) {
	key := req.IdempotencyKey
	if err := checkIdempotencyKey(key); err != nil {
		s.reply(req.ID, nil, err)
		return
	}
	if key == "" || !req.Op.Idempotent() {
		s.run(ctx, req)
		return
	}
	replies := &s.srv.replies
	for {
		o, seen := replies.start(s.id, key, req.Op, s.srv.cfg.Clock.Now())
		if !seen {
			// Every try names its commands alike (see keyedRequest): one
			// that landed before a lost reply, or on a node that died
			// since, is recognised by the log.
			data, err := s.run(withKeyedRequest(ctx, s.id, req.Op, key), req)
			replies.finish(o, data, err)
			return
		}
		if data, err, ok := o.wait(ctx); ok {
			s.srv.cfg.Logger.Info("request repeated; answering with its original outcome", "session", s.id, "op", req.Op,
				"idempotency_key", key)
			s.reply(req.ID, data, err)
			return
		}
		if ctx.Err() != nil {
			return
		}
		// The first try's outcome was not definite: run it again.
	}
}

// run runs one request and replies to it, and returns what it replied.
func (s *session) run(ctx context.Context, req protocol.Request) (any, error) {
	ctx, after := withAfterReply(ctx)
	defer after()
	data, err := s.do(ctx, req)
	if errors.Is(err, errReplied) {
		return nil, err
	}
	s.reply(req.ID, data, err)
	return data, err
}

type afterReplyKey struct{}

// withAfterReply gives ctx a slot for what must happen once the request's
// reply is sent (see afterReply), and returns the function that runs it.
func withAfterReply(ctx context.Context) (context.Context, func()) {
	fn := new(func())
	return context.WithValue(ctx, afterReplyKey{}, fn), func() {
		if *fn != nil {
			(*fn)()
		}
	}
}

// afterReply runs fn once the reply to ctx's request has been sent, or at
// once if there is no such request.
func afterReply(ctx context.Context, fn func()) {
	if p, ok := ctx.Value(afterReplyKey{}).(*func()); ok && *p == nil {
		*p = fn
		return
	}
	fn()
}

func (s *session) reply(id string, data any, err error) {
	if err != nil && engine.IsInternal(err) {
		// A timeout or an unavailable log is the operator's business, not
		// the client's: leave a trace of every one.
		s.srv.cfg.Logger.Warn("request failed", "session", s.id, "request", id, "err", err)
	}
	b, merr := json.Marshal(protocol.ReplyTo(id, data, err))
	if merr != nil {
		b, _ = json.Marshal(protocol.ReplyTo(id, nil, domain.ErrInternal.With("%v", merr)))
	}
	s.send(b, false)
}

// decode reads a request's data into v.
func decode(req protocol.Request, v any) error { return req.Decode(v) }

func (s *session) do(ctx context.Context, req protocol.Request) (any, error) {
	switch req.Op {
	case protocol.OpSetRoomMode:
		return s.setRoomMode(req)
	case protocol.OpLogin:
		return s.login(ctx, req)
	case protocol.OpLogout:
		var r protocol.LogoutRequest
		if len(req.Data) > 0 {
			if err := decode(req, &r); err != nil {
				return nil, err
			}
		}
		return s.leave(ctx, domain.RoomID(r.Room), domain.ReasonLogout)
	case protocol.OpSwitchRoom:
		return s.switchRoom(ctx, req)
	case protocol.OpCreateRoom, protocol.OpEnterRoom:
		return s.createRoom(ctx, req)
	case protocol.OpJoinRoom:
		return s.joinRoom(ctx, req)
	case protocol.OpLeaveRoom:
		var r protocol.RoomRequest
		if err := decode(req, &r); err != nil {
			return nil, err
		}
		if r.Room == "" {
			return nil, domain.ErrInvalidArgument.With("room is required")
		}
		return s.leave(ctx, domain.RoomID(r.Room), domain.ReasonLeave)
	case protocol.OpLeaveAllRooms:
		return s.leave(ctx, "", domain.ReasonLeave)
	case protocol.OpPublish:
		res, err := command(ctx, s, req, func(r protocol.PublishRequest) domain.Command {
			return domain.PublishStream{Session: s.id, Stream: domain.StreamID(r.Stream), Room: domain.RoomID(r.Room),
				ExtraInfo: r.ExtraInfo, Node: s.mediaHost(r.Stream)}
		})
		return streamReply(res), err
	case protocol.OpStopPublish:
		res, err := command(ctx, s, req, func(r protocol.StreamRequest) domain.Command {
			return domain.StopPublishing{Session: s.id, Stream: domain.StreamID(r.Stream)}
		})
		return streamReply(res), err
	case protocol.OpSetStreamExtraInfo:
		res, err := command(ctx, s, req, func(r protocol.StreamExtraInfoRequest) domain.Command {
			return domain.SetStreamExtraInfo{Session: s.id, Stream: domain.StreamID(r.Stream), ExtraInfo: r.ExtraInfo}
		})
		return streamReply(res), err
	case protocol.OpPlay:
		res, err := command(ctx, s, req, func(r protocol.PlayRequest) domain.Command {
			return domain.PlayStream{Session: s.id, Stream: domain.StreamID(r.Stream), Room: domain.RoomID(r.Room)}
		})
		return streamReply(res), err
	case protocol.OpStopPlay:
		res, err := command(ctx, s, req, func(r protocol.PlayRequest) domain.Command {
			return domain.StopPlaying{Session: s.id, Stream: domain.StreamID(r.Stream), Room: domain.RoomID(r.Room)}
		})
		return streamReply(res), err
	case protocol.OpBroadcast:
		res, err := command(ctx, s, req, func(r protocol.MessageRequest) domain.Command {
			return domain.SendBroadcast{Session: s.id, Room: domain.RoomID(r.Room), Body: r.Message}
		})
		return messageReply(res), err
	case protocol.OpBarrage:
		var r protocol.MessageRequest
		if err := decode(req, &r); err != nil {
			return nil, err
		}
		return s.barrage(ctx, r)
	case protocol.OpCustomCommand:
		res, err := command(ctx, s, req, func(r protocol.CustomCommandRequest) domain.Command {
			to := make([]domain.UserID, len(r.To))
			for i, u := range r.To {
				to[i] = domain.UserID(u)
			}
			return domain.SendCustomCommand{Session: s.id, Room: domain.RoomID(r.Room), To: to, Body: r.Command}
		})
		return messageReply(res), err
	case protocol.OpQueryRoom:
		var r protocol.RoomRequest
		if err := decode(req, &r); err != nil {
			return nil, err
		}
		return s.queryRoom(ctx, domain.RoomID(r.Room))
	case protocol.OpRenewToken:
		var r protocol.TokenRequest
		if err := decode(req, &r); err != nil {
			return nil, err
		}
		return nil, s.renewToken(r.Token)
	case protocol.OpHeartbeat:
		return s.heartbeat(ctx), nil
	case protocol.OpResume:
		return nil, protocol.ErrResumeFailed.With("resume is sent as the first request of a new connection")
	}
	if data, err, ok := s.doRoomState(ctx, req); ok {
		return data, err
	}
	if data, ok, err := s.media(ctx, req); ok {
		return data, err
	}
	return nil, protocol.ErrUnknownOperation.With("%q", req.Op)
}

// command decodes req's data as an R and runs, as this session, the command
// build makes of it.
func command[R any](ctx context.Context, s *session, req protocol.Request, build func(R) domain.Command) (engine.Result, error) {
	var r R
	if err := decode(req, &r); err != nil {
		return engine.Result{}, err
	}
	return s.exec(ctx, build(r))
}

// exec runs a command as this session, within the command timeout.
func (s *session) exec(ctx context.Context, c domain.Command) (engine.Result, error) {
	s.mu.Lock()
	app := s.app
	s.mu.Unlock()
	if app == "" {
		return engine.Result{}, domain.ErrNotLoggedIn.With("log in first")
	}
	ctx, cancel := context.WithTimeout(ctx, s.srv.cfg.CommandTimeout)
	defer cancel()
	return s.srv.cfg.Engine.Execute(ctx, domain.Meta{App: app, Request: nextCommand(ctx)}, c)
}

func (s *session) touch() {
	s.mu.Lock()
	s.lastSeen = s.srv.cfg.Clock.Now()
	s.mu.Unlock()
}

// heard records that a frame came from the client: any frame proves the
// session alive, not only a heartbeat. Presence is told at most once a
// heartbeat interval; a frame it was not told of is, when the connection
// goes quiet (flush) or away (detach).
func (s *session) heard(ctx context.Context) {
	now := s.srv.cfg.Clock.Now()
	s.mu.Lock()
	s.lastSeen = now
	due := s.bound && now.Sub(s.lastBeat) >= s.srv.cfg.HeartbeatInterval
	s.mu.Unlock()
	if due {
		s.beat(ctx, now)
	}
}

// isBound reports whether the session has logged in (or resumed one that had).
func (s *session) isBound() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bound
}

func streamReply(res engine.Result) any {
	if len(res.Rooms) == 0 {
		return nil
	}
	return protocol.StreamReply{Room: string(res.Rooms[0])}
}

func messageReply(res engine.Result) any {
	for _, a := range res.Appended {
		if a.Key.Kind == domain.KindRoom {
			e := a.Events[len(a.Events)-1]
			return protocol.MessageReply{MessageID: e.ID.String(), Seq: e.Seq}
		}
	}
	return nil
}

func (s *session) setRoomMode(req protocol.Request) (any, error) {
	var r protocol.SetRoomModeRequest
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	mode, err := domain.ParseRoomMode(r.Mode)
	if err != nil {
		return nil, domain.ErrInvalidArgument.With("%v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bound {
		return nil, domain.ErrRoomModeAfterLogin
	}
	s.mode = mode
	return nil, nil
}

// token returns the claims to act with: those of raw if given (verified),
// else the session's current ones. A token must be for the session's app.
func (s *session) token(raw string) (*auth.Claims, error) {
	s.mu.Lock()
	cur, app := s.claims, s.app
	s.mu.Unlock()
	if raw == "" {
		if cur == nil {
			return nil, domain.ErrTokenInvalid.With("no token: log in with one")
		}
		return cur, nil
	}
	c, err := s.srv.cfg.Signer.Verify(raw)
	if err != nil {
		return nil, err
	}
	if app != "" && domain.AppID(c.App) != app {
		return nil, domain.ErrTokenInvalid.With("the token is for app %q, the session is in %q", c.App, app)
	}
	return &c, nil
}

// adopt makes claims the session's current token (and app) and schedules
// the warning before it expires.
func (s *session) adopt(c *auth.Claims) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.claims, s.app = c, domain.AppID(c.App)
	if s.expiry != nil {
		s.expiry.Stop()
		s.expiry = nil
	}
	warn := s.srv.cfg.TokenWarning
	if c.ExpiresAt.IsZero() || s.conn == nil {
		// Detached (a command of a connection that was replaced went on):
		// nothing could reach it, and the timer would pin it until then.
		return
	}
	in := c.ExpiresAt.Sub(s.srv.cfg.Clock.Now()) - warn
	s.expiry = s.srv.cfg.Clock.AfterFunc(max(in, 0), func() {
		left := int(c.ExpiresAt.Sub(s.srv.cfg.Clock.Now()).Round(time.Second) / time.Second)
		s.send(eventFrame(protocol.EvTokenWillExpire, "", protocol.TokenWillExpire{RemainSeconds: max(left, 0)}), false)
	})
}

func (s *session) renewToken(raw string) error {
	if raw == "" {
		return domain.ErrTokenInvalid.With("empty token")
	}
	c, err := s.token(raw)
	if err != nil {
		return err
	}
	s.mu.Lock()
	bound, u := s.bound, s.user
	s.mu.Unlock()
	if bound && domain.UserID(c.User) != u.ID {
		return domain.ErrTokenInvalid.With("the token is for user %q, the session is %q", c.User, u.ID)
	}
	if bound && c.Name != "" && c.Name != u.Name {
		return domain.ErrTokenInvalid.With("the token names the user %q, the session's is %q", c.Name, u.Name)
	}
	s.adopt(c)
	return nil
}

func role(r string) (domain.Role, error) {
	if r == "" {
		return domain.Anchor, nil
	}
	v, err := domain.ParseRole(r)
	if err != nil {
		return "", domain.ErrInvalidArgument.With("%v", err)
	}
	return v, nil
}

// state pushes a room state change that is not itself a room event
// (Logining, LoginFailed, LogoutFailed).
func (s *session) state(room domain.RoomID, st domain.ConnState, err error, zim, zimEvent string) {
	code, _ := domain.CodeOf(err)
	s.send(eventFrame(protocol.EvRoomStateChanged, room, protocol.RoomStateChanged{State: string(st), Code: int(code),
		ZIMState: zim, ZIMEvent: zimEvent}), false)
}

// join runs a command that enters a room, with the state changes ZEGO and
// ZIM clients expect around it, and on success registers the session in the
// room and replies with the room's snapshot.
func (s *session) join(ctx context.Context, req protocol.Request, room domain.RoomID, claims *auth.Claims,
	u domain.User, c domain.Command, history int) (any, error) {
	// A room the session is in is not entered again: no Logining, and a
	// refusal (ZIM createRoom of it) leaves it Logined. A switch out of a
	// room the session is not in fails in that room (LogoutFailed, as
	// ZEGO's switchRoom does when its logout fails), without announcing
	// the target; the log decides either way.
	sw, switching := c.(domain.SwitchRoom)
	s.mu.Lock()
	first := !s.bound
	s.mu.Unlock()
	already := s.inRoom(room)
	announce := !already && (!switching || s.inRoom(sw.From))
	if announce {
		s.state(room, domain.StateLogining, nil, "Connecting", "Success")
	}
	// A session's first login starts its presence: from then on the
	// cluster keeps it alive on heartbeats, and it can be resumed. The
	// record must exist before the reply (a client may lose its
	// connection and resume at once), so the first beat is written while
	// the command's appends are in flight and waited for after them.
	var beat chan struct{}
	if first {
		beat = make(chan struct{})
		now := s.srv.cfg.Clock.Now()
		go func() { defer close(beat); s.beat(ctx, now) }()
	}
	res, err := s.exec(ctx, c)
	if beat != nil {
		<-beat
		// A session refused its first login was never in a room: it is
		// neither resumable nor timed out later. One whose login may have
		// been stored (the log did not answer in time) keeps its record,
		// so that it times out, leaving whatever room the login entered,
		// rather than stay there with nothing to time it out; a later
		// login refused for good does not change that.
		s.mu.Lock()
		if err != nil && uncertain(err) {
			s.unsure = true
		}
		forget := err != nil && !s.unsure
		s.mu.Unlock()
		if forget {
			s.forget(ctx)
		}
	}
	if err != nil {
		err = loginError(err)
		leaveFailed := switching && errors.Is(err, domain.ErrNotInRoom)
		if leaveFailed {
			s.state(sw.From, domain.StateLogoutFailed, err, "Connected", "Success")
		}
		if announce || !already && !leaveFailed {
			s.state(room, domain.StateLoginFailed, err, "Disconnected", zimFailure(err))
		}
		return nil, err
	}
	s.mu.Lock()
	if u.ID != "" {
		s.user, s.bound = u, true
	}
	s.mu.Unlock()
	s.adopt(claims)
	return nil, s.enter(ctx, req.ID, room, res, history)
}

// inRoom reports whether the session is in room, as the log says as far as
// this node's engine knows it (a departure just stored counts before it
// reaches the session), else as the session was told.
func (s *session) inRoom(room domain.RoomID) bool {
	if in, known := s.srv.cfg.Engine.Member(s.roomKey(room), s.userID(), s.id); known {
		return in
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rooms[room]
}

// checkRoom refuses a room ID no command could use (1906001), before
// anything is read for it.
func checkRoom(room domain.RoomID) error {
	if err := domain.ValidateRoomID(room); err != nil {
		return domain.ErrInvalidArgument.With("%v", err)
	}
	return nil
}

// uncertain reports an error after which the command may still have been
// stored: the log did not answer in time, or failed midway.
func uncertain(err error) bool {
	return errors.Is(err, domain.ErrTimeout) || errors.Is(err, domain.ErrUnavailable) || errors.Is(err, domain.ErrInternal)
}

// loginError is the error a login reports. A login the log could not serve
// fails with ZEGO's login timeout (1002053, SEMANTICS.md sections 1 and 5:
// LoginFailed carries 1002033 or 1002053), whether the log did not answer in
// time or answered at once that it is unavailable: apps ported from ZEGO
// branch on 1002053 and know nothing of roomlog's 1906098.
func loginError(err error) error {
	var de *domain.Error
	if errors.As(err, &de) && de.Code == domain.ErrUnavailable.Code {
		t := domain.ErrTimeout.With("%s", de.Detail) // for the server's log: replies leave it out
		t.Message += " (" + de.Message + ")"
		return t
	}
	return err
}

func zimFailure(err error) string {
	switch {
	case errors.Is(err, domain.ErrRoomNotExist):
		return "RoomNotExist"
	case errors.Is(err, domain.ErrTimeout), errors.Is(err, domain.ErrUnavailable):
		return "NetworkInterrupted"
	}
	return "LoginFailed"
}

// enter registers the session in room, which res entered, and sends before
// any later event of the room: the reply with the room's snapshot, Logined,
// and the room's users, streams and extra info as ADD and update events
// (what ZEGO SDKs call back with after a login). The snapshot is the room as
// the engine left it after res. It waits for the projection to fold res
// only for a room the engine no longer caches, and for what res did to
// other rooms: a switch's Logout from the old room, which the hub sends as
// the projection folds it, must come before the new room's Logined, as must
// the Logout of a room the session left just before this entry.
//
// With history > 0 the reply carries the room's last messages as of the
// snapshot's seq, read from the log while the room's later events wait.
func (s *session) enter(ctx context.Context, reqID string, room domain.RoomID, res engine.Result, history int) error {
	key := s.roomKey(room)
	r, at, ok := s.srv.cfg.Engine.Room(key)
	var wait uint64
	for _, a := range res.Appended {
		if a.Key.Kind == domain.KindRoom && (a.Key != key || !ok) {
			wait = max(wait, a.Seq)
		}
	}
	if !ok {
		wait = max(wait, s.srv.cfg.Engine.Cursor(key))
	}
	// Back in a room whose departure (a logout just before, a kick) has not
	// reached the session yet: that departure, and everything before this
	// entry, must be sent first, or the new membership would swallow it.
	// Out of another room whose departure has not reached it (a logout, then
	// at once a login elsewhere: ZEGO's way of changing rooms without a
	// switch): that Logout comes first too, as a switch's does.
	s.mu.Lock()
	stale := s.rooms[room]
	others := make([]domain.RoomID, 0, len(s.rooms))
	for o := range s.rooms {
		if o != room {
			others = append(others, o)
		}
	}
	user := s.user.ID
	s.mu.Unlock()
	for _, o := range others {
		k := s.roomKey(o)
		if in, known := s.srv.cfg.Engine.Member(k, user, s.id); known && !in {
			wait = max(wait, s.srv.cfg.Engine.Cursor(k))
		}
	}
	for _, a := range res.Appended {
		if a.Key == key && stale {
			wait = max(wait, a.Seq-1)
		}
	}
	if wait > 0 {
		wctx, cancel := context.WithTimeout(ctx, s.srv.cfg.CommandTimeout)
		defer cancel()
		if err := s.srv.cfg.Live.WaitFor(wctx, wait); err != nil {
			return s.abandon(ctx, reqID, room, res, domain.ErrTimeout.With("the room did not become visible in time"))
		}
	}
	s.mu.Lock()
	s.rooms[room] = true
	uid := s.user.ID
	s.mu.Unlock()
	var snap protocol.RoomSnapshot
	m, before, in := s.srv.hub.enter(s, key, r, at, history > 0, func(r *domain.Room, held bool) {
		snap = snapshot(r, room)
		if !held {
			s.entered(reqID, room, uid, snap)
		}
	})
	left := domain.ErrNotInRoom.With("the session left the room as it entered it: kicked, timed out, or the room destroyed")
	if m == nil {
		s.leftRoom(room)
		s.state(room, domain.StateLoginFailed, left, "Disconnected", "LoginFailed")
		s.reply(reqID, nil, left)
		return errReplied
	}
	if !m.held {
		return errReplied
	}
	// Held: the reply waits for the room's last messages, or (back in a
	// room the session is in) for the hub to send it the room's events up
	// to the snapshot; later events wait for the reply.
	if before > 0 {
		wctx, cancel := context.WithTimeout(ctx, s.srv.cfg.CommandTimeout)
		defer cancel()
		if err := s.srv.cfg.Live.WaitFor(wctx, before); err != nil {
			// The session is still in the room, without the snapshot: its
			// events go on from the last it got (those held came after
			// all the hub sent it, so they follow in order).
			s.srv.hub.release(s, m, 0)
			s.reply(reqID, nil, domain.ErrTimeout.With("the room's events did not reach the session in time"))
			return errReplied
		}
	}
	if !in {
		// Its departure, sent by now, told the session.
		s.srv.hub.release(s, m, 0)
		s.reply(reqID, nil, left)
		return errReplied
	}
	defer s.srv.hub.release(s, m, snap.Seq)
	if history > 0 {
		msgs, err := s.lastMessages(ctx, key, uid, snap.Seq, history)
		if err != nil {
			// The session is in the room: it gets its snapshot; the app
			// may read the history with query_history.
			s.srv.cfg.Logger.Warn("cannot read a room's last messages for a login", "room", key, "err", err)
		}
		snap.Messages = msgs
	}
	s.entered(reqID, room, uid, snap)
	return errReplied
}

// abandon ends an entry the node could not complete in time (its
// projection is far behind the log). A session that res entered into room
// in the log leaves it again, so that the other members do not see a member
// that gets none of the room's events, and is told LoginFailed with err.
// One that was in the room already (an entry that stored nothing there) is
// only told err.
func (s *session) abandon(ctx context.Context, reqID string, room domain.RoomID, res engine.Result, err error) error {
	key := s.roomKey(room)
	if slices.ContainsFunc(res.Appended, func(a engine.Appended) bool { return a.Key == key }) {
		_, lerr := s.exec(context.WithoutCancel(ctx), domain.LeaveRoom{Session: s.id, Room: room, Reason: domain.ReasonLogout})
		if lerr != nil && !errors.Is(lerr, domain.ErrNotInRoom) {
			s.srv.cfg.Logger.Warn("cannot leave a room whose entry timed out", "room", key, "session", s.id, "err", lerr)
		}
		s.state(room, domain.StateLoginFailed, err, "Disconnected", zimFailure(err))
	}
	s.reply(reqID, nil, err)
	return errReplied
}

// entered sends what a session gets on entering a room: the reply with the
// snapshot, Logined, and the room's users, streams and extra info.
func (s *session) entered(reqID string, room domain.RoomID, uid domain.UserID, snap protocol.RoomSnapshot) {
	{
		s.reply(reqID, snap, nil)
		s.send(eventFrame(protocol.EvRoomStateChanged, room, protocol.RoomStateChanged{
			State: string(domain.StateLogined), ZIMState: "Connected", ZIMEvent: "Success"}), false)
		var others []protocol.User
		for _, u := range snap.Users {
			if s.isQuiet(room) {
				break
			}
			if u.ID != string(uid) {
				others = append(others, u)
			}
		}
		if len(others) > 0 {
			s.send(eventFrame(protocol.EvRoomUserUpdate, room, protocol.UserUpdate{UpdateType: "ADD", Users: others}), false)
		}
		var streams []protocol.Stream
		for _, st := range snap.Streams {
			if st.User.ID != string(uid) {
				streams = append(streams, st)
			}
		}
		if len(streams) > 0 {
			s.send(eventFrame(protocol.EvRoomStreamUpdate, room, protocol.StreamUpdate{UpdateType: "ADD", Streams: streams}), false)
		}
		if len(snap.ExtraInfo) > 0 {
			s.send(eventFrame(protocol.EvRoomExtraInfoUpdate, room, protocol.RoomExtraInfoUpdate{Items: snap.ExtraInfo}), false)
		}
	}
}

// admit checks the token and role of a request that enters room: a token
// refused is a LoginFailed in that room.
func (s *session) admit(room domain.RoomID, token, roleName string) (*auth.Claims, domain.Role, error) {
	claims, err := s.token(token)
	if err != nil {
		if !s.inRoom(room) { // a member refused stays in its room
			s.state(room, domain.StateLoginFailed, err, "Disconnected", "LoginFailed")
		}
		return nil, "", err
	}
	rl, err := role(roleName)
	return claims, rl, err
}

func (s *session) login(ctx context.Context, req protocol.Request) (any, error) {
	var r protocol.LoginRequest
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	room := domain.RoomID(r.Room)
	claims, rl, err := s.admit(room, r.Token, r.Role)
	if err != nil {
		return nil, err
	}
	s.adoptApp(claims)
	u := domain.User{ID: domain.UserID(r.User.ID), Name: r.User.Name}
	s.mu.Lock()
	mode := s.mode
	s.mu.Unlock()
	if err := s.checkHistory(r.History); err != nil {
		return nil, err
	}
	quiet := r.UserStatusNotify != nil && !*r.UserStatusNotify
	return s.join(ctx, req, room, claims, u, domain.JoinRoom{Session: s.id, User: u, Mode: mode, Room: room, Role: rl,
		Grant: claims.Grant(), Create: domain.CreateIfMissing, Via: domain.ViaLogin, Quiet: quiet,
		Config: domain.RoomConfig{MaxMembers: r.MaxMemberCount}}, r.History)
}

// adoptApp fixes the session's app from its first token (before any command
// can run). A session minted for a new connection has nothing in the log:
// the engine is told, so that its first login does not look.
func (s *session) adoptApp(c *auth.Claims) {
	s.mu.Lock()
	if s.app == "" {
		s.app = domain.AppID(c.App)
	}
	fresh := s.fresh
	s.fresh = false
	s.mu.Unlock()
	if fresh {
		s.srv.cfg.Engine.Fresh(domain.SessionKey(s.app, s.id))
	}
}

// zimUser is the user a ZIM operation acts as: the request's, else the
// session's, else the token's.
func (s *session) zimUser(u *protocol.User, c *auth.Claims) domain.User {
	if u != nil {
		return domain.User{ID: domain.UserID(u.ID), Name: u.Name}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bound {
		return s.user
	}
	return domain.User{ID: domain.UserID(c.User), Name: c.Name}
}

func roomConfig(c *protocol.RoomConfig) domain.RoomConfig {
	if c == nil {
		return domain.RoomConfig{}
	}
	return domain.RoomConfig{Attributes: c.Attributes, DestroyDelay: c.DestroyDelay, MaxMembers: c.MaxMemberCount}
}

func (s *session) createRoom(ctx context.Context, req protocol.Request) (any, error) {
	var r protocol.CreateRoomRequest
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	room := domain.RoomID(r.Room.ID)
	claims, rl, err := s.admit(room, r.Token, r.Role)
	if err != nil {
		return nil, err
	}
	s.adoptApp(claims)
	via, create := domain.ViaCreate, domain.CreateRequired
	if req.Op == protocol.OpEnterRoom {
		via, create = domain.ViaEnter, domain.CreateIfMissing
	}
	u := s.zimUser(r.User, claims)
	if err := s.checkHistory(r.History); err != nil {
		return nil, err
	}
	return s.join(ctx, req, room, claims, u, domain.JoinRoom{Session: s.id, User: u, Mode: s.zimMode(), Room: room,
		RoomName: r.Room.Name, Role: rl, Grant: claims.Grant(), Create: create, Config: roomConfig(r.Config), Via: via,
		Quiet: r.UserStatusNotify != nil && !*r.UserStatusNotify}, r.History)
}

// zimMode is the mode of a session that uses ZIM operations: ZIM sessions
// may be in several rooms (up to the app's limit) without choosing a mode,
// if the app allows multi-room sessions at all.
func (s *session) zimMode() domain.RoomMode {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bound || s.mode == domain.MultiRoom || !s.srv.cfg.Policy(s.app).MultiRoom {
		return s.mode
	}
	return domain.MultiRoom
}

func (s *session) joinRoom(ctx context.Context, req protocol.Request) (any, error) {
	var r protocol.JoinRoomRequest
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	room := domain.RoomID(r.Room)
	claims, rl, err := s.admit(room, r.Token, r.Role)
	if err != nil {
		return nil, err
	}
	s.adoptApp(claims)
	u := s.zimUser(r.User, claims)
	if err := s.checkHistory(r.History); err != nil {
		return nil, err
	}
	return s.join(ctx, req, room, claims, u, domain.JoinRoom{Session: s.id, User: u, Mode: s.zimMode(), Room: room,
		Role: rl, Grant: claims.Grant(), Create: domain.CreateNever, Via: domain.ViaJoin,
		Quiet: r.UserStatusNotify != nil && !*r.UserStatusNotify}, r.History)
}

func (s *session) switchRoom(ctx context.Context, req protocol.Request) (any, error) {
	var r protocol.SwitchRoomRequest
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	to := domain.RoomID(r.To)
	for _, room := range []domain.RoomID{domain.RoomID(r.From), to} {
		if err := checkRoom(room); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	app := s.app
	s.mu.Unlock()
	if app == "" {
		// Never logged in: in no room to switch from (as for a logout,
		// SEMANTICS.md section 1: 1002002 and LogoutFailed there).
		s.state(domain.RoomID(r.From), domain.StateLogoutFailed, domain.ErrNotInRoom, "Connected", "Success")
		return nil, domain.ErrNotInRoom
	}
	claims, rl, err := s.admit(to, r.Token, r.Role)
	if err != nil {
		return nil, err
	}
	if err := s.checkHistory(r.History); err != nil {
		return nil, err
	}
	create := domain.CreateIfMissing
	if r.CreateIfMissing != nil && !*r.CreateIfMissing {
		create = domain.CreateNever
	}
	s.mu.Lock()
	u := s.user
	s.mu.Unlock()
	if u.ID == "" {
		// Not bound: the session's first login may have been stored though
		// its answer was lost (the log did not answer in time). The switch
		// is decided on the log's session, whose user it then binds.
		if st, err := s.srv.sessionState(ctx, domain.SessionKey(app, s.id)); err == nil && st != nil && st.Opened {
			u = domain.User{ID: st.User, Name: st.UserName}
		}
	}
	// As the member is in from (the domain reads it from the log), unless
	// the request says. A member this node knows to be quiet there is said
	// so here: it also holds for a switch decided again after its from
	// step, when the member is gone from there.
	var quiet *bool
	if r.UserStatusNotify != nil {
		q := !*r.UserStatusNotify
		quiet = &q
	} else if s.isQuiet(domain.RoomID(r.From)) {
		q := true
		quiet = &q
	}
	return s.join(ctx, req, to, claims, u, domain.SwitchRoom{Session: s.id, From: domain.RoomID(r.From), To: to,
		ToName: r.ToName, Role: rl, Grant: claims.Grant(), Create: create, Config: roomConfig(r.Config), Quiet: quiet},
		r.History)
}

// leave logs out of one room (or all): the departure's state change reaches
// the session through the room's events, like everyone else's.
func (s *session) leave(ctx context.Context, room domain.RoomID, reason domain.Reason) (any, error) {
	if room != "" {
		if err := checkRoom(room); err != nil {
			return nil, err // no LogoutFailed for what names no room
		}
	}
	s.mu.Lock()
	app := s.app
	s.mu.Unlock()
	if app == "" {
		// A session that never presented a token is in no room: it gets
		// what the log answers any session in no room (1002002 and
		// LogoutFailed for one room, SEMANTICS.md section 1; nothing left
		// for all), not exec's not_logged_in, which is about acting in one.
		if room == "" {
			return protocol.RoomsReply{Rooms: []string{}}, nil
		}
		s.state(room, domain.StateLogoutFailed, domain.ErrNotInRoom, "Connected", "Success")
		return nil, domain.ErrNotInRoom
	}
	res, err := s.exec(ctx, domain.LeaveRoom{Session: s.id, Room: room, Reason: reason})
	if err != nil {
		if room != "" {
			s.state(room, domain.StateLogoutFailed, err, "Connected", "Success")
		}
		return nil, err
	}
	rooms := make([]string, len(res.Rooms))
	for i, r := range res.Rooms {
		rooms[i] = string(r)
	}
	return protocol.RoomsReply{Rooms: rooms}, nil
}

func (s *session) queryRoom(ctx context.Context, room domain.RoomID) (any, error) {
	if err := checkRoom(room); err != nil {
		return nil, err
	}
	key := s.roomKey(room)
	if key.App == "" {
		// No token yet, so no app whose room this could be: not a member.
		return nil, domain.ErrNotLoggedIn.With("log in first")
	}
	// The projection answers; it must have folded what this node's engine
	// has appended to the room (a login's reply does not wait for it), so
	// that a client reads its own writes.
	wctx, cancel := context.WithTimeout(ctx, s.srv.cfg.CommandTimeout)
	defer cancel()
	if err := s.srv.cfg.Live.WaitFor(wctx, s.srv.cfg.Engine.Cursor(key)); err != nil {
		return nil, domain.ErrTimeout.With("the room's state did not catch up in time")
	}
	var r *domain.Room
	s.srv.cfg.Live.Read(func(m *projections.Model) {
		if a := m.App(key.App); a != nil && a.Rooms[room] != nil {
			r = a.Rooms[room].Clone()
		}
	})
	if r == nil || !r.Exists {
		return nil, domain.ErrRoomNotExist
	}
	if _, ok := r.MemberBySession(s.userID(), s.id); !ok {
		return nil, domain.ErrNotLoggedIn.With("only members may query a room")
	}
	return snapshot(r, room), nil
}
