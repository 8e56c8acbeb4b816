package eventstore

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The answers that mean "JetStream cannot serve this now" are unavailable
// (callers retry them) from either of nats.go's JetStream APIs: the KV watch
// goes through the older one, and its 503s once stopped presence for good.
func TestClassifyKnowsUnavailableFromBothJetStreamAPIs(t *testing.T) {
	for name, err := range map[string]error{
		"jetstream 503":             &jetstream.APIError{Code: 503, ErrorCode: 10008},
		"legacy 503":                &nats.APIError{Code: 503, ErrorCode: 10008},
		"legacy insufficient":       &nats.APIError{Code: 503, ErrorCode: 10023},
		"legacy last seq not ready": &nats.APIError{Code: 400, ErrorCode: nats.ErrorCode(codeLastSeqNotReady)},
		"deadline":                  errors.Join(errors.New("request"), nats.ErrTimeout),
	} {
		if got := classify("op", err); !errors.Is(got, ErrUnavailable) {
			t.Errorf("%s: %v is not ErrUnavailable", name, got)
		}
	}
	if got := classify("op", &nats.APIError{Code: 404, ErrorCode: 10059}); errors.Is(got, ErrUnavailable) {
		t.Errorf("stream not found classified unavailable: %v", got)
	}
}
