// Package consume gives an analytics consumer the room events as a watermill
// subscription (watermill-nats' JetStream subscriber on a durable consumer)
// from any cursor, with checkpoints, so that a consumer stopped or killed at
// any point and started again neither loses nor double-counts an event.
//
// The contract: the application keeps its state together with the cursor of
// the last event it folded, and saves both in one write (Save). On start it
// says where that state stands (Config.After); the durable consumer is
// (re)created at that cursor's message and every event up to the cursor is
// skipped, so whatever the server believes was acknowledged, delivery
// resumes exactly after the saved state. Effects are keyed by cursor: an
// event is handed over once per run, in log order.
//
// A consumer far behind first catches up with an ordered consumer (a plain
// read of the log up to its end as of the start, at the raw read rate, with
// the same checkpoints), then follows the log through the watermill
// subscription from the cursor it reached.
//
// A message whose events cannot be decoded, or on which Handle panics, is
// retried a bounded number of times (Config.MaxAttempts), then reported
// (Config.Parked) and parked: recorded in the consumer's parked records and
// skipped. A message Handle returns an error on is retried for longer, at
// least Config.RetryFor (an outage of the application's own store shorter
// than that loses nothing), then parked. It is never retried forever. An event of a type this build does not know (a
// newer roomd wrote it) is not parked: Run stops before it, with an error
// wrapping domain.ErrUnknownEventType, so that an upgraded consumer folds it.
package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmjs "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/projections/cursor"
)

// Config configures a Consumer.
type Config struct {
	// Log is the log to consume (its connection, stream and prefix). Required.
	Log *eventstore.Log
	// Name names the durable JetStream consumer ([A-Za-z0-9_-]+). Required.
	Name string
	// Filter is the subject filter (default: every room of every app,
	// "<prefix>.*.room.*").
	Filter string
	// After is the cursor the application's saved state has reached (the
	// zero Cursor: nothing yet). Delivery starts just after it.
	After cursor.Cursor
	// Handle folds one event. An error makes the consumer retry the
	// event's message; Handle must therefore skip events it has already
	// folded (compare cursors), as stats.Stats does.
	Handle func(ctx context.Context, e cursor.Event) error
	// Save persists the application's state, which has reached the given
	// cursor, in one write. It is called every SaveEvery events, every
	// SaveInterval, and when Run ends. Once every event of a message is
	// folded the cursor is cursor.End of that message ("<seq>"), or of the
	// last of the messages of other subjects that follow it, so that a
	// later start can tell messages that retention removed after the
	// consumer was done with them from events never handed over.
	Save func(ctx context.Context, c cursor.Cursor) error
	// SaveEvery and SaveInterval bound the work a crash repeats (defaults
	// 10,000 events and 1 s).
	SaveEvery    int
	SaveInterval time.Duration
	// MaxAttempts is how many times a message is tried before it is
	// parked (default 5).
	MaxAttempts int
	// RetryFor is how long a message Handle returns an error on is tried
	// again, waiting from 20 ms up to 2 s between tries, before it is
	// parked (default 1 minute; at least MaxAttempts tries either way): the
	// event may be fine and the application's store down. Messages that
	// cannot be decoded, and those Handle panics on, are parked after
	// MaxAttempts tries.
	RetryFor time.Duration
	// AckWait is how long the server waits for a delivered message to be
	// acknowledged before it delivers it again (default 1 min). A Handle
	// slower than that gets the message, and those delivered after it,
	// again; every event is still handed over once, in log order (what is
	// at or before the cursor reached is acknowledged and skipped).
	AckWait time.Duration
	// Parked, if set, is told about every parked message.
	Parked func(rec Parked)
	// Expired says what to do when After has fallen off the log (retention
	// removed the events after it): false (the default) makes Run fail with
	// ErrCursorExpired; true carries on from the first kept event, and the
	// gap is logged.
	Expired bool
	Logger  *slog.Logger
}

// Parked is a message the consumer gave up on.
type Parked struct {
	Seq     uint64    `json:"stream_seq"`
	Subject string    `json:"subject"`
	Error   string    `json:"error"`
	Tries   int       `json:"attempts"`
	Time    time.Time `json:"time"`
}

// ErrConsumerGone is returned by Run when its durable consumer was removed
// on the server while it ran (by an operator, or by another consumer
// started with the same name, which replaces it). Run saves what it handled
// first: started again, it recreates the consumer at the saved cursor.
var ErrConsumerGone = errors.New("consume: the durable consumer was removed on the server")

// ErrCursorExpired is returned by Run when the events after Config.After
// are no longer in the log.
var ErrCursorExpired = errors.New("consume: the cursor fell off the log: events after it were removed by retention")

// ErrCursorAhead is returned by Run when Config.After is past the log's
// last message: the cursor is not of this log (the log was reset, or the
// saved state is another deployment's). Taken as it is, the consumer would
// skip every event appended until the log grew past it.
var ErrCursorAhead = errors.New("consume: the cursor is past the log's end: it is not of this log")

// Consumer delivers room events to an application.
type Consumer struct {
	cfg     Config
	records *eventstore.Records
	from    cursor.Cursor // where the subscription starts

	// js asks the server about the stream and the durable consumer, on a
	// connection of Run's own.
	js jetstream.JetStream

	// first is the log's first kept stream sequence, as asked at firstAt
	// (Run's goroutine only).
	first   uint64
	firstAt time.Time

	mu sync.Mutex
	// created is when Run's durable consumer was created: another of the
	// same name (the first removed, or replaced by another run) was
	// created at another time.
	created time.Time
	gate    *gatedConsumer
}

// New validates cfg and returns a Consumer.
func New(cfg Config) (*Consumer, error) {
	if cfg.Log == nil || cfg.Handle == nil || cfg.Save == nil || cfg.Name == "" {
		return nil, errors.New("consume: Log, Name, Handle and Save are required")
	}
	if cfg.Filter == "" {
		cfg.Filter = cfg.Log.KindFilter(string(domain.KindRoom))
	}
	if cfg.SaveEvery <= 0 {
		cfg.SaveEvery = 10_000
	}
	if cfg.SaveInterval <= 0 {
		cfg.SaveInterval = time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = time.Minute
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Consumer{cfg: cfg}, nil
}

// Run consumes until ctx ends (then it saves and returns nil) or fails.
func (c *Consumer) Run(ctx context.Context) error {
	var err error
	c.records, err = c.cfg.Log.OpenRecords(ctx, eventstore.RecordsConfig{Bucket: "roomlog-parked-" + c.cfg.Name,
		Description: "messages consumer " + c.cfg.Name + " gave up on"})
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it started
		}
		return err
	}
	inc, err := c.cfg.Log.NewConn("consume-info-" + c.cfg.Name)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer inc.Close()
	if c.js, err = jetstream.New(inc); err != nil {
		return err
	}
	last := c.cfg.After
	saved := last
	pending := 0
	lastSave := time.Now()
	// store saves the cursor as it is.
	store := func(ctx context.Context) error {
		if last == saved {
			return nil
		}
		if err := c.cfg.Save(ctx, last); err != nil {
			return &saveError{fmt.Errorf("consume: save at %s: %w", last, err)}
		}
		saved, pending, lastSave = last, 0, time.Now()
		return nil
	}
	// save moves the cursor on past the messages of other subjects that
	// follow (the watermark), and saves it. Retention may have removed
	// messages the consumer had not reached yet (it ran at the edge of the
	// max age, or a Handle blocked for that long): then, as at the start,
	// it fails with ErrCursorExpired (or, with Expired, logs the gap and
	// goes on), before the watermark would pass the hole unseen.
	save := func(ctx context.Context) error {
		l, err := c.expired(ctx, last)
		if errors.Is(err, ErrCursorExpired) {
			return err
		}
		if err == nil {
			last = c.watermark(ctx, l)
		}
		return store(ctx)
	}
	stop := func() error {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		return save(sctx)
	}
	// fail is what Run returns for err: once ctx is done, whatever failed
	// failed because Run was stopped (a Handle, a save or the subscription
	// cut short), and stopping is clean: save what was handled, return nil.
	// Otherwise what was handled is saved as it is (Save is called when Run
	// ends), so that started again the consumer goes on from there: not
	// moved on, and not again if saving is what failed.
	fail := func(err error) error {
		if ctx.Err() != nil {
			return stop()
		}
		var se *saveError
		if errors.As(err, &se) || errors.Is(err, ErrCursorExpired) || errors.Is(err, ErrCursorAhead) {
			return err
		}
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if serr := store(sctx); serr != nil {
			return errors.Join(err, serr)
		}
		return err
	}
	if err := c.ahead(ctx, last); err != nil {
		return fail(err)
	}
	if last, err = c.expired(ctx, last); err != nil {
		return fail(err)
	}
	// Catch up with a plain read, then subscribe from where it ended.
	err = cursor.ReadDecoded(ctx, c.cfg.Log, []string{c.cfg.Filter}, max(last.Seq, 1), false, func(d *cursor.Decoded) error {
		n, err := c.handle(ctx, d.Record, d.Events, &last)
		if err != nil {
			return err
		}
		// The interval is checked on every message: a slow Handle may take
		// longer than SaveInterval over a few of them.
		if pending += n; pending >= c.cfg.SaveEvery || (pending > 0 && time.Since(lastSave) > c.cfg.SaveInterval) {
			return save(ctx)
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	if ctx.Err() != nil {
		return stop()
	}
	c.from = last
	nc, err := c.cfg.Log.NewConn("consume-" + c.cfg.Name)
	if err != nil {
		return fail(err)
	}
	// A pull that nats.go gives up on (the durable consumer deleted on the
	// server) ends delivery for good, while watermill's channel stays open:
	// Run is told, instead of waiting forever. A consumer deleted while the
	// connection was down sends no such word: nats.go pulls again from
	// nothing, and says only that no one responds or that heartbeats
	// stopped. Run then asks the server whether its consumer is still
	// there (as it does every SaveInterval: one replaced by another of the
	// same name, pulled from after a reconnection, says nothing at all).
	gone := make(chan error, 1)
	suspect := make(chan struct{}, 1)
	onPullError := func(_ jetstream.ConsumeContext, err error) {
		switch {
		case errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound):
			select {
			case gone <- err:
			default:
			}
		case errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoHeartbeat):
			select {
			case suspect <- struct{}{}:
			default:
			}
		}
	}
	// The subscriber drains the connection it is given when it closes.
	sub, err := wmjs.NewSubscriber(wmjs.SubscriberConfig{
		Conn:                nc,
		Logger:              quietLogger(c.cfg.Logger),
		AckAsync:            true,
		AckWaitTimeout:      c.cfg.AckWait,
		ResourceInitializer: c.durable,
		Unmarshaler:         unmarshaler{},
		ConsumeOptions: []jetstream.PullConsumeOpt{jetstream.PullMaxMessages(4096),
			jetstream.ConsumeErrHandler(onPullError)},
	})
	if err != nil {
		nc.Close()
		return fail(err)
	}
	// The subscription ends by sub.Close, while what it still delivers is
	// taken and left unacknowledged (redelivered to the next run), and
	// never by ctx. watermill-nats (v2.1.3) closes its output channel when
	// the subscription ends, while the NATS callback may be sending a
	// message into it: a "send on closed channel" panic, in a goroutine of
	// its own, would take the process down whenever Run is stopped with
	// messages arriving. So the callbacks are gated (gatedConsumer): the
	// gate is shut and those in flight are waited for, their messages
	// taken by a receiver that is always there, before the close.
	subCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var msgs <-chan *message.Message
	defer func() {
		if msgs != nil {
			go func() {
				for m := range msgs {
					m.Nack()
				}
			}()
		}
		c.mu.Lock()
		gate := c.gate
		c.mu.Unlock()
		if gate != nil {
			gate.shut()
		}
		sub.Close()
		cancel()
	}()
	msgs, err = sub.Subscribe(subCtx, c.cfg.Filter)
	if err != nil {
		return fail(err)
	}
	tick := time.NewTicker(c.cfg.SaveInterval)
	defer tick.Stop()
	var delivered uint64 // the last delivery's consumer sequence
	var deliveredAtTick uint64
	gap := false // a delivery was skipped and not yet made good
	consumerGone := func(why error) error {
		if serr := save(ctx); serr != nil {
			return fail(serr)
		}
		return fmt.Errorf("%w (%s: %v); start it again to go on from %s", ErrConsumerGone, c.cfg.Name, why, last)
	}
	for {
		select {
		case <-ctx.Done():
			return stop()
		case <-tick.C:
			sent, why := c.replaced(ctx)
			if why != nil {
				return consumerGone(why)
			}
			// The server delivered more than Run got, and Run got nothing
			// for a whole tick: another run of the same name took them
			// (each counts as delivered once).
			if sent > delivered && delivered == deliveredAtTick {
				gap = true
			}
			deliveredAtTick = delivered
			if gap {
				// What the skipped deliveries held is read from the log
				// now, not at the next delivery, which may never come.
				end, err := c.cfg.Log.LastSeq(ctx)
				if err == nil {
					var n int
					n, err = c.fillGap(ctx, end+1, &last)
					pending += n
				}
				if err != nil {
					return fail(err)
				}
				gap = false
			}
			if err := save(ctx); err != nil {
				return fail(err)
			}
		case <-suspect:
			if _, why := c.replaced(ctx); why != nil {
				return consumerGone(why)
			}
		case err := <-gone:
			return consumerGone(err)
		case m, ok := <-msgs:
			if !ok {
				if ctx.Err() != nil {
					continue
				}
				return errors.New("consume: the subscription ended")
			}
			if why := m.Metadata.Get(metaUnreadable); why != "" {
				c.cfg.Logger.Error("consume: skipped a message that is not a delivery of the log", "consumer",
					c.cfg.Name, "subject", m.Metadata.Get(metaSubject), "err", why)
				m.Ack()
				continue
			}
			rec := eventstore.Record{Subject: m.Metadata.Get(metaSubject), Data: m.Payload}
			rec.Seq, _ = strconv.ParseUint(m.Metadata.Get(metaSeq), 10, 64)
			if ns, err := strconv.ParseInt(m.Metadata.Get(metaStored), 10, 64); err == nil {
				rec.Time = time.Unix(0, ns)
			}
			rec.Header = recordHeader(m.Metadata)
			rec.MsgID = rec.Header.Get(jetstream.MsgIDHeader)
			// Every delivery, redeliveries included, takes the next
			// consumer sequence: one skipped was sent and not received (a
			// connection lost with it, and a pull made anew). The server
			// sends it again only after AckWait, so what it held is read
			// from the log, in order, before the next message past the
			// cursor (this one, unless it is a redelivery of one handled).
			dseq, _ := strconv.ParseUint(m.Metadata.Get(metaDelivery), 10, 64)
			if dseq <= delivered {
				// Consumer sequences only grow: this delivery is another
				// consumer's, of the same name, that replaced Run's.
				m.Nack()
				_, why := c.replaced(ctx)
				if why == nil {
					why = fmt.Errorf("consumer sequence %d after %d: replaced", dseq, delivered)
				}
				return consumerGone(why)
			}
			gap = gap || dseq > delivered+1
			delivered = max(delivered, dseq)
			if gap && last.Less(cursor.Cursor{Seq: rec.Seq}) {
				n, err := c.fillGap(ctx, rec.Seq, &last)
				pending += n
				if err != nil {
					m.Nack()
					return fail(err)
				}
				gap = false
			}
			n, err := c.handle(ctx, rec, nil, &last)
			if err != nil {
				m.Nack()
				return fail(err)
			}
			m.Ack()
			if pending += n; pending >= c.cfg.SaveEvery {
				if err := save(ctx); err != nil {
					return fail(err)
				}
			}
		}
	}
}

// fillGap hands over the messages on the filter between the cursor and
// stream sequence before (a live delivery), read from the log, and returns
// how many events it handed over.
func (c *Consumer) fillGap(ctx context.Context, before uint64, last *cursor.Cursor) (int, error) {
	from := last.Seq + 1
	if !last.Whole() {
		from = max(last.Seq, 1)
	}
	if from >= before {
		return 0, nil
	}
	// The leader's answer, as for the watermark: is anything there at all?
	next, err := c.cfg.Log.LeaderNext(ctx, c.cfg.Filter, from)
	if err != nil {
		return 0, fmt.Errorf("consume: looking for messages missed before stream sequence %d: %w", before, err)
	}
	if next == 0 || next >= before {
		return 0, nil
	}
	c.cfg.Logger.Info("consume: messages sent by the server were not received; reading them from the log",
		"consumer", c.cfg.Name, "from", next, "before", before)
	n := 0
	_, err = c.cfg.Log.Read(ctx, []string{c.cfg.Filter}, next, func(rec eventstore.Record) error {
		if rec.Seq >= before {
			return errGapFilled
		}
		k, err := c.handle(ctx, rec, nil, last)
		n += k
		return err
	})
	if errors.Is(err, errGapFilled) {
		err = nil
	}
	return n, err
}

// errGapFilled ends fillGap's read.
var errGapFilled = errors.New("gap filled")

// handle folds the events of one message (decoded already, or nil) after
// the cursor, trying a failing message up to MaxAttempts times, or for
// RetryFor if Handle returned the error, before it parks it. It returns how many events it handed over. The cursor only
// ever moves forward: a message wholly at or before it (delivered again
// once its AckWait passed, after the cursor went past it) is skipped.
func (c *Consumer) handle(ctx context.Context, rec eventstore.Record, events []domain.Event, last *cursor.Cursor) (int, error) {
	if !last.Less(cursor.End(rec.Seq)) {
		return 0, nil
	}
	if err := c.overtaken(ctx, rec.Seq, last); err != nil {
		return 0, err
	}
	var err error
	began := time.Now()
	for attempt := 1; ; attempt++ {
		var n int
		if n, err = c.fold(ctx, rec, events, last); err == nil {
			return n, nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if errors.Is(err, domain.ErrUnknownEventType) {
			// Written by a newer roomd: skipping it would fold a different
			// state than the log's, and parking it would lose it for good.
			// The consumer stops before it; upgraded, it resumes there.
			return 0, fmt.Errorf("consume: stream sequence %d (%s): %w; upgrade this consumer, which will resume there",
				rec.Seq, rec.Subject, err)
		}
		if attempt >= c.cfg.MaxAttempts && (!errors.Is(err, errHandle) || time.Since(began) >= c.cfg.RetryFor) {
			p := Parked{Seq: rec.Seq, Subject: rec.Subject, Error: err.Error(), Tries: attempt, Time: time.Now().UTC()}
			c.cfg.Logger.Error("consume: message parked after repeated failures", "consumer", c.cfg.Name,
				"stream_seq", rec.Seq, "subject", rec.Subject, "attempts", attempt, "err", err)
			if err := c.park(ctx, p); err != nil {
				return 0, err
			}
			if c.cfg.Parked != nil {
				c.cfg.Parked(p)
			}
			// Past every event of the parked message.
			*last = cursor.End(rec.Seq)
			return 1, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(retryWait(attempt)):
		}
	}
}

// retryWait is how long handle waits after the attempt-th failed try: 20 ms,
// doubling up to 2 s.
func retryWait(attempt int) time.Duration {
	return min(20*time.Millisecond<<min(attempt-1, 7), 2*time.Second)
}

// errHandle marks an error Handle returned (not a panic): one that may pass.
var errHandle = errors.New("consume: Handle failed")

func (c *Consumer) fold(ctx context.Context, rec eventstore.Record, events []domain.Event, last *cursor.Cursor) (int, error) {
	if events == nil {
		var err error
		if events, err = domain.DecodeEvents(rec.Data); err != nil {
			return 0, err
		}
	}
	n := 0
	for i := range events {
		cur := cursor.Cursor{Seq: rec.Seq, Index: i}
		if !last.Less(cur) {
			continue
		}
		if err := c.handleOne(ctx, cursor.Event{Cursor: cur, Event: &events[i], Record: &rec}); err != nil {
			return n, err
		}
		*last = cur
		n++
	}
	if len(events) > 0 && !last.Less(cursor.Cursor{Seq: rec.Seq, Index: len(events) - 1}) {
		// Past the message's last event: saved as such, so that the
		// expiry check knows nothing of this message is left to handle.
		*last = cursor.End(rec.Seq)
	}
	return n, nil
}

// saveError is a failed Save.
type saveError struct{ err error }

func (e *saveError) Error() string { return e.err.Error() }
func (e *saveError) Unwrap() error { return e.err }

// handleOne calls Handle, making a panic in it an error: the message is
// tried again and, if it keeps panicking, parked, rather than the panic
// taking the process down (and again on every start, at the same message).
func (c *Consumer) handleOne(ctx context.Context, e cursor.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("consume: Handle panicked at %s: %v\n%s", e.Cursor, p, debug.Stack())
		}
	}()
	if err := c.cfg.Handle(ctx, e); err != nil {
		return fmt.Errorf("%w at %s: %w", errHandle, e.Cursor, err)
	}
	return nil
}

// replaced returns the last consumer sequence the server delivered, to
// whomever pulled (0 if not known), and why Run's durable consumer is no
// longer on the server (removed, or another of the same name in its
// place): nil if it is, or if the server does not say.
func (c *Consumer) replaced(ctx context.Context) (sent uint64, gone error) {
	c.mu.Lock()
	created := c.created
	c.mu.Unlock()
	if created.IsZero() {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cons, err := c.js.Consumer(ctx, c.cfg.Log.StreamName(), c.cfg.Name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 0, err
	}
	if err != nil {
		return 0, nil // the server is not answering: nothing is known
	}
	info := cons.CachedInfo()
	if !info.Created.Equal(created) {
		return 0, fmt.Errorf("another consumer of the same name, created at %s, replaced it", info.Created.Format(time.RFC3339Nano))
	}
	return info.Delivered.Consumer, nil
}

func (c *Consumer) park(ctx context.Context, p Parked) error {
	b := fmt.Appendf(nil, `{"stream_seq":%d,"subject":%q,"error":%q,"attempts":%d,"time":%q}`,
		p.Seq, p.Subject, p.Error, p.Tries, p.Time.Format(time.RFC3339Nano))
	_, err := c.records.Put(ctx, strconv.FormatUint(p.Seq, 10), b)
	return err
}

// ParkedRecords lists the messages consumer name parked.
func ParkedRecords(ctx context.Context, log *eventstore.Log, name string) (*eventstore.Records, error) {
	return log.OpenRecords(ctx, eventstore.RecordsConfig{Bucket: "roomlog-parked-" + name})
}

// expired checks that the events after cursor after are still in the log;
// if retention removed some, it fails with ErrCursorExpired, or with
// Config.Expired returns the cursor just before the first kept message.
func (c *Consumer) expired(ctx context.Context, after cursor.Cursor) (cursor.Cursor, error) {
	if after.Seq == 0 {
		return after, nil
	}
	first, err := c.streamStart(ctx)
	if err != nil {
		return after, err
	}
	return c.expiredAt(after, first)
}

// expiredAt is expired for a log that starts at stream sequence first.
func (c *Consumer) expiredAt(after cursor.Cursor, first uint64) (cursor.Cursor, error) {
	if first <= need(after) {
		return after, nil
	}
	if !c.cfg.Expired {
		return after, fmt.Errorf("%w (cursor %s, the log now starts at stream sequence %d)", ErrCursorExpired, after, first)
	}
	c.cfg.Logger.Warn("consume: events removed by retention were never seen", "consumer", c.cfg.Name,
		"after", after.String(), "first_kept", first)
	return cursor.End(first - 1), nil
}

// need is the first message a consumer at cursor after still needs: the
// next one, or the cursor's own message if events of it are left to
// handle. An empty log starts past its last message, so everything removed
// counts.
func need(after cursor.Cursor) uint64 {
	if !after.Whole() {
		return after.Seq
	}
	return after.Seq + 1
}

// overtaken checks, before the message at stream sequence seq is handled,
// that retention has not removed messages between the cursor and it (the
// consumer ran at the edge of the max age, or a Handle blocked for that
// long): JetStream delivers what is left without a word, and once they are
// gone nothing tells whether they were on the filter. As at the start, it
// then fails with ErrCursorExpired, or with Expired logs the gap and moves
// the cursor to it. The log's start is asked at most once a SaveInterval:
// a removal within the last one can go unseen.
func (c *Consumer) overtaken(ctx context.Context, seq uint64, last *cursor.Cursor) error {
	if last.Seq == 0 || seq <= need(*last) {
		return nil
	}
	if time.Since(c.firstAt) > c.cfg.SaveInterval {
		first, err := c.streamStart(ctx)
		if err != nil {
			return nil // the log does not say: the next message asks again
		}
		c.first, c.firstAt = first, time.Now()
	}
	l, err := c.expiredAt(*last, c.first)
	*last = l
	return err
}

// watermark moves a cursor past a finished message on past the messages of
// other subjects that follow it, up to the next message on the filter (or
// the log's end): the consumer has nothing to do there. Saved so, a cursor
// tells a later start that their removal by retention lost nothing. The log
// is looked at in that order (its end, then the next message on the
// filter), so a message appended meanwhile is never skipped; if it cannot
// be read, the cursor stays.
func (c *Consumer) watermark(ctx context.Context, last cursor.Cursor) cursor.Cursor {
	if !last.Whole() && last.Seq != 0 {
		return last // events of its message are left
	}
	end, err := c.cfg.Log.LastSeq(ctx)
	if err != nil || end <= last.Seq {
		return last
	}
	// The leader's answer: a replica a little behind could miss a message
	// on the filter, and the cursor would then pass it.
	next, err := c.cfg.Log.LeaderNext(ctx, c.cfg.Filter, last.Seq+1)
	if err != nil {
		return last
	}
	if next != 0 {
		end = min(end, next-1)
	}
	if end <= last.Seq {
		return last
	}
	return cursor.End(end)
}

// ahead fails with ErrCursorAhead when the cursor after names a message
// past the log's last (whatever Config.Expired says: no event was removed,
// the cursor is another log's).
func (c *Consumer) ahead(ctx context.Context, after cursor.Cursor) error {
	s, err := c.js.Stream(ctx, c.cfg.Log.StreamName())
	if err != nil {
		return err
	}
	if last := s.CachedInfo().State.LastSeq; after.Seq > last {
		return fmt.Errorf("%w (cursor %s, the log's last message is stream sequence %d)", ErrCursorAhead, after, last)
	}
	return nil
}

// streamStart returns the log's first kept stream sequence (past the last
// one when retention or a purge removed them all).
func (c *Consumer) streamStart(ctx context.Context) (uint64, error) {
	s, err := c.js.Stream(ctx, c.cfg.Log.StreamName())
	if err != nil {
		return 0, err
	}
	return s.CachedInfo().State.FirstSeq, nil
}

// durable is the watermill ResourceInitializer: it creates the durable
// consumer at the message of the saved cursor, replacing any consumer of
// that name (its acknowledgements may be ahead of the saved state).
func (c *Consumer) durable(ctx context.Context, js jetstream.JetStream, topic string) (jetstream.Consumer,
	func(context.Context, watermill.LoggerAdapter), error) {
	stream, err := js.Stream(ctx, c.cfg.Log.StreamName())
	if err != nil {
		return nil, nil, err
	}
	// From the cursor's message, unless the cursor is past all of it (then
	// nothing of it is delivered again only to be skipped).
	start := max(c.from.Seq, 1)
	if c.from.Whole() {
		start = c.from.Seq + 1
	}
	if err := stream.DeleteConsumer(ctx, c.cfg.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, nil, err
	}
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       c.cfg.Name,
		Description:   "roomlog analytics consumer",
		FilterSubject: topic,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   start,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.cfg.AckWait,
		MaxAckPending: 16384,
	})
	if err != nil {
		return nil, nil, err
	}
	gate := &gatedConsumer{Consumer: cons}
	c.mu.Lock()
	c.created, c.gate = cons.CachedInfo().Created, gate
	c.mu.Unlock()
	return gate, nil, nil
}

// gatedConsumer is a pull consumer whose message callbacks (watermill's,
// which send into its output channel) can be stopped and waited for, so
// that the channel is never closed while one sends.
type gatedConsumer struct {
	jetstream.Consumer

	mu     sync.RWMutex
	closed bool
	cc     jetstream.ConsumeContext
	calls  sync.WaitGroup
}

func (g *gatedConsumer) Consume(h jetstream.MessageHandler, opts ...jetstream.PullConsumeOpt) (jetstream.ConsumeContext, error) {
	cc, err := g.Consumer.Consume(func(m jetstream.Msg) {
		g.mu.RLock()
		if g.closed {
			g.mu.RUnlock()
			return // not acknowledged: delivered again to the next run
		}
		g.calls.Add(1)
		g.mu.RUnlock()
		defer g.calls.Done()
		h(m)
	}, opts...)
	g.mu.Lock()
	g.cc = cc
	g.mu.Unlock()
	return cc, err
}

// shut stops delivery and waits for the callbacks in flight to end (what
// they send must be received meanwhile).
func (g *gatedConsumer) shut() {
	g.mu.Lock()
	g.closed = true
	cc := g.cc
	g.mu.Unlock()
	if cc != nil {
		cc.Stop()
	}
	g.calls.Wait()
}

// Metadata keys set by the unmarshaler.
const (
	metaSeq      = "roomlog_stream_seq"
	metaSubject  = "roomlog_subject"
	metaDelivery = "roomlog_consumer_seq"
	metaStored   = "roomlog_stored_unix_nano"
	// metaHeader prefixes each of the message's stored headers (its
	// values joined by newlines, which headers cannot hold).
	metaHeader = "roomlog_header_"
	// metaUnreadable holds why a message's metadata could not be read.
	metaUnreadable = "roomlog_unreadable"
)

// unmarshaler turns a JetStream message into a watermill message that
// keeps what a cursor needs: the stream sequence and the subject.
type unmarshaler struct{}

func (unmarshaler) Unmarshal(msg jetstream.Msg) (*message.Message, error) {
	md, err := msg.Metadata()
	if err != nil {
		// Not a delivery of the stream (no JetStream reply subject). An
		// error here would take the process down: watermill-nats logs it
		// and uses the nil message. It goes on, marked, and Run passes it
		// over.
		m := message.NewMessage(watermill.NewUUID(), msg.Data())
		m.Metadata.Set(metaUnreadable, err.Error())
		m.Metadata.Set(metaSubject, msg.Subject())
		return m, nil
	}
	seq := strconv.FormatUint(md.Sequence.Stream, 10)
	m := message.NewMessage(seq, msg.Data())
	m.Metadata.Set(metaSeq, seq)
	m.Metadata.Set(metaSubject, msg.Subject())
	m.Metadata.Set(metaDelivery, strconv.FormatUint(md.Sequence.Consumer, 10))
	m.Metadata.Set(metaStored, strconv.FormatInt(md.Timestamp.UnixNano(), 10))
	for k, vs := range msg.Headers() {
		m.Metadata.Set(metaHeader+k, strings.Join(vs, "\n"))
	}
	return m, nil
}

// recordHeader returns the stored headers the unmarshaler put in md, as
// Log.Read hands them over.
func recordHeader(md message.Metadata) nats.Header {
	h := nats.Header{}
	for k, v := range md {
		if name, ok := strings.CutPrefix(k, metaHeader); ok {
			h[name] = strings.Split(v, "\n")
		}
	}
	return h
}

// quietLogger maps watermill's per-message info lines to debug.
func quietLogger(l *slog.Logger) watermill.LoggerAdapter {
	return watermill.NewSlogLoggerWithLevelMapping(l, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
}
