package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// directBatch is a batched direct get (ADR-31): up to Batch messages of
// one subject from Seq on, answered with the messages and an end-of-batch
// status.
type directBatch struct {
	Seq     uint64 `json:"seq"`
	NextFor string `json:"next_by_subj"`
	Batch   int    `json:"batch"`
}

// directBatchSize is the most records one direct get answers.
const directBatchSize = 256

// ReadSubject calls fn with every record on the literal subject from stream
// sequence from on, in order, and returns the sequence of the last one (0
// if none). It reads with batched direct gets: one round trip for up to 256
// records and nothing to set up or tear down, where Read creates a consumer
// (three round trips before the first record). It suits the short reads of
// an aggregate catching up; Read suits long ones. An error from fn stops the
// read and is returned unchanged.
func (l *Log) ReadSubject(ctx context.Context, subject string, from uint64, fn func(Record) error) (uint64, error) {
	if !l.owns(subject, false) {
		return 0, fmt.Errorf("%w: %q is not a literal subject under %q", ErrInvalidSubject, subject, l.prefix)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, requestTimeout)
		defer cancel()
	}
	op := "read " + subject
	var last uint64
	for next := max(from, 1); ; {
		var more bool
		err := l.retryRead(ctx, op, func(ctx context.Context) error {
			var err error
			more, err = l.directBatch(ctx, subject, next, func(rec Record) error {
				if err := fn(rec); err != nil {
					return callerError{err}
				}
				last, next = rec.Seq, rec.Seq+1
				return nil
			})
			return err
		})
		if err != nil || !more {
			return last, err
		}
	}
}

// callerError carries an error of the caller's function through retryRead
// unchanged, and unretried.
type callerError struct{ error }

// Tuning of reads: each round trip waits at most readAttempt for its answer
// and is retried on a transient failure (a lost reply, no responder during a
// stream leader election, a replica restarting) after a jittered wait from
// readBackoffMin doubling to readBackoffMax, until the caller's context
// ends. A read never waits out the caller's whole budget on one lost reply.
const (
	readAttempt    = 2 * time.Second
	readBackoffMin = 10 * time.Millisecond
	readBackoffMax = 500 * time.Millisecond
)

// retryRead runs one read round trip, op, with its own timeout, and again
// while it fails with ErrUnavailable and ctx has time left. An error of the
// caller's own function (callerError) is returned unchanged at once.
func (l *Log) retryRead(ctx context.Context, what string, op func(ctx context.Context) error) error {
	wait := readBackoffMin
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, readAttempt)
		err := op(actx)
		cancel()
		var ce callerError
		if errors.As(err, &ce) {
			return ce.error
		}
		if err == nil || !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
			return err
		}
		l.readRetries.Add(1)
		if attempt == 1 || attempt%10 == 0 {
			l.log.Debug("read retried", "op", what, "attempt", attempt, "err", err)
		}
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, readBackoffMax)
	}
}

// ReadRetries returns how many read round trips were tried again since the
// log was opened (lost replies, elections).
func (l *Log) ReadRetries() uint64 { return l.readRetries.Load() }

// directBatch sends one batched direct get for subject from seq next, on an
// inbox of its own (so that a late answer to an earlier attempt is never
// taken for this one's), and reads the answer.
func (l *Log) directBatch(ctx context.Context, subject string, next uint64, fn func(Record) error) (bool, error) {
	op := "read " + subject
	inbox := l.nc.NewInbox()
	sub, err := l.nc.SubscribeSync(inbox)
	if err != nil {
		return false, classify(op, err)
	}
	defer sub.Unsubscribe()
	req, _ := json.Marshal(directBatch{Seq: next, NextFor: subject, Batch: directBatchSize})
	if err := l.nc.PublishRequest("$JS.API.DIRECT.GET."+l.cfg.Stream, inbox, req); err != nil {
		return false, classify(op, err)
	}
	return l.readBatch(ctx, sub, fn)
}

// readBatch reads one batched direct get's answer from sub, calling fn for
// each record; more reports that the subject may have records past it. A
// server without batched gets (before nats-server 2.11) answers with one
// plain message, no count and no end-of-batch: that message is the whole
// answer, and the caller asks again from the next sequence.
func (l *Log) readBatch(ctx context.Context, sub *nats.Subscription, fn func(Record) error) (more bool, err error) {
	for n := 0; ; n++ {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return false, classify("direct get", err)
		}
		switch status := msg.Header.Get("Status"); status {
		case "":
		case "404": // nothing from the requested sequence on
			return false, nil
		case "204": // end of the batch; a batch that read nothing cannot go on
			return n > 0 && msg.Header.Get("Nats-Num-Pending") != "0", nil
		case "503":
			return false, classify("direct get", nats.ErrNoResponders)
		default:
			return false, classify("direct get", fmt.Errorf("status %s %s", status, msg.Header.Get("Description")))
		}
		single := msg.Header.Get("Nats-Num-Pending") == ""
		rec, err := batchRecord(msg)
		if err != nil {
			return false, fmt.Errorf("eventstore: %w", err)
		}
		if err := fn(rec); err != nil {
			return false, err
		}
		if single {
			return true, nil
		}
	}
}

// batchRecord turns one message of a batched direct get into a Record, with
// the headers the get adds removed (as directRecord does).
func batchRecord(msg *nats.Msg) (Record, error) {
	h := msg.Header
	seq, err := strconv.ParseUint(h.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return Record{}, fmt.Errorf("direct get: sequence header %q", h.Get(jetstream.SequenceHeader))
	}
	ts, err := time.Parse(time.RFC3339Nano, h.Get(jetstream.TimeStampHeaer))
	if err != nil {
		return Record{}, fmt.Errorf("direct get: time header %q", h.Get(jetstream.TimeStampHeaer))
	}
	subject := h.Get(jetstream.SubjectHeader)
	for _, k := range directHeaders {
		delete(h, k)
	}
	return Record{Seq: seq, Subject: subject, Time: ts, MsgID: h.Get(jetstream.MsgIDHeader), Header: h, Data: msg.Data}, nil
}

// directHeaders are the headers a direct get adds to a stored message.
var directHeaders = [...]string{jetstream.StreamHeader, jetstream.SequenceHeader, jetstream.TimeStampHeaer,
	jetstream.SubjectHeader, "Nats-Num-Pending", "Nats-Last-Sequence"}

// LeaderLast returns the stream sequence of the last record on the literal
// subject as the stream's leader has it (0 if the subject is empty). Direct
// gets (Last, Get, ReadSubject) may be answered by a replica that is a little
// behind; this request goes through the leader's API, so it reflects every
// append the leader has acknowledged or refused as out of date. A writer
// that must know whether its own append landed reads up to this sequence.
func (l *Log) LeaderLast(ctx context.Context, subject string) (uint64, error) {
	if !l.owns(subject, false) {
		return 0, fmt.Errorf("%w: %q is not a literal subject under %q", ErrInvalidSubject, subject, l.prefix)
	}
	return l.leaderGet(ctx, "leader last of "+subject, struct {
		LastFor string `json:"last_by_subj"`
	}{subject})
}

// LeaderNext returns the stream sequence of the first record on subject (a
// subject or a filter) at or after seq, as the stream's leader has it, and
// 0 if there is none: what Get finds, without the chance of a replica a
// little behind answering that there is nothing.
func (l *Log) LeaderNext(ctx context.Context, subject string, seq uint64) (uint64, error) {
	if !l.owns(subject, true) {
		return 0, fmt.Errorf("%w: %q is not a subject under %q", ErrInvalidSubject, subject, l.prefix)
	}
	return l.leaderGet(ctx, "leader next of "+subject, struct {
		Seq     uint64 `json:"seq"`
		NextFor string `json:"next_by_subj"`
	}{max(seq, 1), subject})
}

// leaderGet asks the leader's API for the message req names and returns its
// stream sequence, 0 if there is none.
func (l *Log) leaderGet(ctx context.Context, op string, req any) (uint64, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, requestTimeout)
		defer cancel()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	var seq uint64
	err = l.retryRead(ctx, op, func(ctx context.Context) error {
		msg, err := l.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+l.cfg.Stream, body)
		if err != nil {
			return classify(op, err)
		}
		var resp struct {
			Error   *jetstream.APIError `json:"error"`
			Message *struct {
				Seq uint64 `json:"seq"`
			} `json:"message"`
		}
		if err := json.Unmarshal(msg.Data, &resp); err != nil {
			return fmt.Errorf("eventstore: %s: %w", op, err)
		}
		switch {
		case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
			seq = 0
		case resp.Error != nil:
			return classify(op, resp.Error)
		case resp.Message == nil:
			return fmt.Errorf("eventstore: %s: empty answer", op)
		default:
			seq = resp.Message.Seq
		}
		return nil
	})
	return seq, err
}

// StepDownLeader asks the stream's leader to hand leadership to another
// replica. It is a repair, not an operation of the log: nats-server can be
// left, after a leader change, refusing every conditional append to one
// subject ("wrong last sequence" although the caller has the subject's head:
// the subject stays marked as having an append in flight that was lost); a
// new leader starts with that state cleared.
func (l *Log) StepDownLeader(ctx context.Context) error {
	op := "step down the leader of " + l.cfg.Stream
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, requestTimeout)
		defer cancel()
	}
	msg, err := l.nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+l.cfg.Stream, nil)
	if err != nil {
		return classify(op, err)
	}
	var resp struct {
		Error   *jetstream.APIError `json:"error"`
		Success bool                `json:"success"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("eventstore: %s: %w", op, err)
	}
	if resp.Error != nil {
		return classify(op, resp.Error)
	}
	return nil
}
