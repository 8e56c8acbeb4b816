package eventstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"
)

// Blobs is a bucket of named byte blobs beside the log (a JetStream object
// store), for things far larger than a record, such as projection
// snapshots. Each Put replaces the blob of its name as a whole.
type Blobs struct {
	obs jetstream.ObjectStore
}

// BlobsConfig configures OpenBlobs.
type BlobsConfig struct {
	// Bucket names the bucket. Required.
	Bucket string
	// Description is shown to operators.
	Description string
	// Replicas is the replication factor of a bucket OpenBlobs creates
	// (default 1); an existing bucket keeps its own.
	Replicas int
}

// OpenBlobs opens the bucket, creating it if it does not exist (unless the
// log is read-only). An existing bucket is used as it is: its settings are
// never changed.
func (l *Log) OpenBlobs(ctx context.Context, cfg BlobsConfig) (*Blobs, error) {
	if cfg.Bucket == "" {
		return nil, fmt.Errorf("%w: blobs: Bucket is required", ErrInvalidConfig)
	}
	var obs jetstream.ObjectStore
	err := l.openBucket(ctx, "blobs "+cfg.Bucket, jetstream.ErrBucketNotFound, func(ctx context.Context) (err error) {
		obs, err = l.js.ObjectStore(ctx, cfg.Bucket)
		return err
	}, func(ctx context.Context) (err error) {
		obs, err = l.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: cfg.Bucket,
			Replicas: max(cfg.Replicas, 1), Storage: jetstream.FileStorage, Description: cfg.Description})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Blobs{obs: obs}, nil
}

// Put stores data under name with its metadata, replacing what was there.
func (b *Blobs) Put(ctx context.Context, name string, data []byte, meta map[string]string) error {
	_, err := b.obs.Put(ctx, jetstream.ObjectMeta{Name: name, Metadata: meta}, bytes.NewReader(data))
	return classify("put blob "+name, err)
}

// Get returns the blob stored under name and its metadata; ok is false if
// there is none.
func (b *Blobs) Get(ctx context.Context, name string) (data []byte, meta map[string]string, ok bool, err error) {
	r, err := b.obs.Get(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, false, classify("get blob "+name, err)
	}
	defer r.Close()
	if data, err = io.ReadAll(r); err != nil {
		return nil, nil, false, classify("read blob "+name, err)
	}
	info, err := r.Info()
	if err != nil {
		return nil, nil, false, classify("read blob "+name, err)
	}
	return data, info.Metadata, true, nil
}

// Stats returns how many blobs the bucket holds and the bytes it stores.
func (b *Blobs) Stats(ctx context.Context) (count int, size uint64, err error) {
	st, err := b.obs.Status(ctx)
	if err != nil {
		return 0, 0, classify("blob stats", err)
	}
	list, err := b.obs.List(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		return 0, 0, classify("blob stats", err)
	}
	return len(list), st.Size(), nil
}
