package domain

import (
	"errors"
	"fmt"
)

// Code is a numeric error code as sent on the wire. Apps ported from the ZEGO
// and ZIM SDKs branch on these numbers, so the SDK's own codes are used where
// SEMANTICS.md names one; the rest are roomlog's own, in the 190xxxx range so
// they never collide with a ZEGO code.
type Code int

// Error is a refusal: a numeric code for the wire, a stable name for programs
// and logs, and a human message. It matches its sentinel with errors.Is.
type Error struct {
	Code    Code
	Name    string
	Message string
	// Detail is optional context for this occurrence (which field, which limit).
	Detail string
	// Data is optional structured context a client can act on (the current
	// values behind a version conflict, the keys a partial write skipped); a
	// protocol reply carries it as its data.
	Data any
	// args marks an occurrence decided from the command's arguments alone
	// (OfArguments).
	args bool
}

func (e *Error) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%s (%d): %s: %s", e.Name, e.Code, e.Message, e.Detail)
	}
	return fmt.Sprintf("%s (%d): %s", e.Name, e.Code, e.Message)
}

// Is makes errors.Is(err, ErrX) match any occurrence of the same code.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

// With returns a copy of the sentinel carrying detail for this occurrence.
func (e *Error) With(format string, args ...any) *Error {
	c := *e
	c.Detail = fmt.Sprintf(format, args...)
	return &c
}

// WithData returns a copy of e carrying data for this occurrence.
func (e *Error) WithData(data any) *Error {
	c := *e
	c.Data = data
	return &c
}

// OfArguments returns a copy of e marked as decided from the command's
// arguments alone (a key too long): no change of state by another writer
// could have let it pass, so the engine does not look at the log again
// before it answers, as it does for a code that is also decided from state
// (a limit on what a room holds).
func (e *Error) OfArguments() *Error {
	c := *e
	c.args = true
	return &c
}

// FromArguments reports whether e was decided from the arguments alone.
func (e *Error) FromArguments() bool { return e.args }

func newError(code Code, name, msg string) *Error {
	return &Error{Code: code, Name: name, Message: msg}
}

// Codes named by the ZEGO Express documentation (SEMANTICS.md sections 1–6).
var (
	ErrRoomModeAfterLogin  = newError(1001020, "room_mode_after_login", "the room mode must be chosen before the first login")
	ErrUserMismatch        = newError(1002018, "user_mismatch", "every login of one session must carry the same user ID and user name")
	ErrNotInRoom           = newError(1002002, "not_in_room", "the session is not logged in to this room")
	ErrRoomFull            = newError(1002034, "room_full", "the room has reached its maximum member count")
	ErrTokenInvalid        = newError(1002033, "token_invalid", "the token is missing, malformed, expired, or not for this app, user or room")
	ErrMultiRoomNotAllowed = newError(1002036, "multi_room_not_allowed", "multi-room mode is not enabled for this app")
	ErrTooManyRooms        = newError(1002037, "too_many_rooms", "the session is already logged in to the maximum number of rooms")
	ErrKickedDuplicate     = newError(1002050, "kicked_duplicate_login", "the same user logged in from another session")
	ErrReconnecting        = newError(1002051, "reconnecting", "the connection was lost; the client is reconnecting")
	ErrTimeout             = newError(1002053, "timeout", "the operation could not complete in time")
	ErrKickedByBackend     = newError(1002055, "kicked_by_backend", "the backend kicked the user out of the room")
	ErrPublishRoomRequired = newError(1003070, "publish_room_required", "in multi-room mode a room ID is required to publish")
	ErrPlayRoomRequired    = newError(1004070, "play_room_required", "in multi-room mode a room ID is required to play, unless the stream is published in one of the session's rooms")
)

// roomlog's own codes: rooms and sessions (19020xx).
var (
	ErrAlreadyInAnotherRoom = newError(1902001, "already_in_another_room", "in single-room mode the session is already in another room; use switchRoom")
	ErrRoomNotExist         = newError(1902002, "room_not_exist", "the room does not exist")
	ErrRoomAlreadyExists    = newError(1902003, "room_already_exists", "the room already exists")
	ErrAttributesInvalid    = newError(1902004, "room_attributes_invalid", "the room attributes exceed their limits")
	ErrDestroyDelayInvalid  = newError(1902005, "destroy_delay_invalid", "the room destroy delay must be between 0 and 10800 seconds")
	ErrNotLoggedIn          = newError(1902006, "not_logged_in", "the session is not logged in to a room that allows this")
	ErrUserNotInRoom        = newError(1902007, "user_not_in_room", "the user is not a member of the room")
	ErrAlreadyInRoom        = newError(1902008, "already_in_room", "the session is already in the target room")
	ErrSessionNotOpen       = newError(1902009, "session_not_open", "the session has never logged in")
	ErrAttributeOwned       = newError(1902010, "room_attribute_owned", "the room attribute belongs to another member; set force to overwrite or delete it")
	ErrMemberAttrsInvalid   = newError(1902011, "member_attributes_invalid", "the room member attributes exceed their limits")
)

// roomlog's own codes: streams (19030xx).
var (
	ErrStreamIDInUse        = newError(1903001, "stream_id_in_use", "another publisher already publishes this stream ID in this app")
	ErrPublishNotAllowed    = newError(1903002, "publish_not_allowed", "the member is audience, or its token does not allow publishing")
	ErrStreamNotFound       = newError(1903003, "stream_not_found", "the stream is not published")
	ErrNotStreamPublisher   = newError(1903004, "not_stream_publisher", "only the stream's publisher may do this")
	ErrStreamExtraInfoLarge = newError(1903005, "stream_extra_info_too_large", "the stream extra info is too large")
	ErrTooManyStreams       = newError(1903006, "too_many_streams", "the member already publishes as many streams in this room as allowed")
	ErrTooManyPlays         = newError(1903007, "too_many_plays", "the member already plays as many streams in this room as allowed")
)

// roomlog's own codes: messages and room info (19050xx).
var (
	ErrMessageTooLarge   = newError(1905001, "message_too_large", "the message body is empty or larger than allowed")
	ErrRateLimited       = newError(1905002, "rate_limited", "the room's rate limit for this kind of message is exhausted; retry later")
	ErrExtraInfoInvalid  = newError(1905003, "room_extra_info_invalid", "the room extra info key is empty, the key or value is too large, or there are too many keys")
	ErrRecipientsInvalid = newError(1905004, "recipients_invalid", "the custom command's recipient list is invalid")
	ErrVersionConflict   = newError(1905005, "version_conflict", "the value changed since the version the write was based on; the reply's data holds the current values")
	ErrInvalidArgument   = newError(1906001, "invalid_argument", "an argument is missing or malformed")
	ErrInternal          = newError(1906099, "internal_error", "the server failed to handle the request")
	ErrUnavailable       = newError(1906098, "unavailable", "the room log is unavailable; retry later")
)

// Errors lists every sentinel, for documentation and tests.
func Errors() []*Error {
	return []*Error{
		ErrRoomModeAfterLogin, ErrUserMismatch, ErrNotInRoom, ErrRoomFull, ErrTokenInvalid, ErrMultiRoomNotAllowed,
		ErrTooManyRooms, ErrKickedDuplicate, ErrReconnecting, ErrTimeout, ErrKickedByBackend,
		ErrPublishRoomRequired, ErrPlayRoomRequired,
		ErrAlreadyInAnotherRoom, ErrRoomNotExist, ErrRoomAlreadyExists, ErrAttributesInvalid,
		ErrDestroyDelayInvalid, ErrNotLoggedIn, ErrUserNotInRoom, ErrAlreadyInRoom, ErrSessionNotOpen,
		ErrAttributeOwned, ErrMemberAttrsInvalid,
		ErrStreamIDInUse, ErrPublishNotAllowed, ErrStreamNotFound, ErrNotStreamPublisher, ErrStreamExtraInfoLarge,
		ErrMessageTooLarge, ErrRateLimited, ErrExtraInfoInvalid, ErrRecipientsInvalid, ErrVersionConflict,
		ErrInvalidArgument, ErrInternal, ErrUnavailable,
	}
}

// CodeOf returns the wire code and name of err: 0 and "" for nil, the coded
// error's own code, or ErrInternal's for anything else.
func CodeOf(err error) (Code, string) {
	if err == nil {
		return 0, ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code, e.Name
	}
	return ErrInternal.Code, ErrInternal.Name
}
