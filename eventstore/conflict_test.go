package eventstore

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// What the conformance suite leaves to the implementation: on JetStream a
// conflict unwraps to the server's wrong-last-sequence error (10071 from a
// single server, 10164 from a replicated stream).
func TestAConflictUnwrapsToJetStreamsWrongLastSequence(t *testing.T) {
	l := openEmbedded(t, nil)
	ctx := testCtx(t)
	subj := l.Subject("app", "room", "r1")
	appendChain(t, l, subj, 2, 0)
	_, err := l.Append(ctx, Message{Subject: subj, MsgID: "late", Expected: 0, Data: []byte("x")})
	var api *jetstream.APIError
	if !errors.As(err, &api) || (api.ErrorCode != 10071 && api.ErrorCode != 10164) {
		t.Fatalf("err does not unwrap to the wrong-last-sequence APIError: %v", err)
	}
	if !errors.Is(err, ErrConflict) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want a conflict that is not unavailability", err)
	}
}
