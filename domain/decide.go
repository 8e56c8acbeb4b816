package domain

import (
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// View holds the states a decision reads, all of one app. A state missing
// from its map has not been loaded; a loaded aggregate with no events is a
// zero value, never nil.
type View struct {
	Rooms    map[RoomID]*Room
	Sessions map[SessionID]*Session
	Streams  map[StreamID]*StreamEntry
}

// NewView returns an empty view.
func NewView() *View {
	return &View{Rooms: map[RoomID]*Room{}, Sessions: map[SessionID]*Session{}, Streams: map[StreamID]*StreamEntry{}}
}

// Has reports whether the view holds the aggregate named by k.
func (v *View) Has(k Key) bool {
	switch k.Kind {
	case KindRoom:
		_, ok := v.Rooms[RoomID(k.ID)]
		return ok
	case KindSession:
		_, ok := v.Sessions[SessionID(k.ID)]
		return ok
	case KindStream:
		_, ok := v.Streams[StreamID(k.ID)]
		return ok
	}
	return false
}

// Head returns the head of the aggregate named by k (zero if not loaded).
func (v *View) Head(k Key) Head {
	switch k.Kind {
	case KindRoom:
		if r := v.Rooms[RoomID(k.ID)]; r != nil {
			return r.Head
		}
	case KindSession:
		if s := v.Sessions[SessionID(k.ID)]; s != nil {
			return s.Head
		}
	case KindStream:
		if s := v.Streams[StreamID(k.ID)]; s != nil {
			return s.Head
		}
	}
	return Head{}
}

// NeedError asks the caller to load more aggregates into the view and decide
// again. It is not a refusal.
type NeedError struct {
	Keys []Key
}

func (e *NeedError) Error() string {
	names := make([]string, len(e.Keys))
	for i, k := range e.Keys {
		names[i] = k.String()
	}
	return "decision needs " + strings.Join(names, ", ")
}

// Step is one conditional append: events for one aggregate, stored as one
// message, so every reader sees all of them or none.
type Step struct {
	Key Key
	// Expect is the aggregate sequence the step was decided on; the store
	// appends only if the aggregate has not moved since.
	Expect uint64
	// Events have everything but ID and Prev, which the store sets.
	Events []Event
}

// Barrage is a best-effort message: it is fanned out but never logged.
type Barrage struct {
	Room     RoomID
	From     UserID
	FromName string
	Session  SessionID
	Body     string
	Time     time.Time
}

// Decision is the outcome of a command.
type Decision struct {
	// Steps are appended in order. Claims come before the rooms that use
	// them and releases after the rooms that ended them.
	Steps []Step
	// Barrage is set for a barrage message.
	Barrage *Barrage
	// Rooms lists the rooms a command resolved to or left (leave-all returns
	// the rooms it left; publish and play the room they used).
	Rooms []RoomID
	// Partial lists what a ZIM write that may partly succeed left out.
	Partial *Partial
	// Settled says that a decision with no steps is proven by the states
	// it read, whatever others appended since (a claim to release that the
	// state has seen released or replaced): the engine need not look at
	// the log before acknowledging it, as it does for other decisions with
	// nothing to do.
	Settled bool
}

// Partial is what a write that partly succeeded left out, as ZIM reports it
// (errorKeys, errorUserList).
type Partial struct {
	// Keys are room attribute keys another member owns.
	Keys []string `json:"error_keys,omitempty"`
	// Users are members the write named who are not in the room.
	Users []UserID `json:"error_users,omitempty"`
}

// Decide turns a command into a decision, given the states it reads.
//
// It returns a *NeedError when the view lacks a state (load it and call
// again), or a refusal (*Error). A refusal may come with steps: when a command
// retried after a conflict finds that its earlier attempt took a claim it can
// no longer use, the decision releases it and refuses.
func (d *Decider) Decide(v *View, m Meta, c Command, now time.Time) (Decision, error) {
	if m.Correlation == "" {
		m.Correlation = m.ID
	}
	x := &decision{d: d, pol: d.Policy(m.App), v: v, m: m, now: now.UTC()}
	var err error
	switch c := c.(type) {
	case SetRoomMode:
		err = x.setRoomMode(c)
	case JoinRoom:
		err = x.join(c)
	case LeaveRoom:
		err = x.leave(c)
	case SwitchRoom:
		err = x.switchRoom(c)
	case PublishStream:
		err = x.publish(c)
	case StopPublishing:
		err = x.stopPublishing(c)
	case StopNodeStreams:
		err = x.stopNodeStreams(c)
	case SetStreamExtraInfo:
		err = x.setStreamExtraInfo(c)
	case PlayStream:
		err = x.play(c)
	case StopPlaying:
		err = x.stopPlaying(c)
	case SendBroadcast:
		err = x.broadcast(c)
	case SendBarrage:
		err = x.barrage(c)
	case SendCustomCommand:
		err = x.customCommand(c)
	case SetRoomExtraInfo:
		err = x.setExtraInfo(c)
	case SetRoomAttributes:
		err = x.setAttributes(c)
	case SetMemberAttributes:
		err = x.setMemberAttributes(c)
	case KickUser:
		err = x.kickUser(c)
	case DestroyRoom:
		err = x.destroyRoom(c)
	case ExpireRoom:
		err = x.expireRoom(c)
	case TimeoutSession:
		err = x.timeoutSession(c)
	case KickSession:
		err = x.kickSession(c)
	case ReleaseRoomClaim:
		err = x.releaseRoomClaim(c)
	case ReleaseStreamClaim:
		err = x.releaseStreamClaim(c)
	default:
		err = ErrInvalidArgument.With("unknown command %T", c)
	}
	var need *NeedError
	if errors.As(err, &need) {
		return Decision{}, err
	}
	return x.out, err
}

// decision is the working state of one Decide call.
type decision struct {
	d   *Decider
	pol Policy
	v   *View
	m   Meta
	now time.Time
	out Decision
	// next holds, per aggregate touched (a handful), the sequence and time
	// of the last event emitted for it.
	next []nextHead
	// cut makes the next event start a step of its own, even for the
	// aggregate of the last step (see cutStep).
	cut bool
}

type nextHead struct {
	key  Key
	head Head
}

// load makes sure every key is in the view, or returns a NeedError naming all
// the missing ones at once.
func (x *decision) load(keys ...Key) error {
	var missing []Key
	for _, k := range keys {
		if !x.v.Has(k) && !slices.Contains(missing, k) {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return &NeedError{Keys: missing}
	}
	return nil
}

func (x *decision) roomKey(id RoomID) Key       { return RoomKey(x.m.App, id) }
func (x *decision) sessionKey(id SessionID) Key { return SessionKey(x.m.App, id) }
func (x *decision) streamKey(id StreamID) Key   { return StreamKey(x.m.App, id) }

// The accessors below return states that load has made sure are present.
func (x *decision) room(id RoomID) *Room            { return x.v.Rooms[id] }
func (x *decision) session(id SessionID) *Session   { return x.v.Sessions[id] }
func (x *decision) stream(id StreamID) *StreamEntry { return x.v.Streams[id] }
func (x *decision) roomKeys(ids []RoomID) []Key     { return mapKeys(ids, x.roomKey) }
func (x *decision) streamKeys(ids []StreamID) []Key { return mapKeys(ids, x.streamKey) }
func mapKeys[T any](ids []T, f func(T) Key) []Key {
	keys := make([]Key, len(ids))
	for i, id := range ids {
		keys[i] = f(id)
	}
	return keys
}

// emit appends an event for aggregate k, to the current step if the last step
// is for k (and not cut), else to a new step. It returns the event's sequence
// number.
func (x *decision) emit(k Key, p Payload) uint64 {
	var h *Head
	for i := range x.next {
		if x.next[i].key == k {
			h = &x.next[i].head
			break
		}
	}
	if h == nil {
		x.next = append(x.next, nextHead{key: k, head: x.v.Head(k)})
		h = &x.next[len(x.next)-1].head
	}
	steps := x.out.Steps
	if len(steps) == 0 || steps[len(steps)-1].Key != k || x.cut {
		x.cut = false
		if x.out.Steps == nil {
			x.out.Steps = make([]Step, 0, 2)
		}
		x.out.Steps = append(x.out.Steps, Step{Key: k, Expect: h.Seq, Events: make([]Event, 0, 1)})
		steps = x.out.Steps
	}
	at := x.now
	if at.Before(h.Time) {
		// An aggregate's time never runs backwards, even across nodes whose
		// clocks disagree: replays by time rely on it.
		at = h.Time
	}
	h.Seq++
	h.Time = at
	st := &steps[len(steps)-1]
	st.Events = append(st.Events, Event{
		Type: p.EventType(), App: k.App, Aggregate: k.Kind, AggregateID: k.ID,
		Seq: h.Seq, Time: at, Correlation: x.m.Correlation, Causation: x.causation(), Data: p,
	})
	return h.Seq
}

// cutStep ends the current step: the next event goes in a new one, a message
// of its own, even if it is for the same aggregate. The engine appends the
// steps in order, each expecting the one before it.
func (x *decision) cutStep() { x.cut = true }

// eventBytes returns what an event of payload p for aggregate k will take in
// its step's message (see EventBytes).
func (x *decision) eventBytes(k Key, p Payload) int {
	e := Event{Type: p.EventType(), App: k.App, Aggregate: k.Kind, AggregateID: k.ID, Seq: math.MaxUint64,
		Time: x.at(k), Correlation: x.m.Correlation, Causation: x.causation(), Data: p}
	n, err := EventBytes(&e)
	if err != nil {
		// The engine's encoding of it will fail and say why.
		return 0
	}
	return n
}

// causation is what the events of this decision were caused by: the
// command's stated cause, else the command itself.
func (x *decision) causation() string {
	if x.m.Causation != "" {
		return x.m.Causation
	}
	return x.m.ID
}

// newer reports whether command id is newer than the command being decided.
// Command IDs are ULIDs, which sort by time. When two commands would undo
// each other's claims (two engines logging one session into one room), the
// newer one wins and the older one stops, so they cannot livelock.
func (x *decision) newer(id string) bool { return id > x.m.ID }

// at returns the time the next event of aggregate k will carry.
func (x *decision) at(k Key) time.Time {
	t := x.now
	for _, n := range x.next {
		if n.key == k && t.Before(n.head.Time) {
			return n.head.Time
		}
	}
	if h := x.v.Head(k); t.Before(h.Time) {
		return h.Time
	}
	return t
}

func sortedKeys[K ~string, V any](m map[K]V) []K { return slices.Sorted(maps.Keys(m)) }

func invalid(format string, args ...any) error { return ErrInvalidArgument.With(format, args...) }

func checkArg(err error) error {
	if err != nil {
		return ErrInvalidArgument.With("%v", err)
	}
	return nil
}

func errorsJoinArgs(errs ...error) error {
	var msgs []string
	for _, e := range errs {
		if e != nil {
			msgs = append(msgs, e.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return ErrInvalidArgument.With("%s", strings.Join(msgs, "; "))
}
