package checkpoint_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/checkpoint"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// A signer that refuses its bucket (the key was changed, or heads were
// removed) tells the operator to remove the bucket and restart roomd. On an
// embedded server (a single node, or roomd -role nats) the NATS password is
// the only credential an operator holds, and it may not delete the log's
// stream: it must still be able to remove the bucket, after which a
// restarted signer starts over at round 1.
func TestARefusingSignerStartsOverOnceTheOperatorRemovesTheBucket(t *testing.T) {
	server := estest.Open(t, func(c *eventstore.Config) { c.Listen, c.Password = "127.0.0.1:-1", estest.Password })
	ctx := estest.Ctx(t)
	store, err := checkpoint.OpenStore(ctx, server, 1)
	if err != nil {
		t.Fatal(err)
	}
	old, _, err := checkpoint.EnsureKey(filepath.Join(t.TempDir(), "old.pem"))
	if err != nil {
		t.Fatal(err)
	}
	appendEvents(t, server, "r1", 1, "", 2)
	c, _ := checkpoint.New(checkpoint.Config{Log: server, Store: store, Key: old, Logger: estest.Logger(t)})
	if _, err := c.Sign(ctx); err != nil {
		t.Fatal(err)
	}
	// The key is rotated (say, after it leaked): the new signer refuses
	// the bucket and names the remedy.
	rotated, _, err := checkpoint.EnsureKey(filepath.Join(t.TempDir(), "new.pem"))
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := checkpoint.New(checkpoint.Config{Log: server, Store: store, Key: rotated, Logger: estest.Logger(t)})
	_, err = c2.Sign(ctx)
	if err == nil || !strings.Contains(err.Error(), "nats kv rm "+checkpoint.Bucket) {
		t.Fatalf("a signer with another key: %v, want a refusal naming the remedy", err)
	}
	// The operator, holding the NATS password, removes the bucket.
	cfg := server.ClientConfig()
	nc, err := nats.Connect(cfg.URL, nats.UserInfo(cfg.User, cfg.Password))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := js.DeleteKeyValue(short, checkpoint.Bucket); err != nil {
		t.Fatalf("removing bucket %s with the NATS password, as the refusal says: %v (last error: %v)",
			checkpoint.Bucket, err, nc.LastError())
	}
	// roomd restarts: the bucket is made anew, and signing starts over.
	store, err = checkpoint.OpenStore(ctx, server, 1)
	if err != nil {
		t.Fatal(err)
	}
	c3, _ := checkpoint.New(checkpoint.Config{Log: server, Store: store, Key: rotated, Logger: estest.Logger(t)})
	if r, err := c3.Sign(ctx); err != nil || r.Round != 1 || r.Aggregates != 1 {
		t.Fatalf("the restarted signer over a new bucket: round %+v, %v; want round 1 over r1", r, err)
	}
}
