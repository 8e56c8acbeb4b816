package projections

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

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

// ErrAheadOfLog is Rebuild's error for a model (a snapshot) past the log's
// end: the log was recreated, and the model is not of it.
var ErrAheadOfLog = errors.New("projections: the model is ahead of the log")

// ErrBehindLog is Rebuild's error for a model (a snapshot) whose cursor is
// before the log's first record: retention or a purge removed records it
// had not folded. Folding what is left onto it would keep what the removed
// records ended (a session that ended in the gap would stay in its rooms
// for good) and differ from every node that folds the log as it is.
var ErrBehindLog = errors.New("projections: the log no longer holds the records after the model's cursor")

// ErrNotOfLog is Rebuild's error for a model (a snapshot) folded from
// another log: the record at its cursor is not the one it folded there (the
// stream was recreated, or another log restored in its place, and has grown
// past the snapshot's cursor since).
var ErrNotOfLog = errors.New("projections: the model was not folded from this log")

// Rebuild folds every record after m's cursor, up to the log's end at the
// time of the call, into m. Records are decoded on all cores while they are
// folded in order on one. A record that cannot be decoded is skipped and
// counted in m.Skipped (see Model.Skip). A model that does not meet the log
// (ErrAheadOfLog, ErrBehindLog, ErrNotOfLog) is left as it is.
func Rebuild(ctx context.Context, log *eventstore.Log, filters []string, m *Model) error {
	if m.Cursor > 0 {
		first, last, err := log.Span(ctx)
		if err != nil {
			return err
		}
		switch {
		case m.Cursor > last:
			return fmt.Errorf("%w: the model is at %d, the log ends at %d", ErrAheadOfLog, m.Cursor, last)
		case m.Cursor+1 < first:
			return fmt.Errorf("%w: the model is at %d, the log starts at %d", ErrBehindLog, m.Cursor, first)
		}
		if err := checkHead(ctx, log, m, first); err != nil {
			return err
		}
	}
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

// checkHead makes sure the record at m's cursor is the one m folded there.
// It cannot tell for a model whose last record was skipped or that predates
// Head, nor once retention or a purge removed that record.
func checkHead(ctx context.Context, log *eventstore.Log, m *Model, first uint64) error {
	if m.Head.IsZero() || m.Cursor < first {
		return nil
	}
	raw, ok, err := log.Get(ctx, log.Prefix()+".>", m.Cursor)
	if err != nil {
		return err
	}
	if !ok || raw.Seq != m.Cursor {
		return nil // removed (a purge of that subject): nothing to compare
	}
	rec, err := Decode(raw)
	if err != nil || len(rec.Events) == 0 || rec.Events[len(rec.Events)-1].ID != m.Head {
		return fmt.Errorf("%w: the record at %d is not event %s", ErrNotOfLog, m.Cursor, m.Head)
	}
	return nil
}

// Live is a model kept up to date from the log, safe for concurrent readers.
// Subscribers see every record after it is folded, in log order, each on a
// goroutine and from a bounded queue of its own: the fold never waits for a
// subscriber, and a slow one holds up nobody else.
type Live struct {
	mu    sync.RWMutex
	model *Model

	subMu sync.Mutex
	subs  []*subscription
	// log, filters and ctx are Run's: a subscriber that falls further behind
	// than its queue holds catches up from the log.
	log     *eventstore.Log
	filters []string
	runCtx  context.Context

	waitMu sync.Mutex
	cond   *sync.Cond
	// folded is the stream sequence of the last record folded.
	folded atomic.Uint64
	onFold func(Record, time.Duration)
	// malformed is told of each record Run skips (OnMalformed).
	malformed []func(Malformed)
}

// Observe registers fn to be called on the folding goroutine after each
// record is folded, with the time the fold took (the node's metrics). Call
// before Run; fn must be quick.
func (l *Live) Observe(fn func(rec Record, took time.Duration)) { l.onFold = fn }

// NewLive wraps m (a fresh model, a restored snapshot or a rebuilt one).
func NewLive(m *Model) *Live {
	l := &Live{model: m}
	l.cond = sync.NewCond(&l.waitMu)
	l.folded.Store(m.Cursor)
	return l
}

// DefaultQueue is how many folded records a subscriber's queue holds unless
// Queue says otherwise.
const DefaultQueue = 8192

// SubscribeOption changes how a subscriber is told.
type SubscribeOption func(*subscription)

// Queue bounds the subscriber's queue at n records. A subscriber further
// behind than that reads what it missed from the log (Run's), so it is
// never skipped; without Run, Apply waits for room.
func Queue(n int) SubscribeOption {
	return func(s *subscription) { s.limit = max(n, 1) }
}

// Named names the subscriber in Subscribers (and the node's metrics).
func Named(name string) SubscribeOption { return func(s *subscription) { s.name = name } }

// NotWaited marks a subscriber that WaitFor does not wait for: one whose
// progress no reader of the model depends on (a snapshotter, metrics).
func NotWaited() SubscribeOption { return func(s *subscription) { s.waited = false } }

// Subscribe registers fn to be called with each record once it is folded,
// in log order, on a goroutine of its own. Call before the first Apply (or
// Run). WaitFor waits for fn unless NotWaited is given.
func (l *Live) Subscribe(fn func(Record), opts ...SubscribeOption) {
	s := &subscription{live: l, fn: fn, limit: DefaultQueue, waited: true, wake: make(chan struct{}, 1),
		stopped: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	s.space = sync.NewCond(&s.mu)
	l.mu.RLock()
	s.done.Store(l.model.Cursor)
	s.pushed = l.model.Cursor
	l.mu.RUnlock()
	l.subMu.Lock()
	if s.name == "" {
		s.name = fmt.Sprint("subscriber-", len(l.subs))
	}
	l.subs = append(l.subs, s)
	l.subMu.Unlock()
	go s.run()
}

// Close stops the subscribers once they have been told of everything
// folded so far. Apply must not be called after it.
func (l *Live) Close() {
	l.subMu.Lock()
	subs := l.subs
	l.subs = nil
	l.subMu.Unlock()
	for _, s := range subs {
		s.mu.Lock()
		s.closed = true
		s.space.Broadcast() // an Apply waiting for room gives up
		s.mu.Unlock()
		signal(s.wake)
		<-s.stopped
	}
	// A WaitFor waiting for a subscriber gone now is answered by the fold.
	l.broadcast()
}

// SubscriberStats is what one subscriber's queue holds and has done.
type SubscriberStats struct {
	// Name is the subscriber's (Named), or "subscriber-<n>" by Subscribe order.
	Name string
	// Queued is how many folded records wait in the queue.
	Queued int
	// Behind is how many folded records the subscriber has not been told of
	// yet (queued or to be read from the log).
	Behind uint64
	// Overflows counts the times the queue was full, so the subscriber
	// caught up from the log.
	Overflows uint64
}

// Subscribers returns each subscriber's queue figures, in Subscribe order.
func (l *Live) Subscribers() []SubscriberStats {
	l.subMu.Lock()
	subs := slices.Clone(l.subs)
	l.subMu.Unlock()
	out := make([]SubscriberStats, len(subs))
	for i, s := range subs {
		s.mu.Lock()
		out[i] = SubscriberStats{Name: s.name, Queued: len(s.queue) - s.head, Behind: s.pushed - s.done.Load(), Overflows: s.overflows}
		s.mu.Unlock()
	}
	return out
}

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

// Apply folds one record and queues it for the subscribers. It is what Run
// calls for each record; a caller feeding records itself must do so in log
// order.
func (l *Live) Apply(rec Record) {
	start := time.Now()
	l.mu.Lock()
	applied := l.model.Apply(rec)
	l.mu.Unlock()
	if !applied {
		return
	}
	if l.onFold != nil {
		l.onFold(rec, time.Since(start))
	}
	l.queue(rec, false)
}

// queue records that the fold has reached rec (folded or, skip, passed
// over) and queues it for the subscribers.
func (l *Live) queue(rec Record, skip bool) {
	l.folded.Store(rec.Seq)
	l.subMu.Lock()
	subs := l.subs
	l.subMu.Unlock()
	for _, s := range subs {
		s.push(rec, skip)
	}
	l.broadcast()
}

func (l *Live) broadcast() {
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
	// The subscribers are not told of it, but WaitFor moves past it.
	l.queue(Record{Seq: bad.Seq, Subject: bad.Subject}, true)
}

// Run folds the log from the model's cursor on, and keeps folding new records
// until ctx is done (then it returns nil) or the log fails. A record that
// cannot be decoded is skipped and reported to OnMalformed.
func (l *Live) Run(ctx context.Context, log *eventstore.Log, filters []string) error {
	l.subMu.Lock()
	l.log, l.filters, l.runCtx = log, filters, ctx
	l.subMu.Unlock()
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

// told returns the stream sequence every waited-for subscriber has been
// told of (the fold's own with none).
func (l *Live) told() uint64 {
	t := l.folded.Load()
	l.subMu.Lock()
	for _, s := range l.subs {
		if s.waited {
			t = min(t, s.done.Load())
		}
	}
	l.subMu.Unlock()
	return t
}

// WaitFor blocks until the model has folded stream sequence seq and its
// subscribers (but those marked NotWaited) have been told (a hub has sent
// what it folded), or ctx is done.
func (l *Live) WaitFor(ctx context.Context, seq uint64) error { return l.wait(ctx, seq, l.told) }

// waitFolded blocks until the model has folded stream sequence seq, told or
// not, or ctx is done.
func (l *Live) waitFolded(ctx context.Context, seq uint64) error {
	return l.wait(ctx, seq, l.folded.Load)
}

func (l *Live) wait(ctx context.Context, seq uint64, reached func() uint64) error {
	if reached() >= seq {
		return nil
	}
	stop := context.AfterFunc(ctx, l.broadcast)
	defer stop()
	l.waitMu.Lock()
	defer l.waitMu.Unlock()
	for reached() < seq {
		if err := ctx.Err(); err != nil {
			return err
		}
		l.cond.Wait()
	}
	return nil
}

// subscription is one subscriber: its queue, and the goroutine that tells it.
type subscription struct {
	live   *Live
	name   string
	fn     func(Record)
	limit  int
	waited bool
	wake   chan struct{}
	// done is the stream sequence of the last record fn returned from.
	done    atomic.Uint64
	stopped chan struct{}

	mu    sync.Mutex
	space *sync.Cond // signalled when the queue has room (Apply without a log)
	queue []queued   // waiting from queue[head] on
	head  int
	// pushed is the stream sequence of the last record folded for it.
	pushed uint64
	// behind: the queue overflowed; records after lost are read from the log.
	behind    bool
	lost      uint64 // stream sequence to read the log from
	overflows uint64
	closed    bool
}

// queued is a record waiting for a subscriber; skip marks one the fold
// passed over (it could not be decoded): the subscriber is not told of it,
// but counts it as told.
type queued struct {
	rec  Record
	skip bool
}

// push queues rec, or, with the queue full, has the subscriber read it from
// the log; without a log to read it waits for room.
func (s *subscription) push(rec Record, skip bool) {
	s.mu.Lock()
	s.pushed = rec.Seq
	switch {
	case s.behind:
	case len(s.queue)-s.head < s.limit:
		s.queue = append(s.queue, queued{rec, skip})
	case s.live.logToRead() != nil:
		s.behind, s.lost = true, rec.Seq
		s.overflows++
	default:
		for len(s.queue)-s.head >= s.limit && !s.closed {
			s.space.Wait()
		}
		s.queue = append(s.queue, queued{rec, skip})
	}
	s.mu.Unlock()
	signal(s.wake)
}

func (l *Live) logToRead() *eventstore.Log {
	l.subMu.Lock()
	defer l.subMu.Unlock()
	return l.log
}

// next takes the oldest queued record; with none, and the subscriber
// behind, it returns the range to read from the log instead.
func (s *subscription) next() (q queued, ok bool, from, to uint64, closed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head < len(s.queue) {
		q = s.queue[s.head]
		s.queue[s.head] = queued{}
		s.head++
		if n := len(s.queue) - s.head; n == 0 {
			s.queue, s.head = s.queue[:0], 0
			if cap(s.queue) > 256 {
				s.queue = nil
			}
		} else if s.head >= 256 && s.head >= n {
			s.queue, s.head = append(make([]queued, 0, 2*n), s.queue[s.head:]...), 0
		}
		s.space.Signal()
		return q, true, 0, 0, false
	}
	if s.behind {
		if s.done.Load() >= s.pushed {
			s.behind = false
			return queued{}, false, 0, 0, false
		}
		return queued{}, false, max(s.lost, s.done.Load()+1), s.pushed, false
	}
	return queued{}, false, 0, 0, s.closed
}

// run tells the subscriber of each record, in order, until Close.
func (s *subscription) run() {
	defer close(s.stopped)
	for {
		q, ok, from, to, closed := s.next()
		switch {
		case ok && q.skip:
			s.passOver(q.rec.Seq)
		case ok:
			s.tell(q.rec)
		case to > 0:
			if err := s.catchUp(from, to); err != nil {
				// Run has ended (its context is done): nothing more comes.
				// Else the log failed for a moment: try again.
				s.live.subMu.Lock()
				ended := s.live.runCtx.Err() != nil
				s.live.subMu.Unlock()
				if ended {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		case closed:
			return
		default:
			<-s.wake
		}
	}
}

func (s *subscription) tell(rec Record) {
	if rec.Seq <= s.done.Load() {
		return
	}
	s.fn(rec)
	s.done.Store(rec.Seq)
	s.live.broadcast()
}

// passOver counts a record the fold skipped as told.
func (s *subscription) passOver(seq uint64) {
	if seq > s.done.Load() {
		s.done.Store(seq)
		s.live.broadcast()
	}
}

// catchUpTimeout bounds one catch-up read of a subscriber from the log.
const catchUpTimeout = time.Minute

// errCaughtUp stops a catch-up read at the last record folded.
var errCaughtUp = errors.New("caught up")

// catchUp tells the subscriber of the records from stream sequence from to
// to, read from the log: its queue overflowed and they were not queued.
func (s *subscription) catchUp(from, to uint64) error {
	l := s.live
	l.subMu.Lock()
	log, filters, ctx := l.log, l.filters, l.runCtx
	l.subMu.Unlock()
	// What was folded is told even after Run ended (a node shutting down
	// closes the Live after Run): the read stops at to, or when the log
	// fails.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), catchUpTimeout)
	defer cancel()
	_, err := log.Read(ctx, filters, from, func(raw eventstore.Record) error {
		if raw.Seq > to {
			return errCaughtUp
		}
		rec, err := Decode(raw)
		if err != nil {
			s.passOver(raw.Seq) // the fold skipped it too
			return nil
		}
		s.tell(rec)
		return nil
	})
	if err != nil && !errors.Is(err, errCaughtUp) {
		return err
	}
	// Nothing of [from, to] may be left untold: records the filters skip
	// count as told.
	if s.done.Load() < to {
		s.done.Store(to)
		l.broadcast()
	}
	return nil
}

// signal wakes whoever waits on ch, once, without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// State returns a copy of aggregate k's state as folded up to at least
// stream sequence atLeast (waiting for the fold to get there, not for the
// subscribers: an engine loading a room does not wait for its fan-out), and the
// stream sequence the model had folded when it was copied. ok is false for an
// aggregate the model does not hold whole: one it never saw, one that ended
// (ReadState reads it from the log), one that came back after it ended.
func (l *Live) State(ctx context.Context, k domain.Key, atLeast uint64) (state any, cursor uint64, ok bool, err error) {
	// The fold is enough: a state does not wait for the fan-out.
	if err := l.waitFolded(ctx, atLeast); err != nil {
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
			return nil // passed over, as the fold passes over it
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
			return nil // passed over, as the fold passes over it
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
