package checkpoint_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/checkpoint"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections/audit"
)

// pauseHandler is a slog handler that holds up the first record whose
// message is msg until release is closed: a way to stop a signer in the
// middle of its read of the log (between reading and storing its heads),
// as a slow node is stopped there by a GC pause or a slow bucket.
type pauseHandler struct {
	slog.Handler
	msg     string
	paused  chan struct{}
	release chan struct{}
	fired   bool
}

func (h *pauseHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg && !h.fired {
		h.fired = true
		close(h.paused)
		<-h.release
	}
	return h.Handler.Handle(ctx, r)
}

// Two nodes sign, as architecture.md says every node with the key does. A
// signer that read the log a little earlier, but stores its heads a little
// later, than the other (the winner of the round) wrote its older heads
// over the winner's newer ones: head records were Put unconditionally, and
// only the round record was conditional. The events the winner's round
// signed at the end of that history were then covered by no signature, and
// removing them went unnoticed by roomctl verify -pubkey. Heads are now
// stored by compare-and-set, never behind the one in the bucket.
func TestALosingSignerNeverTakesASignedHeadBack(t *testing.T) {
	log, store, key := bucket(t)
	ctx := estest.Ctx(t)
	pub := key.Public().(ed25519.PublicKey)
	a := signer(t, log, store, key)
	ph := &pauseHandler{Handler: estest.Logger(t).Handler(), msg: "checkpoint: unreadable message",
		paused: make(chan struct{}), release: make(chan struct{})}
	b, err := checkpoint.New(checkpoint.Config{Log: log, Store: store, Key: key, Logger: slog.New(ph)})
	if err != nil {
		t.Fatal(err)
	}
	h := appendEvents(t, log, "r1", 1, "", 2)
	if _, err := a.Sign(ctx); err != nil { // round 1
		t.Fatal(err)
	}
	if _, err := b.Sign(ctx); err != nil { // b loads round 1, nothing new
		t.Fatal(err)
	}
	h = appendEvents(t, log, "r1", 3, h, 1)
	// Something b logs while reading (here a message no engine wrote, on
	// another subject), so that b can be held between read and store.
	if _, err := log.Append(ctx, eventstore.Message{Subject: log.Subject("app", "room", "junk"), MsgID: ulid.Make().String(),
		Data: []byte("not an event")}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := b.Sign(ctx); done <- err }()
	<-ph.paused // b has read r1 up to seq 3
	appendEvents(t, log, "r1", 4, h, 2)
	r2, err := a.Sign(ctx) // a signs r1 at seq 5
	if err != nil {
		t.Fatal(err)
	}
	close(ph.release)
	t.Logf("b's round: %v", <-done)
	// Both nodes go on signing; r1 does not change again.
	for range 2 {
		for _, c := range []*checkpoint.Checkpointer{a, b} {
			_, _ = c.Sign(ctx)
		}
	}
	s, err := checkpoint.Load(ctx, store, pub)
	if err != nil {
		t.Fatal(err)
	}
	head := s.Heads[domain.RoomKey("app", "r1")]
	t.Logf("round %d signed r1 at seq 5; bucket now: round %+v, r1 head %+v, problems %q", r2.Round, s.Round, head, s.Problems)

	// An auditor checks the log with r1's last two messages (seqs 4, 5)
	// removed, as in a copied store.
	var recs []eventstore.Record
	if _, err := log.Read(ctx, nil, 1, func(rec eventstore.Record) error {
		recs = append(recs, rec)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	a2 := audit.New(log.Prefix(), func(domain.AppID) domain.Policy { return domain.DefaultPolicy() })
	for k, hd := range s.Heads {
		a2.Anchor(k, hd.Seq, hd.Hash, hd.At, "the signed checkpoint")
	}
	var last uint64
	for _, rec := range recs {
		events, err := domain.DecodeEvents(rec.Data)
		if err == nil && events[0].AggregateID == "r1" && events[0].Seq >= 4 {
			continue // removed
		}
		if err != nil {
			continue // the junk message, removed too
		}
		if err := a2.Apply(rec); err != nil {
			t.Fatal(err)
		}
		last = rec.Seq
	}
	a2.Finish(last)
	if head.Seq != 5 || len(a2.Violations()) == 0 {
		t.Fatalf("round %d signed r1 at seq 5, but the bucket's head of r1 is seq %d (round %d), and an audit of the log "+
			"without r1's seqs 4..5 finds nothing: violations %q", r2.Round, head.Seq, head.Round, a2.Violations())
	}
}

// A head record deleted from the bucket while a signer runs (it has loaded
// the bucket already): the next round that signs that aggregate finds no
// record, yet cannot create one (the key has a delete marker). The first
// version of the compare-and-set looped there for as long as its context
// lasted (roomd's: until shutdown), holding the signer; it now refuses at
// once with ErrTampered, as for a deleted round record.
func TestASignerOverADeletedHeadStopsAtOnce(t *testing.T) {
	log, store, key := bucket(t)
	c := signer(t, log, store, key)
	h := appendEvents(t, log, "r1", 1, "", 2)
	if _, err := c.Sign(estest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	k := "head.room." + eventstore.Token("app") + "." + eventstore.Token("r1")
	e, ok, err := store.Get(estest.Ctx(t), k)
	if err != nil || !ok {
		t.Fatalf("r1's head: %v %v", ok, err)
	}
	if err := store.Delete(estest.Ctx(t), k, e.Revision); err != nil {
		t.Fatal(err)
	}
	appendEvents(t, log, "r1", 3, h, 1)
	ctx, cancel := context.WithTimeout(estest.Ctx(t), 5*time.Second)
	defer cancel()
	start := time.Now()
	r, err := c.Sign(ctx)
	if ctx.Err() != nil || !errors.Is(err, checkpoint.ErrTampered) {
		t.Fatalf("Sign over a deleted head record, after %v: round %+v, err %v; want ErrTampered at once",
			time.Since(start).Round(time.Millisecond), r, err)
	}
}
