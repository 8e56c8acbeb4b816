package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Records is a bucket of small, mutable, per-key records beside the log (a
// JetStream key-value bucket holding the latest value of each key). It is for
// what changes too often to be an event and that no replay needs, such as
// the last heartbeat of each session. Every write returns the key's new
// revision, and Update and Delete can be made conditional on it.
type Records struct {
	kv        jetstream.KeyValue
	log       *Log
	bucket    string
	markerTTL time.Duration
}

// RecordsConfig configures OpenRecords.
type RecordsConfig struct {
	// Bucket names the bucket. Required.
	Bucket string
	// Description is shown to operators.
	Description string
	// Replicas is the replication factor of a bucket OpenRecords creates
	// (default 1); an existing bucket keeps its own.
	Replicas int
	// MarkerTTL, if set (at least a second), is how long the marker a
	// Delete leaves is kept: watchers see the deletion, and then it goes.
	// Without it every key ever deleted leaves a marker for good, which
	// a bucket of short-lived keys (a session's presence) must not. An
	// existing bucket is made to allow it.
	MarkerTTL time.Duration
}

// Record errors.
var (
	// ErrRevisionMismatch is returned by a conditional Update or Delete when
	// the key has moved on from the revision given.
	ErrRevisionMismatch = errors.New("eventstore: the record has another revision")
)

// Entry is one record.
type Entry struct {
	Key      string
	Value    []byte
	Revision uint64
	// Deleted marks a key deleted (only in Watch).
	Deleted bool
}

// OpenRecords opens the bucket, creating it if it does not exist (unless the
// log is read-only). An existing bucket is used as it is: its settings are
// never changed, except that one opened with MarkerTTL is made to allow
// markers that expire.
func (l *Log) OpenRecords(ctx context.Context, cfg RecordsConfig) (*Records, error) {
	if cfg.Bucket == "" {
		return nil, fmt.Errorf("%w: records: Bucket is required", ErrInvalidConfig)
	}
	if cfg.MarkerTTL != 0 && cfg.MarkerTTL < time.Second {
		return nil, fmt.Errorf("%w: records: MarkerTTL %v is under a second", ErrInvalidConfig, cfg.MarkerTTL)
	}
	var kv jetstream.KeyValue
	err := l.openBucket(ctx, "records "+cfg.Bucket, jetstream.ErrBucketNotFound, func(ctx context.Context) (err error) {
		kv, err = l.js.KeyValue(ctx, cfg.Bucket)
		return err
	}, func(ctx context.Context) (err error) {
		kv, err = l.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: cfg.Bucket, History: 1,
			Storage: jetstream.FileStorage, Replicas: max(cfg.Replicas, 1), Description: cfg.Description,
			LimitMarkerTTL: cfg.MarkerTTL})
		return err
	})
	if err != nil {
		return nil, err
	}
	if cfg.MarkerTTL > 0 && !l.cfg.ReadOnly {
		if err := l.allowMarkerTTL(ctx, "KV_"+cfg.Bucket); err != nil {
			return nil, err
		}
	}
	return &Records{kv: kv, log: l, bucket: cfg.Bucket, markerTTL: cfg.MarkerTTL}, nil
}

// allowMarkerTTL lets the messages of a bucket's stream (one an earlier
// version created) carry a time to live, which its delete markers then do.
func (l *Log) allowMarkerTTL(ctx context.Context, stream string) error {
	return l.retry(ctx, "allow expiring markers in "+stream, func(ctx context.Context) error {
		s, err := l.js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		sc := s.CachedInfo().Config
		if sc.AllowMsgTTL {
			return nil
		}
		l.log.Info("letting the deletion markers of " + stream + " expire")
		sc.AllowMsgTTL = true
		_, err = l.js.UpdateStream(ctx, sc)
		return err
	})
}

// Get returns the record of key; ok is false if there is none.
func (r *Records) Get(ctx context.Context, key string) (e Entry, ok bool, err error) {
	kve, err := r.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, classify("get record", err)
	}
	return Entry{Key: key, Value: kve.Value(), Revision: kve.Revision()}, true, nil
}

// Put writes the record of key, whatever its revision, and returns the new
// revision.
func (r *Records) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := r.kv.Put(ctx, key, value)
	return rev, classify("put record", err)
}

// Update writes the record of key if its revision is still rev; else it
// fails with ErrRevisionMismatch.
func (r *Records) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	nrev, err := r.kv.Update(ctx, key, value, rev)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("%w: %s", ErrRevisionMismatch, key)
	}
	return nrev, classify("update record", err)
}

// Delete removes the record of key, leaving a marker (that expires after
// MarkerTTL, if the bucket was opened with one). With rev > 0 it does so
// only if the record's revision is still rev, and fails with
// ErrRevisionMismatch otherwise. Deleting a key that has no record
// succeeds.
func (r *Records) Delete(ctx context.Context, key string, rev uint64) error {
	var opts []jetstream.KVDeleteOpt
	if rev > 0 {
		opts = append(opts, jetstream.LastRevision(rev))
	}
	var err error
	if r.markerTTL > 0 {
		// A purge leaves one marker, which expires.
		err = r.kv.Purge(ctx, key, append(opts, jetstream.PurgeTTL(r.markerTTL))...)
	} else {
		err = r.kv.Delete(ctx, key, opts...)
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("%w: %s", ErrRevisionMismatch, key)
	}
	return classify("delete record", err)
}

// Watch calls fn with every record as it is now, then with every change,
// until ctx ends (it then returns nil) or the watch fails in a way waiting
// cannot fix. ready is called once the records present at the start have
// all been passed to fn.
//
// A log that does not answer does not end the watch: setting it up is
// tried again with backoff, saying what it waits for, and a watch that ends
// is set up again, passing every record to fn once more (fn must take a
// record it has already seen).
func (r *Records) Watch(ctx context.Context, ready func(), fn func(Entry)) error {
	for {
		w, stop, err := r.watch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		r.follow(ctx, w, &ready, fn)
		stop()
		if ctx.Err() != nil {
			return nil
		}
		if r.log.nc.IsClosed() {
			return fmt.Errorf("%w: watch records %s: the log is closed", ErrUnavailable, r.bucket)
		}
		r.log.log.Warn("the records watch ended; watching again", "bucket", r.bucket, "in", openBackoffMax)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(openBackoffMax):
		}
	}
}

// watch sets up a watch of every record, trying again with backoff while the
// log does not answer. The watch lives until stop is called: its context is
// its lifetime (the subscription ends with it), so an attempt is bounded by
// leaving it, not by a deadline on that context.
func (r *Records) watch(ctx context.Context) (w jetstream.KeyWatcher, stop func(), err error) {
	err = r.log.retry(ctx, "watch records "+r.bucket, func(attempt context.Context) error {
		wctx, cancel := context.WithCancel(ctx)
		type result struct {
			w   jetstream.KeyWatcher
			err error
		}
		done := make(chan result, 1)
		go func() {
			w, err := r.kv.WatchAll(wctx)
			done <- result{w, err}
		}()
		var res result
		select {
		case res = <-done:
		case <-attempt.Done():
			cancel()
			if res = <-done; res.err == nil {
				res.w.Stop()
			}
			return attempt.Err()
		}
		if res.err != nil {
			cancel()
			if r.log.nc.IsClosed() {
				return permanent(fmt.Errorf("%w: the log is closed: %w", ErrUnavailable, res.err))
			}
			if errors.Is(res.err, nats.ErrJetStreamNotEnabled) {
				// What the watch's API makes of "no responders": the
				// bucket was opened, so JetStream is there, not answering.
				return fmt.Errorf("%w: %w", ErrUnavailable, res.err)
			}
			return res.err
		}
		w, stop = res.w, func() { res.w.Stop(); cancel() }
		return nil
	})
	return w, stop, err
}

// follow passes w's records to fn until ctx ends or w does, and calls
// *ready (once, ever) when the records present at the start are through.
func (r *Records) follow(ctx context.Context, w jetstream.KeyWatcher, ready *func(), fn func(Entry)) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				if *ready != nil {
					(*ready)()
					*ready = nil
				}
				continue
			}
			fn(Entry{Key: e.Key(), Value: e.Value(), Revision: e.Revision(),
				Deleted: e.Operation() != jetstream.KeyValuePut})
		}
	}
}
