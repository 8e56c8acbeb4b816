package protocol

import (
	"errors"

	"github.com/roomlog/roomlog/domain"
)

// Transport errors (19060xx). The domain's refusals keep their own codes.
var (
	ErrMalformedRequest = &domain.Error{Code: 1906002, Name: "malformed_request", Message: "the frame is not a valid request"}
	ErrUnknownOperation = &domain.Error{Code: 1906003, Name: "unknown_operation", Message: "the operation does not exist"}
	ErrFrameTooLarge    = &domain.Error{Code: 1906004, Name: "frame_too_large", Message: "the frame is larger than allowed"}
	ErrTooManyRequests  = &domain.Error{Code: 1906005, Name: "too_many_requests", Message: "the connection sends requests faster than allowed"}
	ErrSlowConsumer     = &domain.Error{Code: 1906006, Name: "slow_consumer", Message: "the connection did not read its events fast enough"}
	ErrUnauthorized     = &domain.Error{Code: 1906007, Name: "unauthorized", Message: "the admin credentials are missing or invalid"}
	ErrShuttingDown     = &domain.Error{Code: 1906008, Name: "shutting_down", Message: "the server is shutting down; reconnect"}
	ErrSessionReplaced  = &domain.Error{Code: 1906009, Name: "session_replaced", Message: "the session was resumed on another connection"}
	ErrResumeFailed     = &domain.Error{Code: 1906010, Name: "resume_failed", Message: "the session cannot be resumed; log in again"}
	ErrNotFound         = &domain.Error{Code: 1906011, Name: "not_found", Message: "no such resource"}
	ErrLoginTimeout     = &domain.Error{Code: 1906012, Name: "login_timeout", Message: "the connection did not log in or resume in time"}
	ErrSilent           = &domain.Error{Code: 1906013, Name: "heartbeat_timeout", Message: "the client sent nothing for longer than the heartbeat timeout"}
	ErrPingTimeout      = &domain.Error{Code: 1906014, Name: "ping_timeout", Message: "the client did not answer a ping"}
	// ErrHistoryRemoved is the admin API's answer (HTTP 410) for the state
	// or a diff of a room whose first events retention removed: it cannot
	// be rebuilt, now or later, so a client must not retry as after 1906098.
	ErrHistoryRemoved = &domain.Error{Code: 1906015, Name: "history_removed", Message: "the start of the history was removed by retention"}
	// ErrHistoryBroken is the admin API's answer (HTTP 500) for a room
	// whose stored history fails its hash chain: it was changed outside
	// the engine. Retrying gives the same answer; roomctl verify names
	// what was changed.
	ErrHistoryBroken = &domain.Error{Code: 1906016, Name: "history_broken", Message: "the room's history fails its hash chain: it was changed outside the engine"}
)

// Errors lists the transport's errors.
func Errors() []*domain.Error {
	return []*domain.Error{ErrMalformedRequest, ErrUnknownOperation, ErrFrameTooLarge, ErrTooManyRequests,
		ErrSlowConsumer, ErrUnauthorized, ErrShuttingDown, ErrSessionReplaced, ErrResumeFailed, ErrNotFound,
		ErrLoginTimeout, ErrSilent, ErrPingTimeout, ErrHistoryRemoved, ErrHistoryBroken}
}

// ReplyTo builds the reply to request id from a result or an error.
func ReplyTo(id string, data any, err error) Reply {
	if err == nil {
		return Reply{Type: TypeReply, ID: id, Data: data}
	}
	code, name := domain.CodeOf(err)
	msg := err.Error()
	var de *domain.Error
	if errors.As(err, &de) {
		msg = de.Message
		if de.Detail != "" && !serverSide(de.Code) {
			msg += ": " + de.Detail
		}
		// A refusal may carry data a client acts on (the current values
		// behind a version conflict, the keys it may not touch).
		data = de.Data
	} else {
		data = nil
		if serverSide(code) {
			msg = domain.ErrInternal.Message
		}
	}
	return Reply{Type: TypeReply, ID: id, Code: code, Error: name, Message: msg, Data: data}
}

// serverSide reports the codes of failures on the server's side (the log
// failed, was unreachable or slow). Their details name internal subjects,
// streams and addresses, so a reply carries only the code's message; the
// details are the server's log's.
func serverSide(code domain.Code) bool {
	return code == domain.ErrInternal.Code || code == domain.ErrUnavailable.Code || code == domain.ErrTimeout.Code
}
