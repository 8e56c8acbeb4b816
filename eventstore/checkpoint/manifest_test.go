package checkpoint_test

import (
	"crypto/ed25519"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/checkpoint"
	"github.com/roomlog/roomlog/eventstore/estest"
)

func signer(t *testing.T, log *eventstore.Log, store *eventstore.Records, key ed25519.PrivateKey) *checkpoint.Checkpointer {
	t.Helper()
	c, err := checkpoint.New(checkpoint.Config{Log: log, Store: store, Key: key, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Every round keeps its manifest: one removed is reported, as is a head
// record put back to an older signature of its own, whose newer value the
// manifests still anchor.
func TestManifestsTellRemovedRoundsAndRolledBackHeads(t *testing.T) {
	log := estest.Open(t, nil)
	ctx := estest.Ctx(t)
	key, _, err := checkpoint.EnsureKey(filepath.Join(t.TempDir(), "k.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	store, err := checkpoint.OpenStore(ctx, log, 1)
	if err != nil {
		t.Fatal(err)
	}
	c := signer(t, log, store, key)
	h := appendEvents(t, log, "r1", 1, "", 2)
	if _, err := c.Sign(ctx); err != nil {
		t.Fatal(err)
	}
	hk := "head.room." + eventstore.Token("app") + "." + eventstore.Token("r1")
	old, _, err := store.Get(ctx, hk)
	if err != nil {
		t.Fatal(err)
	}
	h = appendEvents(t, log, "r1", 3, h, 2)
	appendEvents(t, log, "r2", 1, "", 1)
	if r, err := c.Sign(ctx); err != nil || r.Round != 2 || r.ManifestsSince != 1 {
		t.Fatalf("round 2: %+v %v", r, err)
	}
	s, err := checkpoint.Load(ctx, store, pub)
	if err != nil || len(s.Problems) != 0 || len(s.Heads) != 2 {
		t.Fatalf("the untouched bucket: %d heads, problems %q, %v", len(s.Heads), s.Problems, err)
	}

	if _, err := store.Put(ctx, hk, old.Value); err != nil { // r1's head back to round 1's
		t.Fatal(err)
	}
	s, err = checkpoint.Load(ctx, store, pub)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Problems, "\n"); !strings.Contains(got, "older than round 2's manifest (seq 4): rolled back") {
		t.Errorf("a head record rolled back: problems %q", got)
	}
	if a := s.Heads[domain.RoomKey("app", "r1")]; a.Seq != 4 || a.Hash != h {
		t.Errorf("r1 is anchored at %+v, want round 2's seq 4", a)
	}

	e, _, err := store.Get(ctx, "manifest.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(ctx, "manifest.1", e.Revision); err != nil {
		t.Fatal(err)
	}
	s, err = checkpoint.Load(ctx, store, pub)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Problems, "\n"); !strings.Contains(got, "the manifests of checkpoint rounds 1 are missing") {
		t.Errorf("a manifest removed: problems %q", got)
	}
}

// A stretch of the log that changed more aggregates than one manifest holds
// is signed in several rounds by one Sign, each manifest bounded.
func TestALongStretchIsSignedInSeveralRounds(t *testing.T) {
	log := estest.Open(t, nil)
	ctx := estest.Ctx(t)
	key, _, err := checkpoint.EnsureKey(filepath.Join(t.TempDir(), "k.pem"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := checkpoint.OpenStore(ctx, log, 1)
	if err != nil {
		t.Fatal(err)
	}
	const rooms = 2_500
	for i := range rooms {
		appendEvents(t, log, "r"+strconv.Itoa(i), 1, "", 1)
	}
	r, err := signer(t, log, store, key).Sign(ctx)
	if err != nil || r.Round != 3 || r.Aggregates != rooms || r.Cursor != rooms {
		t.Fatalf("one Sign over %d new aggregates: %+v %v; want 3 rounds of at most 1,000", rooms, r, err)
	}
	s, err := checkpoint.Load(ctx, store, key.Public().(ed25519.PublicKey))
	if err != nil || len(s.Problems) != 0 || len(s.Heads) != rooms {
		t.Fatalf("the bucket: %d heads, problems %q, %v", len(s.Heads), s.Problems, err)
	}
}

// Two nodes signing at once: each round is one signer's (its manifest is
// created, never replaced), the other takes the winner's state and signs
// the next, and an auditor finds nothing wrong.
func TestTwoSignersAtOnceLeaveABucketThatVerifies(t *testing.T) {
	log := estest.Open(t, nil)
	ctx := estest.Ctx(t)
	key, _, err := checkpoint.EnsureKey(filepath.Join(t.TempDir(), "k.pem"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := checkpoint.OpenStore(ctx, log, 1)
	if err != nil {
		t.Fatal(err)
	}
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
