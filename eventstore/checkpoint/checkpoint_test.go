package checkpoint_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/checkpoint"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// appendEvents appends n chained broadcast events to room r, one per
// message, and returns the last hash.
func appendEvents(t *testing.T, log *eventstore.Log, r string, from uint64, prev string, n int) string {
	t.Helper()
	subject := log.Subject("app", "room", r)
	last, _, err := log.Last(estest.Ctx(t), subject)
	if err != nil {
		t.Fatal(err)
	}
	expected := last.Seq
	for i := range n {
		body, head, err := domain.EncodeEvents(prev, []domain.Event{{ID: ulid.Make(), Type: domain.RoomBroadcastSent,
			App: "app", Aggregate: domain.KindRoom, AggregateID: r, Seq: from + uint64(i), Time: time.Now().UTC(),
			Data: &domain.BroadcastSentData{From: "u", Session: "s", Body: "hi"}}})
		if err != nil {
			t.Fatal(err)
		}
		ack, err := log.Append(estest.Ctx(t), eventstore.Message{Subject: subject, MsgID: ulid.Make().String(), Expected: expected, Data: body})
		if err != nil {
			t.Fatal(err)
		}
		expected, prev = ack.Seq, head
	}
	return prev
}

func TestRoundsSignWhatChangedAndAnAuditorChecksThem(t *testing.T) {
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
	c, err := checkpoint.New(checkpoint.Config{Log: log, Store: store, Key: key, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	h1 := appendEvents(t, log, "r1", 1, "", 3)
	appendEvents(t, log, "r2", 1, "", 2)
	r, err := c.Sign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Round != 1 || r.Cursor != 5 || r.Aggregates != 2 {
		t.Fatalf("first round %+v, want round 1 over 5 messages and 2 aggregates", r)
	}
	h1 = appendEvents(t, log, "r1", 4, h1, 2)
	if r, err = c.Sign(ctx); err != nil || r.Round != 2 || r.Cursor != 7 || r.Aggregates != 2 {
		t.Fatalf("second round %+v, %v", r, err)
	}
	// A new signer (a restarted roomd) carries on from the stored round.
	c2, _ := checkpoint.New(checkpoint.Config{Log: log, Store: store, Key: key, Logger: estest.Logger(t)})
	if r, err = c2.Sign(ctx); err != nil || r.Round != 2 {
		t.Fatalf("a restarted signer with nothing new signed %+v, %v; want round 2 kept", r, err)
	}
	s, err := checkpoint.Load(ctx, store, pub)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Problems) != 0 || s.Round == nil || s.Round.Round != 2 || len(s.Heads) != 2 {
		t.Fatalf("loaded %+v", s)
	}
	if h := s.Heads[domain.RoomKey("app", "r1")]; h.Seq != 5 || h.Hash != h1 || h.Round != 2 {
		t.Errorf("r1's signed head %+v, want seq 5, hash %s, round 2", h, h1)
	}
	if h := s.Heads[domain.RoomKey("app", "r2")]; h.Seq != 2 || h.Round != 1 {
		t.Errorf("r2's signed head %+v, want seq 2 of round 1", h)
	}

	// Another key: nothing verifies.
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	s, err = checkpoint.Load(ctx, store, other)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Heads) != 0 || s.Round != nil || !strings.Contains(strings.Join(s.Problems, "\n"), "signed with key "+checkpoint.KeyID(pub)) {
		t.Errorf("with another key: %d heads, round %v, problems %q", len(s.Heads), s.Round, s.Problems)
	}

	// Records tampered with in the bucket.
	e, _, _ := store.Get(ctx, "head.room."+eventstore.Token("app")+"."+eventstore.Token("r1"))
	forged := strings.Replace(string(e.Value), `\"seq\":5`, `\"seq\":9`, 1)
	forged = strings.Replace(forged, `"seq":5`, `"seq":9`, 1)
	if forged == string(e.Value) {
		t.Fatalf("nothing to forge in %s", e.Value)
	}
	if _, err := store.Put(ctx, e.Key, []byte(forged)); err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(ctx, "head.room."+eventstore.Token("app")+"."+eventstore.Token("r2"), 0); err != nil {
		t.Fatal(err)
	}
	s, err = checkpoint.Load(ctx, store, pub)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(s.Problems, "\n")
	for _, want := range []string{"signature does not verify: forged or altered", "2 aggregates, the bucket holds 0 valid heads: 2 removed"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems %q lack %q", got, want)
		}
	}
}

func TestKeysRoundTripAsPEMAndBase64(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev", "checkpoint.key")
	key, created, err := checkpoint.EnsureKey(path)
	if err != nil || !created {
		t.Fatalf("EnsureKey: %v, created %v", err, created)
	}
	again, created, err := checkpoint.EnsureKey(path)
	if err != nil || created || !key.Equal(again) {
		t.Fatalf("a second EnsureKey made a new key (%v, %v)", created, err)
	}
	pub := key.Public().(ed25519.PublicKey)
	fromFile, err := checkpoint.ParsePublicKey(path + ".pub")
	if err != nil || !pub.Equal(fromFile) {
		t.Fatalf("public key file: %v", err)
	}
	if _, err := checkpoint.ParsePublicKey(path); err == nil {
		t.Error("a private key file was taken for a public key")
	}
}

// A head record removed while roomd was down: the restarted signer finds
// fewer valid heads than its last round signed, and refuses to sign over
// them. It used to count the heads it found, so the next round's count hid
// the removal from roomctl verify for good, and the history that head
// covered could be cut short unnoticed.
func TestARestartedSignerRefusesABucketMissingAHead(t *testing.T) {
	log, store, key := bucket(t)
	ctx := estest.Ctx(t)
	c := signer(t, log, store, key)
	appendEvents(t, log, "r1", 1, "", 3)
	appendEvents(t, log, "r2", 1, "", 2)
	if _, err := c.Sign(ctx); err != nil {
		t.Fatal(err)
	}
	k := "head.room." + eventstore.Token("app") + "." + eventstore.Token("r1")
	e, ok, err := store.Get(ctx, k)
	if err != nil || !ok {
		t.Fatalf("r1's head: %v %v", ok, err)
	}
	if err := store.Delete(ctx, k, e.Revision); err != nil {
		t.Fatal(err)
	}
	appendEvents(t, log, "r3", 1, "", 1) // the app goes on meanwhile
	restarted := signer(t, log, store, key)
	r, err := restarted.Sign(ctx)
	if !errors.Is(err, checkpoint.ErrTampered) || !strings.Contains(err.Error(), "1 were removed") {
		t.Fatalf("a restarted signer over a bucket missing a head: round %+v, %v; want ErrTampered", r, err)
	}
	s, err := checkpoint.Load(ctx, store, key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if s.Round == nil || s.Round.Round != 1 || !strings.Contains(strings.Join(s.Problems, "\n"), "1 removed") {
		t.Errorf("the bucket after the refusal: round %+v, problems %q; want round 1 and the removal still told", s.Round, s.Problems)
	}
}
