package domain

import (
	"fmt"
	"slices"
)

// Every enum that is stored in an event or sent on the wire is a closed set of
// strings with a parse function. Numbers are never stored: a reordering of
// constants must not change the meaning of an old event.

func parseEnum[T ~string](what, s string, all []T) (T, error) {
	if slices.Contains(all, T(s)) {
		return T(s), nil
	}
	return "", fmt.Errorf("unknown %s %q", what, s)
}

// RoomMode is a session's room mode, chosen before its first login.
type RoomMode string

// Room modes (ZEGO Express ZegoRoomMode).
const (
	SingleRoom RoomMode = "single"
	MultiRoom  RoomMode = "multi"
)

// RoomModes lists every room mode.
func RoomModes() []RoomMode { return []RoomMode{SingleRoom, MultiRoom} }

// ParseRoomMode parses a stored or wire room mode.
func ParseRoomMode(s string) (RoomMode, error) { return parseEnum("room mode", s, RoomModes()) }

// Role is a member's role in one room (TRTC live mode). A user may be an
// anchor in one room and audience in another.
type Role string

// Roles.
const (
	Anchor   Role = "anchor"
	Audience Role = "audience"
)

// Roles lists every role.
func Roles() []Role { return []Role{Anchor, Audience} }

// ParseRole parses a stored or wire role.
func ParseRole(s string) (Role, error) { return parseEnum("role", s, Roles()) }

// Via says which operation brought a member into a room. ZEGO's loginRoom
// and ZIM's createRoom/joinRoom/enterRoom are operations on the same room.
type Via string

// Join operations.
const (
	ViaLogin  Via = "login"
	ViaCreate Via = "create"
	ViaJoin   Via = "join"
	ViaEnter  Via = "enter"
	ViaSwitch Via = "switch"
)

// Vias lists every join operation.
func Vias() []Via { return []Via{ViaLogin, ViaCreate, ViaJoin, ViaEnter, ViaSwitch} }

// ParseVia parses a stored join operation.
func ParseVia(s string) (Via, error) { return parseEnum("join operation", s, Vias()) }

// Reason says why a member left, a stream stopped or a claim was released.
type Reason string

// Reasons. A room-side removal (kick, timeout, destroy) and a client's own
// leave are told apart because clients react differently to each.
const (
	ReasonStopped              Reason = "stopped"                // the publisher stopped the stream
	ReasonLogout               Reason = "logout"                 // ZEGO logoutRoom
	ReasonLeave                Reason = "leave"                  // ZIM leaveRoom / leaveAllRoom
	ReasonSwitch               Reason = "switch"                 // the leaving half of a switch
	ReasonKickedByBackend      Reason = "kicked_by_backend"      // the admin API kicked the user
	ReasonKickedDuplicateLogin Reason = "kicked_duplicate_login" // the same user logged in from another session
	ReasonHeartbeatTimeout     Reason = "heartbeat_timeout"      // the session stopped talking
	ReasonRoomDestroyed        Reason = "room_destroyed"         // the room was destroyed
	ReasonLoginFailed          Reason = "login_failed"           // a claimed login could not complete
	ReasonClaimVoided          Reason = "claim_voided"           // the room refused the claim for good
	ReasonMediaNodeLost        Reason = "media_node_lost"        // the media node hosting the stream died
)

// Reasons lists every reason.
func Reasons() []Reason {
	return []Reason{ReasonStopped, ReasonLogout, ReasonLeave, ReasonSwitch, ReasonKickedByBackend,
		ReasonKickedDuplicateLogin, ReasonHeartbeatTimeout, ReasonRoomDestroyed, ReasonLoginFailed, ReasonClaimVoided,
		ReasonMediaNodeLost}
}

// ParseReason parses a stored reason.
func ParseReason(s string) (Reason, error) { return parseEnum("reason", s, Reasons()) }

// DestroyReason says why a room was destroyed.
type DestroyReason string

// Destroy reasons.
const (
	DestroyEmpty   DestroyReason = "empty"   // the last member left and the destroy delay ran out
	DestroyBackend DestroyReason = "backend" // the admin API destroyed it
)

// DestroyReasons lists every destroy reason.
func DestroyReasons() []DestroyReason { return []DestroyReason{DestroyEmpty, DestroyBackend} }

// ParseDestroyReason parses a stored destroy reason.
func ParseDestroyReason(s string) (DestroyReason, error) {
	return parseEnum("destroy reason", s, DestroyReasons())
}

// CreatePolicy says whether a join may, must or must not create the room.
type CreatePolicy string

// Create policies: ZEGO loginRoom and ZIM enterRoom create when missing, ZIM
// createRoom must create, ZIM joinRoom must find the room.
const (
	CreateIfMissing CreatePolicy = "if_missing"
	CreateRequired  CreatePolicy = "required"
	CreateNever     CreatePolicy = "never"
)

// CreatePolicies lists every create policy.
func CreatePolicies() []CreatePolicy {
	return []CreatePolicy{CreateIfMissing, CreateRequired, CreateNever}
}

// ParseCreatePolicy parses a create policy.
func ParseCreatePolicy(s string) (CreatePolicy, error) {
	return parseEnum("create policy", s, CreatePolicies())
}

// Kind is the kind of an aggregate; each kind has its own subjects.
type Kind string

// Aggregate kinds.
const (
	KindRoom    Kind = "room"
	KindSession Kind = "session"
	KindStream  Kind = "stream"
)

// Kinds lists every aggregate kind.
func Kinds() []Kind { return []Kind{KindRoom, KindSession, KindStream} }

// ParseKind parses an aggregate kind.
func ParseKind(s string) (Kind, error) { return parseEnum("aggregate kind", s, Kinds()) }

// ConnState is what a client sees of its connection to one room
// (ZEGO onRoomStateChanged reasons).
type ConnState string

// Connection states.
const (
	StateLogining        ConnState = "Logining"
	StateLogined         ConnState = "Logined"
	StateLoginFailed     ConnState = "LoginFailed"
	StateReconnecting    ConnState = "Reconnecting"
	StateReconnected     ConnState = "Reconnected"
	StateReconnectFailed ConnState = "ReconnectFailed"
	StateKickOut         ConnState = "KickOut"
	StateLogout          ConnState = "Logout"
	StateLogoutFailed    ConnState = "LogoutFailed"
)

// ConnStates lists every connection state.
func ConnStates() []ConnState {
	return []ConnState{StateLogining, StateLogined, StateLoginFailed, StateReconnecting, StateReconnected,
		StateReconnectFailed, StateKickOut, StateLogout, StateLogoutFailed}
}

// ParseConnState parses a connection state.
func ParseConnState(s string) (ConnState, error) {
	return parseEnum("connection state", s, ConnStates())
}
