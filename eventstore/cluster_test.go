package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/netcut"
)

// A reader (roomctl tail, verify, replay) binds to the stream as it is; a
// node started without -replicas joins the stream as it is; a node asking for
// other settings is refused, naming them, unless it asks to change them.
func TestClusterOpenNeverChangesTheStreamBehindTheOperatorsBack(t *testing.T) {
	c := estest.StartCluster(t, 3)
	writer := estest.Must(t, eventstore.Config{URL: c.URL(), Replicas: 3, Logger: estest.Logger(t)})
	if got := writer.Replicas(); got != 3 {
		t.Fatalf("writer opened a stream with %d replicas, want 3", got)
	}

	reader := estest.Must(t, eventstore.Config{URL: c.URL(), ReadOnly: true, Logger: estest.Logger(t)})
	if got := c.StreamReplicas(eventstore.DefaultStream); got != 3 {
		t.Fatalf("after a read-only open the stream has %d replicas, want 3", got)
	}
	if _, err := reader.Append(estest.Ctx(t), eventstore.Message{Subject: reader.Subject("a", "room", "r"), MsgID: "x"}); !errors.Is(err, eventstore.ErrInvalidMessage) {
		t.Fatalf("append through a read-only log: %v, want ErrInvalidMessage", err)
	}

	// A node started without -replicas takes the stream's.
	node := estest.Must(t, eventstore.Config{URL: c.URL(), Logger: estest.Logger(t)})
	if got := node.Replicas(); got != 3 {
		t.Fatalf("a node without Replicas sees %d replicas, want 3", got)
	}

	// A node asking for one replica is refused, and the stream keeps three.
	_, err := eventstore.Open(estest.Ctx(t), eventstore.Config{URL: c.URL(), Replicas: 1, Logger: estest.Logger(t)})
	if !errors.Is(err, eventstore.ErrStreamMismatch) || !strings.Contains(err.Error(), "num_replicas 3 (this node wants 1)") {
		t.Fatalf("open with Replicas 1 against an R3 stream: %v, want ErrStreamMismatch naming num_replicas", err)
	}
	if got := c.StreamReplicas(eventstore.DefaultStream); got != 3 {
		t.Fatalf("after a refused open the stream has %d replicas, want 3", got)
	}

	// Asked explicitly, a node changes it.
	estest.Must(t, eventstore.Config{URL: c.URL(), Replicas: 1, UpdateStream: true, Logger: estest.Logger(t)})
	if got := c.StreamReplicas(eventstore.DefaultStream); got != 1 {
		t.Fatalf("after an open with UpdateStream the stream has %d replicas, want 1", got)
	}
}

// A read-only open of a cluster without the stream fails clearly and creates
// nothing.
func TestClusterReadOnlyOpenDoesNotCreate(t *testing.T) {
	c := estest.StartCluster(t, 3)
	_, err := eventstore.Open(estest.Ctx(t), eventstore.Config{URL: c.URL(), ReadOnly: true, Logger: estest.Logger(t)})
	if !errors.Is(err, eventstore.ErrStreamMismatch) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("read-only open without a stream: %v", err)
	}
}

// Nodes started together on a fresh cluster all come up, with one stream of
// the replicas they asked for.
func TestClusterNodesStartedTogetherAllComeUp(t *testing.T) {
	c := estest.StartCluster(t, 3)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			l, err := eventstore.Open(estest.Ctx(t), eventstore.Config{URL: c.NodeURL(i % c.Size()), Replicas: 3, Logger: estest.Logger(t)})
			if err == nil {
				_, err = l.OpenRecords(estest.Ctx(t), eventstore.RecordsConfig{Bucket: "presence", Replicas: l.Replicas()})
				l.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := c.StreamReplicas(eventstore.DefaultStream); got != 3 {
		t.Fatalf("stream has %d replicas, want 3", got)
	}
}

// The answer to a batched direct get is lost (the server's side of the
// connection goes silent, then the connection breaks). The read asks again
// on the new connection after its per-request timeout instead of waiting out
// the caller's whole budget (a command's 10 s). So does a backward read (a
// room's history pages, a login's last messages), which used to wait out
// the budget and fail ("direct get: context deadline exceeded").
func TestReadSubjectRetriesALostReply(t *testing.T) {
	reads := map[string]func(ctx context.Context, l *eventstore.Log, subject string) (int, uint64, error){
		"forward": func(ctx context.Context, l *eventstore.Log, subject string) (int, uint64, error) {
			var got int
			last, err := l.ReadSubject(ctx, subject, 1, func(eventstore.Record) error { got++; return nil })
			return got, last, err
		},
		"backward": func(ctx context.Context, l *eventstore.Log, subject string) (int, uint64, error) {
			var got int
			oldest, err := l.ReadSubjectBackward(ctx, subject, 0, func(eventstore.Record) (bool, error) { got++; return true, nil })
			return got, 4 - oldest, err // the oldest of 3 is 1: 3, as forward's last
		},
	}
	for name, read := range reads {
		t.Run(name, func(t *testing.T) {
			server := estest.Open(t, func(c *eventstore.Config) { c.Listen, c.Password = "127.0.0.1:-1", estest.Password })
			subject := server.Subject("a", "room", "r")
			for i := range 3 {
				if _, err := server.Append(estest.Ctx(t), eventstore.Message{Subject: subject, MsgID: fmt.Sprint(i), Expected: uint64(i), Data: []byte("x")}); err != nil {
					t.Fatal(err)
				}
			}
			proxy := netcut.Start(t, strings.TrimPrefix(server.ClientURL(), "nats://"))
			reader := estest.Must(t, eventstore.Config{URL: "nats://" + proxy.Addr(), Password: estest.Password, ReadOnly: true,
				Logger: estest.Logger(t)})

			proxy.MuteServer()
			time.AfterFunc(200*time.Millisecond, proxy.Cut)
			ctx, cancel := context.WithTimeout(estest.Ctx(t), 8*time.Second)
			defer cancel()
			got, last, err := read(ctx, reader, subject)
			if err != nil || got != 3 || last != 3 {
				t.Fatalf("%s read after a lost reply: %d records, err %v", name, got, err)
			}
			if reader.ReadRetries() == 0 {
				t.Fatal("the read was not retried")
			}
		})
	}
}

// A node started right after the whole cluster restarted, while only one
// server is back (no quorum, so no leader), waits and says what for in its
// log: WARN "waiting for JetStream" naming the request and the attempt. Once
// the other servers are back it opens, without being restarted.
func TestClusterOpenWithoutALeaderWaitsSayingWhatFor(t *testing.T) {
	c := estest.StartCluster(t, 3)
	first, err := eventstore.Open(estest.Ctx(t), eventstore.Config{URL: c.URL(), Replicas: 3, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	first.Close()
	c.Shutdown()
	c.Start(0)

	logger, lines := estest.Capture(t)
	type opened struct {
		log *eventstore.Log
		err error
	}
	done := make(chan opened, 1)
	go func() {
		l, err := eventstore.Open(estest.Ctx(t), eventstore.Config{URL: c.NodeURL(0), Replicas: 3, Logger: logger})
		done <- opened{l, err}
	}()
	lines.Wait(t, "level=WARN", `msg="waiting for JetStream"`, `op="bind to stream `+eventstore.DefaultStream+`"`, "attempt=1 ")
	select {
	case o := <-done:
		t.Fatalf("open returned with one server of three up: %v", o.err)
	default:
	}

	c.Start(1)
	c.Start(2)
	o := <-done
	if o.err != nil {
		t.Fatalf("open after the cluster came back: %v", o.err)
	}
	defer o.log.Close()
	if got := o.log.Replicas(); got != 3 {
		t.Fatalf("opened a stream with %d replicas, want 3", got)
	}
}

// A records watch set up while the log does not answer (the node's NATS
// server frozen, as in an election or a pause right after start) waits,
// saying so, and delivers the records once the log answers: it does not
// end, leaving presence or the media nodes' watch stopped for good.
func TestARecordsWatchStartedWhileTheLogIsSilentComesUpWhenItAnswers(t *testing.T) {
	server := estest.Open(t, func(c *eventstore.Config) { c.Listen, c.Password = "127.0.0.1:-1", estest.Password })
	recs, err := server.OpenRecords(estest.Ctx(t), eventstore.RecordsConfig{Bucket: "silent"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := recs.Put(estest.Ctx(t), "k1", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	proxy := netcut.Start(t, strings.TrimPrefix(server.ClientURL(), "nats://"))
	logger, lines := estest.Capture(t)
	l := estest.Must(t, eventstore.Config{URL: "nats://" + proxy.Addr(), Password: estest.Password, Logger: logger})
	watched, err := l.OpenRecords(estest.Ctx(t), eventstore.RecordsConfig{Bucket: "silent"})
	if err != nil {
		t.Fatal(err)
	}

	proxy.Freeze()
	ready := make(chan struct{})
	got := make(chan eventstore.Entry, 16)
	ended := make(chan error, 1)
	ctx, cancel := context.WithCancel(estest.Ctx(t))
	defer cancel()
	go func() { ended <- watched.Watch(ctx, func() { close(ready) }, func(e eventstore.Entry) { got <- e }) }()
	// Long enough for more than one attempt to time out (5 s each).
	deadline := time.Now().Add(time.Minute)
	for {
		if _, ok := lines.Find(`msg="waiting for JetStream"`, `op="watch records silent"`, "attempt=2"); ok {
			break
		}
		select {
		case err := <-ended:
			t.Fatalf("the watch ended while the log was silent: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no second attempt at the watch logged in a minute")
		}
	}
	proxy.Thaw()
	select {
	case e := <-got:
		if e.Key != "k1" || string(e.Value) != "v1" {
			t.Fatalf("first record %q = %q, want k1 = v1", e.Key, e.Value)
		}
	case err := <-ended:
		t.Fatalf("the watch ended: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("no record a minute after the log answered")
	}
	select {
	case <-ready:
	case <-time.After(time.Minute):
		t.Fatal("ready not called a minute after the log answered")
	}
	if _, err := recs.Put(estest.Ctx(t), "k2", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-got:
		if e.Key != "k2" {
			t.Fatalf("next record %q, want k2", e.Key)
		}
	case <-time.After(time.Minute):
		t.Fatal("a change made after the watch came up never arrived")
	}
	cancel()
	if err := <-ended; err != nil {
		t.Fatalf("Watch returned %v when its context ended", err)
	}
}
