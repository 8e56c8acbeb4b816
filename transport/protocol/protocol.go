// Package protocol is roomlog's WebSocket protocol, version 1: the typed
// envelope of every frame, the payload of every request, reply and event,
// and the codes of transport errors. The gateway, the Go SDK and
// docs/protocol.md all follow it; the examples in examples.go are checked
// against the document.
//
// A client sends requests: {"id": "7", "op": "login", "data": {...}}. The
// server answers each with a reply carrying the same id and a code (0 or a
// roomlog/ZEGO error code), and pushes events: {"type": "event", "event":
// "room_user_update", "room": "r1", "seq": 12, "prev": 11, "data": {...}}.
// seq is the room's own gapless event sequence; prev is the seq of the
// previous event this connection was sent for that room, so a client that
// sees prev differ from the last seq it got knows it missed something.
package protocol

import (
	"bytes"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/roomlog/roomlog/domain"
)

// Version is the protocol version; Subprotocol names it in the WebSocket
// handshake (Sec-WebSocket-Protocol).
const (
	Version     = 1
	Subprotocol = "roomlog.v1"
)

// Op names a request's operation.
type Op string

// Operations. ZEGO Express and ZIM operations map onto them one to one.
const (
	OpSetRoomMode          Op = "set_room_mode"          // ZEGO setRoomMode
	OpLogin                Op = "login"                  // ZEGO loginRoom
	OpLogout               Op = "logout"                 // ZEGO logoutRoom (one room, or all)
	OpSwitchRoom           Op = "switch_room"            // ZEGO switchRoom, ZIM switchRoom
	OpCreateRoom           Op = "create_room"            // ZIM createRoom
	OpJoinRoom             Op = "join_room"              // ZIM joinRoom
	OpEnterRoom            Op = "enter_room"             // ZIM enterRoom
	OpLeaveRoom            Op = "leave_room"             // ZIM leaveRoom
	OpLeaveAllRooms        Op = "leave_all_rooms"        // ZIM leaveAllRoom
	OpPublish              Op = "publish"                // startPublishingStream
	OpStopPublish          Op = "stop_publish"           // stopPublishingStream
	OpSetStreamExtraInfo   Op = "set_stream_extra_info"  // setStreamExtraInfo
	OpPlay                 Op = "play"                   // startPlayingStream
	OpStopPlay             Op = "stop_play"              // stopPlayingStream
	OpBroadcast            Op = "broadcast"              // sendBroadcastMessage
	OpBarrage              Op = "barrage"                // sendBarrageMessage
	OpCustomCommand        Op = "custom_command"         // sendCustomCommand
	OpSetRoomExtraInfo     Op = "set_room_extra_info"    // setRoomExtraInfo
	OpSetRoomAttributes    Op = "set_room_attributes"    // ZIM setRoomAttributes
	OpDeleteRoomAttributes Op = "delete_room_attributes" // ZIM deleteRoomAttributes
	OpQueryRoom            Op = "query_room"             // the room's current state
	OpRenewToken           Op = "renew_token"            // ZEGO renewToken
	OpHeartbeat            Op = "heartbeat"              // keep the session alive
	OpResume               Op = "resume"                 // reattach a session after a reconnect
)

// Ops lists every operation.
func Ops() []Op {
	return append([]Op{OpSetRoomMode, OpLogin, OpLogout, OpSwitchRoom, OpCreateRoom, OpJoinRoom, OpEnterRoom, OpLeaveRoom,
		OpLeaveAllRooms, OpPublish, OpStopPublish, OpSetStreamExtraInfo, OpPlay, OpStopPlay, OpBroadcast, OpBarrage,
		OpCustomCommand, OpSetRoomExtraInfo, OpSetRoomAttributes, OpDeleteRoomAttributes, OpQueryRoom, OpRenewToken,
		OpHeartbeat, OpResume, OpMediaOffer, OpMediaCandidate, OpMediaICERestart, OpMediaClose, OpMediaCheck}, roomStateOps...)
}

// EventName names a pushed event.
type EventName string

// Events. Each is one callback of the ZEGO / ZIM SDKs.
const (
	EvHello                 EventName = "hello"                    // first frame: the session and its timings
	EvRoomStateChanged      EventName = "room_state_changed"       // onRoomStateChanged / ZIM roomStateChanged
	EvRoomUserUpdate        EventName = "room_user_update"         // onRoomUserUpdate / ZIM roomMemberJoined, roomMemberLeft
	EvRoomStreamUpdate      EventName = "room_stream_update"       // onRoomStreamUpdate
	EvStreamExtraInfoUpdate EventName = "stream_extra_info_update" // onRoomStreamExtraInfoUpdate
	EvBroadcastMessage      EventName = "broadcast_message"        // onIMRecvBroadcastMessage
	EvBarrageMessage        EventName = "barrage_message"          // onIMRecvBarrageMessage
	EvCustomCommand         EventName = "custom_command"           // onIMRecvCustomCommand
	EvRoomExtraInfoUpdate   EventName = "room_extra_info_update"   // onRoomExtraInfoUpdate
	EvRoomAttributesUpdate  EventName = "room_attributes_update"   // ZIM roomAttributesUpdated
	EvRoomOnlineUserCount   EventName = "room_online_user_count"   // onRoomOnlineUserCountUpdate
	EvTokenWillExpire       EventName = "token_will_expire"        // onRoomTokenWillExpire
	EvSessionClosing        EventName = "session_closing"          // the server is about to close the connection
)

// EventNames lists every event.
func EventNames() []EventName {
	return append([]EventName{EvHello, EvRoomStateChanged, EvRoomUserUpdate, EvRoomStreamUpdate, EvStreamExtraInfoUpdate,
		EvBroadcastMessage, EvBarrageMessage, EvCustomCommand, EvRoomExtraInfoUpdate, EvRoomAttributesUpdate,
		EvRoomOnlineUserCount, EvTokenWillExpire, EvSessionClosing, EvPublisherStateUpdate, EvPlayerStateUpdate}, roomStateEvents...)
}

// Request is a client frame.
type Request struct {
	// ID is chosen by the client and echoed in the reply (at most 64 bytes).
	ID   string          `json:"id"`
	Op   Op              `json:"op"`
	Data json.RawMessage `json:"data,omitempty"`
	// IdempotencyKey, optional, names the operation across retries (at most
	// 64 bytes, unique per session). A client that lost the reply (the
	// connection dropped) sends the request again with the same key; the
	// node that ran it answers with the original reply instead of running
	// it again, for IdempotencyWindow after it ran; another node (the first
	// died) finds what it stored in the log's duplicate window and answers
	// with that. See docs/protocol.md.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// IdempotencyWindow is how long a node remembers the reply to a request
// with an IdempotencyKey; MaxIdempotencyKey is the longest key accepted.
const (
	IdempotencyWindow = 2 * time.Minute
	MaxIdempotencyKey = 64
)

// Idempotent reports whether a repeated IdempotencyKey on op is answered
// with the original outcome rather than run again: every operation that
// changes state, except those that enter a room (login, switch_room,
// create_room, join_room, enter_room), whose reply is the room's snapshot
// followed by its events, and which a client re-enters itself after a
// reconnect (resume says which rooms the session is in). Queries
// (media_check included), heartbeats and resume are answered afresh: a
// repeated query asks for the state as it is now.
func (op Op) Idempotent() bool {
	switch op {
	case OpHeartbeat, OpResume, OpLogin, OpSwitchRoom, OpCreateRoom, OpJoinRoom, OpEnterRoom:
		return false
	}
	return !op.Query()
}

// Query reports whether op only reads: asking again, on any connection or
// session, changes nothing.
func (op Op) Query() bool {
	switch op {
	case OpQueryRoom, OpQueryRoomAttributes, OpQueryMemberAttributes, OpQueryMemberList, OpQueryOnlineCount,
		OpQueryHistory, OpMediaCheck:
		return true
	}
	return false
}

// FrameType tells replies from events.
type FrameType string

// Frame types.
const (
	TypeReply FrameType = "reply"
	TypeEvent FrameType = "event"
)

// Reply answers one request.
type Reply struct {
	Type FrameType `json:"type"` // "reply"
	ID   string    `json:"id"`
	// Code is 0 on success, else an error code (see docs/protocol.md).
	Code    domain.Code `json:"code"`
	Error   string      `json:"error,omitempty"`   // the error's stable name
	Message string      `json:"message,omitempty"` // for people
	Data    any         `json:"data,omitempty"`
}

// Event is pushed by the server.
type Event struct {
	Type  FrameType `json:"type"` // "event"
	Event EventName `json:"event"`
	// Room, Seq and Prev are set on room events: Seq is the room event's
	// sequence, Prev the sequence of the previous event of that room sent to
	// this connection (the room snapshot's sequence for the first).
	Room string `json:"room,omitempty"`
	Seq  uint64 `json:"seq,omitempty"`
	Prev uint64 `json:"prev,omitempty"`
	// Cursor is the log position of a room event, to resume from.
	Cursor uint64 `json:"cursor,omitempty"`
	Data   any    `json:"data,omitempty"`
}

// Frame is any server frame, as a client decodes it.
type Frame struct {
	Type    FrameType       `json:"type"`
	ID      string          `json:"id,omitempty"`
	Code    domain.Code     `json:"code,omitempty"`
	Error   string          `json:"error,omitempty"`
	Message string          `json:"message,omitempty"`
	Event   EventName       `json:"event,omitempty"`
	Room    string          `json:"room,omitempty"`
	Seq     uint64          `json:"seq,omitempty"`
	Prev    uint64          `json:"prev,omitempty"`
	Cursor  uint64          `json:"cursor,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// MaxIDBytes is the longest request id.
const MaxIDBytes = 64

// ParseRequest decodes one client frame: a single JSON object with an op
// and an id of at most MaxIDBytes. Anything else is ErrMalformedRequest.
func ParseRequest(b []byte) (Request, error) {
	var r Request
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&r); err != nil {
		return Request{ID: PeekID(b)}, ErrMalformedRequest.With("%v", err)
	}
	// Only JSON's white space may follow (dec.More is false before a stray
	// '}' or ']', which would let a frame that is not one JSON object run).
	if len(bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n")) > 0 {
		return Request{ID: r.ID}, ErrMalformedRequest.With("data after the request")
	}
	switch {
	case len(r.ID) > MaxIDBytes:
		return Request{}, ErrMalformedRequest.With("the id is longer than %d bytes", MaxIDBytes)
	case r.Op == "":
		return Request{ID: r.ID}, ErrMalformedRequest.With("no op")
	}
	if err := CheckText(b); err != nil {
		return Request{ID: r.ID}, err
	}
	return r, nil
}

// CheckText refuses JSON whose strings are not valid Unicode text: raw bytes
// that are not UTF-8, or \u escapes of lone surrogates. encoding/json would
// silently replace either with U+FFFD, storing text the client never sent.
func CheckText(b []byte) error {
	if !utf8.Valid(b) {
		return domain.ErrInvalidArgument.With("the request holds text that is not valid UTF-8")
	}
	if bytes.Contains(b, []byte(`\u`)) && !jsontext.Value(b).IsValid(jsontext.AllowDuplicateNames(true)) {
		return domain.ErrInvalidArgument.With("the request holds a \\u escape that is not a Unicode character (a lone surrogate)")
	}
	return nil
}

// PeekID recovers the id of a request that cannot be decoded (or is too
// large to be), when it can.
func PeekID(b []byte) string {
	var r struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(b, &r) != nil || len(r.ID) > MaxIDBytes {
		return ""
	}
	return r.ID
}

// Decode reads the request's data into v: ErrMalformedRequest when it is not
// the operation's shape.
func (r Request) Decode(v any) error {
	if len(r.Data) == 0 || string(r.Data) == "null" {
		return ErrMalformedRequest.With("%s needs data", r.Op)
	}
	if err := json.Unmarshal(r.Data, v); err != nil {
		return ErrMalformedRequest.With("%s: %v", r.Op, err)
	}
	return nil
}

// NewPayload returns a new value of op's request payload (nil for an
// operation without one, or an unknown one).
func NewPayload(op Op) any {
	switch op {
	case OpSetRoomMode:
		return &SetRoomModeRequest{}
	case OpLogin:
		return &LoginRequest{}
	case OpLogout:
		return &LogoutRequest{}
	case OpSwitchRoom:
		return &SwitchRoomRequest{}
	case OpCreateRoom, OpEnterRoom:
		return &CreateRoomRequest{}
	case OpJoinRoom:
		return &JoinRoomRequest{}
	case OpLeaveRoom, OpQueryRoom:
		return &RoomRequest{}
	case OpPublish:
		return &PublishRequest{}
	case OpStopPublish:
		return &StreamRequest{}
	case OpSetStreamExtraInfo:
		return &StreamExtraInfoRequest{}
	case OpPlay, OpStopPlay:
		return &PlayRequest{}
	case OpBroadcast, OpBarrage:
		return &MessageRequest{}
	case OpCustomCommand:
		return &CustomCommandRequest{}
	case OpSetRoomExtraInfo:
		return &RoomExtraInfoRequest{}
	case OpSetRoomAttributes, OpDeleteRoomAttributes:
		return &RoomAttributesRequest{}
	case OpRenewToken:
		return &TokenRequest{}
	case OpResume:
		return &ResumeRequest{}
	}
	if p := newRoomStatePayload(op); p != nil {
		return p
	}
	return NewMediaPayload(op)
}
