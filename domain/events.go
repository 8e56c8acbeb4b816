package domain

import (
	"slices"
	"time"
)

// EventType is an event's stable name, stored with every event. It is never
// derived from a Go type name: renaming a struct must not orphan stored events.
// Names are past-tense facts; a breaking change of a payload is a new name.
type EventType string

// Room events.
const (
	RoomCreated                 EventType = "room.created"
	RoomMemberJoined            EventType = "room.member_joined"
	RoomMemberLeft              EventType = "room.member_left"
	RoomStreamPublished         EventType = "room.stream_published"
	RoomStreamStopped           EventType = "room.stream_stopped"
	RoomStreamExtraInfoUpdated  EventType = "room.stream_extra_info_updated"
	RoomStreamPlayStarted       EventType = "room.stream_play_started"
	RoomStreamPlayStopped       EventType = "room.stream_play_stopped"
	RoomBroadcastSent           EventType = "room.broadcast_sent"
	RoomCustomCommandSent       EventType = "room.custom_command_sent"
	RoomExtraInfoUpdated        EventType = "room.extra_info_updated"
	RoomAttributesUpdated       EventType = "room.attributes_updated"
	RoomMemberAttributesUpdated EventType = "room.member_attributes_updated"
	RoomClaimVoided             EventType = "room.claim_voided"
	RoomDestroyed               EventType = "room.destroyed"
)

// Session events.
const (
	SessionOpened       EventType = "session.opened"
	SessionRoomClaimed  EventType = "session.room_claimed"
	SessionRoomReleased EventType = "session.room_released"
	SessionKicked       EventType = "session.kicked"
	SessionTimedOut     EventType = "session.timed_out"
)

// Stream registry events.
const (
	StreamClaimed  EventType = "stream.claimed"
	StreamReleased EventType = "stream.released"
)

// EventTypes lists every event type, for the codec and the golden files.
func EventTypes() []EventType { return slices.Clone(eventTypes[:]) }

// eventTypes is every event type (a constant array: nothing can change it).
var eventTypes = [...]EventType{
	RoomCreated, RoomMemberJoined, RoomMemberLeft, RoomStreamPublished, RoomStreamStopped,
	RoomStreamExtraInfoUpdated, RoomStreamPlayStarted, RoomStreamPlayStopped, RoomBroadcastSent,
	RoomCustomCommandSent, RoomExtraInfoUpdated, RoomAttributesUpdated, RoomMemberAttributesUpdated, RoomClaimVoided,
	RoomDestroyed,
	SessionOpened, SessionRoomClaimed, SessionRoomReleased, SessionKicked, SessionTimedOut,
	StreamClaimed, StreamReleased,
}

// Kind returns the aggregate kind an event type belongs to.
func (t EventType) Kind() Kind {
	for i := 0; i < len(t); i++ {
		if t[i] == '.' {
			return Kind(t[:i])
		}
	}
	return ""
}

// Payload is the data of one event type.
type Payload interface {
	EventType() EventType
}

// newPayload returns an empty payload for t, or nil for an unknown type.
func newPayload(t EventType) Payload {
	switch t {
	case RoomCreated:
		return &RoomCreatedData{}
	case RoomMemberJoined:
		return &MemberJoinedData{}
	case RoomMemberLeft:
		return &MemberLeftData{}
	case RoomStreamPublished:
		return &StreamPublishedData{}
	case RoomStreamStopped:
		return &StreamStoppedData{}
	case RoomStreamExtraInfoUpdated:
		return &StreamExtraInfoData{}
	case RoomStreamPlayStarted:
		return &PlayStartedData{}
	case RoomStreamPlayStopped:
		return &PlayStoppedData{}
	case RoomBroadcastSent:
		return &BroadcastSentData{}
	case RoomCustomCommandSent:
		return &CustomCommandSentData{}
	case RoomExtraInfoUpdated:
		return &ExtraInfoUpdatedData{}
	case RoomAttributesUpdated:
		return &AttributesUpdatedData{}
	case RoomMemberAttributesUpdated:
		return &MemberAttributesUpdatedData{}
	case RoomClaimVoided:
		return &ClaimVoidedData{}
	case RoomDestroyed:
		return &RoomDestroyedData{}
	case SessionOpened:
		return &SessionOpenedData{}
	case SessionRoomClaimed:
		return &RoomClaimedData{}
	case SessionRoomReleased:
		return &RoomReleasedData{}
	case SessionKicked:
		return &SessionKickedData{}
	case SessionTimedOut:
		return &SessionTimedOutData{}
	case StreamClaimed:
		return &StreamClaimedData{}
	case StreamReleased:
		return &StreamReleasedData{}
	}
	return nil
}

// Event is one fact about one aggregate, as stored in the log.
type Event struct {
	// ID is unique; it is also the Nats-Msg-Id of the message that starts with it.
	ID EventID `json:"id"`
	// Type names the payload.
	Type EventType `json:"type"`
	// App, Aggregate and AggregateID name the aggregate the event belongs to.
	App         AppID  `json:"app"`
	Aggregate   Kind   `json:"aggregate"`
	AggregateID string `json:"aggregate_id"`
	// Seq is the aggregate's gapless sequence number: 1 for its first event.
	Seq uint64 `json:"seq"`
	// Time is when it happened: the command's time, never earlier than the
	// aggregate's previous event.
	Time time.Time `json:"time"`
	// Correlation ties together every event of one logical step (a switch has
	// the same correlation in both rooms). Causation is the command or event
	// that directly caused this one.
	Correlation string `json:"correlation,omitempty"`
	Causation   string `json:"causation,omitempty"`
	// Prev is the hex SHA-256 of the previous event of the same aggregate as
	// stored, empty for the first: auditors verify a history with it.
	Prev string `json:"prev,omitempty"`
	// Data is the payload; its Go type matches Type.
	Data Payload `json:"data"`
}

// Key returns the key of the aggregate the event belongs to.
func (e *Event) Key() Key { return Key{Kind: e.Aggregate, App: e.App, ID: e.AggregateID} }

// Key names one aggregate.
type Key struct {
	Kind Kind
	App  AppID
	ID   string
}

func (k Key) String() string { return string(k.Kind) + ":" + string(k.App) + ":" + k.ID }

// RoomKey returns the key of a room.
func RoomKey(app AppID, id RoomID) Key { return Key{Kind: KindRoom, App: app, ID: string(id)} }

// SessionKey returns the key of a session.
func SessionKey(app AppID, id SessionID) Key {
	return Key{Kind: KindSession, App: app, ID: string(id)}
}

// StreamKey returns the key of a stream ID's registry entry.
func StreamKey(app AppID, id StreamID) Key { return Key{Kind: KindStream, App: app, ID: string(id)} }

// ---- room payloads ----

// RoomCreatedData records that a room came into existence (by any join
// operation that may create it). A room that is destroyed and created again
// has a second RoomCreated in the same history.
type RoomCreatedData struct {
	Name         string            `json:"name,omitempty"`
	Attributes   map[string]string `json:"attributes,omitempty"`
	DestroyDelay int               `json:"destroy_delay_s,omitempty"`
	By           UserID            `json:"by"`
	Session      SessionID         `json:"session"`
	Via          Via               `json:"via"`
	// MaxMembers is the room's capacity, 0 for none (added in v1.2).
	MaxMembers int `json:"max_members,omitempty"`
}

// MemberJoinedData records that a session joined a room as a user.
type MemberJoinedData struct {
	User       UserID    `json:"user"`
	UserName   string    `json:"user_name,omitempty"`
	Session    SessionID `json:"session"`
	Role       Role      `json:"role"`
	CanPublish bool      `json:"can_publish"`
	// Claim is the sequence of the session event that claimed this room.
	Claim uint64 `json:"claim"`
	Via   Via    `json:"via"`
	// Quiet: the member asked not to be told of other members (ZEGO
	// isUserStatusNotify = false; added in v1.2).
	Quiet bool `json:"quiet,omitempty"`
}

// MemberLeftData records that a member left or was removed.
type MemberLeftData struct {
	User UserID `json:"user"`
	// UserName is the departing member's name (added in v1.1: older events
	// lack it).
	UserName string    `json:"user_name,omitempty"`
	Session  SessionID `json:"session"`
	Claim    uint64    `json:"claim"`
	Reason   Reason    `json:"reason"`
	// BySession is the session whose login caused a duplicate-login kick.
	BySession SessionID `json:"by_session,omitempty"`
	// Detail is free text from the backend for a kick.
	Detail string `json:"detail,omitempty"`
	// Admin is the subject of the admin token whose kick or destroy sent
	// the member away (added in v1.5: older events lack it).
	Admin string `json:"admin,omitempty"`
	// KickedAt is the time of the duplicate login that took the member out
	// of this room, when that login was in another room (added in v1.3:
	// older events lack it). The follow-up that finishes the kick leaves
	// alone the rooms the session entered after that time.
	KickedAt time.Time `json:"kicked_at,omitzero"`
}

// StreamPublishedData records that a member started publishing a stream here.
type StreamPublishedData struct {
	Stream StreamID `json:"stream"`
	User   UserID   `json:"user"`
	// UserName is the publisher's name (added in v1.1: older events lack it).
	UserName  string    `json:"user_name,omitempty"`
	Session   SessionID `json:"session"`
	ExtraInfo string    `json:"extra_info,omitempty"`
	// Claim is the sequence of the stream registry event that claimed the ID.
	Claim uint64 `json:"claim"`
	// Node is the media node that hosts the stream's media (added in v1.2:
	// older events lack it, and so do streams published where no media
	// node runs).
	Node string `json:"node,omitempty"`
}

// StreamStoppedData records that a stream stopped being published here.
type StreamStoppedData struct {
	Stream StreamID `json:"stream"`
	User   UserID   `json:"user"`
	// UserName is the publisher's name (added in v1.1: older events lack it).
	UserName string    `json:"user_name,omitempty"`
	Session  SessionID `json:"session"`
	Claim    uint64    `json:"claim"`
	Reason   Reason    `json:"reason"`
}

// StreamExtraInfoData records a publisher's new stream extra info.
type StreamExtraInfoData struct {
	Stream StreamID `json:"stream"`
	User   UserID   `json:"user"`
	// UserName is the publisher's name (added in v1.1: older events lack it).
	UserName  string `json:"user_name,omitempty"`
	ExtraInfo string `json:"extra_info"`
}

// PlayStartedData records that a member started playing a stream in this room.
// The stream need not be published yet: the player waits for it.
type PlayStartedData struct {
	Stream  StreamID  `json:"stream"`
	User    UserID    `json:"user"`
	Session SessionID `json:"session"`
}

// PlayStoppedData records that a member stopped playing a stream.
type PlayStoppedData struct {
	Stream  StreamID  `json:"stream"`
	User    UserID    `json:"user"`
	Session SessionID `json:"session"`
}

// BroadcastSentData is a broadcast message, delivered reliably and in order
// to every member and kept in the room's history. Its message ID is the
// event's ID.
type BroadcastSentData struct {
	From     UserID    `json:"from"`
	FromName string    `json:"from_name,omitempty"`
	Session  SessionID `json:"session"`
	Body     string    `json:"body"`
}

// CustomCommandSentData is a custom command to some members (all when To is
// empty). Its message ID is the event's ID.
type CustomCommandSentData struct {
	From     UserID    `json:"from"`
	FromName string    `json:"from_name,omitempty"`
	Session  SessionID `json:"session"`
	To       []UserID  `json:"to,omitempty"`
	Body     string    `json:"body"`
}

// ExtraInfoUpdatedData records a new value of one room extra info key.
type ExtraInfoUpdatedData struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	By     UserID `json:"by"`
	ByName string `json:"by_name,omitempty"`
}

// AttributesUpdatedData records set and deleted room attributes (ZIM).
type AttributesUpdatedData struct {
	Set     map[string]string `json:"set,omitempty"`
	Deleted []string          `json:"deleted,omitempty"`
	By      UserID            `json:"by"`
	// ByName is the writer's name (added in v1.4: older events lack it).
	ByName string `json:"by_name,omitempty"`
	// The fields below were added in v1.2; older events lack them and fold
	// as a plain write: the writer owns the keys it creates.
	//
	// UpdateOwner: By becomes the owner of every key in Set.
	UpdateOwner bool `json:"update_owner,omitempty"`
	// DeleteAfterOwnerLeft applies to the keys in Set whose owner is By.
	DeleteAfterOwnerLeft bool `json:"delete_after_owner_left,omitempty"`
	// Force: the write overwrote or deleted keys other members own.
	Force bool `json:"force,omitempty"`
	// Batch: a ZIM batch operation (roomAttributesBatchUpdated).
	Batch bool `json:"batch,omitempty"`
	// OwnerLeft: By left the room and its keys went with it.
	OwnerLeft bool `json:"owner_left,omitempty"`
}

// MemberAttributesUpdatedData records set and deleted attributes of room
// members (ZIM setRoomMembersAttributes), one entry per member changed.
type MemberAttributesUpdatedData struct {
	Members []MemberAttributes `json:"members"`
	By      UserID             `json:"by"`
	ByName  string             `json:"by_name,omitempty"`
}

// MemberAttributes is the change to one member's attributes.
type MemberAttributes struct {
	User    UserID            `json:"user"`
	Set     map[string]string `json:"set,omitempty"`
	Deleted []string          `json:"deleted,omitempty"`
}

// ClaimVoidedData records that the room will never honour a claim: a claim
// that no membership or stream backs is voided here before the registry
// releases it, so a slow writer still holding it can never complete.
type ClaimVoidedData struct {
	Registry Kind   `json:"registry"` // "session" or "stream"
	ID       string `json:"id"`
	Claim    uint64 `json:"claim"`
}

// RoomDestroyedData records the end of a room. The members and streams it
// had are listed, so that consumers release what they hold without folding.
// A room too large for one event (more than about 12,000 members) first
// sends members away with member_left events of reason room_destroyed (and
// stream_stopped for their streams), in messages of their own just before
// this one, which lists the rest.
type RoomDestroyedData struct {
	Reason  DestroyReason `json:"reason"`
	Members []MemberClaim `json:"members,omitempty"`
	Streams []StreamClaim `json:"streams,omitempty"`
	Detail  string        `json:"detail,omitempty"`
	// Admin is the subject of the admin token that destroyed the room
	// (added in v1.5: older events lack it; none for a room that emptied).
	Admin string `json:"admin,omitempty"`
}

// MemberClaim is a member and the claim it joined with.
type MemberClaim struct {
	User    UserID    `json:"user"`
	Session SessionID `json:"session"`
	Claim   uint64    `json:"claim"`
}

// StreamClaim is a published stream and the registry claim it holds.
type StreamClaim struct {
	Stream  StreamID  `json:"stream"`
	User    UserID    `json:"user"`
	Session SessionID `json:"session"`
	Claim   uint64    `json:"claim"`
}

// ---- session payloads ----

// SessionOpenedData records a session's first login: its identity and room
// mode are fixed from here on.
type SessionOpenedData struct {
	User     UserID   `json:"user"`
	UserName string   `json:"user_name,omitempty"`
	Mode     RoomMode `json:"mode"`
}

// RoomClaimedData records that the session reserved one of its room slots
// for a room. The claim is this event's sequence number.
type RoomClaimedData struct {
	Room    RoomID `json:"room"`
	Command string `json:"command"`
}

// RoomReleasedData records that a claimed room slot is free again.
type RoomReleasedData struct {
	Room   RoomID `json:"room"`
	Claim  uint64 `json:"claim"`
	Reason Reason `json:"reason"`
}

// SessionKickedData records that the session was kicked out of its rooms
// because its user logged in from another session.
type SessionKickedData struct {
	BySession SessionID `json:"by_session"`
	Reason    Reason    `json:"reason"`
	Released  []RoomRef `json:"released,omitempty"`
}

// SessionTimedOutData records that the session stopped talking for longer
// than the heartbeat timeout; it left every room it was in.
type SessionTimedOutData struct {
	// LastSeen is when the session was last heard from.
	LastSeen time.Time `json:"last_seen,omitzero"`
	Released []RoomRef `json:"released,omitempty"`
}

// RoomRef is a room and the claim the session held on it.
type RoomRef struct {
	Room  RoomID `json:"room"`
	Claim uint64 `json:"claim"`
}

// ---- stream registry payloads ----

// StreamClaimedData records that a stream ID is reserved for a publisher in a
// room. The claim is this event's sequence number; it supersedes any older one.
type StreamClaimedData struct {
	Room    RoomID    `json:"room"`
	User    UserID    `json:"user"`
	Session SessionID `json:"session"`
	Command string    `json:"command"`
}

// StreamReleasedData records that a stream ID is free again.
type StreamReleasedData struct {
	Claim  uint64 `json:"claim"`
	Reason Reason `json:"reason"`
}

func (*RoomCreatedData) EventType() EventType             { return RoomCreated }
func (*MemberJoinedData) EventType() EventType            { return RoomMemberJoined }
func (*MemberLeftData) EventType() EventType              { return RoomMemberLeft }
func (*StreamPublishedData) EventType() EventType         { return RoomStreamPublished }
func (*StreamStoppedData) EventType() EventType           { return RoomStreamStopped }
func (*StreamExtraInfoData) EventType() EventType         { return RoomStreamExtraInfoUpdated }
func (*PlayStartedData) EventType() EventType             { return RoomStreamPlayStarted }
func (*PlayStoppedData) EventType() EventType             { return RoomStreamPlayStopped }
func (*BroadcastSentData) EventType() EventType           { return RoomBroadcastSent }
func (*CustomCommandSentData) EventType() EventType       { return RoomCustomCommandSent }
func (*ExtraInfoUpdatedData) EventType() EventType        { return RoomExtraInfoUpdated }
func (*AttributesUpdatedData) EventType() EventType       { return RoomAttributesUpdated }
func (*MemberAttributesUpdatedData) EventType() EventType { return RoomMemberAttributesUpdated }
func (*ClaimVoidedData) EventType() EventType             { return RoomClaimVoided }
func (*RoomDestroyedData) EventType() EventType           { return RoomDestroyed }
func (*SessionOpenedData) EventType() EventType           { return SessionOpened }
func (*RoomClaimedData) EventType() EventType             { return SessionRoomClaimed }
func (*RoomReleasedData) EventType() EventType            { return SessionRoomReleased }
func (*SessionKickedData) EventType() EventType           { return SessionKicked }
func (*SessionTimedOutData) EventType() EventType         { return SessionTimedOut }
func (*StreamClaimedData) EventType() EventType           { return StreamClaimed }
func (*StreamReleasedData) EventType() EventType          { return StreamReleased }
