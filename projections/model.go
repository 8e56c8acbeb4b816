package projections

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
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
type App struct {
	// Rooms, Sessions and Streams hold every aggregate's state exactly as
	// the domain folds it, so the engine can start deciding from them. A
	// destroyed room is still here (Exists false), as is a released stream ID.
	Rooms    map[domain.RoomID]*domain.Room          `json:"rooms,omitempty"`
	Sessions map[domain.SessionID]*domain.Session    `json:"sessions,omitempty"`
	Streams  map[domain.StreamID]*domain.StreamEntry `json:"streams,omitempty"`
	// Connections holds, per session, the last recorded state in each room
	// it has been in: Logined while it is a member, then how it left.
	Connections map[domain.SessionID]map[domain.RoomID]*Connection `json:"connections,omitempty"`
}

// Model is the read model of every app. It is not safe for concurrent use;
// Live wraps it for that.
type Model struct {
	// Cursor is the stream sequence of the last record applied.
	Cursor uint64                `json:"cursor"`
	Apps   map[domain.AppID]*App `json:"apps,omitempty"`
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
		a = &App{Rooms: map[domain.RoomID]*domain.Room{}, Sessions: map[domain.SessionID]*domain.Session{},
			Streams: map[domain.StreamID]*domain.StreamEntry{}, Connections: map[domain.SessionID]map[domain.RoomID]*Connection{}}
		m.Apps[id] = a
	}
	return a
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
	m.Cursor = rec.Seq
	return true
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
	m.Cursor = seq
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
			r = &domain.Room{}
			a.Rooms[id] = r
		}
		a.connections(e, r)
		r.Apply(e)
	case domain.KindSession:
		id := domain.SessionID(e.AggregateID)
		s, ok := a.Sessions[id]
		if !ok {
			s = &domain.Session{}
			a.Sessions[id] = s
		}
		s.Apply(e)
	case domain.KindStream:
		id := domain.StreamID(e.AggregateID)
		s, ok := a.Streams[id]
		if !ok {
			s = &domain.StreamEntry{}
			a.Streams[id] = s
		}
		s.Apply(e)
	}
}

// connections records the connection state an event gives a session in a
// room, before the event is folded into the room.
func (a *App) connections(e *domain.Event, r *domain.Room) {
	room := domain.RoomID(e.AggregateID)
	set := func(s domain.SessionID, c Connection) {
		c.Since, c.RoomSeq = e.Time, e.Seq
		if a.Connections[s] == nil {
			a.Connections[s] = map[domain.RoomID]*Connection{}
		}
		a.Connections[s][room] = &c
	}
	switch d := e.Data.(type) {
	case *domain.MemberJoinedData:
		set(d.Session, Connection{State: domain.StateLogined})
	case *domain.MemberLeftData:
		set(d.Session, LeftConnection(d.Reason, d.BySession))
	case *domain.RoomDestroyedData:
		for _, m := range r.Members {
			set(m.Session, Connection{State: domain.StateLogout, Code: domain.ErrRoomNotExist.Code,
				Reason: domain.ReasonRoomDestroyed})
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
	}
	return m, nil
}
