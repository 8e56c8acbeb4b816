package engine

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// DefaultOutage is how long the log may leave appends unanswered before an
// engine counts it down. A stream leader election takes a few seconds (the
// slowest measured in the cluster suite took 9); ten seconds is also the
// gateway's command budget, so that every command started when the log went
// quiet has had its full time to ride the election out.
const DefaultOutage = 10 * time.Second

// outage tells an election the engine rides out from a log that cannot
// answer. While appends go unanswered for less than after, commands wait
// (resending what may have landed). Past that the log is down: new commands
// are refused at once with domain.ErrUnavailable rather than each waiting out
// its own deadline, except one at a time, the probe, which tries for real so
// that the log's first answer ends the outage.
//
// It counts appends only: a direct get may be answered by a replica of a
// stream that has no leader, which says nothing of whether appends can be
// stored.
type outage struct {
	after  time.Duration // <= 0: never down
	now    func() time.Time
	logger *slog.Logger

	// silentSince is when an append first went unanswered since the log's
	// last answer (unix nanoseconds; 0 while the log answers).
	silentSince atomic.Int64
	probing     atomic.Bool
	down        atomic.Bool // logged as down, so that the recovery is logged once
	refused     atomic.Uint64
}

// heard records the log's answer to an append (stored, a duplicate, a
// conflict or another definite refusal): the log is up.
func (o *outage) heard() {
	if o.silentSince.Swap(0) != 0 && o.down.CompareAndSwap(true, false) {
		o.logger.Warn("the log answers again; commands are accepted", "refused_meanwhile", o.refused.Load())
	}
}

// unanswered records an append the log did not answer in time.
func (o *outage) unanswered() {
	o.silentSince.CompareAndSwap(0, o.now().UnixNano())
}

// silent returns how long appends have gone unanswered (0 while the log
// answers), and whether that is past after.
func (o *outage) silent() (time.Duration, bool) {
	since := o.silentSince.Load()
	if since == 0 {
		return 0, false
	}
	d := o.now().Sub(time.Unix(0, since))
	return d, o.after > 0 && d >= o.after
}

// admit lets a command through, or refuses it at once while the log is down
// and another command is already probing it. release must be called when
// the admitted command ends.
func (o *outage) admit() (release func(), err error) {
	silent, down := o.silent()
	if !down {
		return func() {}, nil
	}
	if o.down.CompareAndSwap(false, true) {
		o.logger.Error("the log has not answered an append; refusing commands until it does", "silent_for", silent.Round(time.Millisecond))
	}
	if o.probing.CompareAndSwap(false, true) {
		return func() { o.probing.Store(false) }, nil
	}
	o.refused.Add(1)
	return nil, domain.ErrUnavailable.With("the log has not answered an append for %s", silent.Round(time.Second))
}

// observe records what the log's answer to an append says of the outage:
// err is the append's outcome, ctx the command's context.
func (o *outage) observe(ctx context.Context, err error) {
	switch {
	case err == nil, !errors.Is(err, eventstore.ErrUnavailable):
		o.heard()
	case ctx.Err() == nil:
		// The attempt's own time ran out (or the connection is gone),
		// not the command's.
		o.unanswered()
	}
}

// LogSilent returns how long the log has left this engine's appends
// unanswered (0 while it answers), and whether that is longer than
// Config.Outage: the engine counts the log down and refuses new commands at
// once.
func (e *Engine) LogSilent() (time.Duration, bool) { return e.outage.silent() }
