package eventstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Sentinel errors. Match them with errors.Is; the errors returned by this
// package wrap them together with the underlying nats.go error, so the
// original cause stays reachable with errors.Is/errors.As too.
var (
	// ErrConflict means the subject has moved on since the version the caller
	// decided from: the Expected sequence of an append was stale. The caller
	// must reload (catch up) and decide again. Returned as a *ConflictError.
	ErrConflict = errors.New("eventstore: conflict: the subject has moved on")

	// ErrUnavailable means the log could not be reached or did not answer in
	// time: no responders, a timeout, a closed or reconnecting connection, a
	// server reporting JetStream temporarily unavailable. The outcome of an
	// append that failed this way is unknown: it may have been stored. Retry
	// it with the same MsgID and Expected: if it had been stored, the retry
	// gets ErrConflict (the server checks the expected sequence before
	// de-duplicating), and the caller finds its own MsgID on reload.
	ErrUnavailable = errors.New("eventstore: log unavailable")

	// ErrTooLarge means a message exceeds Config.MaxMsgSize (or the server's
	// maximum payload).
	ErrTooLarge = errors.New("eventstore: message too large")

	// ErrInvalidMessage means Append was given a message it cannot send: a
	// subject outside the log's prefix or not a valid literal NATS subject,
	// or an empty MsgID.
	ErrInvalidMessage = errors.New("eventstore: invalid message")

	// ErrInvalidConfig marks every problem Open finds in a Config.
	ErrInvalidConfig = errors.New("eventstore: invalid config")

	// ErrLocked means the embedded server's data folder is held by another
	// process (another roomd, or roomctl -data): two servers writing one
	// folder would corrupt the log, so the second one refuses to start.
	ErrLocked = errors.New("eventstore: data folder locked")

	// ErrInvalidSubject is returned by ParseSubject and ParseToken for input
	// that was not produced by Subject or Token.
	ErrInvalidSubject = errors.New("eventstore: invalid subject")
)

// ConflictError is the error an append gets when its Expected sequence is
// stale. It unwraps to ErrConflict and to the server's *jetstream.APIError
// (code 10071 on a single server, 10164 on a replicated stream).
type ConflictError struct {
	// Subject is the subject the append was for.
	Subject string
	// Expected is the sequence the caller expected to be last on Subject.
	Expected uint64
	// Actual is the sequence of the last message on Subject as the server
	// reported it. Only a single server reports it (code 10071); a
	// replicated stream does not (code 10164) and Actual is then 0. Since 0
	// is also the honest answer for an empty subject, treat Actual as a
	// hint: reload the subject to learn its state.
	Actual uint64

	api *jetstream.APIError
}

// Error implements error.
func (e *ConflictError) Error() string {
	if e.Actual != 0 {
		return fmt.Sprintf("eventstore: conflict on %s: expected last sequence %d, log has %d", e.Subject, e.Expected, e.Actual)
	}
	return fmt.Sprintf("eventstore: conflict on %s: expected last sequence %d, log has moved on", e.Subject, e.Expected)
}

// Unwrap returns ErrConflict and the server's API error, so both
// errors.Is(err, ErrConflict) and errors.As(err, &apiErr) work.
func (e *ConflictError) Unwrap() []error {
	if e.api == nil {
		return []error{ErrConflict}
	}
	return []error{ErrConflict, e.api}
}

// Error codes of the JetStream API that this package interprets, from
// nats-server's server/errors.json.
const (
	// codeWrongLastSeq is JSStreamWrongLastSequenceErrF ("wrong last
	// sequence: {seq}"), answered by a single server.
	codeWrongLastSeq jetstream.ErrorCode = 10071
	// codeWrongLastSeqConst is JSStreamWrongLastSequenceConstantErr ("wrong
	// last sequence"), answered by replicated streams and batches.
	codeWrongLastSeqConst jetstream.ErrorCode = 10164
	// codeMsgTooLarge is JSStreamMessageExceedsMaximumErr.
	codeMsgTooLarge jetstream.ErrorCode = 10054
	// codeDupInProcess is JSStreamDuplicateMessageConflict ("duplicate
	// message id is in process"): transient, the first copy is still being
	// stored; a retry gets a clear answer.
	codeDupInProcess jetstream.ErrorCode = 10158
	// codeLastSeqNotReady is JSStreamExpectedLastSeqPerSubjectNotReady:
	// transient, a new stream leader is still loading its state.
	codeLastSeqNotReady jetstream.ErrorCode = 10163
	// httpUnavailable is the HTTP-like status of the API errors that mean
	// "JetStream cannot serve this right now" (cluster not available, not
	// enabled, insufficient resources, store failed).
	httpUnavailable = 503
)

// isUnavailable reports whether err is a client-side error meaning the log
// could not be reached or did not answer.
func isUnavailable(err error) bool {
	for _, u := range [...]error{
		context.DeadlineExceeded,
		nats.ErrTimeout,
		nats.ErrNoResponders,
		nats.ErrNoServers,
		nats.ErrConnectionClosed,
		nats.ErrConnectionDraining,
		nats.ErrConnectionReconnecting,
		nats.ErrDisconnected,
		jetstream.ErrNoStreamResponse,
		jetstream.ErrConnectionClosed,
		jetstream.ErrServerShutdown,
		jetstream.ErrAsyncPublishTimeout,
		jetstream.ErrTooManyStalledMsgs,
		jetstream.ErrJetStreamPublisherClosed,
		jetstream.ErrNoHeartbeat,
	} {
		if errors.Is(err, u) {
			return true
		}
	}
	return false
}

// classify wraps a nats.go error in the sentinel that says what the caller
// can do about it. op names the operation for the message. Conflicts are
// handled by appendErr, which knows the subject.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch {
		case api.ErrorCode == codeMsgTooLarge:
			return fmt.Errorf("%w: %s: %w", ErrTooLarge, op, err)
		case api.ErrorCode == codeDupInProcess, api.ErrorCode == codeLastSeqNotReady, api.Code == httpUnavailable:
			return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
		}
		return fmt.Errorf("eventstore: %s: %w", op, err)
	}
	// The KV watch goes through nats.go's older JetStream API, whose
	// errors are its own type.
	var legacy *nats.APIError
	if errors.As(err, &legacy) && (legacy.Code == httpUnavailable ||
		legacy.ErrorCode == nats.ErrorCode(codeDupInProcess) || legacy.ErrorCode == nats.ErrorCode(codeLastSeqNotReady)) {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		return fmt.Errorf("%w: %s: %w", ErrTooLarge, op, err)
	}
	if isUnavailable(err) {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	return fmt.Errorf("eventstore: %s: %w", op, err)
}

// appendErr maps the error of an append of m: a wrong-last-sequence answer
// becomes a *ConflictError, anything else goes through classify.
func appendErr(m Message, err error) error {
	var api *jetstream.APIError
	if errors.As(err, &api) && (api.ErrorCode == codeWrongLastSeq || api.ErrorCode == codeWrongLastSeqConst) {
		return &ConflictError{Subject: m.Subject, Expected: m.Expected, Actual: actualSeq(api), api: api}
	}
	return classify("append to "+m.Subject, err)
}

// actualSeq extracts the sequence a 10071 answer carries in its description
// ("wrong last sequence: 42"). The error kind is decided by the code, never
// by this text; the text is only mined for the number, and a description
// without one yields 0 (unknown).
func actualSeq(api *jetstream.APIError) uint64 {
	if api.ErrorCode != codeWrongLastSeq {
		return 0
	}
	i := strings.LastIndexByte(api.Description, ':')
	if i < 0 {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSpace(api.Description[i+1:]), 10, 64)
	if err != nil {
		return 0
	}
	return n
}
