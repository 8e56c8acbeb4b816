package projections

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// Decode turns a log record into a projection record.
func Decode(rec eventstore.Record) (Record, error) {
	events, err := domain.DecodeEvents(rec.Data)
	if err != nil {
		return Record{}, fmt.Errorf("stream sequence %d (%s): %w", rec.Seq, rec.Subject, err)
	}
	return Record{Seq: rec.Seq, Subject: rec.Subject, Events: events}, nil
}

// Rebuild folds every record after m's cursor, up to the log's end at the
// time of the call, into m. Records are decoded on all cores while they are
// folded in order on one. A record that cannot be decoded is skipped and
// counted in m.Skipped (see Model.Skip).
func Rebuild(ctx context.Context, log *eventstore.Log, filters []string, m *Model) error {
	const batch = 512
	type job struct {
		raw  []eventstore.Record
		recs []Record
		bad  []bool // bad[i]: raw[i] could not be decoded
		done chan struct{}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan *job, 64)    // to the decoders
	ordered := make(chan *job, 64) // to the folder, in log order
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				j.recs = make([]Record, len(j.raw))
				j.bad = make([]bool, len(j.raw))
				for i, raw := range j.raw {
					var err error
					j.recs[i], err = Decode(raw)
					j.bad[i] = err != nil
				}
				close(j.done)
			}
		}()
	}
	folded := make(chan struct{})
	go func() {
		defer close(folded)
		for j := range ordered {
			<-j.done
			for i, r := range j.recs {
				if j.bad[i] {
					m.Skip(j.raw[i].Seq)
					continue
				}
				m.Apply(r)
			}
		}
	}()
	cur := &job{done: make(chan struct{})}
	flush := func() {
		if len(cur.raw) == 0 {
			return
		}
		ordered <- cur
		jobs <- cur
		cur = &job{done: make(chan struct{})}
	}
	_, readErr := log.Read(ctx, filters, m.Cursor+1, func(rec eventstore.Record) error {
		cur.raw = append(cur.raw, rec)
		if len(cur.raw) == batch {
			flush()
		}
		return nil
	})
	flush()
	close(jobs)
	close(ordered)
	wg.Wait()
	<-folded
	return readErr
}

// Live is a model kept up to date from the log, safe for concurrent readers.
// Subscribers see every record after it is folded, in log order.
type Live struct {
	mu        sync.RWMutex
	model     *Model
	subs      []func(Record)
	malformed []func(Malformed)
	waitMu    sync.Mutex
	cond      *sync.Cond
	// told is the stream sequence of the last record the subscribers were
	// told of; WaitFor waits for it, not for the fold alone.
	told atomic.Uint64
}

// NewLive wraps m (a fresh model, a restored snapshot or a rebuilt one).
func NewLive(m *Model) *Live {
	l := &Live{model: m}
	l.cond = sync.NewCond(&l.waitMu)
	l.told.Store(m.Cursor)
	return l
}

// Subscribe registers fn to be called, from the folding goroutine, with each
// record once it is folded. Call before Run; fn must not block for long.
func (l *Live) Subscribe(fn func(Record)) { l.subs = append(l.subs, fn) }

// OnMalformed registers fn to be called, from the folding goroutine, with
// each record Run skips because it cannot be decoded. Call before Run.
func (l *Live) OnMalformed(fn func(Malformed)) { l.malformed = append(l.malformed, fn) }

// Skipped returns what the model has skipped so far.
func (l *Live) Skipped() Skipped {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.model.Skipped
}

// Read calls fn with the model under a read lock. fn must not keep references
// to the model's maps after it returns.
func (l *Live) Read(fn func(*Model)) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	fn(l.model)
}

// Cursor returns the stream sequence of the last folded record.
func (l *Live) Cursor() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.model.Cursor
}

// Apply folds one record and tells the subscribers. It is what Run calls for
// each record; a caller feeding records itself must do so in log order.
func (l *Live) Apply(rec Record) {
	l.mu.Lock()
	applied := l.model.Apply(rec)
	l.mu.Unlock()
	if !applied {
		return
	}
	for _, fn := range l.subs {
		fn(rec)
	}
	l.tell(rec.Seq)
}

// tell records that everything up to seq is folded and told, and wakes
// WaitFor.
func (l *Live) tell(seq uint64) {
	l.told.Store(seq)
	l.waitMu.Lock()
	l.cond.Broadcast()
	l.waitMu.Unlock()
}

// skip passes over a record that cannot be decoded (see Model.Skip), tells
// OnMalformed, and moves WaitFor past it.
func (l *Live) skip(bad Malformed) {
	l.mu.Lock()
	skipped := l.model.Skip(bad.Seq)
	l.mu.Unlock()
	if !skipped {
		return
	}
	for _, fn := range l.malformed {
		fn(bad)
	}
	l.tell(bad.Seq)
}

// Run folds the log from the model's cursor on, and keeps folding new records
// until ctx is done (then it returns nil) or the log fails. A record that
// cannot be decoded is skipped and reported to OnMalformed.
func (l *Live) Run(ctx context.Context, log *eventstore.Log, filters []string) error {
	err := log.Tail(ctx, filters, l.Cursor()+1, func(raw eventstore.Record) error {
		rec, err := Decode(raw)
		if err != nil {
			l.skip(Malformed{Seq: raw.Seq, Subject: raw.Subject, Err: err})
			return nil
		}
		l.Apply(rec)
		return nil
	})
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// WaitFor blocks until the model has folded stream sequence seq and its
// subscribers have been told (a hub has sent what it folded), or ctx is done.
func (l *Live) WaitFor(ctx context.Context, seq uint64) error {
	stop := context.AfterFunc(ctx, func() {
		l.waitMu.Lock()
		l.cond.Broadcast()
		l.waitMu.Unlock()
	})
	defer stop()
	l.waitMu.Lock()
	defer l.waitMu.Unlock()
	for l.told.Load() < seq {
		if err := ctx.Err(); err != nil {
			return err
		}
		l.cond.Wait()
	}
	return nil
}

// State returns a copy of aggregate k's state as folded up to at least
// stream sequence atLeast (waiting for the fold to get there), and the
// stream sequence the model had folded when it was copied. ok is false for an
// aggregate the model has never seen.
func (l *Live) State(ctx context.Context, k domain.Key, atLeast uint64) (state any, cursor uint64, ok bool, err error) {
	if err := l.WaitFor(ctx, atLeast); err != nil {
		return nil, 0, false, err
	}
	l.Read(func(m *Model) {
		cursor = m.Cursor
		a := m.Apps[k.App]
		if a == nil {
			return
		}
		switch k.Kind {
		case domain.KindRoom:
			if r := a.Rooms[domain.RoomID(k.ID)]; r != nil {
				state, ok = r.Clone(), true
			}
		case domain.KindSession:
			if s := a.Sessions[domain.SessionID(k.ID)]; s != nil {
				state, ok = s.Clone(), true
			}
		case domain.KindStream:
			if s := a.Streams[domain.StreamID(k.ID)]; s != nil {
				state, ok = s.Clone(), true
			}
		}
	})
	return state, cursor, ok, nil
}
