package engine

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// entry is one aggregate's cached state. Its lock (sem) is held by the one
// command that is deciding or appending for it; everything below it is
// guarded by the lock. It is a channel, not a sync.Mutex, so that a command
// waiting for it can give up when its own time runs out.
type entry struct {
	key domain.Key
	sem chan struct{}
	// subj is the aggregate's log subject, computed once.
	subj string

	shard *cacheShard
	users int           // commands holding or waiting for it; guarded by shard.mu
	elem  *list.Element // position in the LRU; guarded by shard.mu

	loaded bool
	room   *domain.Room
	sess   *domain.Session
	stream *domain.StreamEntry
	// seq is the stream sequence of the aggregate's last message, the value
	// of the next append's expected-last-subject-sequence.
	seq uint64
	// hash is the hash of the aggregate's last event, the next event's Prev.
	hash string
	// stale marks an aggregate another writer appended to (an append of
	// ours conflicted): a retry after a backoff catches it up first.
	stale bool
}

func (e *entry) subject(log *eventstore.Log) string {
	if e.subj == "" {
		e.subj = log.Subject(string(e.key.App), string(e.key.Kind), e.key.ID)
	}
	return e.subj
}

func (e *entry) head() domain.Head {
	switch e.key.Kind {
	case domain.KindRoom:
		return e.room.Head
	case domain.KindSession:
		return e.sess.Head
	case domain.KindStream:
		return e.stream.Head
	}
	return domain.Head{}
}

func (e *entry) reset() {
	e.loaded, e.seq, e.hash, e.stale = false, 0, "", false
	e.room, e.sess, e.stream = nil, nil, nil
	switch e.key.Kind {
	case domain.KindRoom:
		e.room = &domain.Room{}
	case domain.KindSession:
		e.sess = &domain.Session{}
	case domain.KindStream:
		e.stream = &domain.StreamEntry{}
	}
}

// apply folds one event into the cached state.
func (e *entry) apply(ev *domain.Event) {
	switch e.key.Kind {
	case domain.KindRoom:
		e.room.Apply(ev)
	case domain.KindSession:
		e.sess.Apply(ev)
	case domain.KindStream:
		e.stream.Apply(ev)
	}
}

// put exposes the cached state to a decision. Decisions never modify states,
// and mu is held while they read.
func (e *entry) put(v *domain.View) {
	switch e.key.Kind {
	case domain.KindRoom:
		v.Rooms[domain.RoomID(e.key.ID)] = e.room
	case domain.KindSession:
		v.Sessions[domain.SessionID(e.key.ID)] = e.sess
	case domain.KindStream:
		v.Streams[domain.StreamID(e.key.ID)] = e.stream
	}
}

// fold applies one stored message to the entry, checking that it chains
// from the cached head, and returns the ID of its first event.
//
// A message that cannot be decoded at all (not written by an engine) is
// passed over as the projections pass over it (they report it): the next
// append expects its sequence and chains from the last event before it,
// so the room goes on and roomctl verify still flags the bad message. A
// message of events that do not chain is refused: nothing is appended
// after a broken link.
func (e *entry) fold(rec eventstore.Record) (string, error) {
	head, events, err := domain.MessageHead(rec.Data)
	if err != nil && !errors.Is(err, domain.ErrBrokenChain) {
		e.seq = rec.Seq
		return "", nil
	}
	if err == nil && events[0].Prev != e.hash && !e.reanchors(&events[0]) {
		err = fmt.Errorf("%w: %s seq %d names %q, expected %q", domain.ErrBrokenChain, events[0].Key(), events[0].Seq,
			events[0].Prev, e.hash)
	}
	if err != nil {
		return "", fmt.Errorf("%s at stream sequence %d: %w", e.key, rec.Seq, err)
	}
	// Check the whole message before applying any of it: a message that
	// does not follow on leaves the entry as it was, at a head the next
	// append's Expected and Prev still describe truthfully.
	for i := range events {
		if want := e.head().Seq + 1 + uint64(i); events[i].Seq != want {
			return "", fmt.Errorf("%s at stream sequence %d: event seq %d, want %d", e.key, rec.Seq, events[i].Seq, want)
		}
	}
	for i := range events {
		e.apply(&events[i])
	}
	e.seq, e.hash = rec.Seq, head
	return events[0].ID.String(), nil
}

// catchUp folds every message appended to the aggregate's subject after the
// cached one. It returns the IDs of the first events of the messages it read,
// to recognise an append of ours whose acknowledgement was lost. It reads
// from the cached sequence on: cheap for a recent one (see load).
func (e *entry) catchUp(ctx context.Context, log *eventstore.Log, subject string) (map[string]uint64, error) {
	seen := map[string]uint64{}
	fold := func(rec eventstore.Record) error {
		id, err := e.fold(rec)
		if id != "" {
			seen[id] = rec.Seq
		}
		return err
	}
	var err error
	if e.seq > 0 {
		// A cached aggregate behind by a few messages (another writer's):
		// direct gets fetch them in one round trip.
		_, err = log.ReadSubject(ctx, subject, e.seq+1, fold)
	} else {
		_, err = log.Read(ctx, []string{subject}, 1, fold)
	}
	if err != nil {
		return nil, err
	}
	return seen, nil
}

// Source supplies folded aggregate states, so that loading an aggregate does
// not replay its subject from the beginning (a filtered read scans the whole
// span of the stream the subject covers). *projections.Live is one.
type Source interface {
	// State returns a copy of k's state folded up to at least stream
	// sequence atLeast; ok is false for an aggregate it has never seen.
	State(ctx context.Context, k domain.Key, atLeast uint64) (state any, cursor uint64, ok bool, err error)
}

// load brings a cold entry up to date: the last message of the subject tells
// where the aggregate ends; the state comes from src when it has folded that
// far, else from a replay of the subject.
func (e *entry) load(ctx context.Context, log *eventstore.Log, src Source, subject string) error {
	e.reset()
	for try := 0; src != nil && try < 3; try++ {
		last, ok, err := log.Last(ctx, subject)
		if err != nil {
			return err
		}
		if !ok {
			return e.loadEmptied(ctx, src)
		}
		head, events, err := domain.MessageHead(last.Data)
		if err != nil && !errors.Is(err, domain.ErrBrokenChain) {
			break // an undecodable last message: replay the subject, which passes over it
		}
		if err != nil {
			return fmt.Errorf("%s at stream sequence %d: %w", e.key, last.Seq, err)
		}
		state, _, found, err := src.State(ctx, e.key, last.Seq)
		if err != nil {
			return err
		}
		if !found || !e.set(state) {
			break
		}
		switch got, want := e.head().Seq, events[len(events)-1].Seq; {
		case got == want:
			e.seq, e.hash, e.loaded = last.Seq, head, true
			return nil
		case got < want:
			return fmt.Errorf("%s: the source folded it to seq %d, the log has %d", e.key, got, want)
		}
		e.reset() // appended to since we looked: look again
	}
	e.reset()
	if _, err := e.catchUp(ctx, log, subject); err != nil {
		return err
	}
	e.loaded = true
	return nil
}

// loadEmptied loads an aggregate whose subject holds nothing: a new one, or
// one whose records retention removed while it lived on, whose state src
// still holds. That state is taken with its chain's last hash unknown: the
// next record chains on from "" (re-anchored; see reanchors), as the first
// record kept of a history whose start was removed may.
func (e *entry) loadEmptied(ctx context.Context, src Source) error {
	state, _, found, err := src.State(ctx, e.key, 0)
	if err != nil {
		return err
	}
	if !found || !e.set(state) || e.head().Seq == 0 {
		e.reset()
	}
	e.loaded = true
	return nil
}

// reanchors reports whether ev, the first event of a record, may follow the
// entry although it does not name the entry's last hash: the chain was
// re-anchored after retention emptied the aggregate's subject. Either this
// entry was loaded so (its hash unknown), or ev's writer was (ev names "");
// the sequence must follow on either way.
func (e *entry) reanchors(ev *domain.Event) bool {
	seq := e.head().Seq
	return seq > 0 && ev.Seq == seq+1 && (e.hash == "" || ev.Prev == "")
}

// set installs a state copy from a Source; false if it is of the wrong kind.
func (e *entry) set(state any) bool {
	switch s := state.(type) {
	case *domain.Room:
		e.room = s
		return e.key.Kind == domain.KindRoom
	case *domain.Session:
		e.sess = s
		return e.key.Kind == domain.KindSession
	case *domain.StreamEntry:
		e.stream = s
		return e.key.Kind == domain.KindStream
	}
	return false
}

// cache holds entries in shards (so that commands on different aggregates
// rarely meet on a lock), each evicting its least recently used idle entries
// past its share of the size.
type cache struct {
	shards [cacheShards]cacheShard
}

const cacheShards = 64

type cacheShard struct {
	mu      sync.Mutex
	max     int
	entries map[domain.Key]*entry
	lru     *list.List // front: most recently used
}

func newCache(max int) *cache {
	c := &cache{}
	for i := range c.shards {
		c.shards[i] = cacheShard{max: max/cacheShards + 1, entries: map[domain.Key]*entry{}, lru: list.New()}
	}
	return c
}

func (c *cache) shard(k domain.Key) *cacheShard {
	h := fnv.New32a()
	h.Write([]byte(k.ID))
	h.Write([]byte(k.App))
	return &c.shards[h.Sum32()%cacheShards]
}

// acquire returns the entry for k, marked in use so that it is not evicted.
func (c *cache) acquire(k domain.Key) *entry { return c.get(k, true) }

// peek is acquire for an entry that is already cached; it returns nil
// (creating nothing) for one that is not.
func (c *cache) peek(k domain.Key) *entry { return c.get(k, false) }

func (c *cache) get(k domain.Key, create bool) *entry {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[k]
	switch {
	case ok:
		s.lru.MoveToFront(e.elem)
	case !create:
		return nil
	default:
		e = &entry{key: k, shard: s, sem: make(chan struct{}, 1)}
		e.reset()
		e.elem = s.lru.PushFront(e)
		s.entries[k] = e
		s.evictLocked()
	}
	e.users++
	return e
}

func (c *cache) release(e *entry) {
	e.shard.mu.Lock()
	e.users--
	e.shard.mu.Unlock()
}

func (s *cacheShard) evictLocked() {
	for el := s.lru.Back(); el != nil && len(s.entries) > s.max; {
		prev := el.Prev()
		if e := el.Value.(*entry); e.users == 0 {
			s.lru.Remove(el)
			delete(s.entries, e.key)
		}
		el = prev
	}
}

// lock takes the entry's lock, waiting as long as it takes.
func (en *entry) lock() { en.sem <- struct{}{} }

// lockCtx takes the entry's lock, or returns ctx's error if ctx ends first.
func (en *entry) lockCtx(ctx context.Context) error {
	select {
	case en.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (en *entry) unlock() { <-en.sem }
