package gateway

import (
	"context"
	"slices"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/history"
	"github.com/roomlog/roomlog/projections"
	"github.com/roomlog/roomlog/transport/protocol"
)

// This file serves the room state beyond members and messages: room
// attribute and extra info writes (owned keys, batches, compare-and-set),
// member attributes, message history and paged member queries.

// Page sizes of the paged queries.
const (
	defaultPage    = 100
	defaultHistory = 20
)

// hears reports whether frame f of room goes to s.
func (s *session) hears(room domain.RoomID, f *outFrame) bool {
	return f.to.includes(s.id, s.userID()) && !(f.to.users && s.isQuiet(room))
}

// setQuiet records whether s asked, in room r, not to hear of other users.
func (s *session) setQuiet(room domain.RoomID, r *domain.Room) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := r.Members[s.user.ID]
	if ok && m.Session == s.id && m.Quiet {
		if s.quiet == nil {
			s.quiet = map[domain.RoomID]bool{}
		}
		s.quiet[room] = true
		return
	}
	delete(s.quiet, room)
}

func (s *session) isQuiet(room domain.RoomID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.quiet[room]
}

// pageLimit is the most messages or members one page of the session's app
// holds.
func (s *session) pageLimit() int {
	s.mu.Lock()
	app := s.app
	s.mu.Unlock()
	return s.srv.cfg.Policy(app).Limits.HistoryPage
}

// checkHistory checks the number of last messages an entry asks for.
func (s *session) checkHistory(n int) error {
	if limit := s.pageLimit(); n < 0 || n > limit {
		return domain.ErrInvalidArgument.With("history must be 0 to %d messages", limit)
	}
	return nil
}

// doRoomState runs the operations of this file; ok is false for any other.
func (s *session) doRoomState(ctx context.Context, req protocol.Request) (data any, err error, ok bool) {
	switch req.Op {
	case protocol.OpSetRoomExtraInfo:
		res, err := command(ctx, s, req, func(r protocol.RoomExtraInfoRequest) domain.Command {
			return domain.SetRoomExtraInfo{Session: s.id, Room: domain.RoomID(r.Room), Key: r.Key, Value: r.Value,
				Expect: r.Expect}
		})
		return writeReply(res, err), err, true
	case protocol.OpSetRoomAttributes, protocol.OpDeleteRoomAttributes, protocol.OpRoomAttributesBatch:
		res, err := command(ctx, s, req, func(r protocol.RoomAttributesRequest) domain.Command {
			c := domain.SetRoomAttributes{Session: s.id, Room: domain.RoomID(r.Room), Force: r.Force,
				DeleteAfterOwnerLeft: r.DeleteAfterOwnerLeft, UpdateOwner: r.UpdateOwner, Expect: r.Expect,
				Batch: req.Op == protocol.OpRoomAttributesBatch}
			switch req.Op {
			case protocol.OpSetRoomAttributes:
				c.Set = r.Attributes
			case protocol.OpDeleteRoomAttributes:
				c.Delete = r.Keys
			default:
				c.Set, c.Delete = r.Attributes, r.Keys
			}
			return c
		})
		return writeReply(res, err), err, true
	case protocol.OpSetMemberAttributes:
		res, err := command(ctx, s, req, func(r protocol.MemberAttributesRequest) domain.Command {
			users := make([]domain.UserID, len(r.Users))
			for i, u := range r.Users {
				users[i] = domain.UserID(u)
			}
			return domain.SetMemberAttributes{Session: s.id, Room: domain.RoomID(r.Room), Users: users,
				Set: r.Attributes, Delete: r.Keys}
		})
		if err != nil {
			return nil, err, true
		}
		var rep protocol.MemberAttributesReply
		if res.Partial != nil {
			for _, u := range res.Partial.Users {
				rep.ErrorUsers = append(rep.ErrorUsers, string(u))
			}
		}
		return rep, nil, true
	case protocol.OpQueryRoomAttributes:
		var r protocol.RoomRequest
		if err := decode(req, &r); err != nil {
			return nil, err, true
		}
		data, err := s.readRoom(ctx, domain.RoomID(r.Room), func(room *domain.Room) any {
			rep := protocol.RoomAttributesReply{Seq: room.Seq, Attributes: []protocol.RoomAttribute{}}
			for _, k := range sortedKeys(room.Attributes) {
				meta := room.AttributeMeta[k]
				rep.Attributes = append(rep.Attributes, protocol.RoomAttribute{Key: k, Value: room.Attributes[k],
					Owner: string(meta.Owner), Version: meta.Version, DeleteAfterOwnerLeft: meta.DeleteAfterOwnerLeft})
			}
			return rep
		})
		return data, err, true
	case protocol.OpQueryMemberAttributes:
		var r protocol.MemberAttributesQuery
		if err := decode(req, &r); err != nil {
			return nil, err, true
		}
		count, err := s.pageSize(r.Count, defaultPage)
		if err != nil {
			return nil, err, true
		}
		// Listed users are a page too: at most a page's members, each once.
		if limit := s.pageLimit(); len(r.Users) > limit {
			return nil, domain.ErrInvalidArgument.With("users: at most %d", limit), true
		}
		data, err := s.readRoom(ctx, domain.RoomID(r.Room), func(room *domain.Room) any {
			rep := protocol.MemberAttributesPage{Members: []protocol.MemberAttributes{}}
			if len(r.Users) > 0 {
				for i, u := range r.Users {
					m, ok := room.Members[domain.UserID(u)]
					if ok && !slices.Contains(r.Users[:i], u) {
						rep.Members = append(rep.Members, memberAttributes(m))
					}
				}
				return rep
			}
			for _, u := range sortedKeys(room.Members) {
				m := room.Members[u]
				if string(u) <= r.NextFlag || len(m.Attributes) == 0 {
					continue
				}
				if len(rep.Members) == count {
					rep.NextFlag = rep.Members[count-1].User
					break
				}
				rep.Members = append(rep.Members, memberAttributes(m))
			}
			return rep
		})
		return data, err, true
	case protocol.OpQueryMemberList:
		var r protocol.MemberListRequest
		if err := decode(req, &r); err != nil {
			return nil, err, true
		}
		count, err := s.pageSize(r.Count, defaultPage)
		if err != nil {
			return nil, err, true
		}
		data, err := s.readRoom(ctx, domain.RoomID(r.Room), func(room *domain.Room) any {
			rep := protocol.MemberListReply{Users: []protocol.User{}}
			ids := sortedKeys(room.Members)
			i, _ := slices.BinarySearch(ids, domain.UserID(r.NextFlag))
			if i < len(ids) && ids[i] == domain.UserID(r.NextFlag) {
				i++
			}
			for ; i < len(ids) && len(rep.Users) < count; i++ {
				m := room.Members[ids[i]]
				rep.Users = append(rep.Users, member(m.User, m.UserName, m.Role))
			}
			if i < len(ids) {
				rep.NextFlag = rep.Users[len(rep.Users)-1].ID
			}
			return rep
		})
		return data, err, true
	case protocol.OpQueryOnlineCount:
		var r protocol.RoomRequest
		if err := decode(req, &r); err != nil {
			return nil, err, true
		}
		data, err := s.readRoom(ctx, domain.RoomID(r.Room), func(room *domain.Room) any {
			return protocol.OnlineUserCount{Count: len(room.Members)}
		})
		return data, err, true
	case protocol.OpQueryHistory:
		var r protocol.HistoryRequest
		if err := decode(req, &r); err != nil {
			return nil, err, true
		}
		count, err := s.pageSize(r.Count, defaultHistory)
		if err != nil {
			return nil, err, true
		}
		room := domain.RoomID(r.Room)
		if _, err := s.readRoom(ctx, room, func(*domain.Room) any { return nil }); err != nil {
			return nil, err, true // members only
		}
		page, err := s.srv.history.Read(ctx, history.Query{Room: s.roomKey(room), For: s.userID(), Before: r.Before, Count: count})
		if err != nil {
			return nil, domain.ErrUnavailable.With("history: %v", err), true
		}
		rep := protocol.HistoryReply{Messages: historyMessages(page.Messages), Next: page.Next}
		return rep, nil, true
	}
	return nil, nil, false
}

// pageSize checks a requested page size.
func (s *session) pageSize(n, def int) (int, error) {
	limit := s.pageLimit()
	def = min(def, limit)
	switch {
	case n == 0:
		return def, nil
	case n < 0 || n > limit:
		return 0, domain.ErrInvalidArgument.With("count must be 1 to %d", limit)
	}
	return n, nil
}

// writeReply is the reply to an attribute or extra info write.
func writeReply(res engine.Result, err error) any {
	if err != nil {
		return nil
	}
	var rep protocol.WriteReply
	for _, a := range res.Appended {
		if a.Key.Kind == domain.KindRoom {
			rep.Version = a.Events[len(a.Events)-1].Seq
		}
	}
	if res.Partial != nil {
		rep.ErrorKeys = res.Partial.Keys
	}
	return rep
}

// readRoom answers a query about a room the session is in from the live
// projection, once it has folded what this node appended to the room.
func (s *session) readRoom(ctx context.Context, room domain.RoomID, read func(*domain.Room) any) (any, error) {
	if err := checkRoom(room); err != nil {
		return nil, err
	}
	key := s.roomKey(room)
	if key.App == "" {
		// No token yet, so no app whose room this could be: not a member.
		return nil, domain.ErrNotLoggedIn.With("log in first")
	}
	wctx, cancel := context.WithTimeout(ctx, s.srv.cfg.CommandTimeout)
	defer cancel()
	if err := s.srv.cfg.Live.WaitFor(wctx, s.srv.cfg.Engine.Cursor(key)); err != nil {
		return nil, domain.ErrTimeout.With("the room's state did not catch up in time")
	}
	var out any
	found, member := false, false
	uid := s.userID()
	s.srv.cfg.Live.Read(func(m *projections.Model) {
		a := m.App(key.App)
		if a == nil || a.Rooms[room] == nil || !a.Rooms[room].Exists {
			return
		}
		r := a.Rooms[room]
		found = true
		if _, member = r.MemberBySession(uid, s.id); member {
			out = read(r)
		}
	})
	switch {
	case !found:
		return nil, domain.ErrRoomNotExist
	case !member:
		return nil, domain.ErrNotLoggedIn.With("only members may query a room")
	}
	return out, nil
}

// lastMessages reads the room's last n messages as of room seq at.
func (s *session) lastMessages(ctx context.Context, key domain.Key, uid domain.UserID, at uint64, n int) ([]protocol.HistoryMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, s.srv.cfg.CommandTimeout)
	defer cancel()
	// A page may end early in a room with many other events: read on, so
	// that the login gets exactly its last n messages.
	var msgs []history.Message
	for before := uint64(0); len(msgs) < n; {
		page, err := s.srv.history.Read(ctx, history.Query{Room: key, For: uid, AtMost: at, Before: before, Count: n - len(msgs)})
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, page.Messages...)
		if page.Next == 0 {
			break
		}
		before = page.Next
	}
	return historyMessages(msgs), nil
}

func historyMessages(msgs []history.Message) []protocol.HistoryMessage {
	out := make([]protocol.HistoryMessage, 0, len(msgs))
	for _, m := range msgs {
		e := m.Event
		h := protocol.HistoryMessage{Seq: e.Seq, MessageID: e.ID.String(), SendTime: e.Time.UnixMilli()}
		switch d := e.Data.(type) {
		case *domain.BroadcastSentData:
			h.Type, h.From, h.Message = "broadcast", user(d.From, d.FromName), d.Body
		case *domain.CustomCommandSentData:
			h.Type, h.From, h.Message = "custom_command", user(d.From, d.FromName), d.Body
			for _, u := range d.To {
				h.To = append(h.To, string(u))
			}
		}
		out = append(out, h)
	}
	return out
}

func memberAttributes(m *domain.Member) protocol.MemberAttributes {
	a := protocol.MemberAttributes{User: string(m.User), Attributes: map[string]string{}}
	for k, v := range m.Attributes {
		a.Attributes[k] = v
	}
	return a
}

func memberAttributesUpdate(d *domain.MemberAttributesUpdatedData) protocol.MemberAttributesUpdate {
	u := protocol.MemberAttributesUpdate{By: user(d.By, d.ByName)}
	for _, m := range d.Members {
		u.Members = append(u.Members, protocol.MemberAttributesChange{User: string(m.User), Set: m.Set, Deleted: m.Deleted})
	}
	return u
}
