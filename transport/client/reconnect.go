package client

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/protocol"
)

// Resume statuses of a room in the resume reply (protocol.ResumedRoom).
const (
	resumeResumed = "resumed" // the session is still in the room; missed events follow
	resumeLeft    = "left"    // the session left the room while away; its departure is among the missed events
	resumeUnknown = "unknown" // the session is in a room the client did not name
)

// errStopped ends the reconnection loop: the client was closed.
var errStopped = errors.New("roomlog: stopped")

// lost handles the end of a link: for the current link it starts the
// reconnection (or stops the client for good after session_replaced); for
// a link still being set up by a reconnection it only ends it, and the
// reconnection loop sees its requests fail.
func (c *Client) lost(l *link, why error) {
	if !l.kill(why) {
		return
	}
	c.mu.Lock()
	if c.link != l || c.stopErr != nil {
		c.mu.Unlock()
		return
	}
	c.link = nil
	c.signalLocked()
	if l.replaced.Load() {
		// The session lives on another connection now: reconnecting would
		// take it back from there.
		c.stopLocked(errReplaced)
		c.mu.Unlock()
		c.log.Warn("roomlog: the session was resumed on another connection; not reconnecting")
		return
	}
	rooms := c.activeRoomsLocked()
	c.mu.Unlock()
	c.log.Warn("roomlog: connection lost; reconnecting", "err", why, "rooms", len(rooms))
	for _, room := range rooms {
		c.state(room, StateReconnecting, domain.ErrReconnecting.Code, StateInfo{Reason: "connection_lost",
			ZIMState: "Connecting", ZIMEvent: "NetworkInterrupted"})
	}
	go c.reconnect()
}

// activeRoomsLocked returns the rooms the session is in and means to stay
// in, in the order they were entered; c.mu is held.
func (c *Client) activeRoomsLocked() []string {
	var rs []*roomTrack
	names := map[*roomTrack]string{}
	for name, r := range c.rooms {
		if !r.leaving {
			rs = append(rs, r)
			names[r] = name
		}
	}
	slices.SortFunc(rs, func(a, b *roomTrack) int { return cmp.Compare(a.order, b.order) })
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = names[r]
	}
	return out
}

// reconnect redials until a connection is restored, the window runs out,
// or the client is closed.
func (c *Client) reconnect() {
	deadline := c.clock.Now().Add(c.opts.ReconnectWindow)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			wait := min(c.backoff(attempt), deadline.Sub(c.clock.Now()))
			if !c.sleep(wait) {
				return
			}
		}
		if !c.clock.Now().Before(deadline) {
			c.giveUp()
			return
		}
		err := c.reattach(deadline)
		if err == nil {
			c.log.Info("roomlog: connection restored", "attempts", attempt+1, "session", c.Session())
			return
		}
		if errors.Is(err, errStopped) || c.ctx.Err() != nil {
			return
		}
		c.log.Info("roomlog: reconnection attempt failed", "attempt", attempt+1, "err", err)
	}
}

// backoff is the delay before attempt n (n ≥ 1): BackoffMin doubled each
// time up to BackoffMax, of which a random half is jitter, so that the
// clients of a failed server do not all come back at once.
func (c *Client) backoff(n int) time.Duration {
	d := c.opts.BackoffMin
	for i := 1; i < n && d < c.opts.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, c.opts.BackoffMax)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits d on the client's clock; false if the client was closed.
func (c *Client) sleep(d time.Duration) bool {
	if d <= 0 {
		return c.ctx.Err() == nil
	}
	done := make(chan struct{})
	t := c.clock.AfterFunc(d, func() { close(done) })
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// giveUp ends the reconnection: ReconnectFailed for every room, the end of
// every publisher's and player's media, and the client stops.
func (c *Client) giveUp() {
	c.mu.Lock()
	if c.stopErr != nil {
		c.mu.Unlock()
		return
	}
	rooms := c.activeRoomsLocked()
	clear(c.rooms)
	c.stopLocked(errReconnectFailed)
	c.mu.Unlock()
	c.log.Warn("roomlog: reconnect window ran out", "window", c.opts.ReconnectWindow)
	for _, room := range rooms {
		c.state(room, StateReconnectFailed, domain.ErrTimeout.Code, StateInfo{Reason: "reconnect_window_elapsed",
			ZIMState: "Disconnected", ZIMEvent: "NetworkInterrupted"})
	}
	// The session is given up, and its media with it (the server timed it
	// out long before): NO_PUBLISH / NO_PLAY, 1002053, as after a re-login.
	c.endMedia(domain.ErrTimeout, "ended")
}

// reattach makes one attempt: dial, resume the session or adopt the new
// one, re-enter the rooms that need it, and install the connection.
func (c *Client) reattach(deadline time.Time) error {
	ctx, cancel := context.WithTimeout(c.ctx, min(c.opts.DialTimeout, max(deadline.Sub(c.clock.Now()), 0)))
	l, err := c.connect(ctx)
	cancel()
	if err != nil {
		return err
	}
	if err := c.restore(l); err != nil {
		l.kill(err)
		if c.ctx.Err() != nil {
			return errStopped
		}
		return err
	}
	if err := c.install(l); err != nil {
		if c.ctx.Err() != nil {
			return errStopped
		}
		return err
	}
	return nil
}

// request sends one request on l during a reconnection, bounded by the
// request timeout.
func (c *Client) request(l *link, op protocol.Op, payload any, hook func([]byte) error) ([]byte, error) {
	expired := make(chan struct{})
	t := c.clock.AfterFunc(c.opts.RequestTimeout, func() { close(expired) })
	defer t.Stop()
	return l.roundTrip(c.ctx, expired, op, payload, "", hooks{reply: hook})
}

// restore brings the session back on l: resume first, else a new session
// and re-logins. An error means l is unusable (try another connection).
func (c *Client) restore(l *link) error {
	c.mu.Lock()
	// The newest app token: a RenewToken made while reconnecting waits for
	// this connection, yet its token must serve the resume already.
	token, appToken := c.resumeToken, c.latestTokenLocked()
	seqs := map[string]uint64{}
	var quiet []string
	for name, r := range c.rooms {
		if !r.relogin {
			seqs[name] = r.seq
			if r.entry.quiet {
				quiet = append(quiet, name)
			}
		}
	}
	c.mu.Unlock()
	slices.Sort(quiet)

	resumed := false
	var strays []string
	var kicked map[string]protocol.RoomStateChanged
	if token != "" {
		_, err := c.request(l, protocol.OpResume, protocol.ResumeRequest{ResumeToken: token, Rooms: seqs, Quiet: quiet, Token: appToken},
			func(data []byte) (err error) { strays, err = c.resumed(data, seqs); return err })
		switch {
		case err == nil:
			resumed = true
		case isLocal(err) || transient(err):
			return fmt.Errorf("resume: %w", err)
		default:
			// resume_failed (the session timed out server-side, or its
			// token expired), or a server that cannot resume: start over
			// on the new session, except in the rooms the refusal says the
			// old session was kicked out of.
			c.log.Info("roomlog: the session cannot be resumed; logging in again", "err", err)
			var refused protocol.ResumeRefused
			if e, ok := err.(*Error); ok && len(e.Data) > 0 && json.Unmarshal(e.Data, &refused) == nil {
				kicked = refused.Kicked
			}
		}
	}
	if !resumed {
		c.adopt(l.hello, kicked)
		c.endMedia(domain.ErrTimeout, "ended")
	}
	if err := c.dropStrays(l, strays); err != nil {
		return err
	}

	if err := c.restoreMode(l); err != nil {
		return err
	}
	if err := c.relogin(l); err != nil {
		return err
	}
	if resumed {
		// Its requests wait for l to be installed: see checkMedia.
		go c.checkMedia()
	}
	return nil
}

// transient reports whether a server error is worth retrying on another
// connection rather than giving the session up.
func transient(err error) bool {
	for _, e := range []error{domain.ErrUnavailable, domain.ErrInternal, domain.ErrTimeout, protocol.ErrTooManyRequests,
		protocol.ErrShuttingDown, protocol.ErrSlowConsumer} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// resumed applies a successful resume reply, on the reader goroutine, so
// that Reconnected is queued before the missed events that follow it. It
// returns the strays: rooms the session is in that the client does not
// know of, because the reply that entered them was lost with the
// connection (the app was told the login failed).
func (c *Client) resumed(data []byte, sent map[string]uint64) ([]string, error) {
	var rep protocol.ResumeReply
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, fmt.Errorf("roomlog: resume: %w", err)
	}
	c.mu.Lock()
	c.resumes++
	if rep.Session != "" {
		c.session = rep.Session
	}
	if rep.ResumeToken != "" {
		c.resumeToken = rep.ResumeToken
	}
	var strays []string
	for name, st := range rep.Rooms {
		// A tracked room the server reports unknown is one being entered
		// again (relogin): entering it again is harmless, the session
		// being in it already.
		if _, known := c.rooms[name]; st.Status == resumeUnknown && !known {
			strays = append(strays, name)
		}
	}
	slices.Sort(strays)
	for name, r := range c.rooms {
		if r.relogin {
			// Its re-login's reply was lost, if it was sent: whether the
			// session is in the room, only this reply says.
			r.inside = rep.Rooms[name].Status == resumeUnknown
		}
	}
	var back, forgotten []string
	exits := map[string]string{}
	for name := range sent {
		r := c.rooms[name]
		if r == nil {
			continue
		}
		switch st := rep.Rooms[name]; st.Status {
		case resumeResumed:
			if !r.leaving {
				back = append(back, name)
				// The session is still in the room: a leave whose reply was
				// lost did not take effect (one still waiting is sent again).
				r.unsure, r.confirmed = false, c.resumes
				if r.exiting == 0 {
					r.exit = ""
				}
			}
		case resumeLeft:
			// The departure event is among the missed events and ends the
			// room's tracking; until then the room is not re-entered.
			r.leaving = true
		default:
			// The server does not know the session in this room (it was
			// not in it at the seq named, nor is now): nothing more will
			// come for it, not even a departure. The app, told
			// Reconnecting, gets the room's final state below.
			c.log.Warn("roomlog: resume says nothing of a room; forgetting it", "room", name, "status", st.Status)
			delete(c.rooms, name)
			forgotten = append(forgotten, name)
			if r.leaving || r.exit != "" {
				// Left, or being left: a leave waiting for it is done.
				exits[name] = exitReason(r)
				r.left = true
			}
		}
	}
	c.mu.Unlock()
	slices.Sort(back)
	for _, room := range back {
		c.state(room, StateReconnected, 0, StateInfo{Reason: "resumed", ZIMState: "Connected", ZIMEvent: "Success"})
	}
	slices.Sort(forgotten)
	for _, room := range forgotten {
		if why, ok := exits[room]; ok {
			// The app asked to leave it, and the session is out of it: the
			// Logout its departure would have brought.
			c.loggedOut(room, why)
			continue
		}
		// The session could not be brought back into the room: as for a
		// re-login the server refuses, the app must enter it again.
		c.state(room, StateLoginFailed, domain.ErrNotInRoom.Code, StateInfo{Reason: "not_resumed",
			ZIMState: "Disconnected", ZIMEvent: "LoginFailed"})
	}
	return strays, nil
}

// exitReason is the reason of the Logout a room being left gets when its
// departure never comes: why the app left it, or logout when the server
// said the session left it (resume's left) and that departure was lost too.
func exitReason(r *roomTrack) string {
	if r.exit != "" {
		return r.exit
	}
	return "logout"
}

// loggedOut tells the app that the session is out of a room it was leaving
// whose departure event will never come: Logout, code 0, with why it left
// (logout, leave, switch), as the departure would have said.
func (c *Client) loggedOut(room, why string) {
	c.state(room, StateLogout, 0, StateInfo{Reason: why, ZIMState: "Disconnected", ZIMEvent: "Success"})
}

// dropStrays logs the session out of rooms it entered without the client
// learning of it, so that the server's view matches what the app was told.
func (c *Client) dropStrays(l *link, rooms []string) error {
	for _, room := range rooms {
		c.mu.Lock()
		_, known := c.rooms[room]
		c.mu.Unlock()
		if known {
			continue // entered meanwhile by the app: keep it
		}
		_, err := c.request(l, protocol.OpLogout, protocol.LogoutRequest{Room: room}, nil)
		if err != nil && isLocal(err) {
			return fmt.Errorf("leave stray room %q: %w", room, err)
		}
		if err != nil {
			c.log.Warn("roomlog: cannot leave a room entered by a lost request", "room", room, "err", err)
		}
	}
	return nil
}

// adopt makes l's session the client's: the old one is gone, so every room
// the client meant to stay in must be entered again. The rooms being left
// are not: their departures went with the old session (which timed out and
// left them), so the app is told Logout for them here. Nor are the rooms
// the old session was kicked out of while the client was away (kicked, from
// the resume's refusal): a kick is final, and entering again would kick the
// session that took the room; the app is told the KickOut it missed.
func (c *Client) adopt(h protocol.Hello, kicked map[string]protocol.RoomStateChanged) {
	c.mu.Lock()
	c.session, c.resumeToken = h.Session, h.ResumeToken
	c.modeApplied = false
	type endedRoom struct {
		name, why string
		order     uint64
		kick      *protocol.RoomStateChanged
	}
	var ended []endedRoom
	for name, r := range c.rooms {
		switch k, isKicked := kicked[name]; {
		case r.leaving:
			delete(c.rooms, name)
			ended = append(ended, endedRoom{name: name, why: exitReason(r), order: r.order})
		case isKicked && k.State == string(StateKickOut):
			delete(c.rooms, name)
			ended = append(ended, endedRoom{name: name, order: r.order, kick: &k})
		default:
			r.relogin, r.seq, r.inside = true, 0, false
		}
	}
	c.mu.Unlock()
	slices.SortFunc(ended, func(a, b endedRoom) int { return cmp.Compare(a.order, b.order) })
	for _, r := range ended {
		if k := r.kick; k != nil {
			c.state(r.name, StateKickOut, domain.Code(k.Code), StateInfo{Reason: k.Reason, ZIMState: k.ZIMState,
				ZIMEvent: k.ZIMEvent, BySession: k.By})
			continue
		}
		c.loggedOut(r.name, r.why)
	}
}

// restoreMode sets the room mode the app chose on a new session, before
// any re-login.
func (c *Client) restoreMode(l *link) error {
	c.mu.Lock()
	mode, applied := c.mode, c.modeApplied
	c.mu.Unlock()
	if mode == "" || applied {
		return nil
	}
	_, err := c.request(l, protocol.OpSetRoomMode, protocol.SetRoomModeRequest{Mode: string(mode)}, nil)
	if err != nil && isLocal(err) {
		return err
	}
	if err != nil {
		c.log.Warn("roomlog: cannot restore the room mode on the new session", "mode", mode, "err", err)
	}
	c.mu.Lock()
	c.modeApplied = true
	c.mu.Unlock()
	return nil
}

// relogin enters again, on l, every room whose session was lost. A room
// the server refuses gets LoginFailed and is forgotten; a connection
// failure aborts (the rooms left are entered on the next connection). A
// room the app asked to leave meanwhile is not entered (dropLeftLocked).
func (c *Client) relogin(l *link) error {
	for {
		c.mu.Lock()
		var name string
		var next *roomTrack
		for n, r := range c.rooms {
			if r.relogin && (next == nil || r.order < next.order) {
				name, next = n, r
			}
		}
		if next == nil {
			c.mu.Unlock()
			return nil
		}
		if next.exit != "" && !next.inside {
			// The app asked to leave it (LogoutRoom, LeaveRoom, ..., while
			// away or while an earlier room was entered again): it is not
			// entered again, and the leave is done.
			why := c.dropLeftLocked(name, next)
			c.mu.Unlock()
			c.loggedOut(name, why)
			continue
		}
		// The latest token first (a RenewToken made while reconnecting,
		// else the last one sent: the session's), which the one the room
		// was entered with may have expired before; then, if refused, the
		// room's own (a token naming rooms may not name this one).
		tokens := []string{c.latestTokenLocked()}
		if own := next.entry.token; own != "" && own != tokens[0] {
			tokens = append(tokens, own)
		}
		delete(c.loginFailed, name)
		c.entering[name]++ // before a leave made from now on can look (see entered)
		c.mu.Unlock()
		done := func() {
			c.mu.Lock()
			if c.entering[name]--; c.entering[name] <= 0 {
				delete(c.entering, name)
			}
			c.mu.Unlock()
		}

		var err error
		dropped := false
		for i, tok := range tokens {
			e := next.entry
			if tok != "" {
				e.token = tok
			}
			_, err = c.request(l, e.op, e.request(name), func(data []byte) error {
				var snap RoomSnapshot
				if err := json.Unmarshal(data, &snap); err != nil {
					return fmt.Errorf("roomlog: %s: %w", e.op, err)
				}
				c.vanished(name, &snap)
				c.entered(name, snap.Seq, e)
				return nil
			})
			if err != nil && !isLocal(err) && !transient(err) {
				// Refused for good: if the app asked to leave the room while
				// this attempt was on its way, it is not tried again (with
				// the room's own token). After an answer that leaves the
				// outcome open (transient), the login may have been stored:
				// the room fails as below, and the leave is sent.
				c.mu.Lock()
				why := ""
				if next.exit != "" && !next.inside && c.rooms[name] == next {
					why = c.dropLeftLocked(name, next)
				}
				c.mu.Unlock()
				if dropped = why != ""; dropped {
					c.loggedOut(name, why)
					break
				}
			}
			var ce *Error
			if i+1 == len(tokens) || !errors.As(err, &ce) || ce.Code != domain.ErrTokenInvalid.Code {
				break
			}
		}
		done()
		if err == nil || dropped {
			continue
		}
		if isLocal(err) {
			return fmt.Errorf("re-enter %q: %w", name, err)
		}
		c.mu.Lock()
		told := c.loginFailed[name]
		if r := c.rooms[name]; r == next {
			delete(c.rooms, name)
		}
		c.mu.Unlock()
		c.log.Warn("roomlog: cannot enter a room again after reconnecting", "room", name, "err", err)
		if !told {
			var ce *Error
			errors.As(err, &ce)
			c.state(name, StateLoginFailed, ce.Code, StateInfo{Reason: "relogin_failed", ZIMState: "Disconnected",
				ZIMEvent: "LoginFailed"})
		}
	}
}

// dropLeftLocked forgets room name (track r), which the app asked to leave
// while its session was lost and the rooms were being entered again: the
// leaves waiting for it are done (r.left). It returns why the app left it,
// for the Logout the caller tells it; c.mu is held.
func (c *Client) dropLeftLocked(name string, r *roomTrack) string {
	delete(c.rooms, name)
	r.left = true
	return r.exit
}

// request is the request that enters room again as e entered it: as quiet
// as it was, whichever way it entered (a switch keeps the flag of the room
// it left).
func (e entry) request(room string) any {
	var notify *bool
	if e.quiet {
		notify = new(false)
	}
	switch e.op {
	case protocol.OpLogin:
		var u User
		if e.user != nil {
			u = *e.user
		}
		return protocol.LoginRequest{Room: room, User: u, Token: e.token, Role: e.role, MaxMemberCount: e.capacity,
			UserStatusNotify: notify}
	case protocol.OpJoinRoom:
		return protocol.JoinRoomRequest{Room: room, User: e.user, Token: e.token, Role: e.role, UserStatusNotify: notify}
	default:
		return protocol.CreateRoomRequest{Room: RoomInfo{ID: room, Name: e.name}, User: e.user, Token: e.token,
			Role: e.role, Config: e.config, UserStatusNotify: notify}
	}
}
