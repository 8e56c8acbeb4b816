package gateway

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/projections"
	"github.com/roomlog/roomlog/transport/protocol"
)

// heartbeat records that the session was heard from, and returns a fresh
// resume token once the current one is half spent (nil otherwise).
// Heartbeats are not events: they go to presence, where every node can see a
// session go silent.
func (s *session) heartbeat(ctx context.Context) any {
	s.touch()
	var reply any
	if tok, ok := s.srv.refreshResume(s); ok {
		reply = protocol.HeartbeatReply{ResumeToken: tok}
	}
	now := s.srv.cfg.Clock.Now()
	s.mu.Lock()
	// A client heartbeats once an interval; one that heartbeats far more
	// often (a flood) is answered, but presence, shared by every node, is
	// written at most once a second (or four times an interval, if shorter).
	due := s.bound && now.Sub(s.lastBeat) >= min(time.Second, s.srv.cfg.HeartbeatInterval/4)
	s.mu.Unlock()
	if due {
		s.beat(ctx, now)
	}
	return reply
}

// forget removes the presence record of a session whose first login failed.
func (s *session) forget(ctx context.Context) {
	if s.srv.cfg.Presence == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.srv.cfg.CommandTimeout)
	defer cancel()
	if err := s.srv.cfg.Presence.Forget(ctx, s.id); err != nil {
		s.srv.cfg.Logger.Warn("forgetting a session's presence failed", "session", s.id, "err", err)
	}
}

// beat records in presence that the session was heard from at seen.
func (s *session) beat(ctx context.Context, seen time.Time) {
	if s.srv.cfg.Presence == nil {
		return
	}
	s.mu.Lock()
	app := s.app
	s.lastBeat = seen
	s.mu.Unlock()
	s.tellPresence(ctx, func(ctx context.Context) error { return s.srv.cfg.Presence.BeatAt(ctx, app, s.id, seen) })
}

// tellPresence runs one write to presence, bounded: a log that does not
// answer must not stall the connection's reader, which answers heartbeats;
// a write that misses is made good by the next.
func (s *session) tellPresence(ctx context.Context, write func(context.Context) error) {
	ctx, cancel := context.WithTimeout(ctx, min(s.srv.cfg.CommandTimeout, s.srv.cfg.HeartbeatInterval))
	defer cancel()
	if err := write(ctx); err != nil {
		s.srv.cfg.Logger.Warn("presence heartbeat failed", "session", s.id, "err", err)
	}
}

// flush tells presence of a frame heard after the last beat, if there was
// one: the connection has gone quiet, and presence must time the session
// out from its last frame, not from its last beat.
func (s *session) flush(ctx context.Context) {
	if s.srv.cfg.Presence == nil {
		return
	}
	s.mu.Lock()
	seen, due := s.lastSeen, s.bound && s.lastSeen.After(s.lastBeat)
	if due {
		s.lastBeat = seen
	}
	s.mu.Unlock()
	if due {
		s.tellPresence(ctx, func(ctx context.Context) error { return s.srv.cfg.Presence.Seen(ctx, s.id, seen) })
	}
}

// resumeTTL is how long a resume token is valid: long enough to outlast the
// heartbeat timeout after the last refresh, which is all a resume needs
// (past the timeout the session is gone whatever the token says).
func (srv *Server) resumeTTL() time.Duration { return srv.cfg.ResumeWindow + srv.cfg.HeartbeatTimeout }

// mintResume mints a resume token for s and remembers when.
func (srv *Server) mintResume(s *session) (string, error) {
	tok, err := srv.cfg.Signer.MintResume(string(s.id), srv.resumeTTL())
	if err == nil {
		s.mu.Lock()
		s.resumeAt = srv.cfg.Clock.Now()
		s.mu.Unlock()
	}
	return tok, err
}

// refreshResume mints a new resume token if the session's is half spent.
func (srv *Server) refreshResume(s *session) (string, bool) {
	s.mu.Lock()
	due := srv.cfg.Clock.Now().Sub(s.resumeAt) > srv.resumeTTL()/2
	s.mu.Unlock()
	if !due {
		return "", false
	}
	tok, err := srv.mintResume(s)
	return tok, err == nil
}

// resume reattaches the session named by a resume token to this connection,
// replays what each of its rooms saw while it was away, and switches it to
// live delivery (seed case 1: others see nothing of the interruption). If
// the session timed out meanwhile the client gets resume_failed and logs in
// again (seed case 2).
func (c *conn) resume(ctx context.Context, req protocol.Request) {
	fresh := c.sess.Load()
	s, reply, after, err := c.srv.reattach(ctx, c, fresh, req)
	if err != nil {
		fresh.reply(req.ID, nil, err)
		return
	}
	// A room the session is no longer in gets the events it missed there
	// up to its own departure, which must be in the log after the client's
	// seq: a room it was not in then is none of its business (its token
	// may not even allow it), and is left out of the reply, so the client
	// forgets it.
	gone := map[string][]projections.Record{}
	for room, st := range reply.Rooms {
		if st.Status != "left" {
			continue
		}
		recs, ok, err := c.srv.untilDeparture(ctx, s.app, s.id, domain.RoomID(room), after[room])
		if err != nil {
			c.replayFailed(ctx, s, room, err)
			return
		}
		if !ok {
			delete(reply.Rooms, room)
			continue
		}
		gone[room] = recs
	}
	s.reply(req.ID, reply, nil)
	for _, room := range slices.Sorted(maps.Keys(reply.Rooms)) {
		var err error
		switch recs, left := gone[room]; {
		case left:
			from := memberSince(recs, after[room], s.id)
			_, _, err = replayFrames(s, recs, from, math.MaxUint64, func(b []byte) error { return s.sendWait(ctx, b) })
		case reply.Rooms[room].Status == "resumed":
			err = c.srv.replay(ctx, s, domain.RoomID(room), after[room])
		}
		if err != nil {
			c.replayFailed(ctx, s, room, err)
			return
		}
	}
}

// replayFailed closes a connection whose session could not be told what it
// missed in room: without its history the client cannot be told the truth,
// and it resumes again from the same place.
func (c *conn) replayFailed(ctx context.Context, s *session, room string, err error) {
	if ctx.Err() == nil { // else the connection or the server is closing
		c.srv.cfg.Logger.Warn("resume replay failed", "session", s.id, "room", room, "err", err)
	}
	c.close(domain.ErrUnavailable.With("replay of room %q failed", room))
}

// reattach checks the resume request and makes the connection carry the
// resumed session. It returns the reply and, per room the client named, the
// last seq it got there.
func (srv *Server) reattach(ctx context.Context, c *conn, fresh *session, req protocol.Request) (*session, protocol.ResumeReply,
	map[string]uint64, error) {
	var r protocol.ResumeRequest
	if err := decode(req, &r); err != nil {
		return nil, protocol.ResumeReply{}, nil, err
	}
	fresh.mu.Lock()
	used, refused := fresh.bound || fresh.app != "", fresh.resumeRefused
	fresh.mu.Unlock()
	if used {
		return nil, protocol.ResumeReply{}, nil, protocol.ErrResumeFailed.With("resume must come before any login on a connection")
	}
	if refused {
		// Each refusal of a timed-out session may read the log for its
		// kicks: once a connection.
		return nil, protocol.ResumeReply{}, nil, protocol.ErrResumeFailed.With("a resume was refused on this connection already; log in")
	}
	if srv.cfg.Presence == nil {
		return nil, protocol.ResumeReply{}, nil, protocol.ErrResumeFailed.With("this node does not keep sessions across connections")
	}
	id, err := srv.cfg.Signer.VerifyResume(r.ResumeToken)
	if err != nil {
		return nil, protocol.ResumeReply{}, nil, err
	}
	sid := domain.SessionID(id)
	for room := range r.Rooms {
		if err := checkRoom(domain.RoomID(room)); err != nil {
			return nil, protocol.ResumeReply{}, nil, err
		}
	}
	rec, alive, err := srv.cfg.Presence.Lookup(ctx, sid)
	prev := rec.Node // the node that heard from the session last
	if err == nil && alive {
		// A session is in at most its app's room limit; a client may also
		// name rooms it is leaving (whose departure it has not read yet),
		// and the limit may have been lowered. Twice the limit is more than
		// any client names; each named room costs a read of the log.
		if most := 2 * max(srv.cfg.Policy(rec.App).MaxRooms, 1); len(r.Rooms) > most {
			return nil, protocol.ResumeReply{}, nil, protocol.ErrResumeFailed.With("%d rooms named; a session is in at most %d",
				len(r.Rooms), most)
		}
		// Then the session is claimed, against its timeout: a node
		// recording that meanwhile either finds it heard from, or has
		// marked it first and the resume fails (Presence.Revive).
		rec, alive, err = srv.cfg.Presence.Revive(ctx, sid)
	}
	if err != nil {
		return nil, protocol.ResumeReply{}, nil, domain.ErrUnavailable.With("presence: %v", err)
	}
	if !alive {
		fresh.mu.Lock()
		fresh.resumeRefused = true
		fresh.mu.Unlock()
		refused := protocol.ErrResumeFailed.With("the session timed out; log in again")
		kicked, err := srv.kickedWhileAway(ctx, sid, r)
		if err != nil {
			// Unanswered, the client would log in to a room it was kicked
			// out of: it tries again on another connection instead.
			return nil, protocol.ResumeReply{}, nil, domain.ErrUnavailable.With("the log: %v", err)
		}
		if len(kicked) > 0 {
			refused = refused.WithData(protocol.ResumeRefused{Kicked: kicked})
		}
		return nil, protocol.ResumeReply{}, nil, refused
	}
	// Revived, the session has a whole timeout again: what this node keeps
	// of its media peers too, should this resume fail later on.
	srv.mu.Lock()
	if a, ok := srv.awayMedia[sid]; ok {
		a.since = srv.cfg.Clock.Now()
		srv.awayMedia[sid] = a
	}
	srv.mu.Unlock()
	// A connection of this node may still carry the session, its worker
	// running a command of it (a login whose reply the client never got):
	// take the session off it and let that command end first, so that what
	// it stores is in the log read below.
	if err := srv.stopOld(ctx, sid, c); err != nil {
		return nil, protocol.ResumeReply{}, nil, err
	}
	// So may a connection of the node that last heard from it.
	if prev != "" && prev != srv.node {
		srv.releaseOn(ctx, prev, sid)
	}
	// The session as the log knows it: the log as it is now, folded, so
	// that a resume right after a command (a login whose reply did not
	// wait for the projection, on this node or another) sees what it did.
	last, err := srv.cfg.Log.LastSeq(ctx)
	if err == nil {
		wctx, cancel := context.WithTimeout(ctx, srv.cfg.CommandTimeout)
		err = srv.cfg.Live.WaitFor(wctx, last)
		cancel()
	}
	if err != nil {
		return nil, protocol.ResumeReply{}, nil, domain.ErrUnavailable.With("the log: %v", err)
	}
	st, err := srv.sessionState(ctx, domain.SessionKey(rec.App, sid))
	if err != nil {
		return nil, protocol.ResumeReply{}, nil, err
	}
	s := newSession(srv, sid)
	s.app = rec.App
	// A room the session was removed from while away is no longer in the
	// model with the member's quiet flag: the client says which rooms it
	// entered quietly. Where the session is still a member, the replay
	// takes the model's flag instead (replay).
	for _, room := range r.Quiet {
		if _, named := r.Rooms[room]; named {
			if s.quiet == nil {
				s.quiet = map[domain.RoomID]bool{}
			}
			s.quiet[domain.RoomID(room)] = true
		}
	}
	if st != nil && st.Opened {
		s.user, s.bound, s.mode = domain.User{ID: st.User, Name: st.UserName}, true, st.Mode
	}
	if err := ctx.Err(); err != nil {
		// The client closed this connection meanwhile: a resume it gave
		// up takes nothing from the connection it resumes on instead.
		return nil, protocol.ResumeReply{}, nil, protocol.ErrResumeFailed.With("the connection closed during the resume")
	}
	s.conn = c
	// Take the session over: from another connection on this node, and
	// from any other node (which closes its connection on hearing this).
	srv.mu.Lock()
	old := srv.sessions[sid]
	srv.sessions[sid] = s
	delete(srv.sessions, fresh.id)
	away := srv.awayMedia[sid].media
	delete(srv.awayMedia, sid)
	srv.mu.Unlock()
	if old != nil {
		srv.hub.forget(old)
		if oc := old.unhook(nil); oc != nil && oc != c {
			oc.replace()
		}
	}
	if err := srv.cfg.Bus.Publish(takeoverSubject+"."+eventstore.Token(id), []byte(srv.node)); err != nil {
		srv.cfg.Logger.Warn("takeover notice failed", "session", sid, "err", err)
	}
	c.sess.Store(s)
	srv.keepToken(s, r.Token, old)
	// Its waiting players' later requests still go where their peers are:
	// as the session's connection here had them, or, if it went first
	// (detach), as they were kept then (a resume through another node
	// learns it from media_check).
	if old != nil {
		away = old.mediaConns.carry()
	}
	s.mediaConns.takeOver(away)
	tok, err := srv.mintResume(s)
	if err != nil {
		return nil, protocol.ResumeReply{}, nil, domain.ErrInternal.With("%v", err)
	}
	reply := protocol.ResumeReply{Session: id, ResumeToken: tok, Rooms: map[string]protocol.ResumedRoom{}}
	srv.cfg.Live.Read(func(m *projections.Model) {
		a := m.App(rec.App)
		for room, seq := range r.Rooms {
			status := "left"
			if a != nil && a.Rooms[domain.RoomID(room)] != nil {
				if _, in := a.Rooms[domain.RoomID(room)].MemberBySession(s.user.ID, sid); in {
					status = "resumed"
				}
			}
			reply.Rooms[room] = protocol.ResumedRoom{Status: status, Seq: seq}
		}
		// Rooms the session is in that the client did not name.
		if a != nil && st != nil {
			for room := range st.Claims {
				if _, named := r.Rooms[string(room)]; named || a.Rooms[room] == nil {
					continue
				}
				if _, in := a.Rooms[room].MemberBySession(s.user.ID, sid); in {
					reply.Rooms[string(room)] = protocol.ResumedRoom{Status: "unknown"}
				}
			}
		}
	})
	return s, reply, r.Rooms, nil
}

// stopOld unhooks session sid from the connection of this node that carries
// it (other than c), closes that connection, and waits until its worker has
// stopped: whatever the command it was running stores is stored by then.
func (srv *Server) stopOld(ctx context.Context, sid domain.SessionID, c *conn) error {
	srv.mu.Lock()
	old := srv.sessions[sid]
	srv.mu.Unlock()
	if old == nil {
		return nil
	}
	oc := old.takeConn()
	if oc == nil || oc == c {
		return nil
	}
	oc.replace()
	select {
	case <-oc.stopped:
		return nil
	case <-ctx.Done():
		return domain.ErrUnavailable.With("the session's previous connection did not stop")
	}
}

// releaseOn asks node to let go of session sid and waits, at most
// releaseWait, until the command its connection there was running has
// ended (cancelled by the release, it ends at once). A node that is gone
// (no one answers) runs nothing of it; one that does not answer in time (a
// frozen host whose connection the NATS server has not yet timed out) is
// not waited for longer: the takeover notice still closes its connection,
// as it did before this request existed.
func (srv *Server) releaseOn(ctx context.Context, node string, sid domain.SessionID) {
	rctx, cancel := context.WithTimeout(ctx, min(srv.cfg.CommandTimeout, releaseWait))
	defer cancel()
	answer, err := srv.cfg.Bus.Request(rctx, releaseSubject+"."+eventstore.Token(node), []byte(sid))
	switch {
	case errors.Is(err, eventstore.ErrNoResponders) || ctx.Err() != nil:
	case err != nil:
		srv.cfg.Logger.Warn("the session's previous node did not let go of it in time", "session", sid, "node", node, "err", err)
	case string(answer) != "released":
		srv.cfg.Logger.Warn("the session's previous node did not let go of it in time", "session", sid, "node", node,
			"answer", string(answer))
	}
}

// keepToken gives the resumed session s a token: the one the client sent
// with its resume, else that of the connection it replaced on this node, so
// that its later requests may leave theirs out, as on the lost connection,
// and its expiry is still warned of.
func (srv *Server) keepToken(s *session, raw string, old *session) {
	if raw != "" {
		err := s.renewToken(raw)
		if err == nil {
			return
		}
		srv.cfg.Logger.Info("a resume's token is not kept", "session", s.id, "err", err)
	}
	if old == nil {
		return
	}
	old.mu.Lock()
	c := old.claims
	old.mu.Unlock()
	if c != nil {
		s.adopt(c)
	}
}

// sessionState returns the session as the log knows it (nil if the log has
// nothing of it): from the live model, or, for a session that holds no room
// and so left the model, from the log.
func (srv *Server) sessionState(ctx context.Context, k domain.Key) (*domain.Session, error) {
	state, _, ok, err := srv.cfg.Live.State(ctx, k, 0)
	if err == nil && !ok {
		state, ok, err = projections.ReadState(ctx, srv.cfg.Log, k)
	}
	if err != nil {
		return nil, domain.ErrUnavailable.With("the log: %v", err)
	}
	st, _ := state.(*domain.Session)
	return st, nil
}

// replay sends session s every event of room it has not seen (those after
// seq after), read from the log, then registers it for live delivery if it is
// still in the room, with nothing lost or repeated in between.
func (srv *Server) replay(ctx context.Context, s *session, room domain.RoomID, after uint64) error {
	key := domain.RoomKey(s.app, room)
	subject := srv.cfg.Log.Subject(string(key.App), string(key.Kind), key.ID)
	recs, next, err := srv.readRoom(ctx, subject, after, 0, nil)
	if err != nil {
		return err
	}
	after = memberSince(recs, after, s.id)
	// A member that asked not to hear of other users (user_status_notify
	// false) is not replayed their comings and goings either.
	srv.cfg.Live.Read(func(m *projections.Model) {
		if a := m.App(key.App); a != nil && a.Rooms[room] != nil {
			s.setQuiet(room, a.Rooms[room])
		}
	})
	// What the log held is sent first, as fast as the client reads it: a
	// session may have missed more than its queue holds (a slow consumer
	// that was cut off always has), and sending it all at once, as the
	// hub does, would cut it off again. This is the connection's own
	// worker, and the session is not in the room's fan-out yet, so waiting
	// holds up nobody else; the hub then sends only what came meanwhile.
	after, left, err := replayFrames(s, recs, after, math.MaxUint64, func(b []byte) error { return s.sendWait(ctx, b) })
	if err != nil || left {
		return err
	}
	return srv.hub.resume(s, key, after, func(have uint64) ([]projections.Record, error) {
		// Events folded by the projection since the read above.
		more, _, err := srv.readRoom(ctx, subject, have, next, nil)
		return more, err
	})
}

// readRoom reads the room's messages holding events after seq after,
// starting at stream sequence from (0: find it by binary search), and
// returns them with the stream sequence to continue from. It stops after a
// record for which until (if not nil) says so.
func (srv *Server) readRoom(ctx context.Context, subject string, after, from uint64,
	until func(projections.Record) bool) ([]projections.Record, uint64, error) {
	log := srv.cfg.Log
	if from == 0 {
		// Where the log ends, read before searching it: an event appended
		// after the search must be read by the next call, not skipped.
		end, err := log.LastSeq(ctx)
		if err != nil {
			return nil, 0, err
		}
		start, ok, err := log.Search(ctx, subject, func(rec eventstore.Record) (bool, error) {
			events, err := domain.DecodeEvents(rec.Data)
			if err != nil {
				// Not written by an engine (the read passes over it):
				// counted as a hit, it can only start the read early.
				return true, nil
			}
			return events[len(events)-1].Seq > after, nil
		})
		if err != nil {
			return nil, 0, err
		}
		if !ok {
			return nil, end + 1, nil
		}
		from = start
	}
	var recs []projections.Record
	next := from
	_, err := log.Read(ctx, []string{subject}, from, func(raw eventstore.Record) error {
		next = raw.Seq + 1
		rec, err := projections.Decode(raw)
		if err != nil {
			return nil // passed over, as the projection does (it reports it)
		}
		recs = append(recs, rec)
		if until != nil && until(rec) {
			return errEnough
		}
		return nil
	})
	if errors.Is(err, errEnough) {
		err = nil
	}
	return recs, next, err
}

// errEnough stops a read that has what it needs.
var errEnough = errors.New("read enough")

// untilDeparture reads what session sid of app missed in room, a room it
// is no longer in, after seq after: the records up to its own departure. ok
// is false if the log holds no departure of sid after that seq: it was not
// in the room then, and nothing of it is its business.
func (srv *Server) untilDeparture(ctx context.Context, app domain.AppID, sid domain.SessionID, room domain.RoomID,
	after uint64) (recs []projections.Record, ok bool, err error) {
	key := domain.RoomKey(app, room)
	subject := srv.cfg.Log.Subject(string(key.App), string(key.Kind), key.ID)
	recs, _, err = srv.readRoom(ctx, subject, after, 0, func(rec projections.Record) bool {
		for i := range rec.Events {
			if e := &rec.Events[i]; e.Seq > after && departs(e, sid) {
				ok = true
			}
		}
		return ok
	})
	return recs, ok, err
}

// kickedWhileAway returns, of the rooms a resume names for session sid,
// which timed out, those it was kicked out of after the seq the client got
// there, each with the state the member was told: a kick is final, and a
// client that logged in to such a room again would kick the session that
// took its place.
//
// What a client can make the server read is bounded: nothing without an
// app token that verifies and whose app and user are the session's, as the
// log has it (a connection's own new session, or another user's, reads
// nothing); at most twice the app's room limit of rooms, each read for at
// most maxKickScan records after the client's seq (a departure further on
// is not looked for); and one refusal per connection (reattach).
func (srv *Server) kickedWhileAway(ctx context.Context, sid domain.SessionID, r protocol.ResumeRequest) (
	map[string]protocol.RoomStateChanged, error) {
	if r.Token == "" || len(r.Rooms) == 0 {
		return nil, nil
	}
	claims, err := srv.cfg.Signer.Verify(r.Token)
	app := domain.AppID(claims.App)
	if err != nil || len(r.Rooms) > 2*max(srv.cfg.Policy(app).MaxRooms, 1) {
		return nil, nil
	}
	st, err := srv.sessionState(ctx, domain.SessionKey(app, sid))
	if err != nil {
		return nil, err
	}
	if st == nil || !st.Opened || st.User != domain.UserID(claims.User) {
		return nil, nil
	}
	var kicked map[string]protocol.RoomStateChanged
	for room, after := range r.Rooms {
		key := domain.RoomKey(app, domain.RoomID(room))
		subject := srv.cfg.Log.Subject(string(key.App), string(key.Kind), key.ID)
		var left *domain.MemberLeftData
		read := 0
		_, _, err := srv.readRoom(ctx, subject, after, 0, func(rec projections.Record) bool {
			read++
			for i := range rec.Events {
				if e := &rec.Events[i]; e.Seq > after && departs(e, sid) {
					left, _ = e.Data.(*domain.MemberLeftData) // nil: the room was destroyed
					return true
				}
			}
			return read >= maxKickScan
		})
		if err != nil {
			return nil, err
		}
		if left != nil && (left.Reason == domain.ReasonKickedByBackend || left.Reason == domain.ReasonKickedDuplicateLogin) {
			if kicked == nil {
				kicked = map[string]protocol.RoomStateChanged{}
			}
			kicked[room] = stateOf(left.Reason, left.BySession)
		}
	}
	return kicked, nil
}

// releaseWait bounds how long a resume waits for the session's previous
// node to let go of it.
const releaseWait = 2 * time.Second

// maxKickScan bounds the records of one room kickedWhileAway reads.
const maxKickScan = 2000

// departs reports whether event e ends session sid's membership.
func departs(e *domain.Event, sid domain.SessionID) bool {
	switch d := e.Data.(type) {
	case *domain.MemberLeftData:
		return d.Session == sid
	case *domain.RoomDestroyedData:
		return slices.ContainsFunc(d.Members, func(m domain.MemberClaim) bool { return m.Session == sid })
	}
	return false
}

// memberSince returns the seq after which the events of recs concern
// session sid, given that the client says it got the room's events up to
// seq after: after itself, unless the session joined the room later than
// that (a client naming a seq from before it was in the room), in which case
// what came before its join is none of its business.
func memberSince(recs []projections.Record, after uint64, sid domain.SessionID) uint64 {
	for _, rec := range recs {
		for i := range rec.Events {
			e := &rec.Events[i]
			if e.Seq <= after {
				continue
			}
			if d, ok := e.Data.(*domain.MemberJoinedData); ok && d.Session == sid {
				return e.Seq
			}
			if departs(e, sid) {
				return after // a member until then
			}
		}
	}
	return after
}

// resume sends s the events after seq after that the projection has folded
// (read with more), and registers s in the room if it is still a member, so
// that no live event slips between or comes twice. The hub is held only to
// register s: the live events after what the projection has folded wait in
// the membership while the rest is read from the log, outside the hub (a
// slow read must not stall the node's fan-out).
func (h *hub) resume(s *session, key domain.Key, after uint64,
	more func(have uint64) ([]projections.Record, error)) error {
	room := domain.RoomID(key.ID)
	var now uint64
	var member bool
	var m *membership
	uid := s.userID()
	h.mu.Lock()
	h.live.Read(func(md *projections.Model) {
		if a := md.App(key.App); a != nil && a.Rooms[room] != nil {
			r := a.Rooms[room]
			now = r.Seq
			_, member = r.MemberBySession(uid, s.id)
			s.setQuiet(room, r)
		}
	})
	if member && !s.forgotten {
		members := h.rooms[key]
		if members == nil {
			members = map[*session]*membership{}
			h.rooms[key] = members
		}
		// Events up to now are read from the log below; later ones are
		// held for after them. The replay before may have sent more than
		// the projection has folded (the log is ahead of it): those are
		// not sent again.
		m = &membership{last: max(now, after), base: max(now, after), held: true, told: true}
		members[s] = m
		s.mu.Lock()
		s.rooms[room] = true
		s.mu.Unlock()
	}
	h.mu.Unlock()
	var recs []projections.Record
	if after < now {
		var err error
		if recs, err = more(after); err != nil {
			if m != nil {
				h.drop(s, key, m)
			}
			return err
		}
	}
	last, left, err := replayFrames(s, recs, after, now, func(b []byte) error { s.send(b, false); return nil })
	switch {
	case m == nil:
	case err != nil || left:
		// On an error the connection is closed. left: a member as of now
		// cannot have left before it; kept for safety, the departure was
		// sent and ends the membership.
		h.drop(s, key, m)
		if left {
			s.leftRoom(room)
		}
	default:
		// last is what the client last got: the next event's prev.
		h.release(s, m, last)
	}
	return err
}

// replayFrames sends s, with send, the frames of the events of recs after
// seq after and up to seq upto that are for it, each chained to the one
// before; it stops after a frame by which s leaves the room. It returns the
// seq of the last event sent (after if none) and whether s left.
func replayFrames(s *session, recs []projections.Record, after, upto uint64, send func([]byte) error) (uint64, bool, error) {
	uid := s.userID()
	last := after
	for _, rec := range recs {
		for i := range rec.Events {
			e := &rec.Events[i]
			if e.Seq <= after || e.Seq > upto {
				continue
			}
			frames, err := translate(e, rec.Seq)
			if err != nil {
				return last, false, fmt.Errorf("translate %s: %w", e.Type, err)
			}
			for _, f := range frames {
				if !f.to.includes(s.id, uid) || (f.to.users && s.isQuiet(domain.RoomID(e.AggregateID))) {
					continue
				}
				if err := send(f.bytes(last)); err != nil {
					return last, false, err
				}
				last = e.Seq
				if f.to.leaves {
					return last, true, nil
				}
			}
		}
	}
	return last, false, nil
}
