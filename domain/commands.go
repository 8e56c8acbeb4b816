package domain

import (
	"slices"
	"time"
)

// Meta is what every command carries besides its arguments.
type Meta struct {
	// App is the tenant every aggregate of the command belongs to.
	App AppID
	// ID identifies the command (a ULID string). Claims remember it, so a
	// command retried after a conflict recognises what it already did.
	ID string
	// Correlation ties the events of one logical step together; it defaults
	// to ID. Causation is what caused the command (an event ID for follow-ups).
	Correlation string
	Causation   string
	// Request, optional, names the client request the command carries out,
	// the same on every try of it (a client's retry after a lost reply,
	// through any node). The engine derives the Msg-Id of each append from
	// it, so the log stores a step of one request once, however many
	// commands try it within the stream's duplicate window.
	Request string
	// Stored lists the aggregates an earlier attempt of this command
	// stored a step to, before a later step of it met another writer and
	// the command is decided again (the engine sets it): a decision that
	// finds what its own step did there goes on from it rather than
	// refusing (a leave whose room step landed releases the claim).
	Stored []Key
}

// stored reports whether an earlier attempt of the command stored a step
// to k.
func (m Meta) stored(k Key) bool { return slices.Contains(m.Stored, k) }

// storedRoom returns a room an earlier attempt of the command stored a step
// to, if any.
func (m Meta) storedRoom() (RoomID, bool) {
	for _, k := range m.Stored {
		if k.Kind == KindRoom {
			return RoomID(k.ID), true
		}
	}
	return "", false
}

// Command is a request to change something. Its name is used in logs and
// metrics only.
type Command interface {
	CommandName() string
}

// Grant is what a verified token allows (the transport verifies the
// signature; the domain checks the claims against the command).
type Grant struct {
	User       UserID
	UserName   string   // the name a login must use, unless empty
	Rooms      []RoomID // rooms the token may log into, unless AllRooms
	AllRooms   bool
	CanPublish bool
	ExpiresAt  time.Time // zero: never
}

func (g Grant) allows(u User, r RoomID, now time.Time) bool {
	if g.User != u.ID || g.UserName != "" && g.UserName != u.Name {
		return false
	}
	if !g.ExpiresAt.IsZero() && !now.Before(g.ExpiresAt) {
		return false
	}
	return g.AllRooms || slices.Contains(g.Rooms, r)
}

// RoomConfig is applied when a join creates the room (ZIM ZIMRoomAdvancedConfig).
type RoomConfig struct {
	Attributes   map[string]string
	DestroyDelay int // seconds the room outlives its last member
	// MaxMembers is ZEGO's maxMemberCount: a login beyond it is refused
	// (1002034). 0: no limit. Like ZEGO, only the login that creates the
	// room sets it.
	MaxMembers int
}

// SetRoomMode chooses the session's room mode; only before its first login.
type SetRoomMode struct {
	Session SessionID
	Mode    RoomMode
}

// JoinRoom is ZEGO loginRoom and ZIM createRoom / joinRoom / enterRoom: the
// create policy and Via tell them apart.
type JoinRoom struct {
	Session  SessionID
	User     User
	Mode     RoomMode // the session's mode; fixed by its first login
	Room     RoomID
	RoomName string
	Role     Role
	Grant    Grant
	Create   CreatePolicy
	Config   RoomConfig
	Via      Via
	// Quiet is ZEGO's isUserStatusNotify = false: the member is not sent
	// the other members' ADD and DELETE.
	Quiet bool
}

// LeaveRoom is ZEGO logoutRoom and ZIM leaveRoom / leaveAllRoom. An empty
// Room leaves every room of the session.
type LeaveRoom struct {
	Session SessionID
	Room    RoomID
	Reason  Reason // ReasonLogout (ZEGO) or ReasonLeave (ZIM)
}

// SwitchRoom leaves From and joins To as one recorded step (ZEGO switchRoom,
// ZIM switchRoom with isCreateWhenRoomNotExisted).
type SwitchRoom struct {
	Session SessionID
	From    RoomID
	To      RoomID
	ToName  string
	Role    Role
	Grant   Grant
	Create  CreatePolicy
	Config  RoomConfig
	// Quiet is ZEGO's isUserStatusNotify = false for To (see JoinRoom);
	// nil: as the member was in From.
	Quiet *bool
}

// PublishStream starts publishing a stream in a room (the session's only
// room in single-room mode when Room is empty).
type PublishStream struct {
	Session   SessionID
	Stream    StreamID
	Room      RoomID
	ExtraInfo string
	// Node is the media node chosen to host the stream's media, recorded
	// with the publish ("" where no media node runs).
	Node string
}

// StopNodeStreams stops every stream of a room hosted on a media node that
// died (reason media_node_lost). Run twice, or by two survivors at once, it
// stops each stream once: the second finds none left.
type StopNodeStreams struct {
	Room RoomID
	Node string
}

// StopPublishing stops publishing a stream.
type StopPublishing struct {
	Session SessionID
	Stream  StreamID
}

// SetStreamExtraInfo sets the extra info of a stream the session publishes.
type SetStreamExtraInfo struct {
	Session   SessionID
	Stream    StreamID
	ExtraInfo string
}

// PlayStream starts playing a stream in a room. Room may be empty: in
// single-room mode it is the session's room; in multi-room mode the stream's
// room is used when the session is in it (the Web SDK way), else 1004070.
type PlayStream struct {
	Session SessionID
	Stream  StreamID
	Room    RoomID
}

// StopPlaying stops playing a stream (in Room, or in every room of the session).
type StopPlaying struct {
	Session SessionID
	Stream  StreamID
	Room    RoomID
}

// SendBroadcast sends a reliable, ordered broadcast message to a room.
type SendBroadcast struct {
	Session SessionID
	Room    RoomID
	Body    string
}

// SendBarrage sends a best-effort barrage message; it is never logged.
type SendBarrage struct {
	Session SessionID
	Room    RoomID
	Body    string
}

// SendCustomCommand sends a custom command to some members (all when To is empty).
type SendCustomCommand struct {
	Session SessionID
	Room    RoomID
	To      []UserID
	Body    string
}

// SetRoomExtraInfo sets one room extra info key.
type SetRoomExtraInfo struct {
	Session SessionID
	Room    RoomID
	Key     string
	Value   string
	// Expect, if set, is the key's version the write was based on (the room
	// seq of the event that last set it; 0: the key must not exist). A
	// write whose key changed since is refused with 1905005.
	Expect *uint64
}

// SetRoomAttributes sets and deletes room attributes (ZIM).
type SetRoomAttributes struct {
	Session SessionID
	Room    RoomID
	Set     map[string]string
	Delete  []string
	// Force (ZIM isForce) overwrites and deletes attributes other members own.
	Force bool
	// DeleteAfterOwnerLeft (ZIM isDeleteAfterOwnerLeft) deletes the keys
	// set here when their owner leaves the room.
	DeleteAfterOwnerLeft bool
	// UpdateOwner (ZIM isUpdateOwner) makes the writer the owner of the
	// existing keys it overwrites.
	UpdateOwner bool
	// Batch marks a ZIM batch operation (begin/endRoomAttributesBatchOperation):
	// it succeeds or fails as a whole. Without it, keys another member owns
	// are skipped and reported (ZIM's errorKeys) while the rest are written.
	Batch bool
	// Expect maps keys to the version the write was based on (0: the key
	// must not exist). If any changed since, nothing is written (1905005).
	Expect map[string]uint64
}

// KickUser removes a user from a room (admin API).
type KickUser struct {
	Room   RoomID
	User   UserID
	Detail string
	// Admin is the subject of the admin token that asked, recorded with
	// the departure ("" if not from the admin API).
	Admin string
}

// DestroyRoom ends a room now (admin API).
type DestroyRoom struct {
	Room   RoomID
	Detail string
	// Admin is the subject of the admin token that asked, recorded with
	// the destroy ("" if not from the admin API).
	Admin string
}

// ExpireRoom destroys an empty room whose destroy delay has run out; it does
// nothing otherwise. The timekeeper sends it.
type ExpireRoom struct {
	Room RoomID
}

// TimeoutSession records that a session stopped talking: it leaves every
// room. The presence tracker sends it.
type TimeoutSession struct {
	Session  SessionID
	LastSeen time.Time
}

// KickSession removes a session from all its rooms because its user logged
// in from another session (the follow-up of a duplicate-login kick in one room).
type KickSession struct {
	Session   SessionID
	BySession SessionID
	Room      RoomID    // where the duplicate login happened
	Claim     uint64    // the claim the session was kicked out of Room with
	At        time.Time // the time of the kick; later claims are left alone
}

// ReleaseRoomClaim frees a session's claim on a room after the room removed
// the member (kick, destroy, timeout on the room side). It does nothing if
// the claim is gone or still backs a membership.
type ReleaseRoomClaim struct {
	Session SessionID
	Room    RoomID
	Claim   uint64
	Reason  Reason
}

// ReleaseStreamClaim frees a stream ID after its room stopped the stream.
// It does nothing if the claim is gone or still backs a published stream.
type ReleaseStreamClaim struct {
	Stream StreamID
	Claim  uint64
	Reason Reason
}

func (SetRoomMode) CommandName() string        { return "set_room_mode" }
func (JoinRoom) CommandName() string           { return "join_room" }
func (LeaveRoom) CommandName() string          { return "leave_room" }
func (SwitchRoom) CommandName() string         { return "switch_room" }
func (PublishStream) CommandName() string      { return "publish_stream" }
func (StopPublishing) CommandName() string     { return "stop_publishing" }
func (StopNodeStreams) CommandName() string    { return "stop_node_streams" }
func (SetStreamExtraInfo) CommandName() string { return "set_stream_extra_info" }
func (PlayStream) CommandName() string         { return "play_stream" }
func (StopPlaying) CommandName() string        { return "stop_playing" }
func (SendBroadcast) CommandName() string      { return "send_broadcast" }
func (SendBarrage) CommandName() string        { return "send_barrage" }
func (SendCustomCommand) CommandName() string  { return "send_custom_command" }
func (SetRoomExtraInfo) CommandName() string   { return "set_room_extra_info" }
func (SetRoomAttributes) CommandName() string  { return "set_room_attributes" }
func (KickUser) CommandName() string           { return "kick_user" }
func (DestroyRoom) CommandName() string        { return "destroy_room" }
func (ExpireRoom) CommandName() string         { return "expire_room" }
func (TimeoutSession) CommandName() string     { return "timeout_session" }
func (KickSession) CommandName() string        { return "kick_session" }
func (ReleaseRoomClaim) CommandName() string   { return "release_room_claim" }
func (ReleaseStreamClaim) CommandName() string { return "release_stream_claim" }
