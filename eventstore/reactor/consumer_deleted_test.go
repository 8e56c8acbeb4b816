package reactor_test

import (
	"context"
	"errors"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/eventstore/reactor"
	"github.com/roomlog/roomlog/tests/netcut"
)

const consumerName = "reactor-followups-v1"

// streamOf returns the log's stream.
func streamOf(t *testing.T, log *eventstore.Log) jetstream.Stream {
	t.Helper()
	s, err := estest.JetStream(t, log).Stream(estest.Ctx(t), log.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// consumerInfo is the reactor's consumer as the server has it now (nil if
// there is none).
func consumerInfo(t *testing.T, s jetstream.Stream) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := s.Consumer(estest.Ctx(t), consumerName)
	if err != nil {
		return nil
	}
	info, err := c.Info(estest.Ctx(t))
	if err != nil {
		return nil
	}
	return info
}

// startReactor runs a reactor with cfg until the test ends, or until stop
// is called, which returns what Run returned; done is closed when Run
// returns. Unless the test called stop, an error from Run fails the test.
func startReactor(t *testing.T, cfg reactor.Config) (r *reactor.Reactor, stop func() error, done <-chan struct{}) {
	t.Helper()
	r, err := reactor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	var result error
	go func() {
		result = r.Run(ctx)
		close(ended)
	}()
	stopped := false
	stop = func() error {
		stopped = true
		cancel()
		select {
		case <-ended:
			return result
		case <-time.After(60 * time.Second):
			return errors.New("the reactor did not stop within 60 s")
		}
	}
	t.Cleanup(func() {
		if stopped {
			return
		}
		if err := stop(); err != nil {
			t.Errorf("reactor: %v", err)
		}
	})
	select {
	case <-r.Running():
	case <-ended:
		t.Fatalf("reactor did not start: %v", result)
	case <-time.After(30 * time.Second):
		t.Fatal("reactor did not start within 30 s")
	}
	return r, stop, ended
}

// The reactor's durable consumer is removed on the server while the reactor
// runs (an operator's `nats consumer rm`): nats.go stops pulling for good,
// and watermill's channel stays open. Before, the reactor then ran no
// follow-up and said nothing, for ever. It now recreates the consumer, says
// so at WARN, and the follow-ups of later events are done.
func TestReactorRecreatesItsDeletedConsumer(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	e := estest.Engine(t, log, l, nil)
	logger, lines := estest.Capture(t)
	r, _, _ := startReactor(t, reactor.Config{Engine: e, Log: log, Logger: logger})
	stream := streamOf(t, log)

	// The reactor works, and its consumer saw it through.
	estest.Exec(t, e, estest.Login("a", "u1", "r1"))
	estest.Exec(t, e, domain.DestroyRoom{Room: "r1"})
	estest.Sync(t, log, l)
	estest.Eventually(t, "the destroyed room's member gets its slot back", func() bool {
		return len(estest.Session(l, "a").Claims) == 0
	})

	if err := stream.DeleteConsumer(estest.Ctx(t), consumerName); err != nil {
		t.Fatal(err)
	}

	// Events that call for follow-ups, appended after the removal: a
	// destroyed room's members, and a session kicked by a duplicate login
	// out of its other rooms.
	estest.Exec(t, e, estest.Login("b", "u2", "r2"))
	estest.Exec(t, e, estest.Login("c", "u3", "r3"))
	estest.Exec(t, e, estest.Login("c", "u3", "r4"))
	estest.Exec(t, e, domain.DestroyRoom{Room: "r2"})
	estest.Exec(t, e, estest.Login("d", "u3", "r3")) // kicks c out of r3
	estest.Sync(t, log, l)
	estest.Eventually(t, "the follow-ups of events appended after the consumer was removed are done", func() bool {
		_, inR4 := estest.Room(l, "r4").Members["u3"]
		return len(estest.Session(l, "b").Claims) == 0 && !inR4 && len(estest.Session(l, "c").Claims) == 0
	})
	lines.Wait(t, "level=WARN", "durable consumer is gone", consumerName)
	lines.Wait(t, "level=WARN", "durable consumer is back", consumerName)
	if consumerInfo(t, stream) == nil {
		t.Fatal("the shared consumer is not back on the server")
	}
	if n := r.Recreated(); n != 1 {
		t.Fatalf("Recreated() = %d, want 1", n)
	}
}

// A reactor that knows the consumer's acknowledgement floor recreates it
// from just after it, not from the start of the log: the follow-ups already
// done are not delivered again. Another node that starts afterwards binds
// the recreated consumer as it is (the server cannot change where a
// consumer starts).
func TestARecreatedConsumerStartsAfterTheAckFloor(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	e := estest.Engine(t, log, l, nil)
	stream := streamOf(t, log)
	estest.Exec(t, e, estest.Login("a", "u1", "r1"))
	estest.Exec(t, e, estest.Login("b", "u2", "r1"))
	estest.Exec(t, e, domain.DestroyRoom{Room: "r1"})

	// A first reactor does it all and stops; the next one learns the floor
	// when it binds the consumer.
	estest.Sync(t, log, l)
	_, stop, _ := startReactor(t, reactor.Config{Engine: e, Log: log, Logger: estest.Logger(t)})
	estest.Eventually(t, "every room event acknowledged", func() bool {
		i := consumerInfo(t, stream)
		return i != nil && i.NumAckPending == 0 && i.NumPending == 0 && len(estest.Session(l, "a").Claims) == 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	floor := consumerInfo(t, stream).AckFloor.Stream
	if floor == 0 {
		t.Fatal("no acknowledgement floor on the consumer")
	}
	r, _, _ := startReactor(t, reactor.Config{Engine: e, Log: log, Logger: estest.Logger(t)})

	if err := stream.DeleteConsumer(estest.Ctx(t), consumerName); err != nil {
		t.Fatal(err)
	}
	estest.Exec(t, e, estest.Login("c", "u3", "r2"))
	estest.Exec(t, e, domain.DestroyRoom{Room: "r2"})
	estest.Sync(t, log, l)
	estest.Eventually(t, "the follow-ups after the removal are done", func() bool {
		return len(estest.Session(l, "c").Claims) == 0 && r.Recreated() == 1
	})
	estest.Eventually(t, "every room event acknowledged", func() bool {
		i := consumerInfo(t, stream)
		return i != nil && i.NumAckPending == 0 && i.NumPending == 0
	})
	info := consumerInfo(t, stream)
	if info.Config.DeliverPolicy != jetstream.DeliverByStartSequencePolicy || info.Config.OptStartSeq != floor+1 {
		t.Fatalf("recreated with deliver policy %v from %d, want from stream sequence %d (the floor %d, +1)",
			info.Config.DeliverPolicy, info.Config.OptStartSeq, floor+1, floor)
	}
	// Only the two room events appended after the removal were delivered.
	if info.Delivered.Consumer != 2 {
		t.Fatalf("the recreated consumer delivered %d messages, want 2 (those after the floor)", info.Delivered.Consumer)
	}

	// A node starting now (or restarting) binds that consumer as it is.
	runReactor(t, e, log)
	estest.Exec(t, e, estest.Login("d", "u4", "r3"))
	estest.Exec(t, e, domain.DestroyRoom{Room: "r3"})
	estest.Sync(t, log, l)
	estest.Eventually(t, "the follow-ups go on with both reactors", func() bool {
		return len(estest.Session(l, "d").Claims) == 0
	})
}

// The consumer is removed while the reactor's connection is down (a node
// cut off from NATS): the server's notice never reaches it, and after the
// reconnection its pulls go unanswered ("no responders"). The reactor finds
// the consumer missing and recreates it.
func TestReactorRecreatesAConsumerRemovedWhileItWasDisconnected(t *testing.T) {
	server := estest.Open(t, func(c *eventstore.Config) { c.Listen, c.Password = "127.0.0.1:-1", estest.Password })
	proxy := netcut.Start(t, strings.TrimPrefix(server.ClientURL(), "nats://"))
	client := estest.Must(t, eventstore.Config{URL: "nats://" + proxy.Addr(), Password: estest.Password,
		BindStream: true, Logger: estest.Logger(t)})
	l := estest.Live(t, server)
	e := estest.Engine(t, server, l, nil)
	logger, lines := estest.Capture(t)
	r, _, _ := startReactor(t, reactor.Config{Engine: e, Log: client, Logger: logger})
	stream := streamOf(t, server)
	estest.Exec(t, e, estest.Login("a", "u1", "r1"))
	estest.Exec(t, e, domain.DestroyRoom{Room: "r1"})
	estest.Sync(t, server, l)
	estest.Eventually(t, "the destroyed room's member gets its slot back", func() bool {
		return len(estest.Session(l, "a").Claims) == 0
	})

	proxy.Refuse(true)
	proxy.Cut()
	estest.Eventually(t, "the client disconnected", func() bool { return !client.Connected() })
	if err := stream.DeleteConsumer(estest.Ctx(t), consumerName); err != nil {
		t.Fatal(err)
	}
	estest.Exec(t, e, estest.Login("b", "u2", "r2"))
	estest.Exec(t, e, domain.DestroyRoom{Room: "r2"})
	proxy.Refuse(false)

	estest.Sync(t, server, l)
	estest.Eventually(t, "the follow-ups after the removal are done", func() bool {
		return len(estest.Session(l, "b").Claims) == 0
	})
	lines.Wait(t, "level=WARN", "durable consumer is back", consumerName)
	if n := r.Recreated(); n != 1 {
		t.Fatalf("Recreated() = %d, want 1", n)
	}
}

// A consumer that cannot be recreated (the whole stream is gone) is tried
// again with a growing delay, not in a tight loop, and after
// Config.RecreateFor Run returns an error (the node records it and turns
// unready). The removal is noticed whether or not the server told the
// reactor's pull of it (a pull request on its way is not told).
func TestReactorGivesUpWhenItsConsumerCannotBeRecreated(t *testing.T) {
	log := estest.Open(t, nil)
	e := estest.Engine(t, log, nil, nil)
	logger, lines := estest.Capture(t)
	_, stop, done := startReactor(t, reactor.Config{Engine: e, Log: log, Logger: logger,
		RecreateFor: 2 * time.Second})
	if err := estest.JetStream(t, log).DeleteStream(estest.Ctx(t), log.StreamName()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return within 60 s of the stream's removal")
	}
	took := time.Since(start)
	err := stop()
	if err == nil {
		t.Fatal("Run returned nil")
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) || !strings.Contains(err.Error(), consumerName) {
		t.Fatalf("Run's error does not name the consumer and the missing stream: %v", err)
	}
	m := regexp.MustCompile(`\((\d+) attempts`).FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("Run's error does not say how many attempts: %v", err)
	}
	// Attempts 0.1, 0.2, 0.4, 0.8, 1.6 s... apart: 5 in 2 s.
	if n, _ := strconv.Atoi(m[1]); n < 2 || n > 12 {
		t.Fatalf("%d attempts in %v, want a few, with a growing delay between them", n, took)
	}
	if took < 2*time.Second {
		t.Fatalf("Run gave up after %v, before RecreateFor (2 s)", took)
	}
	lines.Wait(t, "level=WARN", "recreating its durable consumer failed", "stream not found")
}

// A consumer recreated where the reactor knows no floor (a node that
// started after the removal) delivers the whole log again: every follow-up
// already done is refused or finds nothing to do, and nothing is appended.
// A session kicked by a duplicate login, that logged into a room after the
// kick, stays there.
func TestFollowUpsRunAgainFromTheStartChangeNothing(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	e := estest.Engine(t, log, l, nil)
	stream := streamOf(t, log)
	_, stop, _ := startReactor(t, reactor.Config{Engine: e, Log: log, Logger: estest.Logger(t)})
	estest.Exec(t, e, estest.Login("a", "u1", "r1"))
	estest.Exec(t, e, domain.PublishStream{Session: "a", Stream: "cam", Room: "r1"})
	estest.Exec(t, e, domain.DestroyRoom{Room: "r1"})
	estest.Exec(t, e, estest.Login("c", "u3", "r3"))
	estest.Exec(t, e, estest.Login("c", "u3", "r4"))
	estest.Exec(t, e, estest.Login("d", "u3", "r3")) // kicks c out of r3, then r4
	estest.Exec(t, e, estest.Login("b", "u2", "r2"))
	estest.Exec(t, e, domain.LeaveRoom{Session: "b", Room: "r2"})
	estest.Sync(t, log, l)
	estest.Eventually(t, "the follow-ups done", func() bool {
		_, inR4 := estest.Room(l, "r4").Members["u3"]
		return !inR4 && len(estest.Session(l, "a").Claims) == 0 && len(estest.Session(l, "b").Claims) == 0
	})
	estest.Exec(t, e, estest.Login("c", "u3", "r5")) // after the kick: its own new choice
	estest.Eventually(t, "every room event acknowledged", func() bool {
		i := consumerInfo(t, stream)
		return i != nil && i.NumAckPending == 0 && i.NumPending == 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	last, err := log.LastSeq(estest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}

	if err := stream.DeleteConsumer(estest.Ctx(t), consumerName); err != nil {
		t.Fatal(err)
	}
	runReactor(t, e, log)
	estest.Eventually(t, "the whole log delivered again and acknowledged", func() bool {
		i := consumerInfo(t, stream)
		return i != nil && i.Config.DeliverPolicy == jetstream.DeliverAllPolicy && i.NumAckPending == 0 &&
			i.NumPending == 0 && i.Delivered.Consumer > 5
	})
	if now, err := log.LastSeq(estest.Ctx(t)); err != nil || now != last {
		t.Fatalf("the log went from %d to %d messages (%v): follow-ups run again appended", last, now, err)
	}
	estest.Sync(t, log, l)
	if _, in := estest.Room(l, "r5").MemberBySession("u3", "c"); !in {
		t.Fatal("the kick, run again, took the session out of a room it joined after the kick")
	}
}

// Two nodes' reactors share the consumer, and each learned a different
// floor (one bound it before the other's start). Both go on after the
// consumer is removed: each either recreates it (the two agree on one,
// whichever came first) or, its pull not having been waiting at the
// removal, pulls from the one the other recreated. Each then runs
// follow-ups alone.
func TestEveryNodesReactorGoesOnAfterTheSharedConsumerIsRemoved(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	a := estest.Engine(t, log, l, nil)
	b := estest.Engine(t, log, l, nil)
	stream := streamOf(t, log)
	ra, stopA, _ := startReactor(t, reactor.Config{Engine: a, Log: log, Logger: estest.Logger(t)})
	estest.Exec(t, a, estest.Login("s0", "u0", "r0"))
	estest.Exec(t, a, domain.DestroyRoom{Room: "r0"})
	estest.Sync(t, log, l)
	estest.Eventually(t, "every room event acknowledged", func() bool {
		i := consumerInfo(t, stream)
		return i != nil && i.NumAckPending == 0 && i.NumPending == 0 && len(estest.Session(l, "s0").Claims) == 0
	})
	rb, stopB, _ := startReactor(t, reactor.Config{Engine: b, Log: log, Logger: estest.Logger(t)})

	if err := stream.DeleteConsumer(estest.Ctx(t), consumerName); err != nil {
		t.Fatal(err)
	}
	// freed reports whether a destroyed room's member got its slot back.
	destroyed := 0
	destroy := func(e *engine.Engine) (freed func() bool) {
		destroyed++
		n := strconv.Itoa(destroyed)
		s, u, r := domain.SessionID("s"+n), domain.UserID("u"+n), domain.RoomID("r"+n)
		estest.Exec(t, e, estest.Login(s, u, r))
		estest.Exec(t, e, domain.DestroyRoom{Room: r})
		estest.Sync(t, log, l)
		return func() bool { return len(estest.Session(l, s).Claims) == 0 }
	}
	var done []func() bool
	for range 10 {
		done = append(done, destroy(a), destroy(b))
	}
	estest.Eventually(t, "the consumer recreated and every follow-up done", func() bool {
		for _, f := range done {
			if !f() {
				return false
			}
		}
		return ra.Recreated()+rb.Recreated() >= 1
	})
	if consumerInfo(t, stream) == nil {
		t.Fatal("no consumer on the server")
	}

	// Each reactor works alone. The server tells the removal only to the
	// pull requests it holds at that moment: a reactor whose request was on
	// its way heard nothing, and its pull waits on the removed consumer
	// (nats.go pulls again once it misses heartbeats, after 30 s). It sees
	// the consumer recreated within 5 s, and subscribes again.
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	estest.Eventually(t, "node B alone runs a follow-up", destroy(b))
	startReactor(t, reactor.Config{Engine: a, Log: log, Logger: estest.Logger(t)})
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	estest.Eventually(t, "node A alone runs a follow-up", destroy(a))
}

// watchers counts watermill routers' watchAllHandlersStopped goroutines:
// one per router that is running, none once every router stopped.
func watchers() int {
	buf := make([]byte, 1<<22)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), "(*Router).watchAllHandlersStopped.func1(")
}

// Each failed attempt to recreate the consumer (the stream is gone) built a
// router whose Run failed in Subscribe: watermill's AddHandler had counted
// the handler, its goroutine never started, and the router's
// watchAllHandlersStopped goroutine waited for ever (one left per attempt,
// some 17 a minute of outage). A recreation now binds the consumer first
// and builds a router only on a bound one.
func TestFailedRecreationsLeaveNoRouterBehind(t *testing.T) {
	before := watchers()
	log := estest.Open(t, nil)
	e := estest.Engine(t, log, nil, nil)
	_, stop, done := startReactor(t, reactor.Config{Engine: e, Log: log, RecreateFor: 3 * time.Second})
	if err := estest.JetStream(t, log).DeleteStream(estest.Ctx(t), log.StreamName()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return within 60 s of the stream's removal")
	}
	err := stop()
	t.Logf("Run: %v", err)
	deadline := time.Now().Add(30 * time.Second)
	for watchers() > before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := watchers() - before; n > 0 {
		t.Fatalf("%d watermill router goroutines left after Run returned (one per failed recreation)", n)
	}
}
