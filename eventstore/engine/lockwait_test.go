package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/netcut"
)

// stalledRoom logs s1 and s2 into r1 through a proxy, freezes the proxy
// (JetStream answers nothing) and starts a broadcast by s1 that holds r1's
// lock, resending its append, until the returned release is called. It
// returns the engine, the log behind the proxy, release, and the holder's
// outcome.
func stalledRoom(t *testing.T) (e *engine.Engine, embedded *eventstore.Log, release func(), holder chan error) {
	t.Helper()
	embedded = estest.Open(t, func(c *eventstore.Config) { c.Listen, c.Password = "127.0.0.1:-1", estest.Password })
	cfg := embedded.ClientConfig()
	proxy := netcut.Start(t, strings.TrimPrefix(cfg.URL, "nats://"))
	cfg.URL, cfg.Logger = "nats://"+proxy.Addr(), estest.Logger(t)
	log := estest.Must(t, cfg)
	e = newEngine(t, log, nil)
	exec(t, e, login("s1", "u1", "r1"))
	exec(t, e, login("s2", "u2", "r1"))

	proxy.Freeze()
	t.Cleanup(proxy.Thaw) // before the log closes (cleanups run last first)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	holder = make(chan error, 1)
	go func() {
		_, err := e.Execute(ctx, domain.Meta{App: app}, domain.SendBroadcast{Session: "s1", Room: "r1", Body: "holder"})
		holder <- err
	}()
	estest.Eventually(t, "the holder resends its append (it holds r1)", func() bool { return e.Stats().Resends > 0 })
	return e, embedded, func() { cancel(); proxy.Thaw() }, holder
}

// waitForLock starts s2's broadcast with ctx and waits until it waits for
// r1's lock.
func waitForLock(t *testing.T, e *engine.Engine, ctx context.Context) (done chan error) {
	t.Helper()
	done = make(chan error, 1)
	go func() {
		_, err := e.Execute(ctx, domain.Meta{App: app}, domain.SendBroadcast{Session: "s2", Room: "r1", Body: "waiter"})
		done <- err
	}()
	estest.Eventually(t, "the waiter waits for r1's lock", func() bool { return e.Users(domain.RoomKey(app, "r1")) >= 2 })
	return done
}

// waitedOut waits for the waiter's outcome while the holder still holds
// r1: a waiter that only returns once the holder lets go never does.
func waitedOut(t *testing.T, done, holder chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case err := <-holder:
		t.Fatalf("the holder ended (%v) before the waiter", err)
	case <-time.After(30 * time.Second): // generous: a loaded machine
		t.Fatal("the waiter is still waiting for r1's lock 30 s later")
	}
	return nil
}

// A command waiting for an aggregate's lock, held by another whose append
// the log does not answer, ends when its own deadline runs out
// (ErrTimeout), not when the holder lets go; having never got the lock, it
// stores nothing. Before, it waited for the holder, however long.
func TestAWaitingCommandEndsAtItsOwnDeadline(t *testing.T) {
	e, embedded, release, holder := stalledRoom(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := waitForLock(t, e, ctx)
	if err := waitedOut(t, done, holder); !errors.Is(err, domain.ErrTimeout) {
		t.Errorf("the waiter returned %v, want ErrTimeout", err)
	}
	release()
	<-holder
	// Once the log answers again and the holder is done, r1 holds no
	// broadcast of the waiter.
	exec(t, e, domain.SendBroadcast{Session: "s1", Room: "r1", Body: "after"})
	for _, ev := range history(t, embedded, domain.RoomKey(app, "r1")) {
		if d, ok := ev.Data.(*domain.BroadcastSentData); ok && d.Body == "waiter" {
			t.Errorf("r1 holds the broadcast of the waiter, which ran out of time before it got the lock")
		}
	}
}

// A waiting command whose context is cancelled (the gateway cancels a
// worker whose session another node takes over, and waits for it) ends
// at once, with the lock still held by the other.
func TestAWaitingCommandEndsWhenCancelled(t *testing.T) {
	e, _, release, holder := stalledRoom(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := waitForLock(t, e, ctx)
	cancel()
	if err := waitedOut(t, done, holder); !errors.Is(err, domain.ErrUnavailable) {
		t.Errorf("the cancelled waiter returned %v, want ErrUnavailable", err)
	}
	release()
	<-holder
}
