package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrStreamMismatch means the stream (or a bucket beside it) exists with
// settings other than the ones this process was started with, and Open was
// not allowed to change them (Config.UpdateStream), or the log was opened
// read-only and the stream does not exist. The message names every setting
// that differs.
var ErrStreamMismatch = errors.New("eventstore: the stream's settings disagree with this node's")

// Start-up tuning: every JetStream request made while opening has its own
// timeout, and a transient failure (no stream leader yet, no quorum, a
// cluster still forming) is retried with backoff until the caller's context
// ends.
const (
	// openAttemptTimeout bounds one request of Open.
	openAttemptTimeout = 5 * time.Second
	// openBackoffMin and openBackoffMax bound the wait between attempts.
	openBackoffMin = 100 * time.Millisecond
	openBackoffMax = 3 * time.Second
)

// openStream binds the log to its stream. A read-only log only binds: it
// never creates or changes the stream. A writer creates the stream if it does
// not exist, and otherwise compares its settings with the stream's: an
// embedded server is brought in line (this process owns it), an external one
// only with Config.UpdateStream; without it a disagreement is refused with
// ErrStreamMismatch naming each setting, so that no node or tool changes a
// shared stream behind the operator's back.
func (l *Log) openStream(ctx context.Context) error {
	name := l.cfg.Stream
	var stream jetstream.Stream
	err := l.retry(ctx, "bind to stream "+name, func(ctx context.Context) error {
		var err error
		stream, err = l.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return permanent(err)
		}
		return err
	})
	switch {
	case err == nil:
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return err
	case l.cfg.ReadOnly || l.cfg.BindStream:
		return fmt.Errorf("%w: stream %s does not exist (a read-only tool never creates it; start a node first)", ErrStreamMismatch, name)
	default:
		want := streamConfig(l.cfg)
		want.Replicas = max(l.cfg.Replicas, 1)
		l.log.Info("creating the stream", "stream", name, "replicas", want.Replicas)
		err = l.retry(ctx, "create stream "+name, func(ctx context.Context) error {
			var err error
			stream, err = l.js.CreateStream(ctx, want)
			return err
		})
		if err != nil {
			return err
		}
		l.stream = stream
		return nil
	}
	l.stream = stream
	if l.cfg.ReadOnly || l.cfg.BindStream {
		return nil
	}
	have := stream.CachedInfo().Config
	want := streamConfig(l.cfg)
	if l.cfg.Replicas == 0 {
		want.Replicas = have.Replicas
	}
	if l.cfg.MaxAge == 0 {
		// Keep the retention limit the stream has (set by roomd).
		want.MaxAge = have.MaxAge
	}
	diff := configDiff(have, want, "description", "metadata")
	if len(diff) == 0 {
		return nil
	}
	// An embedded server is brought in line, except for its retention:
	// shortening it removes history at once, and a node started without
	// -retention would lift a limit set on purpose.
	if (l.srv == nil || have.MaxAge != want.MaxAge) && !l.cfg.UpdateStream {
		return fmt.Errorf("%w: stream %s has %s; start every node with the same settings, or change the stream on purpose with -update-stream",
			ErrStreamMismatch, name, strings.Join(diff, ", "))
	}
	l.log.Warn("changing the stream's settings", "stream", name, "changes", strings.Join(diff, ", "))
	return l.retry(ctx, "update stream "+name, func(ctx context.Context) error {
		var err error
		l.stream, err = l.js.UpdateStream(ctx, want)
		if err != nil && errors.Is(l.nc.LastError(), nats.ErrPermissionViolation) {
			// The server drops a request its user may not send: the
			// roomlog user of an embedded server may not change a
			// stream (see users).
			return permanent(fmt.Errorf("%w: the NATS user may not change stream %s: only the process that embeds "+
				"the JetStream server may (roomd -role nats with -update-stream): %w", ErrStreamMismatch, name, l.nc.LastError()))
		}
		return err
	})
}

// openBucket binds to a bucket beside the log, or creates it when it does
// not exist (notFound) and the log is not read-only. Both go through retry.
// Two nodes creating it at once with the same settings both succeed.
func (l *Log) openBucket(ctx context.Context, what string, notFound error, bind, create func(context.Context) error) error {
	err := l.retry(ctx, "bind to "+what, func(ctx context.Context) error {
		err := bind(ctx)
		if errors.Is(err, notFound) {
			return permanent(err)
		}
		return err
	})
	if !errors.Is(err, notFound) {
		return err
	}
	if l.cfg.ReadOnly {
		return fmt.Errorf("%w: %s does not exist (a read-only tool never creates it)", ErrStreamMismatch, what)
	}
	l.log.Info("creating " + what)
	return l.retry(ctx, "create "+what, create)
}

// Replicas returns the stream's replication factor as the log found or made
// it when it opened.
// MaxAge returns the stream's retention limit (0: history is kept
// forever), as it was at most a minute before: another node may change it
// (-update-stream). It never waits for the log: a value older than a minute
// is read again in the background.
func (l *Log) MaxAge() time.Duration {
	if l.stream == nil {
		return 0
	}
	now := time.Now().UnixNano()
	if l.maxAgeAt.Load() == 0 {
		l.maxAge.Store(int64(l.stream.CachedInfo().Config.MaxAge))
		l.maxAgeAt.Store(now)
	} else if now-l.maxAgeAt.Load() > int64(time.Minute) && l.maxAgeMu.TryLock() {
		l.maxAgeAt.Store(now)
		go func() {
			defer l.maxAgeMu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			defer cancel()
			if info, err := l.stream.Info(ctx); err == nil {
				l.maxAge.Store(int64(info.Config.MaxAge))
			}
		}()
	}
	return time.Duration(l.maxAge.Load())
}

func (l *Log) Replicas() int {
	if l.stream == nil {
		return 0
	}
	return l.stream.CachedInfo().Config.Replicas
}

// configDiff lists, as "field X (this node wants Y)", every field set in want
// that have holds with another value, comparing their JSON forms (so that a
// field added to the stream's configuration later is compared too). Fields in
// skip are ignored.
func configDiff(have, want any, skip ...string) []string {
	h, w := jsonFields(have), jsonFields(want)
	var diff []string
	for _, k := range slices.Sorted(maps.Keys(w)) {
		if slices.Contains(skip, k) {
			continue
		}
		if !reflect.DeepEqual(h[k], w[k]) {
			diff = append(diff, fmt.Sprintf("%s %s (this node wants %s)", k, show(h[k]), show(w[k])))
		}
	}
	return diff
}

func jsonFields(v any) map[string]any {
	b, _ := json.Marshal(v)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func show(v any) string {
	if v == nil {
		return "unset"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// codeNoPeers is JSClusterNoPeersErrF ("no suitable peers for placement"):
// answered while a cluster that is starting has not seen all its peers yet.
const codeNoPeers jetstream.ErrorCode = 10005

// startupTransient reports errors that mean "not yet" while a cluster
// forms, though they are final once it runs.
func startupTransient(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && api.ErrorCode == codeNoPeers
}

// Transient reports whether err, from a JetStream request, may go away by
// waiting: the log did not answer (in time), or a cluster is still electing
// the leaders it needs. What a node starting with its cluster waits for
// (see retry), whatever the request.
func Transient(err error) bool {
	return errors.Is(classify("", err), ErrUnavailable) || startupTransient(err)
}

// permanentError marks an error that retry must not retry.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func permanent(err error) error { return permanentError{err} }

// retry runs op, one JetStream request, with its own timeout, until it
// succeeds, fails in a way that waiting cannot fix, or ctx ends. Between
// attempts it waits with jittered exponential backoff and logs what it waits
// for, so that a node starting before its cluster is ready says why it is
// not up yet. The error is classified (ErrUnavailable when the log never
// answered in time).
func (l *Log) retry(ctx context.Context, what string, op func(ctx context.Context) error) error {
	base := openBackoffMin
	start := time.Now()
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, openAttemptTimeout)
		err := op(actx)
		cancel()
		if err == nil {
			if attempt > 1 {
				l.log.Info("JetStream answered", "op", what, "attempts", attempt, "after", time.Since(start).Round(time.Millisecond))
			}
			return nil
		}
		var perm permanentError
		if errors.As(err, &perm) {
			return perm.error
		}
		cerr := classify(what, err)
		if !errors.Is(cerr, ErrUnavailable) && !startupTransient(err) {
			return cerr
		}
		gaveUp := func() error {
			return fmt.Errorf("%w: %s: gave up after %d attempts in %v%s: %w", ErrUnavailable, what, attempt,
				time.Since(start).Round(time.Millisecond), noJetStream(err), err)
		}
		if ctx.Err() != nil {
			return gaveUp()
		}
		// Full backoff with jitter: nodes started together do not retry in
		// step.
		wait := base/2 + rand.N(base/2+1)
		l.log.Warn("waiting for JetStream"+noJetStream(err), "op", what, "attempt", attempt, "retry_in", wait.Round(time.Millisecond), "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return gaveUp()
		case <-t.C:
		}
		base = min(2*base, openBackoffMax)
	}
}

// noJetStream says what "no responders" means at start-up: a cluster still
// electing its leaders answers so for a moment, a server (or an account)
// without JetStream for ever.
func noJetStream(err error) string {
	if errors.Is(err, nats.ErrNoResponders) {
		return " (no JetStream answered: while a cluster starts, that passes; for longer, is JetStream enabled on the server, for this account?)"
	}
	return ""
}

// Connected reports whether the log's connection to NATS is up now (it
// reconnects by itself when it is not).
func (l *Log) Connected() bool { return l.nc != nil && l.nc.IsConnected() }

// WatchConnection has fn told, from then on, when the log's connection to
// NATS is lost (false) and when it is back (true): what a readiness check
// needs to count how long it has been down, however rarely it is asked.
func (l *Log) WatchConnection(fn func(connected bool)) { l.watch.Store(&fn) }

func (l *Log) tellConnection(connected bool) {
	if fn := l.watch.Load(); fn != nil {
		(*fn)(connected)
	}
}
