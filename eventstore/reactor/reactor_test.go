package reactor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/eventstore/reactor"
)

func runReactor(t *testing.T, e *engine.Engine, log *eventstore.Log) *reactor.Reactor {
	t.Helper()
	r, err := reactor.New(reactor.Config{Engine: e, Log: log, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("reactor: %v", err)
		}
	})
	select {
	case <-r.Running():
	case <-time.After(10 * time.Second):
		t.Fatal("reactor did not start")
	}
	return r
}

// A message on a room subject that no engine wrote (garbage published by
// hand) is reported, counted and acknowledged once; the follow-ups of the
// events around it are done.
func TestReactorSkipsAMessageItCannotRead(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	e := estest.Engine(t, log, l, nil)
	r := runReactor(t, e, log)
	estest.Exec(t, e, estest.Login("a", "u1", "r1"))
	if _, err := log.Append(estest.Ctx(t), eventstore.Message{Subject: log.Subject("app", "room", "junk"), MsgID: "junk",
		Data: []byte("not an event")}); err != nil {
		t.Fatal(err)
	}
	estest.Exec(t, e, domain.DestroyRoom{Room: "r1"})
	estest.Eventually(t, "the destroyed room's member gets its slot back", func() bool {
		return len(estest.Session(l, "a").Claims) == 0
	})
	nc, err := log.NewConn("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	estest.Eventually(t, "every message acknowledged, the bad one counted once", func() bool {
		c, err := js.Consumer(estest.Ctx(t), log.StreamName(), "reactor-followups-v1")
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(estest.Ctx(t))
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0 && r.Malformed() == 1
	})
}

// A duplicate login kicks the older session out of one room; the reactor
// takes it out of its other rooms, and frees what a destroyed room held.
func TestReactorCompletesFollowUps(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	e := estest.Engine(t, log, l, nil)
	runReactor(t, e, log)
	estest.Exec(t, e, estest.Login("old", "u1", "r1"))
	estest.Exec(t, e, estest.Login("old", "u1", "r2"))
	estest.Exec(t, e, domain.PublishStream{Session: "old", Stream: "cam", Room: "r2"})
	estest.Exec(t, e, estest.Login("x", "u2", "r2"))
	estest.Exec(t, e, estest.Login("new", "u1", "r1")) // kicks old out of r1
	estest.Eventually(t, "the kicked session leaves its other room and stops its stream there", func() bool {
		r := estest.Room(l, "r2")
		_, in := r.Members["u1"]
		_, pub := r.Streams["cam"]
		return !in && !pub && len(estest.Session(l, "old").Claims) == 0
	})
	estest.Exec(t, e, domain.DestroyRoom{Room: "r2"})
	estest.Eventually(t, "the destroyed room's member gets its slot back", func() bool {
		return len(estest.Session(l, "x").Claims) == 0
	})
}

// The reactor's consumer is durable: what happens while no reactor runs is
// done by the next one.
func TestReactorCatchesUpAfterARestart(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	e := estest.Engine(t, log, l, nil)
	estest.Exec(t, e, estest.Login("a", "u1", "r1"))
	estest.Exec(t, e, estest.Login("b", "u2", "r1"))
	estest.Exec(t, e, domain.DestroyRoom{Room: "r1"}) // nobody frees a's and b's claims yet
	last, err := log.LastSeq(estest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.WaitFor(estest.Ctx(t), last); err != nil {
		t.Fatal(err)
	}
	if len(estest.Session(l, "a").Claims) == 0 {
		t.Fatal("the claim was freed without a reactor")
	}
	runReactor(t, e, log)
	estest.Eventually(t, "claims freed by the reactor started later", func() bool {
		return len(estest.Session(l, "a").Claims) == 0 && len(estest.Session(l, "b").Claims) == 0
	})
}

// A reactor stopped while messages stream in stops cleanly, however the
// stop falls: watermill-nats closes its output channel when the
// subscription's context ends, and a delivery in flight at that moment
// would send on the closed channel (a panic that takes the node down).
func TestReactorStopsCleanlyWhileBusy(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	e := estest.Engine(t, log, l, nil)
	for i := range 300 {
		room := domain.RoomID(fmt.Sprint("r", i%10))
		s := domain.SessionID(fmt.Sprint("s", i))
		estest.Exec(t, e, estest.Login(s, domain.UserID(fmt.Sprint("u", i)), room))
		estest.Exec(t, e, domain.LeaveRoom{Session: s, Room: room}) // a follow-up frees its claim
	}
	for i := range 30 {
		r, err := reactor.New(reactor.Config{Engine: e, Log: log, Logger: estest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		<-r.Running()
		time.Sleep(time.Duration(i%5) * time.Millisecond) // stop at various points of the flow
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("stop %d: %v", i, err)
		}
	}
}
