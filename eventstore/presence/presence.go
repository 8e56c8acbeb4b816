// Package presence is where the cluster knows which sessions are alive, and
// where a silent one is timed out.
//
// Heartbeats are not events: a session's heartbeat lands in a bucket of
// records beside the log (one key per session, written on attach, on each
// heartbeat, and on detach), which every node watches. A session silent for
// longer than the timeout is timed out (domain.TimeoutSession) by whichever
// node's timer fires: the engine's conditional appends make it happen once,
// and the timeout is an event, so a replay reproduces it without reading a
// clock.
//
// Keeping presence out of the log keeps the log free of one write per
// session every few seconds that nobody replays; keeping it beside the log
// rather than in a node's memory is what lets a surviving node time out the
// sessions of a node that died.
package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
)

// Records is the bucket presence keeps its records in (an
// *eventstore.Records). Its errors are the eventstore's:
// eventstore.ErrRevisionMismatch for a conditional write that lost,
// eventstore.ErrUnavailable for a bucket that does not answer.
type Records interface {
	Get(ctx context.Context, key string) (eventstore.Entry, bool, error)
	Put(ctx context.Context, key string, value []byte) (uint64, error)
	Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error)
	Delete(ctx context.Context, key string, rev uint64) error
	Watch(ctx context.Context, ready func(), fn func(eventstore.Entry)) error
}

// Executor executes commands (an *engine.Engine).
type Executor interface {
	Execute(ctx context.Context, m domain.Meta, cmd domain.Command) (engine.Result, error)
}

var (
	_ Records  = (*eventstore.Records)(nil)
	_ Executor = (*engine.Engine)(nil)
)

// Config configures Presence.
type Config struct {
	// Records is the bucket of presence records. Required.
	Records Records
	// Engine records timeouts. Required.
	Engine Executor
	// Clock is the node's clock. Default engine.SystemClock.
	Clock engine.Clock
	// Timeout is the heartbeat timeout: 90 s by default (ZEGO's).
	Timeout time.Duration
	// Retry is how long a timeout that could not be recorded waits before
	// it is tried again. Default 1 s.
	Retry time.Duration
	// Node names this node in the records (for operators).
	Node   string
	Logger *slog.Logger
}

// DefaultBucket is the bucket roomd keeps presence records in.
const DefaultBucket = "roomlog-presence"

// MarkerTTL is how long the bucket keeps the marker of a session's record
// deleted (timed out, or forgotten): long enough for every node's watch to
// see it, and then it goes, so that the bucket holds only live sessions.
const MarkerTTL = 15 * time.Minute

// Presence tracks sessions' heartbeats and times silent sessions out. It is
// safe for concurrent use.
type Presence struct {
	cfg Config

	mu sync.Mutex
	// timers holds each tracked session's timeout; n tells a timer that
	// fired from one set after it.
	timers  map[string]timeout
	n       uint64
	stopped bool
	ready   chan struct{}
}

// Record is what the cluster knows of one session.
type Record struct {
	App      domain.AppID     `json:"app"`
	Session  domain.SessionID `json:"session"`
	Node     string           `json:"node"`
	LastSeen time.Time        `json:"last_seen"`
	Attached bool             `json:"attached"`
	// TimingOut is set by the node that records the session's timeout,
	// before it does: from then on the session cannot be resumed, and a
	// resume that refreshed the record first stops the timeout.
	TimingOut bool `json:"timing_out,omitempty"`
}

// New validates cfg, fills its defaults and returns a Presence. Run it to
// time sessions out; Beat, Detach, Forget and Lookup work without Run.
func New(cfg Config) (*Presence, error) {
	var errs []error
	if cfg.Records == nil {
		errs = append(errs, errors.New("presence: Records is required"))
	}
	if cfg.Engine == nil {
		errs = append(errs, errors.New("presence: Engine is required"))
	}
	if cfg.Timeout < 0 || cfg.Retry < 0 {
		errs = append(errs, fmt.Errorf("presence: Timeout (%v) and Retry (%v) must not be negative", cfg.Timeout, cfg.Retry))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = engine.SystemClock{}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 90 * time.Second
	}
	if cfg.Retry == 0 {
		cfg.Retry = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Presence{cfg: cfg, timers: map[string]timeout{}, ready: make(chan struct{})}, nil
}

// timeout is a session's timer, the n-th set.
type timeout struct {
	t engine.Timer
	n uint64
}

// key is a session's key. Session IDs are ULIDs made by the server, unique
// across apps, so a resuming client (which knows only its session) finds its
// record; the record says the app.
func key(s domain.SessionID) string { return eventstore.Token(string(s)) }

// Beat records that a session was heard from now (a heartbeat, or a
// connection attaching it). A session marked for its timeout stays marked:
// it is being timed out (its departures reach its connection through the
// log), and a heartbeat that undid the mark would let a resume claim it
// meanwhile.
func (p *Presence) Beat(ctx context.Context, app domain.AppID, s domain.SessionID) error {
	return p.BeatAt(ctx, app, s, p.cfg.Clock.Now())
}

// BeatAt is Beat for a session last heard from at seen (a frame its node
// did not tell presence of at once). A later time already recorded stays.
func (p *Presence) BeatAt(ctx context.Context, app domain.AppID, s domain.SessionID, seen time.Time) error {
	fresh := Record{App: app, Session: s, Node: p.cfg.Node, LastSeen: seen.UTC(), Attached: true}
	_, _, err := p.change(ctx, s, func(r *Record, found bool) bool {
		if found && r.TimingOut {
			return false
		}
		if found && r.LastSeen.After(fresh.LastSeen) {
			fresh.LastSeen = r.LastSeen
		}
		*r = fresh
		return true
	})
	return err
}

// Seen records that a session was last heard from at seen, if that is
// later than what its record says, changing nothing else (its connection
// may be going meanwhile).
func (p *Presence) Seen(ctx context.Context, s domain.SessionID, seen time.Time) error {
	_, _, err := p.change(ctx, s, func(r *Record, found bool) bool {
		if !found || r.TimingOut || !seen.After(r.LastSeen) {
			return false
		}
		r.LastSeen = seen.UTC()
		return true
	})
	return err
}

// Detach records that a session's connection is gone, last heard from at
// seen (a frame after its last heartbeat counts); it times out on time
// unless it resumes.
func (p *Presence) Detach(ctx context.Context, s domain.SessionID, seen time.Time) error {
	_, _, err := p.change(ctx, s, func(r *Record, found bool) bool {
		r.Attached = false
		if !r.TimingOut && seen.After(r.LastSeen) {
			r.LastSeen = seen.UTC()
		}
		return found // not found: already timed out
	})
	return err
}

// change reads session s's record, lets fn change it (found is false if
// there is none), and writes it back if fn says so, with a compare-and-set
// on the revision read (a create if there was none), trying again when
// another writer came first. It returns the record and whether it was
// written.
func (p *Presence) change(ctx context.Context, s domain.SessionID, fn func(r *Record, found bool) bool) (Record, bool, error) {
	k := key(s)
	for range 5 {
		e, ok, err := p.cfg.Records.Get(ctx, k)
		if err != nil {
			return Record{}, false, err
		}
		var r Record
		if ok {
			if err := json.Unmarshal(e.Value, &r); err != nil {
				return Record{}, false, err
			}
		}
		if !fn(&r, ok) {
			return r, false, nil
		}
		b, err := json.Marshal(r)
		if err != nil {
			return Record{}, false, err
		}
		if !ok {
			_, err = p.cfg.Records.Put(ctx, k, b)
			return r, err == nil, err
		}
		if _, err := p.cfg.Records.Update(ctx, k, b, e.Revision); !errors.Is(err, eventstore.ErrRevisionMismatch) {
			return r, err == nil, err
		}
	}
	return Record{}, false, errors.New("presence: the record kept changing under a compare-and-set")
}

// Forget removes a session's record: one whose first login failed was
// never in a room, and must neither be resumable nor time out later.
func (p *Presence) Forget(ctx context.Context, s domain.SessionID) error {
	return p.cfg.Records.Delete(ctx, key(s), 0)
}

// Revive refreshes the record of a session a client resumes, if it is still
// alive, in one compare-and-set: either it refreshes the record before a
// node marks it for its timeout (which then finds it heard from and leaves
// it alone), or it finds it marked (or gone, or past its timeout) and says
// it is not alive. The record is then this node's and attached.
func (p *Presence) Revive(ctx context.Context, s domain.SessionID) (Record, bool, error) {
	return p.change(ctx, s, func(r *Record, found bool) bool {
		if !found || !p.alive(*r) {
			return false
		}
		r.Node, r.LastSeen, r.Attached = p.cfg.Node, p.cfg.Clock.Now().UTC(), true
		return true
	})
}

// alive reports whether r's session may still be resumed.
func (p *Presence) alive(r Record) bool {
	return !r.TimingOut && p.cfg.Clock.Now().Sub(r.LastSeen) < p.cfg.Timeout
}

// Lookup returns what the cluster knows of a session; ok is false once it
// timed out (or never existed). A record whose last heartbeat is the
// timeout old counts as timed out even before it is gone: the timeout is
// recorded in the log first and the record forgotten after, and a session
// is not to be resumed in between; so does a record marked for its timeout.
func (p *Presence) Lookup(ctx context.Context, s domain.SessionID) (Record, bool, error) {
	e, ok, err := p.cfg.Records.Get(ctx, key(s))
	if err != nil || !ok {
		return Record{}, false, err
	}
	var r Record
	if err := json.Unmarshal(e.Value, &r); err != nil {
		return Record{}, false, err
	}
	return r, p.alive(r), nil
}

// Run watches the records and keeps a timer per session until ctx ends.
func (p *Presence) Run(ctx context.Context) error {
	defer p.stop()
	return p.cfg.Records.Watch(ctx, func() { close(p.ready) }, p.observe)
}

// Ready is closed once Run has scheduled every record present when it
// started.
func (p *Presence) Ready() <-chan struct{} { return p.ready }

// Tracked returns how many sessions this node has a timer for.
func (p *Presence) Tracked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.timers)
}

func (p *Presence) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	for k, t := range p.timers {
		t.t.Stop()
		delete(p.timers, k)
	}
}

func (p *Presence) observe(e eventstore.Entry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.timers[e.Key]; ok {
		t.t.Stop()
		delete(p.timers, e.Key)
	}
	if p.stopped || e.Deleted {
		return
	}
	var r Record
	if err := json.Unmarshal(e.Value, &r); err != nil {
		p.cfg.Logger.Warn("unreadable presence record", "key", e.Key, "err", err)
		return
	}
	d := max(r.LastSeen.Add(p.cfg.Timeout).Sub(p.cfg.Clock.Now()), 0)
	if r.TimingOut {
		// Marked by a node that is recording the timeout now: the others
		// finish it only if that node does not (it died).
		d = max(d, p.cfg.Retry)
	}
	p.schedule(e.Key, r, e.Revision, d)
}

// schedule sets the timer of key, in place of any it had; p.mu is held.
func (p *Presence) schedule(key string, r Record, rev uint64, d time.Duration) {
	if t, ok := p.timers[key]; ok {
		t.t.Stop() // else it would fire untracked, after Run too
	}
	p.n++
	n := p.n
	p.timers[key] = timeout{p.cfg.Clock.AfterFunc(d, func() { p.fire(key, r, rev, n) }), n}
}

// fire times a silent session out, if it is still silent, then forgets it.
// It first marks the record (a compare-and-set on the revision it found
// silent), so that a resume racing with it either refreshed the record
// before (the mark fails: heard from) or finds it marked and fails; then it
// records the timeout. A node that dies in between leaves the mark to the
// others (the watch hands them the marked record), or to its next start.
func (p *Presence) fire(key string, r Record, rev, n uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, ok, err := p.cfg.Records.Get(ctx, key)
	switch {
	case err == nil && !ok:
		// Another node did it. Its deletion is usually watched, and the
		// timer dropped then; one that went by while the watch was being
		// set up again, its marker expired since, is not: drop the timer
		// here, unless a newer one was set meanwhile.
		p.mu.Lock()
		if t, ok := p.timers[key]; ok && t.n == n {
			delete(p.timers, key)
		}
		p.mu.Unlock()
		return
	case err == nil && e.Revision != rev:
		return // heard from since: the watch has rescheduled it
	}
	if err == nil && !r.TimingOut {
		r.TimingOut = true
		b, merr := json.Marshal(r)
		if merr != nil {
			return
		}
		var marked uint64
		marked, err = p.cfg.Records.Update(ctx, key, b, rev)
		if errors.Is(err, eventstore.ErrRevisionMismatch) {
			return // heard from since
		}
		if err == nil {
			rev = marked
		} else {
			r.TimingOut = false
		}
	}
	if err == nil {
		_, err = p.cfg.Engine.Execute(ctx, domain.Meta{App: r.App}, domain.TimeoutSession{Session: r.Session, LastSeen: r.LastSeen})
	}
	if err != nil {
		p.cfg.Logger.Warn("recording a heartbeat timeout failed; will retry", "session", r.Session, "err", err)
		p.mu.Lock()
		if t, ok := p.timers[key]; ok && !p.stopped && t.n == n {
			p.schedule(key, r, rev, p.cfg.Retry)
		}
		p.mu.Unlock()
		return
	}
	// The timeout is in the log: forget the session, whatever was written
	// to its record since the mark (a heartbeat that overwrote the mark
	// must not leave a timed-out session resumable). A heartbeat after
	// this makes it alive again, in no room.
	if err := p.cfg.Records.Delete(ctx, key, 0); err != nil {
		p.cfg.Logger.Debug("forgetting a timed-out session", "session", r.Session, "err", err)
	}
}
