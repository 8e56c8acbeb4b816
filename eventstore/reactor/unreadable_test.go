package reactor_test

import (
	"context"
	"testing"
	"time"

	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/eventstore/reactor"
)

// A delivery whose JetStream metadata cannot be read (a message on the
// reactor's pull inbox without a reply subject) is passed over: counted as
// malformed, not as a delivery under way for ever (stopping would then wait
// for it), and it does not take the process down. Before, watermill-nats
// used the nil message the unmarshaler returned with its error: a panic.
func TestAMessageThatIsNotADeliveryIsPassedOver(t *testing.T) {
	if !estest.InChild(t) {
		return
	}
	log := estest.Open(t, nil)
	e := estest.Engine(t, log, nil, nil)
	// A timeout longer than the test's wait: stopping waits Timeout + 5 s
	// for the deliveries it counts under way.
	const timeout = 20 * time.Second
	r, err := reactor.New(reactor.Config{Engine: e, Log: log, Logger: estest.Logger(t), Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-r.Running():
	case <-time.After(30 * time.Second):
		t.Fatal("the reactor did not start")
	}
	estest.SendToPullInbox(t, log, "roomlog-reactor", []byte("not a JetStream delivery"))
	estest.Eventually(t, "the message passed over", func() bool { return r.Malformed() == 1 })

	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("reactor: %v", err)
	}
	if took := time.Since(start); took >= timeout {
		t.Errorf("the reactor took %v to stop: it waited for a delivery that never reached a handler", took)
	}
}
