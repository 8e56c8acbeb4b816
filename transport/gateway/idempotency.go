package gateway

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/transport/protocol"
)

// maxRemembered bounds the outcomes a node remembers by idempotency key;
// past it the session that holds the most loses its oldest first, so that a
// client sending keys as fast as it may cannot push out everyone else's.
const maxRemembered = 100_000

// outcome is the outcome of a request that carried an idempotency key; done
// is closed once it is known.
type outcome struct {
	id   replyKey
	op   protocol.Op
	at   time.Time
	done chan struct{}
	keep bool // a definite outcome, answered to repeats
	data any
	err  error
}

type replyKey struct {
	session domain.SessionID
	key     string
}

// replies remembers, per node, the outcome of the requests with an
// idempotency key, by session and key, for protocol.IdempotencyWindow: a
// client that lost a reply (its connection dropped) and sends the request
// again, on this connection or after resuming on a new one, gets the
// original answer instead of running the operation twice. A repeat that
// arrives while the original still runs waits for it.
type replies struct {
	mu    sync.Mutex
	limit int // maxRemembered, unless a test says
	byKey map[replyKey]*outcome
	order []*outcome // oldest first; those forgotten early stay until they expire
	// bySession holds each session's remembered outcomes, oldest first;
	// biggest is the session that held the most when it last grew (a
	// rescan finds the largest once it has none left).
	bySession map[domain.SessionID][]*outcome
	biggest   domain.SessionID
}

// start looks key up for session: it returns the remembered outcome (whose
// done may still be open) and true, or registers a new one, to be finished
// with finish, and false.
func (r *replies) start(session domain.SessionID, key string, op protocol.Op, now time.Time) (*outcome, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked(now)
	id := replyKey{session, key}
	if o, ok := r.byKey[id]; ok && o.op == op {
		return o, true
	} else if ok {
		r.removeLocked(o) // the key named another operation: this one takes its place
	}
	if r.byKey == nil {
		r.byKey, r.bySession = map[replyKey]*outcome{}, map[domain.SessionID][]*outcome{}
	}
	limit := r.limit
	if limit == 0 {
		limit = maxRemembered
	}
	for len(r.byKey) >= limit {
		if len(r.bySession[r.biggest]) == 0 {
			r.biggest = r.largestLocked()
		}
		if b := r.bySession[r.biggest]; len(b)*len(r.bySession) > len(r.byKey) {
			// A session holding more than its share loses its oldest.
			r.removeLocked(b[0])
		} else {
			r.forgetOldestLocked()
		}
	}
	if len(r.order) >= 2*limit {
		// Compact the outcomes removed early away.
		r.order = slices.DeleteFunc(r.order, func(o *outcome) bool { return r.byKey[o.id] != o })
	}
	o := &outcome{id: id, op: op, at: now, done: make(chan struct{})}
	r.byKey[id] = o
	r.order = append(r.order, o)
	r.bySession[session] = append(r.bySession[session], o)
	if len(r.bySession[session]) > len(r.bySession[r.biggest]) {
		r.biggest = session
	}
	return o, false
}

// largestLocked returns the session that holds the most outcomes.
func (r *replies) largestLocked() domain.SessionID {
	var most domain.SessionID
	n := -1
	for s, os := range r.bySession {
		if len(os) > n {
			most, n = s, len(os)
		}
	}
	return most
}

// forgetOldestLocked forgets the oldest outcome remembered.
func (r *replies) forgetOldestLocked() {
	for len(r.order) > 0 {
		o := r.order[0]
		r.order[0] = nil
		r.order = r.order[1:]
		if r.byKey[o.id] == o {
			r.removeLocked(o)
			return
		}
	}
}

// removeLocked forgets o: byKey and its session's list hold the same
// outcomes. o is most often the oldest of its session's (forgotten, or
// expired) or its newest (not definite, or replaced).
func (r *replies) removeLocked(o *outcome) {
	if r.byKey[o.id] == o {
		delete(r.byKey, o.id)
	}
	l := r.bySession[o.id.session]
	i := len(l) - 1
	switch {
	case len(l) > 0 && l[0] == o:
		i = 0
	default:
		for i >= 0 && l[i] != o {
			i--
		}
	}
	if i < 0 {
		return
	}
	if i == 0 {
		l[0] = nil // what the list no longer holds is released
		l = l[1:]
	} else {
		l = slices.Delete(l, i, i+1)
	}
	if len(l) == 0 {
		delete(r.bySession, o.id.session)
	} else {
		r.bySession[o.id.session] = l
	}
}

// finish records o's outcome and wakes the repeats waiting for it. An
// outcome that is not definite (the log was unavailable, the command timed
// out: it may or may not have taken effect) is forgotten, so that a repeat
// runs again; the engine recognises its own append if it did land.
func (r *replies) finish(o *outcome, data any, err error) {
	r.mu.Lock()
	o.data, o.err = data, err
	o.keep = err == nil || !engine.IsInternal(err)
	if !o.keep && r.byKey[o.id] == o {
		r.removeLocked(o)
	}
	r.mu.Unlock()
	close(o.done)
}

// wait waits for o's outcome; ok is false if it was not definite or ctx
// ended first.
func (o *outcome) wait(ctx context.Context) (data any, err error, ok bool) {
	select {
	case <-o.done:
		return o.data, o.err, o.keep
	case <-ctx.Done():
		return nil, nil, false
	}
}

// expireLocked forgets what is older than the idempotency window.
func (r *replies) expireLocked(now time.Time) {
	for len(r.order) > 0 && now.Sub(r.order[0].at) > protocol.IdempotencyWindow {
		o := r.order[0]
		r.order[0] = nil
		r.order = r.order[1:]
		if r.byKey[o.id] == o {
			r.removeLocked(o)
		}
	}
}

// checkIdempotencyKey refuses a key the protocol does not accept.
func checkIdempotencyKey(key string) error {
	if len(key) > protocol.MaxIdempotencyKey {
		return domain.ErrInvalidArgument.With("idempotency_key is %d bytes, at most %d", len(key), protocol.MaxIdempotencyKey)
	}
	return nil
}

// keyedRequest names, for the engine, the commands one keyed request runs:
// the n-th command of request key of session is "<session> <op> <n> <key>",
// the same on every try of it, on any node. The engine derives its appends'
// Msg-Ids from it, so that a try after the node that ran the first one died
// (taking the replies remembered here with it) stores nothing twice.
type keyedRequest struct {
	base, key string
	n         atomic.Int32
}

type keyedRequestKey struct{}

// withKeyedRequest marks ctx as running the keyed request key of session.
func withKeyedRequest(ctx context.Context, session domain.SessionID, op protocol.Op, key string) context.Context {
	return context.WithValue(ctx, keyedRequestKey{}, &keyedRequest{base: string(session) + " " + string(op), key: key})
}

// nextCommand returns the request name of the next command ctx's request
// runs, or "" when it carries no idempotency key.
func nextCommand(ctx context.Context) string {
	r, _ := ctx.Value(keyedRequestKey{}).(*keyedRequest)
	if r == nil {
		return ""
	}
	return r.base + " " + strconv.Itoa(int(r.n.Add(1))) + " " + r.key
}
