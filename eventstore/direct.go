package eventstore

import (
	"context"
	"encoding/json"
	"fmt"
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
	inbox := l.nc.NewInbox()
	sub, err := l.nc.SubscribeSync(inbox)
	if err != nil {
		return 0, classify(op, err)
	}
	defer sub.Unsubscribe()
	api := "$JS.API.DIRECT.GET." + l.cfg.Stream
	var last uint64
	for next := max(from, 1); ; {
		req, _ := json.Marshal(directBatch{Seq: next, NextFor: subject, Batch: directBatchSize})
		if err := l.nc.PublishRequest(api, inbox, req); err != nil {
			return last, classify(op, err)
		}
		more, err := l.readBatch(ctx, sub, func(rec Record) error {
			if err := fn(rec); err != nil {
				return err
			}
			last, next = rec.Seq, rec.Seq+1
			return nil
		})
		if err != nil || !more {
			return last, err
		}
	}
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
