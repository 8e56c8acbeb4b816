package projections

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/roomlog/roomlog/domain"
)

// Record is one log message, decoded: the events one command produced for
// one aggregate.
type Record struct {
	// Seq is the message's stream sequence, the cursor of every consumer.
	Seq     uint64
	Subject string
	Events  []domain.Event
}

// Connection is what the server last recorded of one session in one room.
type Connection struct {
	State  domain.ConnState `json:"state"`
	Code   domain.Code      `json:"code"`
	Reason domain.Reason    `json:"reason,omitempty"`
	// By is the session whose login kicked this one (duplicate login).
	By    domain.SessionID `json:"by,omitempty"`
	Since time.Time        `json:"since"`
	// RoomSeq is the room event that set this state.
	RoomSeq uint64 `json:"room_seq"`
}

// App is the read model of one app.
//
// It holds what is live, never what has ended, so that its size follows the
// live sessions and rooms and not every one ever seen: a destroyed room, a
// session that holds no room and a released stream ID leave it when the
// record that ended them is folded (the log keeps them; ReadState and
// ReadConnection read them back from it).
type App struct {
	// Rooms, Sessions and Streams hold every live aggregate's state exactly
	// as the domain folds it, so the engine can start deciding from them.
	Rooms    map[domain.RoomID]*domain.Room          `json:"rooms,omitempty"`
	Sessions map[domain.SessionID]*domain.Session    `json:"sessions,omitempty"`
	Streams  map[domain.StreamID]*domain.StreamEntry `json:"streams,omitempty"`
	// Connections holds, per session, its Logined connection in each room it
	// is a member of; a connection leaves when the session leaves the room
	// (ReadConnection tells how it left).
	Connections map[domain.SessionID]map[domain.RoomID]*Connection `json:"connections,omitempty"`
	// Partial names ("room:<id>", "session:<id>", "stream:<id>") the
	// aggregates that came back after they left the model: their state here
	// misses what came before (a recreated room's voided claims, the identity
	// of a session that logs in again). Live.State does not hand them out,
	// so the engine reads them from the log; they leave with the aggregate.
	Partial map[string]bool `json:"partial,omitempty"`
}

// Model is the read model of every app. It is not safe for concurrent use;
// Live wraps it for that.
type Model struct {
	// Cursor is the stream sequence of the last record applied.
	Cursor uint64 `json:"cursor"`
	// Head is the ID of the last event of the record at Cursor (zero after
	// Skip): what ties a snapshot to the log it was folded from (Rebuild).
	Head domain.EventID        `json:"head,omitzero"`
	Apps map[domain.AppID]*App `json:"apps,omitempty"`
	// Skipped counts the records passed over because they could not be
	// decoded (see Skip).
	Skipped Skipped `json:"skipped,omitzero"`
}

// Skipped counts the records a model passed over.
type Skipped struct {
	Count uint64 `json:"count"`
	// Last is the stream sequence of the last record skipped.
	Last uint64 `json:"last"`
}

// Malformed is a record that could not be decoded.
type Malformed struct {
	Seq     uint64
	Subject string
	Err     error
}

// NewModel returns an empty model.
func NewModel() *Model { return &Model{Apps: map[domain.AppID]*App{}} }

func (m *Model) app(id domain.AppID) *App {
	a, ok := m.Apps[id]
	if !ok {
		a = newApp()
		m.Apps[id] = a
	}
	return a
}

func newApp() *App {
	return &App{Rooms: map[domain.RoomID]*domain.Room{}, Sessions: map[domain.SessionID]*domain.Session{},
		Streams: map[domain.StreamID]*domain.StreamEntry{}, Connections: map[domain.SessionID]map[domain.RoomID]*Connection{},
		Partial: map[string]bool{}}
}

// App returns the read model of one app, or nil.
func (m *Model) App(id domain.AppID) *App { return m.Apps[id] }

// Apply folds one record. It returns false, changing nothing, for a record at
// or below the cursor.
func (m *Model) Apply(rec Record) bool {
	if rec.Seq <= m.Cursor {
		return false
	}
	for i := range rec.Events {
		m.applyEvent(&rec.Events[i])
	}
	// What the record ended leaves memory. A record holds one aggregate's
	// events, but nothing here relies on it.
	for i := range rec.Events {
		if i == 0 || rec.Events[i].AggregateID != rec.Events[i-1].AggregateID ||
			rec.Events[i].Aggregate != rec.Events[i-1].Aggregate || rec.Events[i].App != rec.Events[i-1].App {
			m.evictEnded(&rec.Events[i])
		}
	}
	m.Cursor = rec.Seq
	m.Head = domain.EventID{}
	if n := len(rec.Events); n > 0 {
		m.Head = rec.Events[n-1].ID
	}
	return true
}

// partialKey names an aggregate in App.Partial.
func partialKey(kind domain.Kind, id string) string { return string(kind) + ":" + id }

// absent is called for an event of an aggregate the model does not hold. An
// aggregate's first event (seq 1) starts it from nothing; any later one finds
// an aggregate that left the model and came back, whose state here starts
// with this event and so misses its past, unless the event sets the whole
// state (a stream ID's claim).
func (a *App) absent(e *domain.Event) {
	if e.Seq == 1 {
		return
	}
	if _, ok := e.Data.(*domain.StreamClaimedData); ok {
		return
	}
	a.Partial[partialKey(e.Aggregate, e.AggregateID)] = true
}

// Skip passes over a record that could not be decoded: the cursor moves past
// it and it is counted, so that one bad message (written by hand onto a
// room's subject, say) neither stops the fold nor is folded. Only the
// engine writes the log, so such a record is an intrusion or a bug: the
// caller reports it, and roomctl verify flags it. It returns false,
// changing nothing, for a record at or below the cursor.
func (m *Model) Skip(seq uint64) bool {
	if seq <= m.Cursor {
		return false
	}
	m.Cursor, m.Head = seq, domain.EventID{}
	m.Skipped.Count++
	m.Skipped.Last = seq
	return true
}

func (m *Model) applyEvent(e *domain.Event) {
	a := m.app(e.App)
	switch e.Aggregate {
	case domain.KindRoom:
		id := domain.RoomID(e.AggregateID)
		r, ok := a.Rooms[id]
		if !ok {
			a.absent(e)
			r = &domain.Room{}
			a.Rooms[id] = r
		}
		a.connections(e, r)
		r.Apply(e)
	case domain.KindSession:
		id := domain.SessionID(e.AggregateID)
		s, ok := a.Sessions[id]
		if !ok {
			a.absent(e)
			s = &domain.Session{}
			a.Sessions[id] = s
		}
		s.Apply(e)
	case domain.KindStream:
		id := domain.StreamID(e.AggregateID)
		s, ok := a.Streams[id]
		if !ok {
			a.absent(e)
			s = &domain.StreamEntry{}
			a.Streams[id] = s
		}
		s.Apply(e)
	}
}

// evictEnded drops the aggregate e belongs to if, with the record folded, it
// has ended: a room that does not exist (destroyed, or only ever voided
// claims), a session that holds no room, a stream ID nobody holds. Each is
// as it would be folded from nothing but its past in the log, which keeps it.
func (m *Model) evictEnded(e *domain.Event) {
	a := m.Apps[e.App]
	if a == nil {
		return
	}
	ended := false
	switch e.Aggregate {
	case domain.KindRoom:
		id := domain.RoomID(e.AggregateID)
		if r := a.Rooms[id]; r != nil && !r.Exists && len(r.Members) == 0 {
			delete(a.Rooms, id)
			ended = true
		}
	case domain.KindSession:
		id := domain.SessionID(e.AggregateID)
		if s := a.Sessions[id]; s != nil && len(s.Claims) == 0 {
			delete(a.Sessions, id)
			if len(a.Connections[id]) == 0 {
				delete(a.Connections, id)
			}
			ended = true
		}
	case domain.KindStream:
		id := domain.StreamID(e.AggregateID)
		if s := a.Streams[id]; s != nil && !s.Claimed {
			delete(a.Streams, id)
			ended = true
		}
	}
	if ended {
		delete(a.Partial, partialKey(e.Aggregate, e.AggregateID))
	}
	if len(a.Rooms) == 0 && len(a.Sessions) == 0 && len(a.Streams) == 0 && len(a.Connections) == 0 {
		delete(m.Apps, e.App)
	}
}

// partial reports whether the model's state of k misses part of its past.
func (m *Model) partial(k domain.Key) bool {
	a := m.Apps[k.App]
	return a != nil && a.Partial[partialKey(k.Kind, k.ID)]
}

// connections keeps the Logined connections up to date with an event,
// before the event is folded into the room: a join adds one, a departure or
// the room's destruction removes it.
func (a *App) connections(e *domain.Event, r *domain.Room) {
	room := domain.RoomID(e.AggregateID)
	// A session that came back after it left the model (it logs in again
	// after leaving every room) has no SessionOpened in its new history:
	// its joins name its user, which readers of the model (the SFU) look
	// members up by. Partial states are never handed to the engine.
	if d, ok := e.Data.(*domain.MemberJoinedData); ok {
		if s := a.Sessions[d.Session]; s != nil && s.User == "" && a.Partial[partialKey(domain.KindSession, string(d.Session))] {
			s.Opened, s.User, s.UserName = true, d.User, d.UserName
		}
	}
	connectionChanges(e, r, func(s domain.SessionID, c Connection) {
		if c.State == domain.StateLogined {
			if a.Connections[s] == nil {
				a.Connections[s] = map[domain.RoomID]*Connection{}
			}
			a.Connections[s][room] = &c
			return
		}
		delete(a.Connections[s], room)
		if len(a.Connections[s]) == 0 {
			delete(a.Connections, s)
		}
	})
}

// connectionChanges calls set with each connection state that room event e
// gives a session, r being the room before e is folded into it.
func connectionChanges(e *domain.Event, r *domain.Room, set func(domain.SessionID, Connection)) {
	at := func(c Connection) Connection {
		c.Since, c.RoomSeq = e.Time, e.Seq
		return c
	}
	switch d := e.Data.(type) {
	case *domain.MemberJoinedData:
		set(d.Session, at(Connection{State: domain.StateLogined}))
	case *domain.MemberLeftData:
		set(d.Session, at(LeftConnection(d.Reason, d.BySession)))
	case *domain.RoomDestroyedData:
		for _, m := range r.Members {
			set(m.Session, at(LeftConnection(domain.ReasonRoomDestroyed, "")))
		}
	}
}

// LeftConnection is the state a member is left in by a departure: how each
// reason looks to the client (ZEGO onRoomStateChanged).
func LeftConnection(reason domain.Reason, by domain.SessionID) Connection {
	c := Connection{State: domain.StateLogout, Reason: reason}
	switch reason {
	case domain.ReasonKickedByBackend:
		c.State, c.Code = domain.StateKickOut, domain.ErrKickedByBackend.Code
	case domain.ReasonKickedDuplicateLogin:
		c.State, c.Code, c.By = domain.StateKickOut, domain.ErrKickedDuplicate.Code, by
	case domain.ReasonHeartbeatTimeout:
		c.Code = domain.ErrTimeout.Code
	case domain.ReasonRoomDestroyed: // the room.destroyed's members, and those sent away before it
		c.Code = domain.ErrRoomNotExist.Code
	}
	return c
}

// Hash returns the hex SHA-256 of the model's canonical JSON. Two models that
// folded the same records have the same hash.
func (m *Model) Hash() (string, error) {
	b, err := m.Marshal()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Marshal returns the model's canonical JSON (map keys sorted).
func (m *Model) Marshal() ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal model: %w", err)
	}
	return b, nil
}

// Unmarshal restores a model from Marshal's output.
func Unmarshal(b []byte) (*Model, error) {
	m := NewModel()
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("unmarshal model: %w", err)
	}
	if m.Apps == nil {
		m.Apps = map[domain.AppID]*App{}
	}
	for id, a := range m.Apps {
		if a == nil {
			a = &App{}
			m.Apps[id] = a
		}
		if a.Rooms == nil {
			a.Rooms = map[domain.RoomID]*domain.Room{}
		}
		if a.Sessions == nil {
			a.Sessions = map[domain.SessionID]*domain.Session{}
		}
		if a.Streams == nil {
			a.Streams = map[domain.StreamID]*domain.StreamEntry{}
		}
		if a.Connections == nil {
			a.Connections = map[domain.SessionID]map[domain.RoomID]*Connection{}
		}
		if a.Partial == nil {
			a.Partial = map[string]bool{}
		}
	}
	return m, nil
}

// Clone returns a deep copy of the model: folding into one never changes
// the other. It is what a snapshot serializes, away from the fold.
func (m *Model) Clone() *Model {
	c := &Model{Cursor: m.Cursor, Head: m.Head, Skipped: m.Skipped, Apps: make(map[domain.AppID]*App, len(m.Apps))}
	for id, a := range m.Apps {
		ca := &App{Rooms: make(map[domain.RoomID]*domain.Room, len(a.Rooms)),
			Sessions:    make(map[domain.SessionID]*domain.Session, len(a.Sessions)),
			Streams:     make(map[domain.StreamID]*domain.StreamEntry, len(a.Streams)),
			Connections: make(map[domain.SessionID]map[domain.RoomID]*Connection, len(a.Connections)),
			Partial:     maps.Clone(a.Partial)}
		if ca.Partial == nil {
			ca.Partial = map[string]bool{}
		}
		for k, v := range a.Rooms {
			ca.Rooms[k] = v.Clone()
		}
		for k, v := range a.Sessions {
			ca.Sessions[k] = v.Clone()
		}
		for k, v := range a.Streams {
			ca.Streams[k] = v.Clone()
		}
		for s, rooms := range a.Connections {
			cr := make(map[domain.RoomID]*Connection, len(rooms))
			for r, conn := range rooms {
				cc := *conn
				cr[r] = &cc
			}
			ca.Connections[s] = cr
		}
		c.Apps[id] = ca
	}
	return c
}

// Size counts what the model holds.
type Size struct {
	Rooms, Sessions, Streams, Connections, Partial int
}

// Size counts the model's rooms, sessions, stream IDs, connections and
// partial states, over every app.
func (m *Model) Size() Size {
	var s Size
	for _, a := range m.Apps {
		s.Rooms += len(a.Rooms)
		s.Sessions += len(a.Sessions)
		s.Streams += len(a.Streams)
		s.Partial += len(a.Partial)
		for _, rooms := range a.Connections {
			s.Connections += len(rooms)
		}
	}
	return s
}
