package tests

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/protocol"
)

// errorLog keeps what a node logs at ERROR, and passes everything to the
// test's usual logger.
type errorLog struct {
	slog.Handler
	mu     *sync.Mutex
	errors *[]string
}

func newErrorLog(t *testing.T) (*slog.Logger, func() []string) {
	var mu sync.Mutex
	var errs []string
	h := errorLog{Handler: estest.Logger(t).Handler(), mu: &mu, errors: &errs}
	return slog.New(h), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), errs...)
	}
}

func (h errorLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.mu.Lock()
		*h.errors = append(*h.errors, r.Message)
		h.mu.Unlock()
	}
	return h.Handler.Handle(ctx, r)
}

func (h errorLog) WithAttrs(as []slog.Attr) slog.Handler {
	return errorLog{Handler: h.Handler.WithAttrs(as), mu: h.mu, errors: h.errors}
}

func (h errorLog) WithGroup(g string) slog.Handler {
	return errorLog{Handler: h.Handler.WithGroup(g), mu: h.mu, errors: h.errors}
}

// Every ID a request names is checked before anything is read from or
// written to the log: an empty, missing or oversized room or stream ID, or
// text that is not valid UTF-8, gets 1906001 invalid_argument, never an
// internal error naming a NATS subject, and nothing is logged as an error.
// The connection goes on working.
func TestBadArgumentsAreRefusedBeforeTheStore(t *testing.T) {
	t.Parallel()
	logger, errorsLogged := newErrorLog(t)
	n := clienttest.StartNode(t, clienttest.NodeOptions{Logger: logger})
	m := wire.Dial(t, n.HTTPAddr())
	m.Login("r1", "mallory", clienttest.Token(t, n, "mallory"))

	long := func(n int) string { return strings.Repeat("x", n) }
	cases := []struct{ name, op, data string }{
		{"login to an empty room", "login", `{"room":"","user":{"id":"mallory"}}`},
		{"login without a room", "login", `{"user":{"id":"mallory"}}`},
		{"login to a room ID over 128 bytes", "login", `{"room":"` + long(129) + `","user":{"id":"mallory"}}`},
		{"join an empty room", "join_room", `{"room":""}`},
		{"join without a room", "join_room", `{}`},
		{"enter a room without an ID", "enter_room", `{"room":{"name":"x"}}`},
		{"create a room without an ID", "create_room", `{"room":{"id":""}}`},
		{"leave an empty room", "leave_room", `{"room":""}`},
		{"switch to an empty room", "switch_room", `{"from":"r1","to":""}`},
		{"switch from an empty room", "switch_room", `{"from":"","to":"r2"}`},
		{"broadcast to an empty room", "broadcast", `{"room":"","message":"hi"}`},
		{"broadcast without a room", "broadcast", `{"message":"hi"}`},
		{"broadcast to a room ID over 128 bytes", "broadcast", `{"room":"` + long(129) + `","message":"hi"}`},
		{"barrage to an empty room", "barrage", `{"room":"","message":"hi"}`},
		{"custom command to an empty room", "custom_command", `{"room":"","command":"hi"}`},
		{"extra info of an empty room", "set_room_extra_info", `{"room":"","key":"k","value":"v"}`},
		{"attributes of an empty room", "set_room_attributes", `{"room":"","attributes":{"k":"v"}}`},
		{"delete attributes of an empty room", "delete_room_attributes", `{"room":"","keys":["k"]}`},
		{"publish an empty stream ID", "publish", `{"stream":"","room":"r1"}`},
		{"publish without a stream ID", "publish", `{"room":"r1"}`},
		{"publish a stream ID over 256 bytes", "publish", `{"stream":"` + long(257) + `","room":"r1"}`},
		{"publish into an empty room", "publish", `{"stream":"cam","room":"` + long(129) + `"}`},
		{"stop publishing an empty stream ID", "stop_publish", `{"stream":""}`},
		{"extra info of an empty stream ID", "set_stream_extra_info", `{"stream":"","extra_info":"x"}`},
		{"play an empty stream ID", "play", `{"stream":"","room":"r1"}`},
		{"stop playing an empty stream ID", "stop_play", `{"stream":""}`},
		{"a message that is not UTF-8", "broadcast", "{\"room\":\"r1\",\"message\":\"caf\xe9\"}"},
		{"a room ID that is not UTF-8", "broadcast", "{\"room\":\"r\xff\",\"message\":\"hi\"}"},
		{"a lone surrogate in a message", "broadcast", `{"room":"r1","message":"\ud800"}`},
		{"a lone surrogate in a room ID", "join_room", `{"room":"\udfff"}`},
	}
	for i, c := range cases {
		id := "bad" + string(rune('a'+i))
		m.SendRaw(`{"id":"` + id + `","op":"` + c.op + `","data":` + c.data + `}`)
		f := m.Reply(id)
		if f.Code != domain.ErrInvalidArgument.Code {
			t.Errorf("%s: %d %s %q, want %d invalid_argument", c.name, f.Code, f.Error, f.Message, domain.ErrInvalidArgument.Code)
		}
		for _, internal := range []string{"roomlog.", "$JS", "subject", "nats"} {
			if strings.Contains(strings.ToLower(f.Message), strings.ToLower(internal)) {
				t.Errorf("%s: the reply %q exposes %q", c.name, f.Message, internal)
			}
		}
	}
	// The connection still works, and the text sent was never altered into
	// something stored.
	m.Do("ok", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "café"})
	if errs := errorsLogged(); len(errs) > 0 {
		t.Errorf("refusals logged at ERROR: %q", errs)
	}
}
