package eventstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Message is one append: the bytes of one or more events for one aggregate.
type Message struct {
	// Subject is the aggregate's subject, made by Log.Subject.
	Subject string
	// MsgID becomes Nats-Msg-Id, the de-duplication key (the first event's
	// ULID, set by the caller). Required.
	MsgID string
	// Expected is the stream sequence of the last message on Subject the
	// caller decided from; 0 means "the subject must be empty". Sent as
	// Nats-Expected-Last-Subject-Sequence on every append, 0 included.
	Expected uint64
	// Header holds optional extra headers. It is copied, never mutated.
	// Keys starting with "Nats-" are reserved for the server and refused.
	Header nats.Header
	// Data is the payload. It must not be modified until the append is
	// acknowledged (AppendAsync may resend it).
	Data []byte
}

// Ack is the server's acknowledgement of an append.
type Ack struct {
	// Seq is the stream sequence of the stored message; for a duplicate,
	// the sequence of the original.
	Seq uint64
	// Duplicate is true when the server recognised MsgID within the
	// duplicate window and did not store the message again.
	Duplicate bool
}

// Record is one stored message as read back.
type Record struct {
	// Seq is the stream sequence.
	Seq uint64
	// Subject is the aggregate's subject.
	Subject string
	// Time is the server's storage timestamp.
	Time time.Time
	// MsgID is the Nats-Msg-Id the message was appended with.
	MsgID string
	// Header holds the stored headers (Nats-Msg-Id and
	// Nats-Expected-Last-Subject-Sequence included), the same whichever
	// way the record was read.
	Header nats.Header
	// Data is the payload.
	Data []byte
}

// Tuning of reads.
const (
	// readBatch is the most messages a read keeps buffered in the client
	// (PullMaxMessages): large enough to stream a replay at full speed,
	// small enough that the buffer (a channel of that capacity) stays
	// cheap. Small reads ask for only what is pending.
	readBatch = 4096
	// consumerInactive lets the server delete a read's consumer if the
	// client vanished before deleting it (longer than the 30 s pull
	// expiry, so a live Tail is never considered inactive).
	consumerInactive = time.Minute
	// consumerResets bounds nats.go's attempts to recreate a read's
	// consumer (1 s, then 2 s apart).
	consumerResets = 2
	// readStall is how long a bounded read waits for its consumer to be
	// created or for its next record before it starts over from where it
	// got to (a consumer created while the stream leader changed, after a
	// cluster restart, may never deliver); readResumes bounds how many
	// times it does.
	readStall   = 10 * time.Second
	readResumes = 8
)

// Append stores m if, and only if, the last message on m.Subject has
// sequence m.Expected, and returns the stored message's sequence.
//
// Errors: ErrInvalidMessage (bad subject, empty MsgID, reserved header),
// ErrTooLarge, a *ConflictError wrapping ErrConflict when m.Expected is
// stale, ErrUnavailable when the log did not answer (the append may or may
// not have been stored), and ctx's error when ctx ends first.
//
// A retry of a message that was in fact stored, with the same MsgID and the
// same now-stale Expected, gets ErrConflict, not a duplicate: the server
// checks the expected sequence before de-duplicating. A retry with the
// current Expected within the 2-minute duplicate window gets
// Ack{Duplicate: true} with the original sequence.
func (l *Log) Append(ctx context.Context, m Message) (Ack, error) {
	msg, err := l.natsMsg(m)
	if err != nil {
		return Ack{}, err
	}
	pa, err := l.js.PublishMsg(ctx, msg)
	if err != nil {
		return Ack{}, appendErr(m, err)
	}
	return Ack{Seq: pa.Sequence, Duplicate: pa.Duplicate}, nil
}

// PendingAck is the future result of AppendAsync.
type PendingAck struct {
	m    Message
	f    jetstream.PubAckFuture
	done bool
	ack  Ack
	err  error
}

// AppendAsync sends m like Append but returns without waiting for the
// acknowledgement, so that appends to many subjects can be pipelined (keep
// at most one in flight per subject: a second append to the same subject
// needs the first one's sequence as its Expected). It blocks only when
// 16384 appends are already in flight, for up to 5 s, then fails with
// ErrUnavailable. Errors are those of Append, either here or from Wait.
func (l *Log) AppendAsync(m Message) (*PendingAck, error) {
	msg, err := l.natsMsg(m)
	if err != nil {
		return nil, err
	}
	f, err := l.js.PublishMsgAsync(msg, jetstream.WithStallWait(asyncStallWait))
	if err != nil {
		return nil, appendErr(m, err)
	}
	return &PendingAck{m: m, f: f}, nil
}

// Wait returns the append's result, or ctx's error (wrapped in
// ErrUnavailable) if ctx ends first, in which case Wait can be called
// again. An unanswered append fails after 10 s. Wait is not safe for
// concurrent use; once it has returned a result it returns the same one.
func (p *PendingAck) Wait(ctx context.Context) (Ack, error) {
	if p.done {
		return p.ack, p.err
	}
	select {
	case pa := <-p.f.Ok():
		p.ack = Ack{Seq: pa.Sequence, Duplicate: pa.Duplicate}
	case err := <-p.f.Err():
		p.err = appendErr(p.m, err)
	case <-ctx.Done():
		// Cancelled or out of time alike, the append may still land.
		return Ack{}, fmt.Errorf("%w: wait for append to %s: %w", ErrUnavailable, p.m.Subject, ctx.Err())
	}
	p.done = true
	return p.ack, p.err
}

// natsMsg validates m and builds the message to publish, with a fresh
// header so that the caller's is never mutated.
func (l *Log) natsMsg(m Message) (*nats.Msg, error) {
	if l.cfg.ReadOnly {
		return nil, fmt.Errorf("%w: the log was opened read-only", ErrInvalidMessage)
	}
	if !l.owns(m.Subject, false) {
		return nil, fmt.Errorf("%w: subject %q is not a literal subject under %q", ErrInvalidMessage, m.Subject, l.prefix)
	}
	if m.MsgID == "" {
		return nil, fmt.Errorf("%w: empty MsgID for %s", ErrInvalidMessage, m.Subject)
	}
	if len(m.Data) > int(l.cfg.MaxMsgSize) {
		return nil, fmt.Errorf("%w: %d bytes for %s, the limit is %d", ErrTooLarge, len(m.Data), m.Subject, l.cfg.MaxMsgSize)
	}
	h := make(nats.Header, len(m.Header)+2)
	for k, v := range m.Header {
		// Nats-* headers steer the server (rollups that erase history,
		// TTLs, other expectations): only this package sets them.
		if len(k) >= 5 && strings.EqualFold(k[:5], "Nats-") {
			return nil, fmt.Errorf("%w: header %q is reserved", ErrInvalidMessage, k)
		}
		h[k] = slices.Clone(v)
	}
	// Set by hand rather than with jetstream.WithMsgID and
	// WithExpectLastSequencePerSubject: it avoids the option closures on
	// the hot path and makes it explicit that Expected 0 is sent as "0".
	h[jetstream.MsgIDHeader] = []string{m.MsgID}
	h[jetstream.ExpectedLastSubjSeqHeader] = []string{strconv.FormatUint(m.Expected, 10)}
	return &nats.Msg{Subject: m.Subject, Header: h, Data: m.Data}, nil
}

// owns reports whether s is a valid subject (or, with wildcards, filter)
// inside the log's prefix.
func (l *Log) owns(s string, wildcards bool) bool {
	return strings.HasPrefix(s, l.prefix+".") && validSubject(s, wildcards)
}

// Last returns the last record on subject, a literal subject; ok is false
// when the subject is empty. It is a direct get, answered without a
// consumer.
func (l *Log) Last(ctx context.Context, subject string) (Record, bool, error) {
	if !l.owns(subject, false) {
		return Record{}, false, fmt.Errorf("%w: %q is not a literal subject under %q", ErrInvalidSubject, subject, l.prefix)
	}
	var (
		rec Record
		ok  bool
	)
	op := "last of " + subject
	err := l.retryRead(ctx, op, func(ctx context.Context) error {
		raw, err := l.stream.GetLastMsgForSubject(ctx, subject)
		rec, ok, err = directRecord(raw, err, op)
		return err
	})
	return rec, ok, err
}

// Get returns the first record on subject (a subject or a filter) with
// Seq >= seq; ok is false when there is none. It is a direct get with
// next-by-subject.
func (l *Log) Get(ctx context.Context, subject string, seq uint64) (Record, bool, error) {
	if !l.owns(subject, true) {
		return Record{}, false, fmt.Errorf("%w: %q is not a subject under %q", ErrInvalidSubject, subject, l.prefix)
	}
	var (
		rec Record
		ok  bool
	)
	op := "get " + subject
	err := l.retryRead(ctx, op, func(ctx context.Context) error {
		raw, err := l.stream.GetMsg(ctx, max(seq, 1), jetstream.WithGetMsgSubject(subject))
		rec, ok, err = directRecord(raw, err, op)
		return err
	})
	return rec, ok, err
}

// directRecord turns the answer of a direct get into a Record. A direct get
// adds the stream, sequence, time and subject as headers; they are removed
// so that a record has the same headers however it was read.
func directRecord(raw *jetstream.RawStreamMsg, err error, op string) (Record, bool, error) {
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, classify(op, err)
	}
	h := raw.Header
	for _, k := range directHeaders {
		delete(h, k)
	}
	return Record{
		Seq:     raw.Sequence,
		Subject: raw.Subject,
		Time:    raw.Time,
		MsgID:   h.Get(jetstream.MsgIDHeader),
		Header:  h,
		Data:    raw.Data,
	}, true, nil
}

// Span returns the sequences of the stream's first and last records. A
// stream that retention or a purge emptied has first = last+1; one never
// written to has first 0 or 1, and last 0.
func (l *Log) Span(ctx context.Context) (first, last uint64, err error) {
	info, err := l.stream.Info(ctx)
	if err != nil {
		return 0, 0, classify("stream info", err)
	}
	return info.State.FirstSeq, info.State.LastSeq, nil
}

// LastSeq returns the stream's last sequence (0 if the stream is empty).
func (l *Log) LastSeq(ctx context.Context) (uint64, error) {
	info, err := l.stream.Info(ctx)
	if err != nil {
		return 0, classify("stream info", err)
	}
	return info.State.LastSeq, nil
}

// Search returns the sequence of the first record on subject that
// satisfies pred, found by binary search with Get in O(log LastSeq) direct
// gets instead of a scan. pred must be monotonic along the subject (false
// for a prefix of its records, true for the rest), like "time >= T" or
// "room sequence > N". ok is false when no record satisfies pred. An error
// from pred stops the search and is returned.
func (l *Log) Search(ctx context.Context, subject string, pred func(Record) (bool, error)) (uint64, bool, error) {
	last, ok, err := l.Last(ctx, subject)
	if err != nil || !ok {
		return 0, false, err
	}
	if hit, err := pred(last); err != nil || !hit {
		return 0, false, err
	}
	// Invariant: the first record at or after hi satisfies pred (best is
	// that record), and no record on subject before lo does.
	lo, hi, best := uint64(1), last.Seq, last.Seq
	for lo < hi {
		mid := lo + (hi-lo)/2
		r, ok, err := l.Get(ctx, subject, mid)
		if err != nil {
			return 0, false, err
		}
		if !ok { // cannot happen below the last record; be safe anyway
			return 0, false, fmt.Errorf("eventstore: search %s: no record at or after %d", subject, mid)
		}
		hit, err := pred(r)
		if err != nil {
			return 0, false, err
		}
		if hit {
			hi, best = mid, r.Seq
		} else {
			// Every start in [mid, r.Seq] finds r: skip them all.
			lo = r.Seq + 1
		}
	}
	return best, true, nil
}

// Read calls fn, in order, for every record matching filters (subjects or
// wildcard filters under the prefix; none means the whole log) with
// Seq >= from, up to the end of the log as of the call, then returns the
// sequence of the last record fn accepted (0 if none). fn returning an
// error stops the read and Read returns that error unchanged. Read returns
// at once when nothing matches.
//
// It streams through an ordered consumer (a server-side cursor that the
// client recreates by itself after a gap), so it suits a replay of millions
// of records.
//
// A read that the log stops answering (no consumer, or no next record,
// within readStall: a stream leader election, a cluster restarting) starts
// over after the last record delivered, up to readResumes times, saying so
// in the log; each new start reads up to the end of the log as of then.
func (l *Log) Read(ctx context.Context, filters []string, from uint64, fn func(Record) error) (uint64, error) {
	var last uint64
	next := from
	deliver := func(r Record) error {
		if err := fn(r); err != nil {
			return callerError{err}
		}
		last, next = r.Seq, r.Seq+1
		return nil
	}
	wait := readBackoffMin
	for resumes := 0; ; resumes++ {
		err := l.consume(ctx, filters, startAt{seq: next}, true, deliver)
		var ce callerError
		switch {
		case err == nil:
			return last, nil
		case errors.As(err, &ce):
			return last, ce.error
		case ctx.Err() != nil || !errors.Is(err, ErrUnavailable) || resumes == readResumes:
			return last, err
		}
		l.readRetries.Add(1)
		l.log.Warn("read interrupted; resuming", "from", next, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return last, err
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// Tail is Read that does not stop at the end of the log: it goes on
// delivering records as they are appended until ctx ends (then it returns
// nil) or fn returns an error (returned unchanged).
//
// While the log is unavailable (a cluster without quorum, JetStream
// stopped) Tail keeps trying, resuming after the last record it delivered,
// and logs that it waits; it still returns promptly when ctx ends.
func (l *Log) Tail(ctx context.Context, filters []string, from uint64, fn func(Record) error) error {
	next := from
	deliver := func(r Record) error {
		if err := fn(r); err != nil {
			return callerError{err}
		}
		next = r.Seq + 1
		return nil
	}
	wait := readBackoffMin
	for {
		err := l.consume(ctx, filters, startAt{seq: next}, false, deliver)
		var ce callerError
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &ce):
			return ce.error
		case !errors.Is(err, ErrUnavailable):
			return err
		}
		l.log.Warn("tail interrupted; resuming", "from", next, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// StartTime returns the sequence of the first record matching filters
// (none means the whole log) whose server timestamp is at or after t; ok is
// false when there is none. Server timestamps follow the server's clock, so
// they are monotonic only as far as that clock is.
func (l *Log) StartTime(ctx context.Context, filters []string, t time.Time) (uint64, bool, error) {
	var seq uint64
	errFound := errors.New("found")
	err := l.consume(ctx, filters, startAt{time: t}, true, func(r Record) error {
		seq = r.Seq
		return errFound
	})
	if err != nil && !errors.Is(err, errFound) {
		return 0, false, err
	}
	return seq, seq != 0, nil
}

// startAt is where a consume starts: at a time if set, else at a sequence
// (0 and 1 both mean the beginning).
type startAt struct {
	seq  uint64
	time time.Time
}

// consume runs an ordered consumer over filters from start and calls fn
// for each record. bounded stops at the records pending when the consumer
// was created (returning nil at once if there are none); unbounded runs
// until ctx ends or fn fails.
func (l *Log) consume(ctx context.Context, filters []string, start startAt, bounded bool, fn func(Record) error) error {
	if len(filters) == 0 {
		filters = []string{l.prefix + ".>"}
	}
	for _, f := range filters {
		if !l.owns(f, true) {
			return fmt.Errorf("%w: filter %q is not a subject under %q", ErrInvalidSubject, f, l.prefix)
		}
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects:    filters,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: consumerInactive,
		// nats.go recreates a consumer that stopped answering, by default
		// forever and deaf to both ctx and Stop: a node whose JetStream
		// died could not shut down. Give up after a few tries instead;
		// Tail starts over by itself.
		MaxResetAttempts: consumerResets,
	}
	switch {
	case !start.time.IsZero():
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &start.time
	case start.seq > 1:
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = start.seq
	}
	op := "read " + strings.Join(filters, ",")
	cctx, cancel := context.WithTimeout(ctx, readStall)
	cons, err := l.stream.OrderedConsumer(cctx, cfg)
	cancel()
	if err != nil {
		return classify(op, err)
	}
	defer func() {
		if ctx.Err() != nil {
			go l.deleteConsumer(cons) // shutting down: best effort, in the background
			return
		}
		l.deleteConsumer(cons)
	}()

	// The consumer's creation answer counts the matching records from the
	// start to the end of the log: that is where a bounded read ends.
	pending := cons.CachedInfo().NumPending
	if bounded && pending == 0 {
		return nil
	}
	batch := readBatch
	opts := []jetstream.PullMessagesOpt{}
	if bounded {
		batch = int(min(pending, readBatch))
		opts = append(opts, jetstream.StopAfter(int(pending)))
	}
	it, err := cons.Messages(append(opts, jetstream.PullMaxMessages(batch))...)
	if err != nil {
		return classify(op, err)
	}
	defer func() {
		if ctx.Err() != nil {
			// Stop waits for a consumer reset in progress (up to 10 s
			// per try when JetStream is dead): do not hold a shutdown up.
			go it.Stop()
			return
		}
		it.Stop()
	}()
	var next func() (jetstream.Msg, error)
	if bounded {
		wd := newStallWatch(ctx, readStall)
		defer wd.stop()
		next = func() (jetstream.Msg, error) {
			wd.waiting()
			msg, err := it.Next(jetstream.NextContext(wd.ctx))
			wd.done()
			if err != nil && ctx.Err() == nil && wd.stalled() {
				return nil, fmt.Errorf("%w: %s: no record for %v", ErrUnavailable, op, readStall)
			}
			return msg, err
		}
	} else {
		next = pump(ctx, it)
	}

	for n := uint64(0); !bounded || n < pending; n++ {
		msg, err := next()
		if err != nil {
			return classify(op, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return classify(op, err)
		}
		h := msg.Headers()
		if err := fn(Record{
			Seq:     md.Sequence.Stream,
			Subject: msg.Subject(),
			Time:    md.Timestamp,
			MsgID:   h.Get(jetstream.MsgIDHeader),
			Header:  h,
			Data:    msg.Data(),
		}); err != nil {
			return err
		}
		// The server says nothing is left although fewer records than
		// counted have come: records were deleted meanwhile, or the
		// server's running count is off. Ask the stream itself, so that
		// a read neither hangs nor stops short.
		if bounded && md.NumPending == 0 && n+1 < pending {
			more, err := l.anyAfter(ctx, filters, md.Sequence.Stream)
			if err != nil || !more {
				return err
			}
		}
	}
	return nil
}

// pump reads it on a goroutine of its own and returns a next function that
// also returns when ctx ends. A tail's iterator may be stuck in nats.go's
// consumer reset, which honours neither ctx nor Stop for up to 10 s a try:
// a tail must still stop at once when its node shuts down. The goroutine
// ends with the iterator (Stop, or the connection closing).
func pump(ctx context.Context, it jetstream.MessagesContext) func() (jetstream.Msg, error) {
	type result struct {
		msg jetstream.Msg
		err error
	}
	results := make(chan result)
	go func() {
		for {
			msg, err := it.Next(jetstream.NextContext(ctx))
			select {
			case results <- result{msg, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return func() (jetstream.Msg, error) {
		select {
		case r := <-results:
			return r.msg, r.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// anyAfter reports whether a record matching filters exists after seq.
func (l *Log) anyAfter(ctx context.Context, filters []string, seq uint64) (bool, error) {
	for _, f := range filters {
		_, ok, err := l.Get(ctx, f, seq+1)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// deleteConsumer removes a read's consumer at once instead of leaving it to
// the inactivity threshold, so that many short reads do not pile up
// consumers on the server. Best effort: on failure the threshold applies.
func (l *Log) deleteConsumer(cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.ConnectTimeout)
	defer cancel()
	_ = l.js.DeleteConsumer(ctx, l.cfg.Stream, info.Name)
}
