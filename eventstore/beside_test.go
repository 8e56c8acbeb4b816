package eventstore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// The bus carries messages between every subscriber and answers requests
// from one server; it stores nothing.
func TestBusPublishesAndAnswers(t *testing.T) {
	l := openEmbedded(t, nil)
	a, err := l.OpenBus("a")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := l.OpenBus("b")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := testCtx(t)

	got := make(chan string, 4)
	unsub, err := b.Subscribe("topic.>", func(subject string, data []byte) { got <- subject + "=" + string(data) })
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish("topic.x", []byte("1")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != "topic.x=1" {
			t.Fatalf("got %q, want the subject relative to the bus and the data", m)
		}
	case <-ctx.Done():
		t.Fatal("nothing arrived")
	}
	if err := unsub(); err != nil {
		t.Fatal(err)
	}

	if _, err := a.Request(ctx, "echo", []byte("x")); !errors.Is(err, ErrNoResponders) {
		t.Fatalf("a request nobody serves: %v, want ErrNoResponders", err)
	}
	var mu sync.Mutex
	served := map[string]int{}
	for _, name := range []string{"one", "two"} {
		stop, err := b.Serve("echo", func(_ context.Context, data []byte) []byte {
			mu.Lock()
			served[name]++
			mu.Unlock()
			return append([]byte(name+":"), data...)
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		reply, err := a.Request(ctx, "echo", []byte("hi"))
		if err != nil {
			t.Fatal(err)
		}
		if s := string(reply); s != "one:hi" && s != "two:hi" {
			t.Fatalf("reply %q", s)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if served["one"]+served["two"] != 20 {
		t.Errorf("20 requests were served %d times: each goes to one server", served["one"]+served["two"])
	}
}

// Records are conditional on their revision, and a watch sees what is there
// and then every change.
func TestRecordsAreConditionalAndWatched(t *testing.T) {
	l := openEmbedded(t, nil)
	ctx := testCtx(t)
	r, err := l.OpenRecords(ctx, RecordsConfig{Bucket: "recs"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := r.Get(ctx, "k"); ok || err != nil {
		t.Fatalf("Get of a missing key: ok %v, %v", ok, err)
	}
	rev, err := r.Put(ctx, "k", []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Update(ctx, "k", []byte("v2"), rev+1); !errors.Is(err, ErrRevisionMismatch) {
		t.Fatalf("Update at a wrong revision: %v", err)
	}
	rev2, err := r.Update(ctx, "k", []byte("v2"), rev)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(ctx, "k", rev); !errors.Is(err, ErrRevisionMismatch) {
		t.Fatalf("Delete at an old revision: %v", err)
	}
	if e, ok, err := r.Get(ctx, "k"); err != nil || !ok || string(e.Value) != "v2" || e.Revision != rev2 {
		t.Fatalf("Get = %+v, %v, %v", e, ok, err)
	}

	wctx, cancel := context.WithCancel(ctx)
	ready := make(chan struct{})
	seen := make(chan Entry, 8)
	done := make(chan error, 1)
	go func() { done <- r.Watch(wctx, func() { close(ready) }, func(e Entry) { seen <- e }) }()
	next := func() Entry {
		select {
		case e := <-seen:
			return e
		case <-time.After(10 * time.Second):
			t.Fatal("the watch saw nothing")
		}
		return Entry{}
	}
	if e := next(); e.Key != "k" || string(e.Value) != "v2" || e.Deleted {
		t.Fatalf("first watched entry %+v, want the record as it was", e)
	}
	<-ready
	if err := r.Delete(ctx, "k", rev2); err != nil {
		t.Fatal(err)
	}
	if e := next(); e.Key != "k" || !e.Deleted {
		t.Fatalf("watched %+v, want the deletion", e)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch after its context ended: %v", err)
	}
}
