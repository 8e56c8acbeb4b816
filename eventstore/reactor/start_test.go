package reactor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/eventstore/reactor"
	"github.com/roomlog/roomlog/tests/netcut"
)

// A reactor whose consumer cannot be bound yet (a cluster restarting elects
// its consumers' leaders after its streams'; here the log does not answer
// at all) waits for it, saying so, and runs once it can. It used to stop at
// the first bind that timed out, and the node waiting for it never came up
// (TestClusterNodesStartTogetherAfterAFullClusterRestart, on a loaded box).
func TestReactorWaitsForItsConsumerAtStart(t *testing.T) {
	embedded := estest.Open(t, func(c *eventstore.Config) { c.Listen, c.Password = "127.0.0.1:-1", estest.Password })
	proxy := netcut.Start(t, strings.TrimPrefix(embedded.ClientURL(), "nats://"))
	cfg := embedded.ClientConfig()
	cfg.URL = "nats://" + proxy.Addr()
	cfg.Logger = estest.Logger(t)
	log := estest.Must(t, cfg)
	logger, lines := estest.Capture(t)
	r, err := reactor.New(reactor.Config{Engine: estest.Engine(t, log, nil, estest.NewClock(time.Now())), Log: log,
		Logger: logger, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	proxy.Freeze() // the log answers nothing
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		proxy.Thaw()
		if err := <-done; err != nil {
			t.Errorf("reactor: %v", err)
		}
	})
	lines.Wait(t, "level=WARN", `msg="waiting for JetStream"`, `op="bind consumer `)
	select {
	case err := <-done:
		t.Fatalf("the reactor stopped while the log did not answer: %v", err)
	default:
	}
	proxy.Thaw()
	select {
	case <-r.Running():
	case err := <-done:
		t.Fatalf("the reactor stopped once the log answered: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the reactor did not run within 30 s of the log answering")
	}
}
