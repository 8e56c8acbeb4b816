package client

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/protocol"
)

// RoomMode is a session's room mode (ZEGO ZegoRoomMode).
type RoomMode = domain.RoomMode

// Room modes.
const (
	SingleRoom = domain.SingleRoom
	MultiRoom  = domain.MultiRoom
)

// Roles (TRTC): an anchor may publish, an audience member only plays.
const (
	RoleAnchor   = string(domain.Anchor)
	RoleAudience = string(domain.Audience)
)

// LoginOptions are the optional parts of LoginRoom.
type LoginOptions struct {
	// Token authenticates the login; it may be left out after a login or a
	// RenewToken on the same session (the session's token is used).
	Token string
	// Role is RoleAnchor (the default) or RoleAudience.
	Role string
	// History asks for the room's last messages (at most 100) in the
	// snapshot's Messages, as of its seq.
	History int
	// MaxMemberCount is ZEGO's maxMemberCount: the capacity of the room if
	// this login creates it (0: none). A re-login after a timeout asks for
	// it again, in case the room ended meanwhile.
	MaxMemberCount int
	// UserStatusNotify is ZEGO's isUserStatusNotify: false stops
	// OnRoomUserUpdate for this room. Default true.
	UserStatusNotify *bool
}

// SwitchOptions are the optional parts of SwitchRoom.
type SwitchOptions struct {
	Token, Role string
	// ToName and Config apply if the switch creates the room.
	ToName string
	Config *RoomConfig
	// CreateIfMissing is ZIM's isCreateWhenRoomNotExisted (default true, as
	// ZEGO's switchRoom always creates).
	CreateIfMissing *bool
	// History asks for the new room's last messages in the snapshot.
	History int
	// UserStatusNotify is ZEGO's isUserStatusNotify for the new room (see
	// LoginOptions); nil: as the session was in the room it leaves.
	UserStatusNotify *bool
}

// RoomOptions are the optional parts of CreateRoom, EnterRoom and JoinRoom.
type RoomOptions struct {
	// User defaults to the session's user, else the token's.
	User        *User
	Token, Role string
	// Config applies when the operation creates the room (not JoinRoom).
	Config *RoomConfig
	// History asks for the room's last messages in the snapshot.
	History int
}

// PublishOptions are the optional parts of StartPublishingStream.
type PublishOptions struct {
	// Room is required in multi-room mode (1003070 otherwise).
	Room      string
	ExtraInfo string
}

// MessageResult identifies a sent message: its ID and, for the messages that
// are room events (broadcast, custom command), the room event's sequence.
type MessageResult struct {
	ID  string
	Seq uint64
}

// SetRoomMode chooses the session's room mode before its first login (ZEGO
// setRoomMode); afterwards it fails with 1001020. The mode is restored on a
// new session after a reconnection.
func (c *Client) SetRoomMode(ctx context.Context, mode RoomMode) error {
	_, err := c.do(ctx, protocol.OpSetRoomMode, protocol.SetRoomModeRequest{Mode: string(mode)}, func([]byte) error {
		c.mu.Lock()
		c.mode, c.modeApplied = mode, true
		c.mu.Unlock()
		return nil
	})
	return err
}

// LoginRoom logs into a room (ZEGO loginRoom), creating it if needed, and
// returns the room's state. The client gets Logining, then Logined and the
// room's other users, streams and extra info as callbacks; on failure
// LoginFailed with the code (1002033 for a bad token).
func (c *Client) LoginRoom(ctx context.Context, room string, user User, opts LoginOptions) (*RoomSnapshot, error) {
	e := entry{op: protocol.OpLogin, user: &user, token: opts.Token, role: opts.Role,
		quiet: opts.UserStatusNotify != nil && !*opts.UserStatusNotify, capacity: opts.MaxMemberCount}
	return c.enter(ctx, protocol.OpLogin, room, protocol.LoginRequest{Room: room, User: user, Token: opts.Token,
		Role: opts.Role, History: opts.History, MaxMemberCount: opts.MaxMemberCount,
		UserStatusNotify: opts.UserStatusNotify}, e, hooks{})
}

// LogoutRoom leaves one room (ZEGO logoutRoom(roomID)): the client gets
// Logout, other members the user DELETE. Leaving a room the session is not
// in fails with 1002002 (and LogoutFailed). The empty room ID is refused
// (use LogoutAllRooms), so that a missing ID never logs out of everything.
func (c *Client) LogoutRoom(ctx context.Context, room string) error {
	if room == "" {
		return localError(protocol.OpLogout, domain.ErrInvalidArgument, "no room: use LogoutAllRooms")
	}
	_, err := c.leave(ctx, protocol.OpLogout, protocol.LogoutRequest{Room: room}, room)
	return err
}

// LogoutAllRooms leaves every room (ZEGO logoutRoom()) and returns their IDs.
func (c *Client) LogoutAllRooms(ctx context.Context) ([]string, error) {
	return c.leave(ctx, protocol.OpLogout, nil, "")
}

// SwitchRoom leaves from and logs into to as one step (ZEGO and ZIM
// switchRoom): from gets Logout, to gets Logining and Logined. If the
// connection is lost before its reply, it fails with 1002051 (it may have
// taken effect) and is not sent again: a resume says where the session is
// (from resumed or left; to, if entered, is left again), and a new session
// enters neither (from gets Logout, reason switch).
func (c *Client) SwitchRoom(ctx context.Context, from, to string, opts SwitchOptions) (*RoomSnapshot, error) {
	req := protocol.SwitchRoomRequest{From: from, To: to, Token: opts.Token, Role: opts.Role, ToName: opts.ToName,
		Config: opts.Config, CreateIfMissing: opts.CreateIfMissing, History: opts.History,
		UserStatusNotify: opts.UserStatusNotify}
	// The target is re-entered the way the session entered rooms before
	// (ZEGO login or ZIM enter/join), so a new session gets the same mode.
	c.mu.Lock()
	e := entry{op: protocol.OpEnterRoom, name: opts.ToName, token: opts.Token, role: opts.Role, config: opts.Config}
	if opts.UserStatusNotify != nil {
		e.quiet = !*opts.UserStatusNotify
	} else if r := c.rooms[from]; r != nil && r.entry.quiet {
		// The server keeps the member's flag too; said explicitly, it
		// also holds for a switch decided again after its From step.
		e.quiet = true
		off := false
		req.UserStatusNotify = &off
	}
	if r := c.rooms[from]; r != nil && r.entry.op == protocol.OpLogin && c.user != nil {
		u := *c.user
		e.op, e.user, e.name, e.config = protocol.OpLogin, &u, "", nil
		if opts.Config != nil {
			e.capacity = opts.Config.MaxMemberCount
		}
	} else if opts.CreateIfMissing != nil && !*opts.CreateIfMissing {
		e.op = protocol.OpJoinRoom
	}
	c.mu.Unlock()
	return c.enter(ctx, protocol.OpSwitchRoom, to, req, e, hooks{
		reply: func([]byte) error { c.leaving("switch", from); return nil },
		lost:  func() { c.switchLost(from, to) },
	})
}

// CreateRoom creates a room and joins it (ZIM createRoom); it fails with
// 1902003 if the room exists.
func (c *Client) CreateRoom(ctx context.Context, room RoomInfo, opts RoomOptions) (*RoomSnapshot, error) {
	return c.createRoom(ctx, protocol.OpCreateRoom, room, opts)
}

// EnterRoom joins a room, creating it if it does not exist (ZIM enterRoom).
func (c *Client) EnterRoom(ctx context.Context, room RoomInfo, opts RoomOptions) (*RoomSnapshot, error) {
	return c.createRoom(ctx, protocol.OpEnterRoom, room, opts)
}

func (c *Client) createRoom(ctx context.Context, op protocol.Op, room RoomInfo, opts RoomOptions) (*RoomSnapshot, error) {
	// A created room is re-entered with enter: creating it again would
	// fail while it exists.
	e := entry{op: protocol.OpEnterRoom, user: opts.User, name: room.Name, token: opts.Token, role: opts.Role,
		config: opts.Config}
	return c.enter(ctx, op, room.ID, protocol.CreateRoomRequest{Room: room, User: opts.User, Token: opts.Token,
		Role: opts.Role, Config: opts.Config, History: opts.History}, e, hooks{})
}

// JoinRoom joins a room that exists (ZIM joinRoom); 1902002 otherwise.
// opts.Config is ignored.
func (c *Client) JoinRoom(ctx context.Context, room string, opts RoomOptions) (*RoomSnapshot, error) {
	e := entry{op: protocol.OpJoinRoom, user: opts.User, token: opts.Token, role: opts.Role}
	return c.enter(ctx, protocol.OpJoinRoom, room, protocol.JoinRoomRequest{Room: room, User: opts.User,
		Token: opts.Token, Role: opts.Role, History: opts.History}, e, hooks{})
}

// LeaveRoom leaves one room (ZIM leaveRoom).
func (c *Client) LeaveRoom(ctx context.Context, room string) error {
	_, err := c.leave(ctx, protocol.OpLeaveRoom, protocol.RoomRequest{Room: room}, room)
	return err
}

// LeaveAllRooms leaves every room this session is in (ZIM leaveAllRoom) and
// returns their IDs; the user's other sessions are not affected.
func (c *Client) LeaveAllRooms(ctx context.Context) ([]string, error) {
	return c.leave(ctx, protocol.OpLeaveAllRooms, nil, "")
}

// StartPublishingStream publishes a stream (ZEGO startPublishingStream) and
// returns the room it is published in. In multi-room mode opts.Room is
// required (1003070); a stream ID another publisher holds fails with 1903001;
// an audience member gets 1903002.
func (c *Client) StartPublishingStream(ctx context.Context, stream string, opts PublishOptions) (string, error) {
	return c.streamOp(ctx, protocol.OpPublish, protocol.PublishRequest{Stream: stream, Room: opts.Room,
		ExtraInfo: opts.ExtraInfo})
}

// StopPublishingStream stops publishing a stream (ZEGO stopPublishingStream).
func (c *Client) StopPublishingStream(ctx context.Context, stream string) error {
	_, err := c.streamOp(ctx, protocol.OpStopPublish, protocol.StreamRequest{Stream: stream})
	return err
}

// SetStreamExtraInfo sets a published stream's extra info (ZEGO
// setStreamExtraInfo); the room's other members get
// OnRoomStreamExtraInfoUpdate.
func (c *Client) SetStreamExtraInfo(ctx context.Context, stream, info string) error {
	_, err := c.streamOp(ctx, protocol.OpSetStreamExtraInfo, protocol.StreamExtraInfoRequest{Stream: stream,
		ExtraInfo: info})
	return err
}

// StartPlayingStream plays a stream (ZEGO startPlayingStream) and returns
// the room it is played in. In multi-room mode room may be empty only if the
// stream is published in one of the session's rooms (the Web SDK's way;
// 1004070 otherwise).
func (c *Client) StartPlayingStream(ctx context.Context, stream, room string) (string, error) {
	return c.streamOp(ctx, protocol.OpPlay, protocol.PlayRequest{Stream: stream, Room: room})
}

// StopPlayingStream stops playing a stream (ZEGO stopPlayingStream).
func (c *Client) StopPlayingStream(ctx context.Context, stream, room string) error {
	_, err := c.streamOp(ctx, protocol.OpStopPlay, protocol.PlayRequest{Stream: stream, Room: room})
	return err
}

// SendBroadcastMessage sends a message to every other member of the room
// (ZEGO sendBroadcastMessage): reliable, ordered, in the room's history.
// Bodies over the app's limit (1 KB) fail with 1905001, bursts over the
// room's rate with 1905002.
func (c *Client) SendBroadcastMessage(ctx context.Context, room, msg string) (MessageResult, error) {
	return c.message(ctx, protocol.OpBroadcast, protocol.MessageRequest{Room: room, Message: msg})
}

// SendBarrageMessage sends a best-effort message to every other member
// (ZEGO sendBarrageMessage): it is not a room event, has no sequence, and
// may be dropped under load.
func (c *Client) SendBarrageMessage(ctx context.Context, room, msg string) (MessageResult, error) {
	return c.message(ctx, protocol.OpBarrage, protocol.MessageRequest{Room: room, Message: msg})
}

// SendCustomCommand sends a command to the listed users of the room, or to
// every other member when to is empty (ZEGO sendCustomCommand).
func (c *Client) SendCustomCommand(ctx context.Context, room, command string, to []string) (MessageResult, error) {
	return c.message(ctx, protocol.OpCustomCommand, protocol.CustomCommandRequest{Room: room, To: to, Command: command})
}

// SetRoomExtraInfo sets one room extra info key (ZEGO setRoomExtraInfo);
// members get OnRoomExtraInfoUpdate, and later members get it at login.
func (c *Client) SetRoomExtraInfo(ctx context.Context, room, key, value string) error {
	_, err := c.do(ctx, protocol.OpSetRoomExtraInfo, protocol.RoomExtraInfoRequest{Room: room, Key: key, Value: value}, nil)
	return err
}

// SetRoomAttributes sets room attributes (ZIM setRoomAttributes); members
// get OnRoomAttributesUpdated. The ZIM limits apply (1902004).
func (c *Client) SetRoomAttributes(ctx context.Context, room string, attrs map[string]string) error {
	_, err := c.do(ctx, protocol.OpSetRoomAttributes, protocol.RoomAttributesRequest{Room: room, Attributes: attrs}, nil)
	return err
}

// DeleteRoomAttributes deletes room attributes (ZIM deleteRoomAttributes).
func (c *Client) DeleteRoomAttributes(ctx context.Context, room string, keys []string) error {
	_, err := c.do(ctx, protocol.OpDeleteRoomAttributes, protocol.RoomAttributesRequest{Room: room, Keys: keys}, nil)
	return err
}

// QueryRoom returns the current state of a room the session is in.
func (c *Client) QueryRoom(ctx context.Context, room string) (*RoomSnapshot, error) {
	data, err := c.do(ctx, protocol.OpQueryRoom, protocol.RoomRequest{Room: room}, nil)
	if err != nil {
		return nil, err
	}
	var snap RoomSnapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return nil, fmt.Errorf("roomlog: query_room: %w", err)
	}
	return &snap, nil
}

// RenewToken replaces the session's token (ZEGO renewToken), typically from
// OnRoomTokenWillExpire. The client also re-enters its rooms with it after a
// reconnection. Called while the client is reconnecting, it waits for the
// connection like any request, and that reconnection already uses the new
// token: the resume carries it, and the rooms entered again on a new
// session (the old one timed out) are entered with it, not with the token
// that may have expired meanwhile. A token the server refuses (1002033)
// is not kept.
func (c *Client) RenewToken(ctx context.Context, token string) error {
	c.mu.Lock()
	c.renewing = token
	c.mu.Unlock()
	_, err := c.do(ctx, protocol.OpRenewToken, protocol.TokenRequest{Token: token}, func([]byte) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.token = token
		for _, r := range c.rooms {
			r.entry.token = token
		}
		return nil
	})
	c.mu.Lock()
	if c.renewing == token {
		c.renewing = ""
	}
	c.mu.Unlock()
	return err
}

// latestTokenLocked is the newest token the app gave: that of a RenewToken
// in flight, else the last one sent; c.mu is held.
func (c *Client) latestTokenLocked() string {
	if c.renewing != "" {
		return c.renewing
	}
	return c.token
}

// enter runs an operation that enters room. Its reply's snapshot starts the
// room's sequence check; this is recorded on the reader goroutine, before
// the room's next event is read. also.reply, if not nil, runs then too (its
// data is the snapshot), and also.lost if the reply is lost.
func (c *Client) enter(ctx context.Context, op protocol.Op, room string, req any, e entry, also hooks) (*RoomSnapshot, error) {
	defer c.enteringRoom(room)()
	var snap RoomSnapshot
	_, err := c.doWith(ctx, op, req, hooks{reply: func(data []byte) error {
		if err := json.Unmarshal(data, &snap); err != nil {
			return fmt.Errorf("roomlog: %s: the reply is not a room snapshot: %w", op, err)
		}
		if also.reply != nil {
			if err := also.reply(data); err != nil {
				return err
			}
		}
		c.entered(room, snap.Seq, e)
		return nil
	}, lost: also.lost})
	if err != nil {
		return nil, err
	}
	return &snap, nil
}

// entered records that the session is in room as of seq.
func (c *Client) entered(room string, seq uint64, e entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.token == "" {
		e.token = c.token // the login used the session's token
	} else {
		c.token = e.token
	}
	if e.op == protocol.OpLogin && e.user != nil {
		u := *e.user
		c.user = &u
	}
	r := c.rooms[room]
	if r == nil {
		c.nextOrder++
		r = &roomTrack{order: c.nextOrder}
		c.rooms[room] = r
	}
	r.seq, r.entry, r.leaving, r.exit, r.relogin, r.inside, r.unsure = seq, e, false, "", false, false, false
	// A leave of this room, or of every room, made while this entry was on
	// its way left it too (the server runs a connection's requests in
	// turn): until its outcome is known, the room is being left, and a new
	// session does not enter it again.
	for lm := range c.leaves {
		if !lm.entering[room] {
			continue
		}
		r.exit = lm.why
		if !slices.ContainsFunc(lm.marks, func(m exitMark) bool { return m.r == r }) {
			r.exiting++
			lm.marks = append(lm.marks, exitMark{room, r})
		}
	}
}

// enteringRoom counts a request that enters room as under way, until the
// function it returns is called.
func (c *Client) enteringRoom(room string) (done func()) {
	c.mu.Lock()
	c.entering[room]++
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		if c.entering[room]--; c.entering[room] <= 0 {
			delete(c.entering, room)
		}
		c.mu.Unlock()
	}
}

// leaving marks rooms the session asked to leave, and why (logout, leave or
// switch): their departure event is on its way, and they are not re-entered
// if the connection is lost first.
func (c *Client) leaving(why string, rooms ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, room := range rooms {
		if r := c.rooms[room]; r != nil {
			r.leaving, r.exit = true, why
		}
	}
}

// switchLost marks from, the room a switch to to leaves, once the switch's
// reply is lost with the connection: the switch may have taken effect, so
// from is marked as a lost leave's rooms are (see exited). A new session
// does not enter it again (it gets Logout, reason switch); a resume says
// whether the session is still in it.
//
// The room is the one tracked now: the server ran the switch after every
// request whose reply came before it (a login into from made just before
// the switch included), and before any other. Not marked: a switch the
// server refuses for certain, to from itself, or to a room the session is
// in (already_in_room), unless a leave of that room may have run before the
// switch: one whose reply came (leaving), or one lost (unsure). The link
// runs the lost hooks in the order the requests were sent, so a lost leave
// sent before the switch has marked its room by now, and one sent after
// has not.
func (c *Client) switchLost(from, to string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.rooms[to]; from == to || t != nil && !t.leaving && !t.unsure {
		return
	}
	if r := c.rooms[from]; r != nil && !r.leaving {
		r.lostLeave("switch")
	}
}

// leave runs logout or leave_room / leave_all_rooms and returns the rooms
// left: room, or every room if req is nil. Until its outcome is known the
// rooms it leaves are marked (exiting): should their session be lost
// meanwhile, the re-logins on a new session do not enter them again but tell
// the app Logout (relogin), and the leave is then done without a request.
func (c *Client) leave(ctx context.Context, op protocol.Op, req any, room string) ([]string, error) {
	why := "leave" // leave_room, leave_all_rooms
	if op == protocol.OpLogout {
		why = "logout"
	}
	lm := c.exiting(why, req == nil, room)
	var rep protocol.RoomsReply
	_, err := c.doWith(ctx, op, req, hooks{reply: func(data []byte) error {
		if len(data) > 0 {
			if err := json.Unmarshal(data, &rep); err != nil {
				return fmt.Errorf("roomlog: %s: %w", op, err)
			}
		}
		c.leaving(why, rep.Rooms...)
		return nil
	}, lost: func() { c.leaveLost(lm) }, moot: func() bool { return c.allLeft(lm) }})
	dropped := c.exited(lm, err)
	if err != nil {
		return nil, err
	}
	rooms := slices.Clip(rep.Rooms)
	for _, name := range dropped {
		if !slices.Contains(rooms, name) {
			rooms = append(rooms, name)
		}
	}
	return rooms, nil
}

// leaveLost marks the rooms of lm, a leave sent whose reply was lost with
// the connection, unsure (see exited), when the connection is found dead:
// also those of a leave whose caller stopped waiting for its reply, which
// may have taken effect all the same.
func (c *Client) leaveLost(lm *leaveMarks) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range lm.marks {
		if r := m.r; c.rooms[m.name] == r && !r.leaving && !r.left {
			r.lostLeave(lm.why)
		}
	}
}

// lostLeave marks r as left by a request (a leave, or a switch from it,
// why) whose reply was lost: unsure until a resume says where the session
// is; c.mu is held.
func (r *roomTrack) lostLeave(why string) {
	if r.exit == "" {
		r.exit = why
	}
	r.unsure = true
}

// exitMark is a room a leave in flight leaves, as tracked when it began.
type exitMark struct {
	name string
	r    *roomTrack
}

// leaveMarks is a leave under way: why, the rooms it marked, and the rooms
// that were being entered when it was made (those it names), which it marks
// once entered (see entered).
type leaveMarks struct {
	why      string
	marks    []exitMark
	entering map[string]bool
}

// exiting marks the rooms a leave is about to leave (room, or every room the
// session means to stay in if all) with why, and counts the leave, until
// exited; it returns them.
func (c *Client) exiting(why string, all bool, room string) *leaveMarks {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := []string{room}
	if all {
		names = c.activeRoomsLocked()
	}
	lm := &leaveMarks{why: why, entering: map[string]bool{}}
	for _, name := range names {
		if r := c.rooms[name]; r != nil {
			if !r.leaving {
				r.exit = why
			}
			r.exiting++
			lm.marks = append(lm.marks, exitMark{name, r})
		}
	}
	for name := range c.entering {
		if all || name == room {
			lm.entering[name] = true
		}
	}
	c.leaves[lm] = struct{}{}
	return lm
}

// allLeft reports whether every room lm marked (there are some) was dropped
// while being left (roomTrack.left): the leave is done.
func (c *Client) allLeft(lm *leaveMarks) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range lm.marks {
		if !m.r.left {
			return false
		}
	}
	return len(lm.marks) > 0
}

// exited ends a leave's marks once its outcome (err) is known, and returns
// the rooms among them that were dropped (roomTrack.left). A room the leave did not leave
// (it was refused, never sent, or the reply names other rooms) is no longer
// being left, unless another leave of it is in flight or an earlier one's
// reply was lost (unsure). One whose reply was lost with the connection
// keeps its mark, and marks the room unsure: the session may be out of it,
// as a resume tells (resumed), and a new session is. Unless a resume said
// the session is still in the room after the lost attempt was sent (its
// reply came too late to be sent again): then the leave did not take
// effect, as for a refused one.
func (c *Client) exited(lm *leaveMarks, err error) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.leaves, lm)
	var dropped []string
	for _, m := range lm.marks {
		m.r.exiting--
		switch {
		case m.r.left:
			dropped = append(dropped, m.name)
		case isConnLost(err) && lostAfter(err, m.r.confirmed):
			m.r.unsure = true
		case m.r.exiting == 0 && !m.r.leaving && !m.r.unsure:
			m.r.exit = ""
		}
	}
	return dropped
}

func (c *Client) streamOp(ctx context.Context, op protocol.Op, req any) (string, error) {
	data, err := c.do(ctx, op, req, nil)
	if err != nil {
		return "", err
	}
	var rep protocol.StreamReply
	if len(data) > 0 {
		if err := json.Unmarshal(data, &rep); err != nil {
			return "", fmt.Errorf("roomlog: %s: %w", op, err)
		}
	}
	return rep.Room, nil
}

func (c *Client) message(ctx context.Context, op protocol.Op, req any) (MessageResult, error) {
	data, err := c.do(ctx, op, req, nil)
	if err != nil {
		return MessageResult{}, err
	}
	var rep protocol.MessageReply
	if len(data) > 0 {
		if err := json.Unmarshal(data, &rep); err != nil {
			return MessageResult{}, fmt.Errorf("roomlog: %s: %w", op, err)
		}
	}
	return MessageResult{ID: rep.MessageID, Seq: rep.Seq}, nil
}
