package client

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/protocol"
)

// Error is a failed operation: a refusal from the server (the reply's code,
// name and message), or a failure the SDK reports with the code a ZEGO app
// expects (a request timeout, a connection lost before the reply, a
// reconnect window that ran out).
//
// It matches the domain and protocol sentinels of the same code with
// errors.Is (errors.Is(err, domain.ErrTokenInvalid)), exactly as
// *domain.Error does, and errors.As can also extract a *domain.Error from it
// (Unwrap returns one with the same code, name and message).
type Error struct {
	// Op is the operation that failed ("" when the error is not about one).
	Op      protocol.Op
	Code    domain.Code
	Name    string
	Message string
	// Data is what the server attached to the refusal (see VersionConflict
	// and ErrorKeys), as JSON; nil when it attached nothing.
	Data json.RawMessage

	// local marks errors the SDK made up rather than received: the
	// reconnection logic retries those but not the server's refusals.
	local bool
	// lost marks a request sent on a connection lost before its reply;
	// resumes is the client's count of resumes when it was sent.
	lost    bool
	resumes uint64
}

func (e *Error) Error() string {
	s := "roomlog: "
	if e.Op != "" {
		s += string(e.Op) + ": "
	}
	s += fmt.Sprintf("%s (%d)", e.Name, e.Code)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is reports whether target is a *domain.Error or an *Error with the same code.
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case *domain.Error:
		return t != nil && t.Code == e.Code
	case *Error:
		return t != nil && t.Code == e.Code
	}
	return false
}

// Unwrap returns the error as a *domain.Error, for code that uses errors.As
// with the server's error type.
func (e *Error) Unwrap() error {
	return &domain.Error{Code: e.Code, Name: e.Name, Message: e.Message}
}

// ErrClosed is returned by every method once Close was called.
var ErrClosed = errors.New("roomlog: the client is closed")

// serverError is the error of a reply with a non-zero code.
func serverError(op protocol.Op, f *protocol.Frame) *Error {
	return &Error{Op: op, Code: f.Code, Name: f.Error, Message: f.Message, Data: f.Data}
}

// localError builds an SDK-side error from a sentinel's code and name.
func localError(op protocol.Op, sentinel *domain.Error, format string, args ...any) *Error {
	return &Error{Op: op, Code: sentinel.Code, Name: sentinel.Name, Message: fmt.Sprintf(format, args...), local: true}
}

// isLocal reports whether err was made up by the SDK (the connection failed,
// a request timed out) rather than sent by the server.
func isLocal(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.local
	}
	return true
}

// errConnLost fails a request that was sent but whose reply cannot come: the
// connection it went out on is gone. Whether it took effect is unknown.
func errConnLost(op protocol.Op) *Error {
	e := localError(op, domain.ErrReconnecting,
		"the connection was lost before the reply; the operation may or may not have taken effect")
	e.lost = true
	return e
}

// isConnLost reports whether err is errConnLost's.
func isConnLost(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.lost
}

// lostAfter reports whether err, errConnLost's, is of an attempt sent
// after (or at) the resume numbered resumes: one before was answered by
// that resume.
func lostAfter(err error, resumes uint64) bool {
	var e *Error
	return errors.As(err, &e) && e.resumes >= resumes
}

// errNotSent is returned by a link that died before the request left: the
// request is sent again on the next connection.
var errNotSent = localError("", domain.ErrReconnecting, "the connection was lost before the request was sent")

// errReconnectFailed is what every method returns once the reconnect window
// ran out (ZEGO ReconnectFailed).
var errReconnectFailed = localError("", domain.ErrTimeout,
	"the connection could not be restored within the reconnect window; dial again and log in")

// errReplaced is what every method returns once the server said the session
// was resumed on another connection.
var errReplaced = localError("", protocol.ErrSessionReplaced, "%s", protocol.ErrSessionReplaced.Message)

// errorAs is errors.As for the SDK's own *Error.
func errorAs(err error, target **Error) bool { return errors.As(err, target) }
