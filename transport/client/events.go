package client

import (
	"encoding/json"
	"maps"
	"slices"
	"sync"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/protocol"
)

// Handlers are a client's callbacks, named after ZEGO Express and ZIM's.
// They all run on one goroutine per client, in the order their frames
// arrived (see the package documentation); any may be nil.
type Handlers struct {
	// OnRoomStateChanged is ZEGO onRoomStateChanged and ZIM
	// roomStateChanged: the session's state in a room, with ZEGO's error
	// code (0, 1002033, 1002050, ...) and the rest in info. The server sends
	// most; the SDK itself reports Reconnecting, Reconnected,
	// ReconnectFailed and the LoginFailed of a re-login the server did not
	// report.
	OnRoomStateChanged func(room string, state RoomState, code domain.Code, info StateInfo)
	// OnRoomUserUpdate is ZEGO onRoomUserUpdate: other users ADDed to or
	// DELETEd from the room (after a login, every user already there is
	// ADDed).
	OnRoomUserUpdate func(room string, updateType UpdateType, users []User)
	// OnRoomMemberJoined and OnRoomMemberLeft are ZIM's: the same updates,
	// ADD and DELETE, called right after OnRoomUserUpdate.
	OnRoomMemberJoined func(room string, users []User)
	OnRoomMemberLeft   func(room string, users []User)
	// OnRoomStreamUpdate is ZEGO onRoomStreamUpdate: other users' streams
	// ADDed or DELETEd (after a login, every stream already published is
	// ADDed).
	OnRoomStreamUpdate func(room string, updateType UpdateType, streams []Stream)
	// OnRoomStreamExtraInfoUpdate is ZEGO onRoomStreamExtraInfoUpdate.
	OnRoomStreamExtraInfoUpdate func(room string, streams []Stream)
	// OnIMRecvBroadcastMessage is ZEGO onIMRecvBroadcastMessage (the
	// sender does not get its own messages).
	OnIMRecvBroadcastMessage func(room string, msgs []Message)
	// OnIMRecvBarrageMessage is ZEGO onIMRecvBarrageMessage: best effort,
	// without room sequence.
	OnIMRecvBarrageMessage func(room string, msgs []Message)
	// OnIMRecvCustomCommand is ZEGO onIMRecvCustomCommand.
	OnIMRecvCustomCommand func(room string, cmd CustomCommand)
	// OnRoomExtraInfoUpdate is ZEGO onRoomExtraInfoUpdate (after a login,
	// the room's current extra info).
	OnRoomExtraInfoUpdate func(room string, items []ExtraInfo)
	// OnRoomAttributesUpdated is ZIM roomAttributesUpdated: keys set and
	// keys deleted.
	OnRoomAttributesUpdated func(room string, set map[string]string, deleted []string)
	// OnRoomAttributesBatchUpdated is ZIM roomAttributesBatchUpdated: a
	// batch operation's keys, as one update.
	OnRoomAttributesBatchUpdated func(room string, set map[string]string, deleted []string)
	// OnRoomMemberAttributesUpdated is ZIM roomMemberAttributesUpdated.
	OnRoomMemberAttributesUpdated func(room string, changes []MemberAttributesChange, by User)
	// OnRoomOnlineUserCountUpdate is ZEGO onRoomOnlineUserCountUpdate,
	// pushed periodically while the count changes.
	OnRoomOnlineUserCountUpdate func(room string, count int)
	// OnRoomTokenWillExpire is ZEGO onRoomTokenWillExpire: the session's
	// token expires in remainSeconds; call RenewToken.
	OnRoomTokenWillExpire func(remainSeconds int)
	// OnSessionClosing tells why the server is about to close the
	// connection (shutting_down, slow_consumer, session_replaced, ...). The
	// client reconnects afterwards, except after session_replaced.
	OnSessionClosing func(code domain.Code, name, message string)
	// OnPublisherStateUpdate is ZEGO onPublisherStateUpdate: the media of
	// a stream this client publishes (PublishMedia) changed state; code is
	// 0 or why it failed (1003xxx); reason says why it closed (closed,
	// ended, failed, node_lost, shutdown).
	OnPublisherStateUpdate func(stream string, state MediaState, code domain.Code, reason string)
	// OnPlayerStateUpdate is ZEGO onPlayerStateUpdate, for PlayMedia.
	OnPlayerStateUpdate func(stream string, state MediaState, code domain.Code, reason string)
	// OnGap reports a room event that does not follow the last one the
	// client got for the room: expectedPrev is the last sequence received,
	// gotPrev what the event says came before it.
	OnGap func(room string, expectedPrev, gotPrev uint64)
}

// StateInfo is the rest of a room state change.
type StateInfo struct {
	// Reason says why: logout, leave, switch, kicked_by_backend,
	// kicked_duplicate_login, room_destroyed (the server's),
	// connection_lost, resumed, reconnect_window_elapsed, relogin_failed,
	// not_resumed (the SDK's; it also reports logout, leave and switch for
	// a room left whose departure was lost with the connection). A session the server timed out is not told so by a
	// state change: its connection is closed, and the SDK logs in again.
	Reason string
	// ZIMState and ZIMEvent are the ZIM view of the change (Connecting,
	// Connected, Disconnected; Success, KickedOut, RoomNotExist,
	// NetworkInterrupted, ...).
	ZIMState, ZIMEvent string
	// BySession is, for a duplicate-login kick, the session whose login
	// caused it.
	BySession string
}

// The protocol's shapes, under the SDK's names.
type (
	User          = protocol.User
	RoomInfo      = protocol.RoomInfo
	RoomConfig    = protocol.RoomConfig
	Stream        = protocol.Stream
	ExtraInfo     = protocol.ExtraInfo
	RoomSnapshot  = protocol.RoomSnapshot
	Message       = protocol.Message
	CustomCommand = protocol.CustomCommand
)

// RoomState is a session's state in a room (ZEGO ZegoRoomStateChangedReason).
type RoomState = domain.ConnState

// Room states.
const (
	StateLogining        = domain.StateLogining
	StateLogined         = domain.StateLogined
	StateLoginFailed     = domain.StateLoginFailed
	StateReconnecting    = domain.StateReconnecting
	StateReconnected     = domain.StateReconnected
	StateReconnectFailed = domain.StateReconnectFailed
	StateKickOut         = domain.StateKickOut
	StateLogout          = domain.StateLogout
	StateLogoutFailed    = domain.StateLogoutFailed
)

// UpdateType says whether users or streams were added or deleted.
type UpdateType string

// Update types (ZEGO ZegoUpdateType).
const (
	UpdateAdd    UpdateType = "ADD"
	UpdateDelete UpdateType = "DELETE"
)

// dispatcher runs callbacks on one goroutine, in the order they were
// queued. The queue is unbounded so that the reader never waits for a
// callback.
type dispatcher struct {
	mu   sync.Mutex
	q    []func()
	wake chan struct{}
	done chan struct{}
	once sync.Once
}

func newDispatcher() *dispatcher {
	d := &dispatcher{wake: make(chan struct{}, 1), done: make(chan struct{})}
	go d.run()
	return d
}

func (d *dispatcher) push(f func()) {
	d.mu.Lock()
	d.q = append(d.q, f)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *dispatcher) run() {
	for {
		d.mu.Lock()
		q := d.q
		d.q = nil
		d.mu.Unlock()
		if len(q) == 0 {
			select {
			case <-d.wake:
				continue
			case <-d.done:
				return
			}
		}
		for _, f := range q {
			select {
			case <-d.done:
				return
			default:
			}
			f()
		}
	}
}

// stop ends the dispatcher without waiting for it (Close may be called from
// a callback); callbacks not yet run are dropped.
func (d *dispatcher) stop() { d.once.Do(func() { close(d.done) }) }

// state queues a room state change made by the SDK.
func (c *Client) state(room string, st RoomState, code domain.Code, info StateInfo) {
	if h := c.opts.Handlers.OnRoomStateChanged; h != nil {
		c.disp.push(func() { h(room, st, code, info) })
	}
}

// tracked records in m (made if nil) that id was added (v) or deleted.
func tracked[V any](m map[string]V, id string, v V, added bool) map[string]V {
	if !added {
		delete(m, id)
		return m
	}
	if m == nil {
		m = map[string]V{}
	}
	m[id] = v
	return m
}

// vanished tells the app, as room is entered again on a new session, of
// the other users and streams it was told of that are not in snap: they
// left while the session was lost, and their departures went with it. The
// server then ADDs everyone and every stream there now.
func (c *Client) vanished(room string, snap *RoomSnapshot) {
	h := &c.opts.Handlers
	c.mu.Lock()
	r := c.rooms[room]
	if r == nil {
		c.mu.Unlock()
		return
	}
	self := ""
	if c.user != nil {
		self = c.user.ID
	}
	var users []User
	for _, u := range sortedValues(r.users) {
		if u.ID != self && !slices.ContainsFunc(snap.Users, func(x User) bool { return x.ID == u.ID }) {
			users = append(users, u)
		}
	}
	var streams []Stream
	for _, st := range sortedValues(r.streams) {
		if !slices.ContainsFunc(snap.Streams, func(x Stream) bool { return x.Stream == st.Stream }) {
			streams = append(streams, st)
		}
	}
	r.users, r.streams = nil, nil
	c.mu.Unlock()
	if len(streams) > 0 && h.OnRoomStreamUpdate != nil {
		c.disp.push(func() { h.OnRoomStreamUpdate(room, UpdateDelete, streams) })
	}
	if len(users) > 0 {
		c.disp.push(func() {
			if h.OnRoomUserUpdate != nil {
				h.OnRoomUserUpdate(room, UpdateDelete, users)
			}
			if h.OnRoomMemberLeft != nil {
				h.OnRoomMemberLeft(room, users)
			}
		})
	}
}

// sortedValues returns m's values in the order of their keys.
func sortedValues[V any](m map[string]V) []V {
	vs := make([]V, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		vs = append(vs, m[k])
	}
	return vs
}

// event handles an event frame on the reader goroutine: it checks the
// room's sequence, updates what the client tracks, and queues the callback.
func (c *Client) event(l *link, f *protocol.Frame) {
	h := &c.opts.Handlers
	c.sequence(f)
	switch f.Event {
	case protocol.EvHello:
		// Only the first frame of a connection; connect reads it.
	case protocol.EvRoomStateChanged:
		var d protocol.RoomStateChanged
		if !c.decode(f, &d) {
			return
		}
		st := RoomState(d.State)
		c.roomStateFrame(f, st)
		if h.OnRoomStateChanged != nil {
			info := StateInfo{Reason: d.Reason, ZIMState: d.ZIMState, ZIMEvent: d.ZIMEvent, BySession: d.By}
			c.disp.push(func() { h.OnRoomStateChanged(f.Room, st, domain.Code(d.Code), info) })
		}
	case protocol.EvRoomUserUpdate:
		var d protocol.UserUpdate
		if !c.decode(f, &d) {
			return
		}
		typ := UpdateType(d.UpdateType)
		c.mu.Lock()
		if r := c.rooms[f.Room]; r != nil {
			for _, u := range d.Users {
				r.users = tracked(r.users, u.ID, u, typ == UpdateAdd)
			}
		}
		c.mu.Unlock()
		c.disp.push(func() {
			if h.OnRoomUserUpdate != nil {
				h.OnRoomUserUpdate(f.Room, typ, d.Users)
			}
			switch {
			case typ == UpdateAdd && h.OnRoomMemberJoined != nil:
				h.OnRoomMemberJoined(f.Room, d.Users)
			case typ == UpdateDelete && h.OnRoomMemberLeft != nil:
				h.OnRoomMemberLeft(f.Room, d.Users)
			}
		})
	case protocol.EvRoomStreamUpdate:
		var d protocol.StreamUpdate
		if !c.decode(f, &d) {
			return
		}
		c.mu.Lock()
		if r := c.rooms[f.Room]; r != nil {
			for _, st := range d.Streams {
				r.streams = tracked(r.streams, st.Stream, st, UpdateType(d.UpdateType) == UpdateAdd)
			}
		}
		c.mu.Unlock()
		if h.OnRoomStreamUpdate != nil {
			c.disp.push(func() { h.OnRoomStreamUpdate(f.Room, UpdateType(d.UpdateType), d.Streams) })
		}
	case protocol.EvStreamExtraInfoUpdate:
		var d protocol.StreamExtraInfoUpdate
		if c.decode(f, &d) && h.OnRoomStreamExtraInfoUpdate != nil {
			c.disp.push(func() { h.OnRoomStreamExtraInfoUpdate(f.Room, d.Streams) })
		}
	case protocol.EvBroadcastMessage:
		var d protocol.Message
		if c.decode(f, &d) && h.OnIMRecvBroadcastMessage != nil {
			c.disp.push(func() { h.OnIMRecvBroadcastMessage(f.Room, []Message{d}) })
		}
	case protocol.EvBarrageMessage:
		var d protocol.Message
		if c.decode(f, &d) && h.OnIMRecvBarrageMessage != nil {
			c.disp.push(func() { h.OnIMRecvBarrageMessage(f.Room, []Message{d}) })
		}
	case protocol.EvCustomCommand:
		var d protocol.CustomCommand
		if c.decode(f, &d) && h.OnIMRecvCustomCommand != nil {
			c.disp.push(func() { h.OnIMRecvCustomCommand(f.Room, d) })
		}
	case protocol.EvRoomExtraInfoUpdate:
		var d protocol.RoomExtraInfoUpdate
		if c.decode(f, &d) && h.OnRoomExtraInfoUpdate != nil {
			c.disp.push(func() { h.OnRoomExtraInfoUpdate(f.Room, d.Items) })
		}
	case protocol.EvRoomAttributesUpdate:
		var d protocol.RoomAttributesUpdate
		if c.decode(f, &d) && h.OnRoomAttributesUpdated != nil {
			c.disp.push(func() { h.OnRoomAttributesUpdated(f.Room, d.Set, d.Deleted) })
		}
	case protocol.EvRoomOnlineUserCount:
		var d protocol.OnlineUserCount
		if c.decode(f, &d) && h.OnRoomOnlineUserCountUpdate != nil {
			c.disp.push(func() { h.OnRoomOnlineUserCountUpdate(f.Room, d.Count) })
		}
	case protocol.EvTokenWillExpire:
		var d protocol.TokenWillExpire
		if c.decode(f, &d) && h.OnRoomTokenWillExpire != nil {
			c.disp.push(func() { h.OnRoomTokenWillExpire(d.RemainSeconds) })
		}
	case protocol.EvSessionClosing:
		var d protocol.SessionClosing
		if !c.decode(f, &d) {
			return
		}
		c.log.Info("roomlog: the server closes the connection", "code", d.Code, "error", d.Error, "message", d.Message)
		if domain.Code(d.Code) == protocol.ErrSessionReplaced.Code {
			l.replaced.Store(true)
		}
		if h.OnSessionClosing != nil {
			c.disp.push(func() { h.OnSessionClosing(domain.Code(d.Code), d.Error, d.Message) })
		}
	case protocol.EvRoomAttributesBatchUpdate:
		var d protocol.RoomAttributesUpdate
		if c.decode(f, &d) && h.OnRoomAttributesBatchUpdated != nil {
			c.disp.push(func() { h.OnRoomAttributesBatchUpdated(f.Room, d.Set, d.Deleted) })
		}
	case protocol.EvRoomMemberAttributesUpdate:
		var d protocol.MemberAttributesUpdate
		if c.decode(f, &d) && h.OnRoomMemberAttributesUpdated != nil {
			c.disp.push(func() { h.OnRoomMemberAttributesUpdated(f.Room, d.Members, d.By) })
		}
	default:
		if c.mediaEvent(f) {
			return
		}
		// A newer server's event: ignored, as the protocol's versioning by
		// addition intends.
		c.log.Debug("roomlog: unknown event", "event", f.Event)
	}
}

func (c *Client) decode(f *protocol.Frame, v any) bool {
	if err := json.Unmarshal(f.Data, v); err != nil {
		c.log.Warn("roomlog: unreadable event", "event", f.Event, "room", f.Room, "err", err)
		return false
	}
	return true
}

// sequence checks a room event's place in its room's sequence and records
// it. Frames without a sequence (state changes that are not events, the
// users and streams sent after a login, barrage, online counts) are not
// room events and are not checked.
func (c *Client) sequence(f *protocol.Frame) {
	if f.Seq == 0 || f.Room == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.rooms[f.Room]
	if r == nil {
		// Not a room the client entered (or one it already left): nothing
		// to check against.
		c.log.Debug("roomlog: event of an untracked room", "room", f.Room, "seq", f.Seq)
		return
	}
	if f.Prev != r.seq {
		expected, got := r.seq, f.Prev
		c.log.Warn("roomlog: gap in a room's events", "room", f.Room, "expected_prev", expected, "prev", got,
			"seq", f.Seq)
		if h := c.opts.Handlers.OnGap; h != nil {
			c.disp.push(func() { h(f.Room, expected, got) })
		}
	}
	r.seq = max(r.seq, f.Seq)
}

// roomStateFrame updates the tracked rooms from a state change the server
// sent: the session's departure (Logout, KickOut) ends the room's tracking,
// so it is never re-entered; a LoginFailed is noted for the re-login logic.
func (c *Client) roomStateFrame(f *protocol.Frame, st RoomState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch st {
	case StateLogout, StateKickOut:
		// Only a room event (with a sequence) is a departure; it is the
		// last event of the room this session gets.
		if r := c.rooms[f.Room]; r != nil && f.Seq != 0 && f.Seq >= r.seq {
			delete(c.rooms, f.Room)
		}
	case StateLoginFailed:
		c.loginFailed[f.Room] = true
	}
}
