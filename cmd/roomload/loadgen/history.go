package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/history"
)

// FillHistory writes messages broadcasts into room-0 through the engine and,
// at the same time, noise broadcasts into room-1 for each of them, so that
// the room's subject is interleaved with another's in the stream as in a
// busy deployment. It returns room-0's key.
func FillHistory(ctx context.Context, e *engine.Engine, messages, noise int) (domain.Key, error) {
	sessions, err := Setup(ctx, e, 2)
	if err != nil {
		return domain.Key{}, err
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, n := range []int{messages, messages * noise} {
		wg.Go(func() {
			room := domain.RoomID(fmt.Sprint("room-", i))
			for j := range n {
				_, err := e.Execute(ctx, domain.Meta{App: App}, domain.SendBroadcast{Session: sessions[i], Room: room,
					Body: fmt.Sprint("message ", j, " of the room's chat")})
				if err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return domain.RoomKey(App, "room-0"), errors.Join(errs...)
}

// HistoryFirstPage reads the newest page of key's history rounds times and
// returns the latencies.
func HistoryFirstPage(ctx context.Context, r *history.Reader, key domain.Key, page, rounds int) ([]time.Duration, error) {
	var out []time.Duration
	for range rounds {
		start := time.Now()
		p, err := r.Read(ctx, history.Query{Room: key, For: "user-0", Count: page})
		if err != nil {
			return nil, err
		}
		if len(p.Messages) != page {
			return nil, fmt.Errorf("the first page holds %d messages, want %d", len(p.Messages), page)
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// HistoryPages pages back through key's whole history and returns the pages
// read (Ops) and the time it took; it checks that every message came once.
func HistoryPages(ctx context.Context, r *history.Reader, key domain.Key, page, want int) (Result, error) {
	start := time.Now()
	res := Result{Name: "history pages"}
	seen := 0
	var last uint64
	for before := uint64(0); ; {
		p, err := r.Read(ctx, history.Query{Room: key, For: "user-0", Before: before, Count: page})
		if err != nil {
			return res, err
		}
		for _, m := range p.Messages {
			if last != 0 && m.Event.Seq >= last {
				return res, fmt.Errorf("history out of order: seq %d after %d", m.Event.Seq, last)
			}
			last = m.Event.Seq
		}
		seen += len(p.Messages)
		res.Ops++
		if p.Next == 0 {
			break
		}
		before = p.Next
	}
	res.Elapsed = time.Since(start)
	if seen != want {
		return res, fmt.Errorf("paged through %d messages, want %d", seen, want)
	}
	return res, nil
}

// RawFirstPage is the floor of any "newest messages" read: a direct get of
// the subject's last message, nothing decoded.
func RawFirstPage(ctx context.Context, log *eventstore.Log, subject string, rounds int) ([]time.Duration, error) {
	var out []time.Duration
	for range rounds {
		start := time.Now()
		if _, ok, err := log.Last(ctx, subject); err != nil || !ok {
			return nil, fmt.Errorf("last of %s: %v %v", subject, ok, err)
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// RawRead reads every message of the subject forward with batched direct
// gets, nothing decoded: the fastest raw way through the same messages. Ops
// counts messages.
func RawSubjectRead(ctx context.Context, log *eventstore.Log, subject string) (Result, error) {
	start := time.Now()
	res := Result{Name: "raw subject read"}
	_, err := log.ReadSubject(ctx, subject, 1, func(eventstore.Record) error {
		res.Ops++
		return nil
	})
	res.Elapsed = time.Since(start)
	return res, err
}
