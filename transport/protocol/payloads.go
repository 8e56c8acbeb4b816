package protocol

// ---- shared shapes ----

// User is who a session logs in as.
type User struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// Role is the user's role in the room (anchor or audience), given
	// where users are listed as members: a snapshot's users and a
	// room_user_update ADD. TRTC apps tell a visiting anchor (audience in
	// the room it visits) from the room's own by it.
	Role string `json:"role,omitempty"`
}

// RoomInfo names a room (ZIM ZIMRoomInfo).
type RoomInfo struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// RoomConfig configures a room a join creates (ZIM ZIMRoomAdvancedConfig).
type RoomConfig struct {
	Attributes   map[string]string `json:"attributes,omitempty"`
	DestroyDelay int               `json:"destroy_delay_s,omitempty"` // seconds, at most 10800
	// MaxMemberCount is the room's capacity (0: none): one more member is
	// refused with 1002034.
	MaxMemberCount int `json:"max_member_count,omitempty"`
}

// Stream is a published stream.
type Stream struct {
	Stream    string `json:"stream"`
	User      User   `json:"user"`
	ExtraInfo string `json:"extra_info,omitempty"`
}

// ExtraInfo is one room extra info item.
type ExtraInfo struct {
	Key        string `json:"key"`
	Value      string `json:"value"`
	UpdateUser User   `json:"update_user"`
	UpdateTime int64  `json:"update_time"` // Unix milliseconds
	// Version is the room seq that set the value (for compare-and-set).
	Version uint64 `json:"version,omitempty"`
}

// ---- requests ----

// SetRoomModeRequest chooses the session's room mode ("single" or "multi").
type SetRoomModeRequest struct {
	Mode string `json:"mode"`
}

// LoginRequest logs into a room (ZEGO loginRoom), creating it if needed.
type LoginRequest struct {
	Room  string `json:"room"`
	User  User   `json:"user"`
	Token string `json:"token,omitempty"` // optional after a login or renew_token
	Role  string `json:"role,omitempty"`  // "anchor" (default) or "audience"
	// History asks for the room's last messages (at most 100) with the
	// snapshot, as of its seq.
	History int `json:"history,omitempty"`
	// MaxMemberCount is ZEGO's maxMemberCount: the capacity of a room this
	// login creates (0: none). It does not change an existing room's.
	MaxMemberCount int `json:"max_member_count,omitempty"`
	// UserStatusNotify is ZEGO's isUserStatusNotify; false: the session is
	// not sent other users' ADD and DELETE. Default true.
	UserStatusNotify *bool `json:"user_status_notify,omitempty"`
}

// LogoutRequest leaves one room, or every room when Room is empty.
type LogoutRequest struct {
	Room string `json:"room,omitempty"`
}

// SwitchRoomRequest leaves From and enters To as one step.
type SwitchRoomRequest struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Token string `json:"token,omitempty"`
	Role  string `json:"role,omitempty"`
	// ToName and Config apply if the switch creates To.
	ToName string      `json:"to_name,omitempty"`
	Config *RoomConfig `json:"config,omitempty"`
	// CreateIfMissing: ZIM's isCreateWhenRoomNotExisted. Default true (ZEGO).
	CreateIfMissing *bool `json:"create_if_missing,omitempty"`
	// History asks for To's last messages with the snapshot, as login's.
	History int `json:"history,omitempty"`
	// UserStatusNotify is ZEGO's isUserStatusNotify for To, as login's;
	// absent: as the session was in From.
	UserStatusNotify *bool `json:"user_status_notify,omitempty"`
}

// CreateRoomRequest is ZIM createRoom (fails if the room exists) and
// enterRoom (creates it if needed).
type CreateRoomRequest struct {
	Room   RoomInfo    `json:"room"`
	User   *User       `json:"user,omitempty"` // default: the session's user, else the token's
	Token  string      `json:"token,omitempty"`
	Role   string      `json:"role,omitempty"`
	Config *RoomConfig `json:"config,omitempty"`
	// History asks for the room's last messages with the snapshot.
	History int `json:"history,omitempty"`
	// UserStatusNotify is login's (ZEGO isUserStatusNotify; ZIM has none):
	// an SDK entering again a room the session was quiet in says so.
	UserStatusNotify *bool `json:"user_status_notify,omitempty"`
}

// JoinRoomRequest is ZIM joinRoom: the room must exist.
type JoinRoomRequest struct {
	Room    string `json:"room"`
	User    *User  `json:"user,omitempty"`
	Token   string `json:"token,omitempty"`
	Role    string `json:"role,omitempty"`
	History int    `json:"history,omitempty"`
	// UserStatusNotify is create_room's.
	UserStatusNotify *bool `json:"user_status_notify,omitempty"`
}

// RoomRequest names one room (ZIM leaveRoom, query_room).
type RoomRequest struct {
	Room string `json:"room"`
}

// PublishRequest starts publishing a stream. Room is required in multi-room mode.
type PublishRequest struct {
	Stream    string `json:"stream"`
	Room      string `json:"room,omitempty"`
	ExtraInfo string `json:"extra_info,omitempty"`
}

// StreamRequest names a stream (stop_publish).
type StreamRequest struct {
	Stream string `json:"stream"`
}

// StreamExtraInfoRequest sets a published stream's extra info.
type StreamExtraInfoRequest struct {
	Stream    string `json:"stream"`
	ExtraInfo string `json:"extra_info"`
}

// PlayRequest starts or stops playing a stream. In multi-room mode Room may
// be left out only if the stream is published in one of the session's rooms.
type PlayRequest struct {
	Stream string `json:"stream"`
	Room   string `json:"room,omitempty"`
}

// MessageRequest sends a broadcast or barrage message.
type MessageRequest struct {
	Room    string `json:"room"`
	Message string `json:"message"`
}

// CustomCommandRequest sends a custom command to some members (all when To is empty).
type CustomCommandRequest struct {
	Room    string   `json:"room"`
	To      []string `json:"to,omitempty"`
	Command string   `json:"command"`
}

// RoomExtraInfoRequest sets one room extra info key.
type RoomExtraInfoRequest struct {
	Room  string `json:"room"`
	Key   string `json:"key"`
	Value string `json:"value"`
	// Expect, if set, is the version the write is based on (0: the key must
	// not exist); a changed key is refused with 1905005.
	Expect *uint64 `json:"expect,omitempty"`
}

// RoomAttributesRequest sets or deletes room attributes.
type RoomAttributesRequest struct {
	Room       string            `json:"room"`
	Attributes map[string]string `json:"attributes,omitempty"` // set_room_attributes
	Keys       []string          `json:"keys,omitempty"`       // delete_room_attributes
	// Force (ZIM isForce) writes and deletes keys other members own.
	Force bool `json:"force,omitempty"`
	// DeleteAfterOwnerLeft (ZIM isDeleteAfterOwnerLeft): the keys set go
	// when their owner leaves the room.
	DeleteAfterOwnerLeft bool `json:"delete_after_owner_left,omitempty"`
	// UpdateOwner (ZIM isUpdateOwner): the writer becomes the owner of the
	// existing keys it sets.
	UpdateOwner bool `json:"update_owner,omitempty"`
	// Expect maps keys to the version the write is based on (0: the key
	// must not exist); if any changed, nothing is written (1905005).
	Expect map[string]uint64 `json:"expect,omitempty"`
}

// TokenRequest renews the session's token.
type TokenRequest struct {
	Token string `json:"token"`
}

// ResumeRequest reattaches a session after a reconnect (see docs/protocol.md).
type ResumeRequest struct {
	// ResumeToken is the token the hello frame gave the lost connection.
	ResumeToken string `json:"resume_token"`
	// Rooms maps each room the client was in to the last room seq it got.
	Rooms map[string]uint64 `json:"rooms"`
	// Quiet names the rooms of Rooms the client entered with
	// user_status_notify false. A room the session was removed from while
	// away is replayed up to its departure without other users' ADD and
	// DELETE; the server no longer knows the flag of a member that is gone.
	Quiet []string `json:"quiet,omitempty"`
	// Token is the latest app token the client gave the session (optional):
	// the resumed session keeps it, so that later requests may leave theirs
	// out and token_will_expire still comes. One that does not verify, or
	// is for another app or user, is not kept.
	Token string `json:"token,omitempty"`
}

// ---- replies ----

// RoomSnapshot is a room's state at Seq: the reply to any operation that
// enters a room, and to query_room.
type RoomSnapshot struct {
	Room       RoomInfo          `json:"room"`
	Seq        uint64            `json:"seq"`
	Users      []User            `json:"users"`
	Streams    []Stream          `json:"streams"`
	ExtraInfo  []ExtraInfo       `json:"extra_info"`
	Attributes map[string]string `json:"attributes"`
	Online     int               `json:"online"`
	// AttributeVersions holds each attribute's version (for compare-and-set).
	AttributeVersions map[string]uint64 `json:"attribute_versions,omitempty"`
	// MaxMemberCount is the room's capacity (0: none).
	MaxMemberCount int `json:"max_member_count,omitempty"`
	// Messages are the room's last messages up to Seq, newest first, when
	// the request asked for history.
	Messages []HistoryMessage `json:"messages,omitempty"`
}

// RoomsReply lists rooms (what a logout of every room or leave_all_rooms left).
type RoomsReply struct {
	Rooms []string `json:"rooms"`
}

// MessageReply identifies a sent message.
type MessageReply struct {
	MessageID string `json:"message_id"`
	Seq       uint64 `json:"seq,omitempty"` // the room event's seq (not for barrage)
}

// StreamReply names the room a stream operation resolved to.
type StreamReply struct {
	Room string `json:"room"`
}

// ---- events ----

// Hello is the first frame of a connection.
type Hello struct {
	Protocol int    `json:"protocol"`
	Session  string `json:"session"`
	// ResumeToken lets a reconnecting client reattach this session (resume).
	ResumeToken string `json:"resume_token"`
	// HeartbeatMS is how often the client must send a heartbeat;
	// TimeoutMS is how long the server waits before the session times out.
	HeartbeatMS int64 `json:"heartbeat_ms"`
	TimeoutMS   int64 `json:"timeout_ms"`
	ServerTime  int64 `json:"server_time"` // Unix milliseconds
}

// RoomStateChanged is the session's new state in a room (ZEGO reason and
// code, and the ZIM state and event).
type RoomStateChanged struct {
	State    string `json:"state"` // Logining, Logined, LoginFailed, Reconnecting, Reconnected, ReconnectFailed, KickOut, Logout, LogoutFailed
	Code     int    `json:"code"`
	Reason   string `json:"reason,omitempty"`     // why: logout, kicked_by_backend, kicked_duplicate_login, heartbeat_timeout, room_destroyed, ...
	ZIMState string `json:"zim_state"`            // Connecting, Connected, Disconnected
	ZIMEvent string `json:"zim_event"`            // Success, KickedOut, RoomNotExist, NetworkInterrupted, ...
	By       string `json:"by_session,omitempty"` // the session whose login kicked this one
}

// UserUpdate is onRoomUserUpdate: users ADDed to or DELETEd from the room.
type UserUpdate struct {
	UpdateType string `json:"update_type"` // ADD or DELETE
	Users      []User `json:"users"`
}

// StreamUpdate is onRoomStreamUpdate.
type StreamUpdate struct {
	UpdateType string   `json:"update_type"` // ADD or DELETE
	Streams    []Stream `json:"streams"`
}

// StreamExtraInfoUpdate carries streams whose extra info changed.
type StreamExtraInfoUpdate struct {
	Streams []Stream `json:"streams"`
}

// Message is a received broadcast or barrage message.
type Message struct {
	MessageID string `json:"message_id"`
	From      User   `json:"from"`
	Message   string `json:"message"`
	SendTime  int64  `json:"send_time"` // Unix milliseconds
}

// CustomCommand is a received custom command.
type CustomCommand struct {
	MessageID string `json:"message_id"`
	From      User   `json:"from"`
	Command   string `json:"command"`
	SendTime  int64  `json:"send_time"`
}

// RoomExtraInfoUpdate carries changed room extra info items.
type RoomExtraInfoUpdate struct {
	Items []ExtraInfo `json:"items"`
}

// RoomAttributesUpdate carries set and deleted room attributes.
type RoomAttributesUpdate struct {
	Set     map[string]string `json:"set,omitempty"`
	Deleted []string          `json:"deleted,omitempty"`
	// By is who wrote (or, with OwnerLeft, whose departure deleted the keys).
	By        *User `json:"by,omitempty"`
	OwnerLeft bool  `json:"owner_left,omitempty"`
}

// OnlineUserCount is the room's member count.
type OnlineUserCount struct {
	Count int `json:"count"`
}

// TokenWillExpire warns that the session's token expires soon.
type TokenWillExpire struct {
	RemainSeconds int `json:"remain_seconds"`
}

// SessionClosing tells why the server closes the connection.
type SessionClosing struct {
	Code    int    `json:"code"`
	Error   string `json:"error"`
	Message string `json:"message"`
}

// ResumeReply answers a successful resume: the connection carries Session
// again, and for each room the client named, the missed events follow.
type ResumeReply struct {
	Session string `json:"session"`
	// ResumeToken replaces the one the client resumed with.
	ResumeToken string                 `json:"resume_token"`
	Rooms       map[string]ResumedRoom `json:"rooms"`
}

// ResumeRefused is the data of a resume_failed refusal for a session that
// timed out.
type ResumeRefused struct {
	// Kicked names the rooms of the request the session was kicked out of
	// while the client was away (a duplicate login, the backend), each with
	// the state its member was told (KickOut). A kick is final: the client
	// reports it and does not log in to those rooms again.
	Kicked map[string]RoomStateChanged `json:"kicked,omitempty"`
}

// HeartbeatReply answers a heartbeat; it carries a fresh resume token once
// the session's current one is half spent.
type HeartbeatReply struct {
	ResumeToken string `json:"resume_token,omitempty"`
}

// ResumedRoom says what happened to one room while the client was away.
type ResumedRoom struct {
	// Status is "resumed" (still in the room: the missed events follow, then
	// live ones), "left" (removed meanwhile: the missed events up to the
	// session's own departure follow), or "unknown" (the session is in the
	// room but the client did not name it, as when a login's reply was lost
	// with the connection: nothing follows; the client should log out of it
	// or log in again to get its state).
	Status string `json:"status"`
	// Seq is where the replay starts after (the seq the client sent).
	Seq uint64 `json:"seq"`
}
