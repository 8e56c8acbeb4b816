package gateway

import (
	"context"
	"log/slog"
	"sync"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/projections"
)

// hub knows which of this node's sessions are in which room, and fans each
// room event out to them in log order.
type hub struct {
	live   *projections.Live
	logger *slog.Logger

	mu    sync.Mutex
	rooms map[domain.Key]map[*session]*membership
	// dirty holds rooms whose member count changed since the last
	// online-count push.
	dirty map[domain.Key]bool
}

// membership is one session's place in one room on this node.
type membership struct {
	// last is the seq of the last room event sent or held for the session
	// (or of the snapshot it entered with): events at or below it are not
	// sent again.
	last uint64
	// prev is the seq of the last room event sent: the next frame's prev.
	prev uint64
	// held: the session is not to get the room's events after base yet (its
	// entry reply waits for the room's last messages, or for the events
	// before its snapshot; a resume is replaying what it missed from the
	// log); they wait in pending until release.
	held    bool
	base    uint64
	pending []heldFrame
	// told: the session knows it is in the room (its entry reply is sent,
	// or it was in the room before this entry or resume): it gets the
	// room's frames that are not events (barrage, online counts) even
	// while held.
	told bool
}

// heldFrame is a room event's frame kept for after a release.
type heldFrame struct {
	f   *outFrame
	seq uint64
}

// deliver sends f, the frame of room event seq, to s, or keeps it for after
// the release.
func (m *membership) deliver(s *session, f *outFrame, seq uint64) {
	if m.held && seq > m.base {
		m.pending = append(m.pending, heldFrame{f, seq})
		return
	}
	s.send(f.bytes(m.prev), false)
	m.prev = seq
}

func newHub(live *projections.Live, logger *slog.Logger) *hub {
	return &hub{live: live, logger: logger, rooms: map[domain.Key]map[*session]*membership{},
		dirty: map[domain.Key]bool{}}
}

// dispatch is the projection's subscriber: it runs for every folded log
// message, in order.
func (h *hub) dispatch(rec projections.Record) {
	if len(rec.Events) == 0 || rec.Events[0].Aggregate != domain.KindRoom {
		return
	}
	key := rec.Events[0].Key()
	h.mu.Lock()
	defer h.mu.Unlock()
	members := h.rooms[key]
	if len(members) == 0 {
		return
	}
	var bySession map[domain.SessionID]*session
	for i := range rec.Events {
		e := &rec.Events[i]
		switch e.Data.(type) {
		case *domain.MemberJoinedData, *domain.MemberLeftData, *domain.RoomDestroyedData:
			h.dirty[key] = true
		}
		frames, err := translate(e, rec.Seq)
		if err != nil {
			h.logger.Error("cannot translate an event", "type", e.Type, "err", err)
			continue
		}
		send := func(s *session, m *membership, f *outFrame) {
			if e.Seq <= m.last || !s.hears(domain.RoomID(key.ID), f) {
				return
			}
			if !f.to.unsent {
				m.deliver(s, f, e.Seq)
			}
			m.last = e.Seq
			if f.to.leaves {
				delete(members, s)
				s.leftRoom(domain.RoomID(key.ID))
			}
		}
		for _, f := range frames {
			if id := f.to.onlySession; id != "" {
				// One session's own frame: found, not searched for
				// (a large room destroyed in steps sends thousands
				// in one record).
				if bySession == nil {
					bySession = make(map[domain.SessionID]*session, len(members))
					for s := range members {
						bySession[s.id] = s
					}
				}
				if s := bySession[id]; s != nil && members[s] != nil {
					send(s, members[s], f)
				}
				continue
			}
			for s, m := range members {
				send(s, m, f)
			}
		}
	}
	if len(members) == 0 {
		delete(h.rooms, key)
	}
}

// enter registers s in room key and calls then with the room's state while
// holding the hub, so that what then sends reaches s before any later event
// of the room. r is the room as the engine left it after s's own command,
// at stream sequence at (nil: the caller waited for the projection to fold
// that command); the projection's state is used instead when it is newer,
// since the hub may already have sent its events to others.
//
// With hold, the room's events for s wait until release: the caller sends
// the entry reply first, outside the hub.
//
// A session entering a room it is already in here (a login again into the
// same room) keeps its membership, so that it loses no event: the room's
// events up to the snapshot, which the hub may not have sent yet, reach it
// before the reply and the later ones after it. enter then holds the
// membership whatever hold says, and returns the stream sequence the caller
// must wait for (Live.WaitFor: the hub has sent everything up to the
// snapshot) before it replies and releases; zero for a new membership.
//
// in is false if the snapshot no longer has s in the room: then is not
// called, and m is nil, or (s was in the room before) held until the events
// up to the snapshot, its departure among them, are sent.
func (h *hub) enter(s *session, key domain.Key, r *domain.Room, at uint64, hold bool,
	then func(r *domain.Room, held bool)) (m *membership, wait uint64, in bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.live.Read(func(m *projections.Model) {
		var live *domain.Room
		if a := m.App(key.App); a != nil {
			live = a.Rooms[domain.RoomID(key.ID)]
		}
		switch {
		case live != nil && (r == nil || live.Seq > r.Seq):
			r, at = live.Clone(), m.Cursor
		case live == nil && r != nil && m.Cursor >= at:
			// Folded past s's command, the projection no longer holds the
			// room: it ended since (destroyed through another node, whose
			// event the hub has sent to its members already). The engine's
			// copy is older than that.
			r, at = &domain.Room{}, m.Cursor
		}
	})
	if r == nil {
		r = &domain.Room{}
	}
	if s.forgotten {
		return nil, 0, false
	}
	members := h.rooms[key]
	if members == nil {
		members = map[*session]*membership{}
		h.rooms[key] = members
	}
	// r is at least as new as anything the hub has sent of the room (the
	// projection's state, or newer).
	m, again := members[s]
	if _, member := r.MemberBySession(s.userID(), s.id); !member {
		// s left the room (a kick, a timeout, the room destroyed) after its
		// command entered it and before this snapshot: it is not told it is
		// in. A session that was in the room already gets the departure
		// (with the events before it) as a re-entry does, then the caller's
		// refusal.
		if !again {
			if len(members) == 0 {
				delete(h.rooms, key)
			}
			return nil, 0, false
		}
		m.held, m.base = true, max(m.base, r.Seq)
		return m, max(at, 1), false
	}
	if again {
		m.held, m.base, wait = true, max(m.base, r.Seq), max(at, 1)
	} else {
		m = &membership{last: r.Seq, prev: r.Seq, base: r.Seq, held: hold, told: !hold}
		members[s] = m
	}
	s.setQuiet(domain.RoomID(key.ID), r)
	h.dirty[key] = true
	then(r, m.held)
	return m, wait, true
}

// release sends what m held back, in order, the first frame naming prev
// (the seq of the last room event the session got otherwise: its entry
// snapshot's, or the last its replay sent; 0: the last frame the hub sent
// it) as the one before, and lets later events through.
func (h *hub) release(s *session, m *membership, prev uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if prev != 0 {
		m.prev = prev
	}
	m.told = true
	for _, p := range m.pending {
		s.send(p.f.bytes(m.prev), false)
		m.prev = p.seq
	}
	m.pending, m.held = nil, false
}

// drop unregisters m, s's membership of room key, if it still is one.
func (h *hub) drop(s *session, key domain.Key, m *membership) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if members := h.rooms[key]; members != nil && members[s] == m {
		delete(members, s)
		if len(members) == 0 {
			delete(h.rooms, key)
		}
	}
}

// leave unregisters s from room key.
func (h *hub) leave(s *session, key domain.Key) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if members := h.rooms[key]; members != nil {
		delete(members, s)
		if len(members) == 0 {
			delete(h.rooms, key)
		}
	}
}

// forget unregisters s from every room (its connection is gone), and from
// any it would enter later.
func (h *hub) forget(s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s.forgotten = true
	for key, members := range h.rooms {
		delete(members, s)
		if len(members) == 0 {
			delete(h.rooms, key)
		}
	}
}

// broadcastEphemeral sends a frame that is not a room event (a barrage
// message) to the room's sessions on this node.
func (h *hub) broadcastEphemeral(key domain.Key, f *outFrame) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s, m := range h.rooms[key] {
		if m.told && f.to.includes(s.id, s.userID()) {
			s.send(f.head, true)
		}
	}
}

// onlineCounts pushes the member count of every room whose membership
// changed since the last call (ZEGO pushes it periodically, not per change).
func (h *hub) onlineCounts(ctx context.Context) {
	h.mu.Lock()
	keys := make([]domain.Key, 0, len(h.dirty))
	for k := range h.dirty {
		keys = append(keys, k)
	}
	clear(h.dirty)
	h.mu.Unlock()
	for _, k := range keys {
		count := 0
		h.live.Read(func(m *projections.Model) {
			if a := m.App(k.App); a != nil && a.Rooms[domain.RoomID(k.ID)] != nil {
				count = len(a.Rooms[domain.RoomID(k.ID)].Members)
			}
		})
		frame := onlineFrame(domain.RoomID(k.ID), count)
		h.mu.Lock()
		for s, m := range h.rooms[k] {
			if m.told {
				s.send(frame, true)
			}
		}
		h.mu.Unlock()
	}
}
