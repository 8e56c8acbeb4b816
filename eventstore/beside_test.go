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
	a, b := twoBuses(t)
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

// A node serves bus requests side by side: one that takes long (an offer
// waiting for a STUN server) does not hold up the others. Serving ends when
// the requester stops waiting, and stopping the server ends what it serves
// and waits for it.
func TestBusServesRequestsSideBySide(t *testing.T) {
	a, b := twoBuses(t)
	ctx := testCtx(t)

	started := make(chan struct{}, 4)
	ended := make(chan error, 4)
	var finished sync.WaitGroup
	stop, err := b.Serve("work", func(ctx context.Context, data []byte) []byte {
		if string(data) != "slow" {
			return []byte("done")
		}
		finished.Add(1)
		defer finished.Done()
		started <- struct{}{}
		<-ctx.Done() // as long as anyone waits
		ended <- ctx.Err()
		return []byte("late")
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	gaveUp := make(chan error, 1)
	go func() {
		short, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := a.Request(short, "work", []byte("slow"))
		gaveUp <- err
	}()
	<-started
	quick, cancel := context.WithTimeout(ctx, 10*time.Second) // the slow one is served for 30 s at most
	defer cancel()
	if reply, err := a.Request(quick, "work", []byte("quick")); err != nil || string(reply) != "done" {
		t.Fatalf("a request sent while another is served: %q, %v", reply, err)
	}
	<-gaveUp // answered "late" or not at all, at its deadline either way
	select {
	case err := <-ended:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("the slow request's serving ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request is still served 10 s after its requester, waiting 2 s, gave up")
	}

	go a.Request(ctx, "work", []byte("slow")) //nolint:errcheck // its answer never comes: the server stops
	<-started
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("serving at the stop ended with %v", err)
		}
	default:
		t.Fatal("stop returned while a request was still served")
	}
	finished.Wait()
}

// twoBuses opens two buses, "a" and "b", each on a connection of its own,
// on one log.
func twoBuses(t *testing.T) (a, b *Bus) {
	t.Helper()
	l := openEmbedded(t, nil)
	open := func(name string) *Bus {
		bus, err := l.OpenBus(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(bus.Close)
		return bus
	}
	return open("a"), open("b")
}

// A bucket opened with MarkerTTL keeps a deleted record's marker for that
// long: a watcher sees the deletion, and then the bucket holds nothing of
// the key. A bucket an earlier version made without it is made to allow
// expiring markers when opened with MarkerTTL (and a deletion at a stale
// revision is still refused).
func TestRecordsDeletionMarkersExpire(t *testing.T) {
	l := openEmbedded(t, nil)
	ctx := testCtx(t)
	if _, err := l.OpenRecords(ctx, RecordsConfig{Bucket: "old", MarkerTTL: time.Millisecond}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("a MarkerTTL under a second: %v", err)
	}
	if _, err := l.OpenRecords(ctx, RecordsConfig{Bucket: "old"}); err != nil {
		t.Fatal(err)
	}
	r, err := l.OpenRecords(ctx, RecordsConfig{Bucket: "old", MarkerTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	deleted := make(chan string, 1)
	go r.Watch(wctx, func() {}, func(e Entry) {
		if e.Deleted {
			deleted <- e.Key
		}
	})
	rev, err := r.Put(ctx, "k", []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(ctx, "k", rev+1); !errors.Is(err, ErrRevisionMismatch) {
		t.Fatalf("Delete at a wrong revision: %v", err)
	}
	if err := r.Delete(ctx, "k", rev); err != nil {
		t.Fatal(err)
	}
	select {
	case k := <-deleted:
		if k != "k" {
			t.Fatalf("the watch saw %q deleted, want k", k)
		}
	case <-ctx.Done():
		t.Fatal("the watch never saw the deletion")
	}
	s, err := l.js.Stream(ctx, "KV_old")
	if err != nil {
		t.Fatal(err)
	}
	for {
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the bucket still holds %d messages: the deletion's marker never expired", info.State.Msgs)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
