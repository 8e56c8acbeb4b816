package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// Presence is where the cluster knows which sessions are alive. Heartbeats
// are not events: a session's heartbeat lands in a JetStream key-value
// bucket (one key per session, written on attach, on each heartbeat, and on
// detach), which every node watches. A session silent for longer than the
// timeout is timed out (domain.TimeoutSession) by whichever node's timer
// fires: the engine's conditional appends make it happen once, and the
// timeout is an event, so a replay reproduces it without reading a clock.
//
// Keeping presence out of the log keeps the log free of one write per
// session every few seconds that nobody replays; keeping it in JetStream
// rather than a node's memory is what lets a surviving node time out the
// sessions of a node that died.
type Presence struct {
	cfg PresenceConfig
	kv  jetstream.KeyValue

	mu      sync.Mutex
	timers  map[string]Timer
	last    map[string]PresenceRecord
	stopped bool
}

// PresenceConfig configures Presence.
type PresenceConfig struct {
	Engine *Engine
	Log    *eventstore.Log
	Clock  Clock
	// Timeout is the heartbeat timeout: 90 s by default (ZEGO's).
	Timeout time.Duration
	// Node names this node in the records (for operators).
	Node string
	// Bucket is the key-value bucket. Default "roomlog-presence".
	Bucket   string
	Replicas int
	Logger   *slog.Logger
}

// PresenceRecord is what the cluster knows of one session.
type PresenceRecord struct {
	App      domain.AppID     `json:"app"`
	Session  domain.SessionID `json:"session"`
	Node     string           `json:"node"`
	LastSeen time.Time        `json:"last_seen"`
	Attached bool             `json:"attached"`
}

// NewPresence opens (creating if needed) the presence bucket.
func NewPresence(ctx context.Context, cfg PresenceConfig) (*Presence, error) {
	if cfg.Engine == nil || cfg.Log == nil {
		return nil, errors.New("presence: Engine and Log are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 90 * time.Second
	}
	if cfg.Bucket == "" {
		cfg.Bucket = "roomlog-presence"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	kv, err := cfg.Log.JetStream().CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: cfg.Bucket,
		History: 1, Storage: jetstream.FileStorage, Replicas: max(cfg.Replicas, 1),
		Description: "roomlog session presence: last heartbeat per session"})
	if err != nil {
		return nil, fmt.Errorf("presence bucket %s: %w", cfg.Bucket, err)
	}
	return &Presence{cfg: cfg, kv: kv, timers: map[string]Timer{}, last: map[string]PresenceRecord{}}, nil
}

// presenceKey is a session's key. Session IDs are ULIDs made by the server,
// unique across apps, so a resuming client (which knows only its session)
// finds its record; the record says the app.
func presenceKey(s domain.SessionID) string { return eventstore.Token(string(s)) }

// Beat records that a session was heard from now (a heartbeat, or a
// connection attaching it).
func (p *Presence) Beat(ctx context.Context, app domain.AppID, s domain.SessionID) error {
	return p.put(ctx, PresenceRecord{App: app, Session: s, Node: p.cfg.Node, LastSeen: p.cfg.Clock.Now().UTC(), Attached: true})
}

// Detach records that a session's connection is gone; its last heartbeat
// still counts, so it times out on time unless it resumes.
func (p *Presence) Detach(ctx context.Context, s domain.SessionID) error {
	key := presenceKey(s)
	for range 5 {
		e, err := p.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil // already timed out
		}
		if err != nil {
			return err
		}
		var r PresenceRecord
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			return err
		}
		r.Attached = false
		b, _ := json.Marshal(r)
		if _, err := p.kv.Update(ctx, key, b, e.Revision()); err == nil || !errors.Is(err, jetstream.ErrKeyExists) {
			return err
		}
	}
	return errors.New("presence: detach kept conflicting")
}

// Forget removes a session's record: one whose first login failed was
// never in a room, and must neither be resumable nor time out later.
func (p *Presence) Forget(ctx context.Context, s domain.SessionID) error {
	return p.kv.Delete(ctx, presenceKey(s))
}

// Lookup returns what the cluster knows of a session; ok is false once it
// timed out (or never existed). A record whose last heartbeat is the
// timeout old counts as timed out even before it is gone: the timekeeper
// records the timeout in the log first and forgets the record after, and a
// session is not to be resumed in between.
func (p *Presence) Lookup(ctx context.Context, s domain.SessionID) (PresenceRecord, bool, error) {
	e, err := p.kv.Get(ctx, presenceKey(s))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return PresenceRecord{}, false, nil
	}
	if err != nil {
		return PresenceRecord{}, false, err
	}
	var r PresenceRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return PresenceRecord{}, false, err
	}
	return r, p.cfg.Clock.Now().Sub(r.LastSeen) < p.cfg.Timeout, nil
}

func (p *Presence) put(ctx context.Context, r PresenceRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = p.kv.Put(ctx, presenceKey(r.Session), b)
	return err
}

// Run watches the bucket and keeps a timer per session until ctx ends.
func (p *Presence) Run(ctx context.Context) error {
	w, err := p.kv.WatchAll(ctx)
	if err != nil {
		return err
	}
	defer w.Stop()
	defer p.stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("presence: the watch ended")
			}
			if e == nil {
				continue // the initial values are all in
			}
			p.observe(e)
		}
	}
}

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
		t.Stop()
		delete(p.timers, k)
	}
}

func (p *Presence) observe(e jetstream.KeyValueEntry) {
	key := e.Key()
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.timers[key]; t != nil {
		t.Stop()
		delete(p.timers, key)
		delete(p.last, key)
	}
	if p.stopped || e.Operation() != jetstream.KeyValuePut {
		return
	}
	var r PresenceRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		p.cfg.Logger.Warn("unreadable presence record", "key", key, "err", err)
		return
	}
	rev := e.Revision()
	p.last[key] = r
	p.timers[key] = p.cfg.Clock.AfterFunc(max(r.LastSeen.Add(p.cfg.Timeout).Sub(p.cfg.Clock.Now()), 0), func() {
		p.fire(key, r, rev)
	})
}

// fire times a silent session out, if it is still silent, then forgets it.
func (p *Presence) fire(key string, r PresenceRecord, rev uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := p.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return // another node did it
	}
	if err == nil && e.Revision() != rev {
		return // heard from since: the watch has rescheduled it
	}
	if err == nil {
		_, err = p.cfg.Engine.Execute(ctx, domain.Meta{App: r.App}, domain.TimeoutSession{Session: r.Session, LastSeen: r.LastSeen})
	}
	if err != nil {
		p.cfg.Logger.Warn("recording a heartbeat timeout failed; will retry", "session", r.Session, "err", err)
		p.mu.Lock()
		if !p.stopped && p.timers[key] != nil {
			p.timers[key] = p.cfg.Clock.AfterFunc(time.Second, func() { p.fire(key, r, rev) })
		}
		p.mu.Unlock()
		return
	}
	// The timeout is in the log; forget the session unless it was heard
	// from meanwhile (then it is alive, in no room, and will time out again
	// if it goes silent).
	if err := p.kv.Delete(ctx, key, jetstream.LastRevision(rev)); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		p.cfg.Logger.Debug("forgetting a timed-out session", "session", r.Session, "err", err)
	}
}
