// Package checkpoint signs the heads of the log's hash chains, so that a
// history rewritten by someone who can write to the stream is detected even
// when its hashes are self-consistent.
//
// Every aggregate's events name their predecessor's hash, so the log proves
// that nothing in the middle of a history changed, but not that the whole
// history, or its end, is what the engine wrote: anyone who can write to the
// stream can rewrite a room from any point and recompute the chain. A
// Checkpointer (run by roomd) reads the log after its last round,
// periodically and on demand, and for every aggregate that changed stores its
// head (last event sequence and hash) signed with an Ed25519 key that only
// roomd holds. An auditor given the public key checks the log against the
// signed heads (roomctl verify -pubkey): an event at or before a signed head
// that was changed, or a history cut short of it, is detected.
//
// Signed heads are kept in a JetStream key-value bucket (Bucket), one record
// per aggregate (its latest signed head) and one round record (RoundKey)
// that counts the aggregates signed so far, so that records deleted from
// the bucket are detected too.
package checkpoint

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// Bucket is the key-value bucket that holds the signed heads.
const Bucket = "roomlog-checkpoints"

// RoundKey is the bucket key of the latest round record.
const RoundKey = "round"

// Payload types, signed with every record so that a signature of one kind
// can never be passed off as the other.
const (
	headType  = "roomlog.checkpoint.head.v1"
	roundType = "roomlog.checkpoint.round.v1"
)

// Head is one aggregate's signed chain head.
type Head struct {
	Type string `json:"type"`
	// App, Kind and ID name the aggregate.
	App  string `json:"app"`
	Kind string `json:"kind"`
	ID   string `json:"id"`
	// Seq is the aggregate's last event sequence when it was signed, and
	// Hash that event's hash (hex SHA-256 of its stored bytes).
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
	// At is the stream sequence of the message that held it (informative:
	// a history rewritten in place moves to other stream sequences).
	At uint64 `json:"stream_seq"`
	// Round is the round that signed it, Time when.
	Round uint64    `json:"round"`
	Time  time.Time `json:"time"`
}

// Key returns the aggregate's key.
func (h Head) Key() domain.Key {
	return domain.Key{Kind: domain.Kind(h.Kind), App: domain.AppID(h.App), ID: h.ID}
}

// Round is the record of the latest signing round.
type Round struct {
	Type string `json:"type"`
	// Round counts rounds, from 1.
	Round uint64 `json:"round"`
	// Cursor is the stream sequence up to which the log was read.
	Cursor uint64 `json:"cursor"`
	// Aggregates is how many aggregates have a signed head in the bucket.
	Aggregates int       `json:"aggregates"`
	Time       time.Time `json:"time"`
}

// signed is a record as stored: the payload's exact bytes and their
// signature, and which key made it.
type signed struct {
	Payload json.RawMessage `json:"payload"`
	Key     string          `json:"key"`
	Sig     string          `json:"sig"`
}

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

func sign(key ed25519.PrivateKey, v any) ([]byte, error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(signed{Payload: payload, Key: KeyID(key.Public().(ed25519.PublicKey)),
		Sig: base64.StdEncoding.EncodeToString(ed25519.Sign(key, payload))})
}

// open checks a stored record's signature with pub and decodes its payload
// into v, which must be of the type named typ.
func open(pub ed25519.PublicKey, value []byte, typ string, v any) error {
	var s signed
	if err := json.Unmarshal(value, &s); err != nil {
		return fmt.Errorf("unreadable record: %w", err)
	}
	sig, err := base64.StdEncoding.DecodeString(s.Sig)
	if err != nil || !ed25519.Verify(pub, s.Payload, sig) {
		if s.Key != KeyID(pub) {
			return fmt.Errorf("signature does not verify: signed with key %s, not %s", s.Key, KeyID(pub))
		}
		return errors.New("signature does not verify: forged or altered")
	}
	var probe struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(s.Payload, &probe); err != nil || probe.Type != typ {
		return fmt.Errorf("signed payload of type %q where %q belongs", probe.Type, typ)
	}
	return json.Unmarshal(s.Payload, v)
}

// headKey is the bucket key of an aggregate: its kind and the subject
// tokens of its app and ID.
func headKey(k domain.Key) string {
	return "head." + string(k.Kind) + "." + eventstore.Token(string(k.App)) + "." + eventstore.Token(k.ID)
}

// OpenStore opens (creating if needed) the bucket of signed heads.
func OpenStore(ctx context.Context, log *eventstore.Log, replicas int) (*eventstore.Records, error) {
	return log.OpenRecords(ctx, eventstore.RecordsConfig{Bucket: Bucket, Replicas: replicas,
		Description: "roomlog signed chain heads (checkpoints)"})
}

// Config configures a Checkpointer.
type Config struct {
	// Log is the log to sign. Required.
	Log *eventstore.Log
	// Store is the bucket (OpenStore). Required.
	Store *eventstore.Records
	// Key signs the heads. Required.
	Key ed25519.PrivateKey
	// Interval is how often Run signs a round (default 10 s).
	Interval time.Duration
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Checkpointer signs the heads of the aggregates that changed since its
// last round.
type Checkpointer struct {
	cfg Config

	mu     sync.Mutex // one round at a time
	loaded bool
	round  Round
	rev    uint64 // the round record's revision (0: none yet)
	known  map[string]bool
}

// New validates cfg and returns a Checkpointer.
func New(cfg Config) (*Checkpointer, error) {
	if cfg.Log == nil || cfg.Store == nil {
		return nil, errors.New("checkpoint: Log and Store are required")
	}
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("checkpoint: Key must be an Ed25519 private key")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Checkpointer{cfg: cfg, known: map[string]bool{}}, nil
}

// Run signs a round every Interval until ctx ends.
func (c *Checkpointer) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		_, err := c.Sign(ctx)
		switch {
		case err == nil || ctx.Err() != nil:
		case errors.Is(err, ErrTampered):
			c.cfg.Logger.Error("checkpoint round refused", "err", err)
		default:
			c.cfg.Logger.Warn("checkpoint round failed; retrying at the next one", "err", err)
		}
	}
}

// Sign runs one round now: it reads the log after the last round, signs
// the head of every aggregate that changed and stores them, then stores the
// round record. It returns the round as stored.
func (c *Checkpointer) Sign(ctx context.Context) (Round, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.loaded {
		if err := c.load(ctx); err != nil {
			return Round{}, err
		}
	}
	now := c.cfg.Now().UTC()
	next := Round{Type: roundType, Round: c.round.Round + 1, Cursor: c.round.Cursor, Time: now}
	heads := map[domain.Key]Head{}
	var order []domain.Key
	last, err := c.cfg.Log.Read(ctx, nil, c.round.Cursor+1, func(rec eventstore.Record) error {
		hash, events, err := domain.MessageHead(rec.Data)
		if err != nil {
			// Not signable; the auditor reports it. Sign what follows.
			c.cfg.Logger.Warn("checkpoint: unreadable message", "stream_seq", rec.Seq, "err", err)
			return nil
		}
		e := events[len(events)-1]
		k := e.Key()
		if _, ok := heads[k]; !ok {
			order = append(order, k)
		}
		heads[k] = Head{Type: headType, App: string(k.App), Kind: string(k.Kind), ID: k.ID, Seq: e.Seq, Hash: hash,
			At: rec.Seq, Round: next.Round, Time: now}
		return nil
	})
	if err != nil {
		return Round{}, fmt.Errorf("checkpoint: read the log: %w", err)
	}
	if last == 0 && len(heads) == 0 && c.rev != 0 {
		return c.round, nil // nothing new
	}
	next.Cursor = max(last, c.round.Cursor)
	for _, k := range order {
		hk := headKey(k)
		if err := c.storeHead(ctx, hk, heads[k]); err != nil {
			return Round{}, fmt.Errorf("checkpoint: store %s: %w", k, err)
		}
		c.known[hk] = true
	}
	next.Aggregates = len(c.known)
	value, err := sign(c.cfg.Key, next)
	if err != nil {
		return Round{}, err
	}
	// Conditional, the first round included: two signers starting at once
	// must not write over each other's round.
	rev, err := c.cfg.Store.Update(ctx, RoundKey, value, c.rev)
	if errors.Is(err, eventstore.ErrRevisionMismatch) && c.rev == 0 {
		if _, ok, gerr := c.cfg.Store.Get(ctx, RoundKey); gerr == nil && !ok {
			// No round record, yet not a new key: it was deleted.
			return Round{}, fmt.Errorf("%w: the round record was deleted; signing stops until then: %s", ErrTampered, startOver)
		}
	}
	if errors.Is(err, eventstore.ErrRevisionMismatch) {
		// Another node signed a round meanwhile: take its state. The heads
		// stored above are valid signatures all the same, and none went
		// back over a later one the other stored (storeHead).
		c.loaded = false
		return Round{}, fmt.Errorf("checkpoint: another signer stored a round meanwhile: %w", err)
	}
	if err != nil {
		return Round{}, fmt.Errorf("checkpoint: store the round: %w", err)
	}
	c.round, c.rev = next, rev
	c.cfg.Logger.Debug("checkpoint round signed", "round", next.Round, "cursor", next.Cursor, "signed", len(order))
	return next, nil
}

// storeHead stores h under hk unless the bucket holds a head of the
// aggregate at or past it: signers racing (several nodes sign) must never
// take a signed head back, or the removal of the events between the two
// would go unseen. Compare-and-set on the record's revision.
func (c *Checkpointer) storeHead(ctx context.Context, hk string, h Head) error {
	pub := c.cfg.Key.Public().(ed25519.PublicKey)
	value, err := sign(c.cfg.Key, h)
	if err != nil {
		return err
	}
	for {
		e, ok, err := c.cfg.Store.Get(ctx, hk)
		if err != nil {
			return err
		}
		var rev uint64
		if ok {
			var cur Head
			if open(pub, e.Value, headType, &cur) == nil && cur.Key() == h.Key() && cur.Seq >= h.Seq {
				return nil
			}
			rev = e.Revision
		}
		// Revision 0: only if the key has no record yet.
		_, err = c.cfg.Store.Update(ctx, hk, value, rev)
		if !errors.Is(err, eventstore.ErrRevisionMismatch) {
			return err
		}
		if !ok {
			if _, again, gerr := c.cfg.Store.Get(ctx, hk); gerr == nil && !again {
				// No record, yet not a new key: it was deleted, as a
				// round's can be (Sign).
				return fmt.Errorf("%w: the head record %s was deleted; signing stops until then: %s", ErrTampered, hk, startOver)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// load reads the bucket: the last round and the aggregates it knows.
func (c *Checkpointer) load(ctx context.Context) error {
	pub := c.cfg.Key.Public().(ed25519.PublicKey)
	entries, err := entries(ctx, c.cfg.Store)
	if err != nil {
		return err
	}
	c.round, c.rev, c.known = Round{}, 0, map[string]bool{}
	for _, e := range entries {
		if e.Key == RoundKey {
			var r Round
			if err := open(pub, e.Value, roundType, &r); err != nil {
				return fmt.Errorf("checkpoint: the round record does not verify with this node's key (%w); "+
					"was the key changed? %s", err, startOver)
			}
			c.round, c.rev = r, e.Revision
			continue
		}
		if strings.HasPrefix(e.Key, "head.") {
			var h Head
			if open(pub, e.Value, headType, &h) == nil && headKey(h.Key()) == e.Key {
				c.known[e.Key] = true
			}
		}
	}
	if len(c.known) < c.round.Aggregates {
		// Signing now would count the heads as found, and the next round
		// would hide that some were removed (roomctl verify reports it
		// only until then).
		return fmt.Errorf("%w: round %d signed %d aggregates, the bucket holds %d valid heads: %d were removed or altered "+
			"(roomctl verify -pubkey names them); signing stops until then: %s",
			ErrTampered, c.round.Round, c.round.Aggregates, len(c.known), c.round.Aggregates-len(c.known), startOver)
	}
	c.loaded = true
	return nil
}

// startOver is what a refusing signer tells the operator to do.
const startOver = "remove bucket " + Bucket + " (nats kv rm " + Bucket + ", with the NATS password) and restart roomd to start over"

// ErrTampered is returned by Sign when the bucket was changed behind the
// signers' back: a Checkpointer never signs over it.
var ErrTampered = errors.New("checkpoint: the signed heads were tampered with")

// entries returns every record of the bucket, in the order they were
// written. By key: a watch set up anew passes records it passed already.
func entries(ctx context.Context, store *eventstore.Records) ([]eventstore.Entry, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	byKey := map[string]eventstore.Entry{}
	err := store.Watch(wctx, cancel, func(e eventstore.Entry) {
		if e.Deleted {
			delete(byKey, e.Key)
		} else {
			byKey[e.Key] = e
		}
	})
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	all := slices.Collect(maps.Values(byKey))
	slices.SortFunc(all, func(a, b eventstore.Entry) int { return cmp.Compare(a.Revision, b.Revision) })
	return all, nil
}

// Signed is what an auditor reads from the bucket.
type Signed struct {
	// Heads holds the heads whose signatures verify, by aggregate.
	Heads map[domain.Key]Head
	// Round is the latest round, if its record verifies.
	Round *Round
	// Problems lists what is wrong with the bucket itself: records whose
	// signatures do not verify, a missing round record, records deleted.
	Problems []string
}

// Load reads the bucket and checks every record's signature with pub.
func Load(ctx context.Context, store *eventstore.Records, pub ed25519.PublicKey) (Signed, error) {
	all, err := entries(ctx, store)
	if err != nil {
		return Signed{}, err
	}
	s := Signed{Heads: map[domain.Key]Head{}}
	for _, e := range all {
		switch {
		case e.Key == RoundKey:
			var r Round
			if err := open(pub, e.Value, roundType, &r); err != nil {
				s.Problems = append(s.Problems, "checkpoint round record: "+err.Error())
				continue
			}
			s.Round = &r
		case strings.HasPrefix(e.Key, "head."):
			var h Head
			if err := open(pub, e.Value, headType, &h); err != nil {
				s.Problems = append(s.Problems, fmt.Sprintf("checkpoint record %s: %v", e.Key, err))
				continue
			}
			if headKey(h.Key()) != e.Key {
				s.Problems = append(s.Problems, fmt.Sprintf("checkpoint record %s holds the signed head of %s: moved", e.Key, h.Key()))
				continue
			}
			s.Heads[h.Key()] = h
		default:
			s.Problems = append(s.Problems, fmt.Sprintf("checkpoint bucket: unexpected record %q", e.Key))
		}
	}
	switch {
	case s.Round == nil && len(all) > 0:
		s.Problems = append(s.Problems, "checkpoint bucket has heads but no valid round record: the round record was removed or forged")
	case s.Round != nil && len(s.Heads) < s.Round.Aggregates:
		s.Problems = append(s.Problems, fmt.Sprintf("checkpoint round %d signed %d aggregates, the bucket holds %d valid heads: %d removed",
			s.Round.Round, s.Round.Aggregates, len(s.Heads), s.Round.Aggregates-len(s.Heads)))
	}
	return s, nil
}
