package domain

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// world is an in-memory history for decision tests: it decides commands
// against the states folded so far, resolving NeedErrors from those states,
// and folds the resulting events. It is the same loop the engine runs against
// the log, minus the log.
type world struct {
	t        *testing.T
	d        *Decider
	app      AppID
	now      time.Time
	rooms    map[RoomID]*Room
	sessions map[SessionID]*Session
	streams  map[StreamID]*StreamEntry
	events   []Event
	n        int
}

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

func newWorld(t *testing.T, p Policy) *world {
	t.Helper()
	d, err := NewDecider(Config{Default: p})
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, d: d, app: "app", now: t0, rooms: map[RoomID]*Room{},
		sessions: map[SessionID]*Session{}, streams: map[StreamID]*StreamEntry{}}
}

// multiPolicy allows multi-room mode, as the dev configuration does.
func multiPolicy() Policy {
	p := DefaultPolicy()
	p.MultiRoom = true
	return p
}

func (w *world) advance(d time.Duration) { w.now = w.now.Add(d) }

func (w *world) meta() Meta {
	w.n++
	return Meta{App: w.app, ID: fmt.Sprintf("cmd-%04d", w.n)}
}

// view copies the states a decision asks for, so that a decision can never
// change the world except through events.
func (w *world) view(keys []Key, v *View) {
	for _, k := range keys {
		switch k.Kind {
		case KindRoom:
			r := &Room{}
			if cur := w.rooms[RoomID(k.ID)]; cur != nil {
				r = w.refold(k).(*Room)
			}
			v.Rooms[RoomID(k.ID)] = r
		case KindSession:
			s := &Session{}
			if cur := w.sessions[SessionID(k.ID)]; cur != nil {
				s = w.refold(k).(*Session)
			}
			v.Sessions[SessionID(k.ID)] = s
		case KindStream:
			e := &StreamEntry{}
			if cur := w.streams[StreamID(k.ID)]; cur != nil {
				e = w.refold(k).(*StreamEntry)
			}
			v.Streams[StreamID(k.ID)] = e
		}
	}
}

// refold rebuilds one aggregate's state from its events: a fresh copy.
func (w *world) refold(k Key) any {
	var r Room
	var s Session
	var e StreamEntry
	for i := range w.events {
		ev := &w.events[i]
		if ev.Key() != k {
			continue
		}
		switch k.Kind {
		case KindRoom:
			r.Apply(ev)
		case KindSession:
			s.Apply(ev)
		case KindStream:
			e.Apply(ev)
		}
	}
	switch k.Kind {
	case KindRoom:
		return &r
	case KindSession:
		return &s
	}
	return &e
}

// try decides c with a fresh meta and, if it produced steps, folds them.
func (w *world) try(c Command) (Decision, error) {
	return w.tryMeta(w.meta(), c)
}

func (w *world) tryMeta(m Meta, c Command) (Decision, error) {
	w.t.Helper()
	v := NewView()
	for range 20 {
		d, err := w.d.Decide(v, m, c, w.now)
		var need *NeedError
		if errors.As(err, &need) {
			w.view(need.Keys, v)
			continue
		}
		w.fold(d)
		return d, err
	}
	w.t.Fatalf("%s: decision kept needing more states", c.CommandName())
	return Decision{}, nil
}

// runFollowUps decides, in order, the follow-ups of the world's events from
// index from on, and of the events they add, as the reactor does. It returns
// how many steps they stored.
func (w *world) runFollowUps(from int) int {
	w.t.Helper()
	n := 0
	for i := from; i < len(w.events); i++ {
		e := w.events[i]
		for _, f := range FollowUps(&e) {
			d, err := w.tryMeta(Meta{App: w.app, ID: "f", Causation: e.ID.String()}, f.Command)
			if err != nil {
				w.t.Fatalf("follow-up %s of %s: %v", f.Command.CommandName(), e.Type, err)
			}
			n += len(d.Steps)
		}
	}
	return n
}

// since lists the world's events from index from on.
func (w *world) since(from int) []ev {
	var out []ev
	for _, e := range w.events[from:] {
		out = append(out, ev{Key{App: e.App, Kind: e.Aggregate, ID: e.AggregateID}, e.Data})
	}
	return out
}

func (w *world) fold(d Decision) {
	w.t.Helper()
	for _, st := range d.Steps {
		for i := range st.Events {
			ev := st.Events[i]
			switch st.Key.Kind {
			case KindRoom:
				r := w.rooms[RoomID(st.Key.ID)]
				if r == nil {
					r = &Room{}
					w.rooms[RoomID(st.Key.ID)] = r
				}
				if ev.Seq != r.Seq+1 {
					w.t.Fatalf("%s: event seq %d after %d", st.Key, ev.Seq, r.Seq)
				}
				r.Apply(&ev)
			case KindSession:
				s := w.sessions[SessionID(st.Key.ID)]
				if s == nil {
					s = &Session{}
					w.sessions[SessionID(st.Key.ID)] = s
				}
				if ev.Seq != s.Seq+1 {
					w.t.Fatalf("%s: event seq %d after %d", st.Key, ev.Seq, s.Seq)
				}
				s.Apply(&ev)
			case KindStream:
				e := w.streams[StreamID(st.Key.ID)]
				if e == nil {
					e = &StreamEntry{}
					w.streams[StreamID(st.Key.ID)] = e
				}
				if ev.Seq != e.Seq+1 {
					w.t.Fatalf("%s: event seq %d after %d", st.Key, ev.Seq, e.Seq)
				}
				e.Apply(&ev)
			}
			w.events = append(w.events, ev)
		}
	}
}

// must decides c and fails the test on a refusal.
func (w *world) must(cs ...Command) Decision {
	w.t.Helper()
	var d Decision
	for _, c := range cs {
		var err error
		if d, err = w.try(c); err != nil {
			w.t.Fatalf("given %s %+v: %v", c.CommandName(), c, err)
		}
	}
	return d
}

func (w *world) room(id RoomID) *Room {
	if r := w.rooms[id]; r != nil {
		return r
	}
	return &Room{}
}

func (w *world) session(id SessionID) *Session {
	if s := w.sessions[id]; s != nil {
		return s
	}
	return &Session{}
}

func (w *world) streamEntry(id StreamID) *StreamEntry {
	if e := w.streams[id]; e != nil {
		return e
	}
	return &StreamEntry{}
}

// ---- builders for the commands tests use most ----

func allRooms(u UserID) Grant { return Grant{User: u, AllRooms: true, CanPublish: true} }

func login(s SessionID, u UserID, r RoomID) JoinRoom {
	return JoinRoom{Session: s, User: User{ID: u, Name: "name-" + string(u)}, Mode: SingleRoom, Room: r,
		Role: Anchor, Grant: allRooms(u), Create: CreateIfMissing, Via: ViaLogin}
}

func loginMulti(s SessionID, u UserID, r RoomID) JoinRoom {
	c := login(s, u, r)
	c.Mode = MultiRoom
	return c
}

func asAudience(c JoinRoom) JoinRoom { c.Role = Audience; return c }

func zim(s SessionID, u UserID, r RoomID, via Via) JoinRoom {
	c := loginMulti(s, u, r)
	c.Via = via
	switch via {
	case ViaCreate:
		c.Create = CreateRequired
	case ViaJoin:
		c.Create = CreateNever
	}
	return c
}

// ---- then: expected events ----

// ev is an expected event: which aggregate and what payload.
type ev struct {
	key  Key
	data Payload
}

func roomK(id RoomID) Key                  { return RoomKey("app", id) }
func sessK(id SessionID) Key               { return SessionKey("app", id) }
func streamK(id StreamID) Key              { return StreamKey("app", id) }
func inRoom(id RoomID, p Payload) ev       { return ev{roomK(id), p} }
func inSession(id SessionID, p Payload) ev { return ev{sessK(id), p} }
func inStream(id StreamID, p Payload) ev   { return ev{streamK(id), p} }

// expectEvents checks the decision's events, in order, against want.
func expectEvents(t *testing.T, d Decision, want ...ev) {
	t.Helper()
	var got []ev
	for _, st := range d.Steps {
		for _, e := range st.Events {
			got = append(got, ev{st.Key, e.Data})
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events:\n got %s\nwant %s", showEvents(got), showEvents(want))
	}
}

func showEvents(es []ev) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "\n   %s %s %+v", e.key, e.data.EventType(), e.data)
	}
	return b.String()
}

// expectError checks that err is the coded refusal want.
func expectError(t *testing.T, err error, want *Error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %s (%d)", err, want.Name, want.Code)
	}
	code, name := CodeOf(err)
	if code != want.Code || name != want.Name {
		t.Fatalf("CodeOf = %d %s, want %d %s", code, name, want.Code, want.Name)
	}
}
