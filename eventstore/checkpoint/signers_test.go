package checkpoint_test

import (
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/checkpoint"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// bucket opens a log with its checkpoint bucket and makes a signing key.
func bucket(t *testing.T) (*eventstore.Log, *eventstore.Records, ed25519.PrivateKey) {
	t.Helper()
	log := estest.Open(t, nil)
	key, _, err := checkpoint.EnsureKey(filepath.Join(t.TempDir(), "k.pem"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := checkpoint.OpenStore(estest.Ctx(t), log, 1)
	if err != nil {
		t.Fatal(err)
	}
	return log, store, key
}

// signer is a Checkpointer over log's store with key (a node, or the same
// node restarted).
func signer(t *testing.T, log *eventstore.Log, store *eventstore.Records, key ed25519.PrivateKey) *checkpoint.Checkpointer {
	t.Helper()
	c, err := checkpoint.New(checkpoint.Config{Log: log, Store: store, Key: key, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Two nodes signing at once, from their first round on: each round record
// is one signer's (written conditionally, the first included), the other
// takes the winner's state and signs the next, and an auditor finds nothing
// wrong.
func TestTwoSignersAtOnceLeaveABucketThatVerifies(t *testing.T) {
	log, store, key := bucket(t)
	ctx := estest.Ctx(t)
	a, b := signer(t, log, store, key), signer(t, log, store, key)
	hashes := map[string]string{}
	for round := range 20 {
		for _, r := range []string{"r1", "r2", "r3"} {
			hashes[r] = appendEvents(t, log, r, uint64(round+1), hashes[r], 1)
		}
		var wg sync.WaitGroup
		for _, c := range []*checkpoint.Checkpointer{a, b} {
			wg.Go(func() {
				for {
					_, err := c.Sign(ctx)
					if err == nil || ctx.Err() != nil {
						return
					}
					if !strings.Contains(err.Error(), "another signer") {
						t.Errorf("sign: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	s, err := checkpoint.Load(ctx, store, key.Public().(ed25519.PublicKey))
	if err != nil || len(s.Problems) != 0 || len(s.Heads) != 3 {
		t.Fatalf("after two signers: %d heads, problems %q, %v", len(s.Heads), s.Problems, err)
	}
	for r, h := range hashes {
		if got := s.Heads[domain.RoomKey("app", domain.RoomID(r))]; got.Seq != 20 || got.Hash != h {
			t.Errorf("%s anchored at %+v, want seq 20", r, got)
		}
	}
}

// The round record deleted: a signer does not start over at round 1 as if
// the bucket were new (hiding the deletion, and every round before it, from
// -min-round); it refuses. It used to put a round 1 over it.
func TestASignerRefusesABucketWhoseRoundRecordWasDeleted(t *testing.T) {
	log, store, key := bucket(t)
	ctx := estest.Ctx(t)
	h := appendEvents(t, log, "r1", 1, "", 2)
	for round := range 2 {
		if _, err := signer(t, log, store, key).Sign(ctx); err != nil {
			t.Fatalf("round %d: %v", round+1, err)
		}
		h = appendEvents(t, log, "r1", uint64(3+2*round), h, 2)
	}
	e, ok, err := store.Get(ctx, checkpoint.RoundKey)
	if err != nil || !ok {
		t.Fatalf("the round record: %v %v", ok, err)
	}
	if err := store.Delete(ctx, checkpoint.RoundKey, e.Revision); err != nil {
		t.Fatal(err)
	}
	r, err := signer(t, log, store, key).Sign(ctx)
	if !errors.Is(err, checkpoint.ErrTampered) || !strings.Contains(err.Error(), "round record was deleted") {
		t.Fatalf("a signer over a bucket whose round record was deleted: round %+v, %v; want ErrTampered", r, err)
	}
}
