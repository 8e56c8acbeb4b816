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
// folded in order on one.
func Rebuild(ctx context.Context, log *eventstore.Log, filters []string, m *Model) error {
	const batch = 512
	type job struct {
		raw  []eventstore.Record
		recs []Record
		err  error
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
				for i, raw := range j.raw {
					if j.recs[i], j.err = Decode(raw); j.err != nil {
						break
					}
				}
				close(j.done)
			}
		}()
	}
	folded := make(chan error, 1)
	go func() {
		var err error
		for j := range ordered {
			<-j.done
			if err == nil && j.err != nil {
				err = j.err
				cancel()
			}
			if err == nil {
				for _, r := range j.recs {
					m.Apply(r)
				}
			}
		}
		folded <- err
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
	foldErr := <-folded
	if foldErr != nil {
		return foldErr
	}
	return readErr
}

// Live is a model kept up to date from the log, safe for concurrent readers.
// Subscribers see every record after it is folded, in log order.
type Live struct {
	mu     sync.RWMutex
	model  *Model
	subs   []func(Record)
	waitMu sync.Mutex
	cond   *sync.Cond
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
	l.told.Store(rec.Seq)
	l.waitMu.Lock()
	l.cond.Broadcast()
	l.waitMu.Unlock()
}

// Run folds the log from the model's cursor on, and keeps folding new records
// until ctx is done (then it returns nil) or a record cannot be decoded.
func (l *Live) Run(ctx context.Context, log *eventstore.Log, filters []string) error {
	err := log.Tail(ctx, filters, l.Cursor()+1, func(raw eventstore.Record) error {
		rec, err := Decode(raw)
		if err != nil {
			return err
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
// aggregate the model does not hold whole: one it never saw, one that ended
// (ReadState reads it from the log), one that came back after it ended.
func (l *Live) State(ctx context.Context, k domain.Key, atLeast uint64) (state any, cursor uint64, ok bool, err error) {
	if err := l.WaitFor(ctx, atLeast); err != nil {
		return nil, 0, false, err
	}
	l.Read(func(m *Model) {
		cursor = m.Cursor
		a := m.Apps[k.App]
		if a == nil || m.partial(k) {
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

// afterClone, when set by a test, runs between a snapshot's copy of the
// model and its serialization.
var afterClone func()

// Snapshot captures the model under name. It holds the model (and so the
// fold, and everything that waits for it) only while it copies it; the
// copy is serialized after, with the fold running on.
func (l *Live) Snapshot(name string) (Snapshot, error) {
	var c *Model
	l.Read(func(m *Model) { c = m.Clone() })
	if afterClone != nil {
		afterClone()
	}
	return TakeSnapshot(name, c)
}

// Size counts what the live model holds.
func (l *Live) Size() Size {
	var s Size
	l.Read(func(m *Model) { s = m.Size() })
	return s
}

// ReadState folds aggregate k from its messages in the log, for what the
// live model no longer holds (a session that logged out, a destroyed room).
// ok is false if the log has nothing of it. It reads the whole subject: use
// Live.State first.
func ReadState(ctx context.Context, log *eventstore.Log, k domain.Key) (state any, ok bool, err error) {
	var room *domain.Room
	var sess *domain.Session
	var stream *domain.StreamEntry
	switch k.Kind {
	case domain.KindRoom:
		room = &domain.Room{}
	case domain.KindSession:
		sess = &domain.Session{}
	case domain.KindStream:
		stream = &domain.StreamEntry{}
	default:
		return nil, false, fmt.Errorf("read state of %s: unknown kind", k)
	}
	_, err = log.Read(ctx, []string{log.Subject(string(k.App), string(k.Kind), k.ID)}, 1, func(raw eventstore.Record) error {
		rec, err := Decode(raw)
		if err != nil {
			return err
		}
		for i := range rec.Events {
			e := &rec.Events[i]
			if e.App != k.App || e.Aggregate != k.Kind || e.AggregateID != k.ID {
				continue
			}
			ok = true
			switch {
			case room != nil:
				room.Apply(e)
			case sess != nil:
				sess.Apply(e)
			default:
				stream.Apply(e)
			}
		}
		return nil
	})
	if err != nil || !ok {
		return nil, false, err
	}
	switch {
	case room != nil:
		return room, true, nil
	case sess != nil:
		return sess, true, nil
	}
	return stream, true, nil
}

// ReadConnection returns the last connection state the log records for
// session s in room (Logined while it is a member, then how it left), read
// from the room's messages; ok is false if s was never in it.
func ReadConnection(ctx context.Context, log *eventstore.Log, app domain.AppID, s domain.SessionID, room domain.RoomID) (c Connection, ok bool, err error) {
	r := &domain.Room{}
	_, err = log.Read(ctx, []string{log.Subject(string(app), string(domain.KindRoom), string(room))}, 1, func(raw eventstore.Record) error {
		rec, err := Decode(raw)
		if err != nil {
			return err
		}
		for i := range rec.Events {
			e := &rec.Events[i]
			if e.App != app || e.Aggregate != domain.KindRoom || domain.RoomID(e.AggregateID) != room {
				continue
			}
			connectionChanges(e, r, func(who domain.SessionID, got Connection) {
				if who == s {
					c, ok = got, true
				}
			})
			r.Apply(e)
		}
		return nil
	})
	if err != nil {
		return Connection{}, false, err
	}
	return c, ok, nil
}
