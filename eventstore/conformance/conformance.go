// Package conformance is the contract of roomlog's event store, as a test
// suite any implementation can run: conditional appends (one winner per
// expected version, a stale expectation a conflict, a retried message a
// duplicate), reads in stream order with subject filters, tails, last and
// get lookups, binary search, start times, contexts and message validation.
//
// eventstore's embedded-JetStream tests run it in-process, over TCP and with
// fsync always:
//
//	func TestLogConformance(t *testing.T) {
//		conformance.Run(t, func(t *testing.T) conformance.Log { return estest.Open(t, nil) })
//	}
//
// A second implementation passes it by returning its own Log.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomlog/roomlog/eventstore"
)

// Log is what the suite needs of an event store: *eventstore.Log's methods.
type Log interface {
	Prefix() string
	Subject(app, kind, id string) string
	KindFilter(kind string) string
	Append(ctx context.Context, m eventstore.Message) (eventstore.Ack, error)
	AppendAsync(m eventstore.Message) (*eventstore.PendingAck, error)
	Read(ctx context.Context, filters []string, from uint64, fn func(eventstore.Record) error) (uint64, error)
	ReadSubject(ctx context.Context, subject string, from uint64, fn func(eventstore.Record) error) (uint64, error)
	Tail(ctx context.Context, filters []string, from uint64, fn func(eventstore.Record) error) error
	Last(ctx context.Context, subject string) (eventstore.Record, bool, error)
	Get(ctx context.Context, filter string, from uint64) (eventstore.Record, bool, error)
	Search(ctx context.Context, subject string, pred func(eventstore.Record) (bool, error)) (uint64, bool, error)
	LastSeq(ctx context.Context) (uint64, error)
	StartTime(ctx context.Context, filters []string, at time.Time) (uint64, bool, error)
}

var _ Log = (*eventstore.Log)(nil)

// ExpectedHeader is the header a stored record carries its append's
// expected subject sequence in ("0" for "the subject must be empty").
const ExpectedHeader = "Nats-Expected-Last-Subject-Sequence"

// Run runs the suite. open returns a fresh, empty log, closed when the test
// ends.
func Run(t *testing.T, open func(t *testing.T) Log) {
	t.Run("AppendToEmptySubjectExpectsZero", func(t *testing.T) {
		l := open(t)
		ctx := testCtx(t)
		subj := l.Subject("app", "room", "r1")

		ack, err := l.Append(ctx, eventstore.Message{Subject: subj, MsgID: "m1", Expected: 0, Data: []byte("hello")})
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if ack != (eventstore.Ack{Seq: 1}) {
			t.Fatalf("ack = %+v, want {Seq:1}", ack)
		}
		rec, ok, err := l.Last(ctx, subj)
		if err != nil || !ok {
			t.Fatalf("Last = %v, %v", ok, err)
		}
		if rec.Seq != 1 || rec.Subject != subj || rec.MsgID != "m1" || string(rec.Data) != "hello" || rec.Time.IsZero() {
			t.Fatalf("Last = %+v", rec)
		}
		// The expectation travelled as an explicit "0", not as a missing
		// header (which would mean "no check at all").
		if got := rec.Header.Get(ExpectedHeader); got != "0" {
			t.Fatalf("stored %s = %q, want \"0\"", ExpectedHeader, got)
		}
		// So a second "must be empty" append is refused.
		_, err = l.Append(ctx, eventstore.Message{Subject: subj, MsgID: "m2", Expected: 0, Data: []byte("again")})
		var ce *eventstore.ConflictError
		if !errors.As(err, &ce) || !errors.Is(err, eventstore.ErrConflict) {
			t.Fatalf("second Expected=0 append: err = %v, want a *eventstore.ConflictError", err)
		}
	})

	t.Run("StaleExpectedConflicts", func(t *testing.T) {
		l := open(t)
		ctx := testCtx(t)
		subj := l.Subject("app", "room", "r1")
		seqs := appendChain(t, l, subj, 3, 0)

		_, err := l.Append(ctx, eventstore.Message{Subject: subj, MsgID: "late", Expected: seqs[0], Data: []byte("x")})
		if !errors.Is(err, eventstore.ErrConflict) {
			t.Fatalf("err = %v, want eventstore.ErrConflict", err)
		}
		var ce *eventstore.ConflictError
		if !errors.As(err, &ce) {
			t.Fatalf("err = %T, want *eventstore.ConflictError", err)
		}
		if ce.Subject != subj || ce.Expected != seqs[0] {
			t.Fatalf("eventstore.ConflictError = %+v", ce)
		}
		// A single server says where the subject is; a replicated stream
		// may not, and Actual is then 0.
		if ce.Actual != seqs[2] {
			t.Fatalf("Actual = %d, want %d", ce.Actual, seqs[2])
		}
		if errors.Is(err, eventstore.ErrUnavailable) {
			t.Fatal("a conflict must not look like unavailability")
		}
		// Nothing was stored.
		if rec, _, _ := l.Last(ctx, subj); rec.Seq != seqs[2] {
			t.Fatalf("Last = %d, want %d", rec.Seq, seqs[2])
		}
	})

	t.Run("RetryAfterSuccess", func(t *testing.T) {
		l := open(t)
		ctx := testCtx(t)
		subj := l.Subject("app", "room", "r1")
		other := l.Subject("app", "room", "r2")
		appendChain(t, l, other, 2, 0) // the subject's seqs differ from the stream's
		m := eventstore.Message{Subject: subj, MsgID: "01J-ULID", Expected: 0, Data: []byte("e1")}
		first, err := l.Append(ctx, m)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}

		// The acknowledgement was "lost" and the caller retries the very
		// same message. The server checks the expected sequence BEFORE
		// de-duplicating, so the retry is a conflict, not a duplicate:
		// the caller must reload and will find its own MsgID stored.
		_, err = l.Append(ctx, m)
		var ce *eventstore.ConflictError
		if !errors.As(err, &ce) {
			t.Fatalf("retry with stale Expected: err = %v, want *eventstore.ConflictError", err)
		}
		if ce.Actual != first.Seq {
			t.Fatalf("Actual = %d, want %d", ce.Actual, first.Seq)
		}

		// With the current Expected and the same MsgID, inside the
		// duplicate window, the server recognises the duplicate and
		// answers with the original sequence.
		m.Expected = first.Seq
		dup, err := l.Append(ctx, m)
		if err != nil {
			t.Fatalf("retry with current Expected: %v", err)
		}
		if dup != (eventstore.Ack{Seq: first.Seq, Duplicate: true}) {
			t.Fatalf("ack = %+v, want {Seq:%d Duplicate:true}", dup, first.Seq)
		}
		recs, _ := readAll(t, l, []string{subj}, 0)
		if len(recs) != 1 {
			t.Fatalf("subject has %d records, want 1", len(recs))
		}
	})

	t.Run("ConcurrentAppendersOneWinnerPerVersion", func(t *testing.T) {
		l := open(t)
		ctx := testCtx(t)
		subj := l.Subject("app", "room", "contended")
		noise := l.Subject("app", "room", "noise")
		const writers, each = 8, 15

		var wg sync.WaitGroup
		errs := make(chan error, writers+1)
		var mu sync.Mutex
		wins := map[uint64]string{} // expected version -> winner
		for w := range writers {
			wg.Go(func() {
				var expected uint64
				for i := 0; i < each; {
					id := fmt.Sprintf("w%d-%d", w, i)
					ack, err := l.Append(ctx, eventstore.Message{Subject: subj, MsgID: id, Expected: expected, Data: []byte(id)})
					var ce *eventstore.ConflictError
					switch {
					case errors.As(err, &ce):
						// Catch up, then decide again.
						last, _, err := l.Last(ctx, subj)
						if err != nil {
							errs <- err
							return
						}
						expected = last.Seq
						continue
					case err != nil:
						errs <- err
						return
					}
					mu.Lock()
					if prev, dup := wins[expected]; dup {
						errs <- fmt.Errorf("version %d won twice: %s and %s", expected, prev, id)
					}
					wins[expected] = id
					mu.Unlock()
					expected = ack.Seq
					i++
				}
			})
		}
		// Interleave another subject so stream and subject sequences differ.
		wg.Go(func() {
			var expected uint64
			for i := range 50 {
				ack, err := l.Append(ctx, eventstore.Message{Subject: noise, MsgID: "n" + strconv.Itoa(i), Expected: expected})
				if err != nil {
					errs <- err
					return
				}
				expected = ack.Seq
			}
		})
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}

		recs, _ := readAll(t, l, []string{subj}, 0)
		if len(recs) != writers*each {
			t.Fatalf("subject has %d records, want %d", len(recs), writers*each)
		}
		// The records form one unbroken chain: each was appended expecting
		// exactly the one before it.
		var prev uint64
		for _, r := range recs {
			exp, _ := strconv.ParseUint(r.Header.Get(ExpectedHeader), 10, 64)
			if exp != prev {
				t.Fatalf("record %d expected %d, but the previous record is %d", r.Seq, exp, prev)
			}
			if wins[exp] != r.MsgID {
				t.Fatalf("record %d is %s, the acknowledged winner of version %d is %s", r.Seq, r.MsgID, exp, wins[exp])
			}
			prev = r.Seq
		}
	})

	t.Run("UnsafeIDs", func(t *testing.T) {
		l := open(t)
		ctx := testCtx(t)
		ids := []string{".", "*", ">", " ", "a.b.c", "日本語 room", "", "a", "roomlog.>"}
		seen := map[string][2]string{}
		for _, app := range ids {
			for _, id := range ids {
				subj := l.Subject(app, "room", id)
				if prev, dup := seen[subj]; dup {
					t.Fatalf("(%q,%q) and (%q,%q) share subject %q", app, id, prev[0], prev[1], subj)
				}
				seen[subj] = [2]string{app, id}
				gotApp, kind, gotID, err := eventstore.ParseSubject(l.Prefix(), subj)
				if err != nil || gotApp != app || kind != "room" || gotID != id {
					t.Fatalf("eventstore.ParseSubject(%q) = %q, %q, %q, %v", subj, gotApp, kind, gotID, err)
				}
				_, err = l.Append(ctx, eventstore.Message{Subject: subj, MsgID: subj, Data: []byte(app + "|" + id)})
				if app == "" || id == "" {
					// An empty ID gives an empty token: callers validate
					// IDs, and Append refuses such a subject outright.
					if !errors.Is(err, eventstore.ErrInvalidMessage) {
						t.Fatalf("Append to %q: err = %v, want eventstore.ErrInvalidMessage", subj, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("Append(%q): %v", subj, err)
				}
			}
		}
		// Each subject holds exactly its own record: no ID acted as a
		// wildcard or spilled into another subject.
		recs, _ := readAll(t, l, []string{l.KindFilter("room")}, 0)
		if want := (len(ids) - 1) * (len(ids) - 1); len(recs) != want {
			t.Fatalf("%d records, want %d", len(recs), want)
		}
		for _, r := range recs {
			app, _, id, err := eventstore.ParseSubject(l.Prefix(), r.Subject)
			if err != nil || string(r.Data) != app+"|"+id {
				t.Fatalf("record on %q holds %q (%v)", r.Subject, r.Data, err)
			}
		}
	})

	t.Run("Read", func(t *testing.T) {
		l := open(t)
		ctx := testCtx(t)
		subjs := []string{l.Subject("a", "room", "1"), l.Subject("a", "room", "2"), l.Subject("b", "session", "3")}

		t.Run("EmptyStream", func(t *testing.T) {
			called := false
			last, err := l.Read(ctx, nil, 0, func(eventstore.Record) error { called = true; return nil })
			if err != nil || last != 0 || called {
				t.Fatalf("Read on an empty stream = %d, %v (called %v)", last, err, called)
			}
		})

		var all []uint64
		for i := range 10 {
			for _, s := range subjs {
				all = append(all, appendChain(t, l, s, 1, i)...)
			}
		}

		t.Run("FromStart", func(t *testing.T) {
			recs, last := readAll(t, l, nil, 0)
			if got := seqsOf(recs); !slices.Equal(got, all) {
				t.Fatalf("seqs = %v, want %v", got, all)
			}
			if last != all[len(all)-1] {
				t.Fatalf("last = %d, want %d", last, all[len(all)-1])
			}
		})
		t.Run("FromMiddle", func(t *testing.T) {
			from := all[11]
			recs, last := readAll(t, l, nil, from)
			if got := seqsOf(recs); !slices.Equal(got, all[11:]) {
				t.Fatalf("seqs = %v, want %v", got, all[11:])
			}
			if last != all[len(all)-1] {
				t.Fatalf("last = %d", last)
			}
		})
		t.Run("SeveralFilters", func(t *testing.T) {
			recs, _ := readAll(t, l, []string{subjs[0], subjs[2]}, 5)
			var want []uint64
			for i, s := range all {
				if s >= 5 && i%3 != 1 {
					want = append(want, s)
				}
			}
			if got := seqsOf(recs); !slices.Equal(got, want) {
				t.Fatalf("seqs = %v, want %v", got, want)
			}
			for i, r := range recs {
				if r.Subject != subjs[0] && r.Subject != subjs[2] {
					t.Fatalf("record %d on %s", i, r.Subject)
				}
			}
		})
		t.Run("KindFilter", func(t *testing.T) {
			recs, _ := readAll(t, l, []string{l.KindFilter("session")}, 0)
			if len(recs) != 10 {
				t.Fatalf("%d session records, want 10", len(recs))
			}
		})
		t.Run("NoMatches", func(t *testing.T) {
			recs, last := readAll(t, l, []string{l.Subject("nobody", "room", "x")}, 0)
			if len(recs) != 0 || last != 0 {
				t.Fatalf("got %d records, last %d", len(recs), last)
			}
		})
		t.Run("PastTheEnd", func(t *testing.T) {
			recs, last := readAll(t, l, nil, all[len(all)-1]+1)
			if len(recs) != 0 || last != 0 {
				t.Fatalf("got %d records, last %d", len(recs), last)
			}
		})
		t.Run("StopsOnHandlerError", func(t *testing.T) {
			stop := errors.New("stop")
			n := 0
			last, err := l.Read(ctx, nil, 0, func(eventstore.Record) error {
				if n++; n == 4 {
					return stop
				}
				return nil
			})
			if !errors.Is(err, stop) || last != all[2] {
				t.Fatalf("Read = %d, %v; want %d, stop", last, err, all[2])
			}
		})
		t.Run("StopsAtTheEndAsOfTheCall", func(t *testing.T) {
			// Appends made while reading are not waited for.
			n := 0
			_, err := l.Read(ctx, []string{subjs[0]}, 0, func(eventstore.Record) error {
				if n++; n == 1 {
					appendChain(t, l, subjs[0], 1, 100)
				}
				return nil
			})
			if err != nil || n != 10 {
				t.Fatalf("read %d records, %v; want 10", n, err)
			}
		})
		t.Run("InvalidFilter", func(t *testing.T) {
			_, err := l.Read(ctx, []string{"elsewhere.>"}, 0, func(eventstore.Record) error { return nil })
			if !errors.Is(err, eventstore.ErrInvalidSubject) {
				t.Fatalf("err = %v, want eventstore.ErrInvalidSubject", err)
			}
		})
	})

	t.Run("ReadSubject", func(t *testing.T) {
		l := open(t)
		ctx := testCtx(t)
		room, other := l.Subject("a", "room", "1"), l.Subject("a", "room", "2")
		readSubject := func(t *testing.T, from uint64) ([]eventstore.Record, uint64) {
			t.Helper()
			var recs []eventstore.Record
			last, err := l.ReadSubject(ctx, room, from, func(r eventstore.Record) error { recs = append(recs, r); return nil })
			if err != nil {
				t.Fatalf("ReadSubject(%d): %v", from, err)
			}
			return recs, last
		}
		if recs, last := readSubject(t, 0); len(recs) != 0 || last != 0 {
			t.Fatalf("ReadSubject of an empty subject = %d records, last %d", len(recs), last)
		}
		// More records than one batched get answers, interleaved with
		// another subject's.
		for i := range 300 {
			appendChain(t, l, room, 1, i)
			if i%3 == 0 {
				appendChain(t, l, other, 1, i)
			}
		}
		want, _ := readAll(t, l, []string{room}, 0)
		for _, from := range []uint64{0, 1, want[1].Seq, want[150].Seq + 1, want[299].Seq} {
			var tail []eventstore.Record
			for _, r := range want {
				if r.Seq >= from {
					tail = append(tail, r)
				}
			}
			got, last := readSubject(t, from)
			if !slices.Equal(seqsOf(got), seqsOf(tail)) || last != tail[len(tail)-1].Seq {
				t.Fatalf("from %d: seqs %v (last %d), want %v", from, seqsOf(got), last, seqsOf(tail))
			}
			for i, r := range got {
				w := tail[i]
				if r.Subject != w.Subject || r.MsgID != w.MsgID || string(r.Data) != string(w.Data) ||
					!r.Time.Equal(w.Time) || !headersEqual(r.Header, w.Header) {
					t.Fatalf("from %d: record %+v differs from Read's %+v", from, r, w)
				}
			}
		}
		if recs, last := readSubject(t, want[299].Seq+1); len(recs) != 0 || last != 0 {
			t.Fatalf("ReadSubject past the end = %d records, last %d", len(recs), last)
		}
		stop := errors.New("stop")
		n := 0
		last, err := l.ReadSubject(ctx, room, 0, func(eventstore.Record) error {
			if n++; n == 3 {
				return stop
			}
			return nil
		})
		if err != stop || last != want[1].Seq {
			t.Fatalf("a handler's error: ReadSubject = %d, %v; want %d, the error itself", last, err, want[1].Seq)
		}
		if _, err := l.ReadSubject(ctx, l.Prefix()+".a.room.*", 0, func(eventstore.Record) error { return nil }); !errors.Is(err, eventstore.ErrInvalidSubject) {
			t.Fatalf("ReadSubject of a wildcard = %v, want eventstore.ErrInvalidSubject", err)
		}
	})

	t.Run("Tail", func(t *testing.T) {
		l := open(t)
		subj := l.Subject("app", "room", "r1")
		before := appendChain(t, l, subj, 3, 0)

		ctx, cancel := context.WithCancel(testCtx(t))
		got := make(chan eventstore.Record, 100)
		done := make(chan error, 1)
		go func() {
			done <- l.Tail(ctx, []string{subj}, before[1], func(r eventstore.Record) error {
				got <- r
				return nil
			})
		}()
		var recs []eventstore.Record
		receive := func(n int) {
			t.Helper()
			for range n {
				select {
				case r := <-got:
					recs = append(recs, r)
				case err := <-done:
					t.Fatalf("Tail returned early: %v", err)
				case <-time.After(10 * time.Second):
					t.Fatalf("Tail delivered %d records, want more", len(recs))
				}
			}
		}
		receive(2) // the existing ones from before[1]
		after := appendChain(t, l, subj, 5, 3)
		receive(5)
		want := append(before[1:], after...)
		if got := seqsOf(recs); !slices.Equal(got, want) {
			t.Fatalf("seqs = %v, want %v", got, want)
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Tail after cancel = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Tail did not return after cancel")
		}

		// An error from fn ends Tail with that error.
		stop := errors.New("stop")
		err := l.Tail(testCtx(t), []string{subj}, 0, func(eventstore.Record) error { return stop })
		if !errors.Is(err, stop) {
			t.Fatalf("Tail = %v, want stop", err)
		}
	})

	t.Run("GetLastSearch", func(t *testing.T) {
		l := open(t)
		ctx := testCtx(t)
		const subjects, total = 10, 1000
		subj := func(i int) string { return l.Subject("app", "room", strconv.Itoa(i)) }
		// 1000 records interleaved across 10 subjects; on each subject the
		// data grows: record j of subject s holds j*10+s.
		pending := make([]*eventstore.PendingAck, subjects)
		expected := make([]uint64, subjects)
		for j := range total / subjects {
			for s := range subjects {
				p, err := l.AppendAsync(eventstore.Message{Subject: subj(s), MsgID: fmt.Sprintf("%d-%d", s, j), Expected: expected[s], Data: []byte(strconv.Itoa(j*10 + s))})
				if err != nil {
					t.Fatal(err)
				}
				pending[s] = p
			}
			for s, p := range pending {
				ack, err := p.Wait(ctx)
				if err != nil {
					t.Fatal(err)
				}
				expected[s] = ack.Seq
			}
		}
		recs, _ := readAll(t, l, []string{subj(3)}, 0)

		t.Run("Last", func(t *testing.T) {
			r, ok, err := l.Last(ctx, subj(3))
			if err != nil || !ok || r.Seq != recs[len(recs)-1].Seq || r.Seq != expected[3] {
				t.Fatalf("Last = %d, %v, %v", r.Seq, ok, err)
			}
			if _, ok, err := l.Last(ctx, subj(99)); ok || err != nil {
				t.Fatalf("Last of an empty subject = %v, %v", ok, err)
			}
		})
		t.Run("Get", func(t *testing.T) {
			r, ok, err := l.Get(ctx, subj(3), recs[4].Seq+1)
			if err != nil || !ok || r.Seq != recs[5].Seq {
				t.Fatalf("Get = %d, %v, %v; want %d", r.Seq, ok, err, recs[5].Seq)
			}
			// Same record, same headers, whichever way it is read.
			if !slices.Equal(r.Data, recs[5].Data) || r.MsgID != recs[5].MsgID || !headersEqual(r.Header, recs[5].Header) || !r.Time.Equal(recs[5].Time) {
				t.Fatalf("Get = %+v\nRead = %+v", r, recs[5])
			}
			if _, ok, err := l.Get(ctx, subj(3), expected[3]+1); ok || err != nil {
				t.Fatalf("Get past the last record = %v, %v", ok, err)
			}
			r, ok, err = l.Get(ctx, l.KindFilter("room"), 0)
			if err != nil || !ok || r.Seq != 1 {
				t.Fatalf("Get(filter, 0) = %d, %v, %v", r.Seq, ok, err)
			}
		})
		t.Run("Search", func(t *testing.T) {
			for _, k := range []int{-1, 0, 3, 4, 13, 500, 503, 504, 990, 993, 994, 5000} {
				// Linear answer: the first record on the subject with data >= k.
				var want uint64
				for _, r := range recs {
					if dataInt(t, r) >= k {
						want = r.Seq
						break
					}
				}
				gets := 0
				got, ok, err := l.Search(ctx, subj(3), func(r eventstore.Record) (bool, error) {
					gets++
					return dataInt(t, r) >= k, nil
				})
				if err != nil || got != want || ok != (want != 0) {
					t.Fatalf("Search(>= %d) = %d, %v, %v; want %d", k, got, ok, err, want)
				}
				if gets > 12 { // log2(1000) + the check of the last record
					t.Fatalf("Search(>= %d) used %d gets", k, gets)
				}
			}
			if _, ok, err := l.Search(ctx, subj(99), func(eventstore.Record) (bool, error) { return true, nil }); ok || err != nil {
				t.Fatalf("Search on an empty subject = %v, %v", ok, err)
			}
			boom := errors.New("boom")
			if _, _, err := l.Search(ctx, subj(3), func(eventstore.Record) (bool, error) { return false, boom }); !errors.Is(err, boom) {
				t.Fatalf("Search = %v, want boom", err)
			}
		})
		t.Run("LastSeq", func(t *testing.T) {
			if seq, err := l.LastSeq(ctx); err != nil || seq != total {
				t.Fatalf("LastSeq = %d, %v; want %d", seq, err, total)
			}
		})
	})

	t.Run("StartTime", func(t *testing.T) {
		l := open(t)
		ctx := testCtx(t)
		if _, ok, err := l.StartTime(ctx, nil, time.Now()); ok || err != nil {
			t.Fatalf("StartTime on an empty log = %v, %v", ok, err)
		}
		a, b := l.Subject("app", "room", "a"), l.Subject("app", "room", "b")
		for i := range 5 {
			appendChain(t, l, a, 1, i)
			appendChain(t, l, b, 1, i)
		}
		recs, _ := readAll(t, l, nil, 0)
		first := func(filter string, at time.Time) uint64 {
			for _, r := range recs {
				if !r.Time.Before(at) && (filter == "" || r.Subject == filter) {
					return r.Seq
				}
			}
			return 0
		}
		for _, r := range recs {
			got, ok, err := l.StartTime(ctx, nil, r.Time)
			if want := first("", r.Time); err != nil || !ok || got != want {
				t.Fatalf("StartTime(%v) = %d, %v, %v; want %d", r.Time, got, ok, err, want)
			}
			got, ok, err = l.StartTime(ctx, []string{b}, r.Time)
			if want := first(b, r.Time); err != nil || ok != (want != 0) || got != want {
				t.Fatalf("StartTime(b, %v) = %d, %v, %v; want %d", r.Time, got, ok, err, want)
			}
		}
		if _, ok, err := l.StartTime(ctx, nil, recs[len(recs)-1].Time.Add(time.Millisecond)); ok || err != nil {
			t.Fatalf("StartTime after the last record = %v, %v", ok, err)
		}
	})

	t.Run("AppendHonoursContext", func(t *testing.T) {
		l := open(t)
		subj := l.Subject("app", "room", "r1")
		m := eventstore.Message{Subject: subj, MsgID: "m1", Data: []byte("x")}

		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := l.Append(cancelled, m)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled ctx: err = %v, want context.Canceled", err)
		}
		expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel2()
		_, err = l.Append(expired, m)
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, eventstore.ErrUnavailable) {
			t.Fatalf("expired ctx: err = %v, want DeadlineExceeded and eventstore.ErrUnavailable", err)
		}
		// Neither attempt reached the log, so the subject is still empty.
		if _, err := l.Append(testCtx(t), m); err != nil {
			t.Fatalf("Append after: %v", err)
		}
	})

	t.Run("AppendAsync", func(t *testing.T) {
		l := open(t)
		ctx := testCtx(t)
		const n = 200
		acks := make([]*eventstore.PendingAck, n)
		for i := range n {
			p, err := l.AppendAsync(eventstore.Message{Subject: l.Subject("app", "room", strconv.Itoa(i)), MsgID: strconv.Itoa(i), Data: []byte("x")})
			if err != nil {
				t.Fatal(err)
			}
			acks[i] = p
		}
		seen := map[uint64]bool{}
		for i, p := range acks {
			ack, err := p.Wait(ctx)
			if err != nil || ack.Duplicate || seen[ack.Seq] {
				t.Fatalf("ack %d = %+v, %v", i, ack, err)
			}
			seen[ack.Seq] = true
			if again, err2 := p.Wait(ctx); again != ack || err2 != nil {
				t.Fatalf("second Wait = %+v, %v", again, err2)
			}
		}
		// Conflicts and duplicates are reported as by Append.
		subj := l.Subject("app", "room", "0")
		p, err := l.AppendAsync(eventstore.Message{Subject: subj, MsgID: "late", Expected: 0, Data: []byte("y")})
		if err != nil {
			t.Fatal(err)
		}
		var ce *eventstore.ConflictError
		if _, err := p.Wait(ctx); !errors.As(err, &ce) || ce.Subject != subj {
			t.Fatalf("Wait = %v, want *eventstore.ConflictError", err)
		}
		last, _, _ := l.Last(ctx, subj)
		p, err = l.AppendAsync(eventstore.Message{Subject: subj, MsgID: "0", Expected: last.Seq, Data: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		if ack, err := p.Wait(ctx); err != nil || ack != (eventstore.Ack{Seq: last.Seq, Duplicate: true}) {
			t.Fatalf("duplicate Wait = %+v, %v", ack, err)
		}
	})

	t.Run("MessageValidation", func(t *testing.T) {
		l := open(t)
		ctx := testCtx(t)
		subj := l.Subject("app", "room", "r1")
		hdr := nats.Header{"Trace": []string{"abc"}}
		cases := []struct {
			name string
			m    eventstore.Message
			want error
		}{
			{"outside prefix", eventstore.Message{Subject: "other.x", MsgID: "1"}, eventstore.ErrInvalidMessage},
			{"wildcard", eventstore.Message{Subject: l.Prefix() + ".*.room.x", MsgID: "1"}, eventstore.ErrInvalidMessage},
			{"empty MsgID", eventstore.Message{Subject: subj}, eventstore.ErrInvalidMessage},
			{"reserved header", eventstore.Message{Subject: subj, MsgID: "1", Header: nats.Header{"nats-rollup": []string{"sub"}}}, eventstore.ErrInvalidMessage},
			{"too large", eventstore.Message{Subject: subj, MsgID: "1", Data: make([]byte, eventstore.DefaultMaxMsgSize+1)}, eventstore.ErrTooLarge},
			// Under the client-side size check, over the stream's limit
			// once headers count: the server's answer maps the same way.
			{"too large with headers", eventstore.Message{Subject: subj, MsgID: "1", Data: make([]byte, eventstore.DefaultMaxMsgSize)}, eventstore.ErrTooLarge},
		}
		for _, c := range cases {
			if _, err := l.Append(ctx, c.m); !errors.Is(err, c.want) {
				t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
			}
		}
		ack, err := l.Append(ctx, eventstore.Message{Subject: subj, MsgID: "ok", Header: hdr, Data: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		if len(hdr) != 1 || hdr.Get("Trace") != "abc" {
			t.Fatalf("caller's header was mutated: %v", hdr)
		}
		rec, _, _ := l.Last(ctx, subj)
		if rec.Seq != ack.Seq || rec.Header.Get("Trace") != "abc" {
			t.Fatalf("extra header not stored: %+v", rec)
		}
	})
}

func seqsOf(recs []eventstore.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

func headersEqual(a, b nats.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// testCtx returns a context that ends well before the test binary's
// timeout, so a hang fails one test with a clear message.
func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// appendChain appends n messages to subject, each expecting the previous
// one, with data "0".."n-1" offset by first, and returns their sequences.
func appendChain(tb testing.TB, l Log, subject string, n, first int) []uint64 {
	tb.Helper()
	ctx := testCtx(tb)
	last, _, err := l.Last(ctx, subject)
	if err != nil {
		tb.Fatalf("Last(%s): %v", subject, err)
	}
	expected := last.Seq
	seqs := make([]uint64, 0, n)
	for i := range n {
		k := strconv.Itoa(first + i)
		ack, err := l.Append(ctx, eventstore.Message{Subject: subject, MsgID: subject + "#" + k, Expected: expected, Data: []byte(k)})
		if err != nil {
			tb.Fatalf("Append(%s, %s): %v", subject, k, err)
		}
		expected = ack.Seq
		seqs = append(seqs, ack.Seq)
	}
	return seqs
}

// readAll reads every record matching filters from from.
func readAll(tb testing.TB, l Log, filters []string, from uint64) ([]eventstore.Record, uint64) {
	tb.Helper()
	var recs []eventstore.Record
	last, err := l.Read(testCtx(tb), filters, from, func(r eventstore.Record) error {
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		tb.Fatalf("Read(%v, %d): %v", filters, from, err)
	}
	return recs, last
}

// dataInt decodes the decimal payload the suite appends.
func dataInt(tb testing.TB, r eventstore.Record) int {
	tb.Helper()
	k, err := strconv.Atoi(string(r.Data))
	if err != nil {
		tb.Fatalf("record %d: data %q: %v", r.Seq, r.Data, err)
	}
	return k
}
