// Package cursor addresses single events in the log, so that a consumer
// resumes exactly where it stopped.
//
// One stored message holds every event one command produced for one
// aggregate (a logout while publishing: room.stream_stopped then
// room.member_left), so a message's stream sequence alone does not name an
// event: a consumer that stops between two events of one message could only
// repeat the first or lose the second. A Cursor is the stream sequence of
// the message and the index of the event in it, written "<seq>.<index>"
// (e.g. "1042.1"); Read and Tail deliver exactly the events after one.
package cursor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// Cursor names one event: the stream sequence of the message that holds it
// and its index in that message, from 0. The zero Cursor is before the
// first event of the log.
type Cursor struct {
	Seq   uint64
	Index int
}

// End returns the cursor past every event of message seq.
func End(seq uint64) Cursor { return Cursor{Seq: seq, Index: wholeMessage} }

// Whole reports whether c is past every event of its message (End).
func (c Cursor) Whole() bool { return c.Index == wholeMessage }

// String returns the cursor's printed form, "<seq>.<index>", or "<seq>"
// for a cursor past every event of its message (End), as Parse reads it.
func (c Cursor) String() string {
	if c.Whole() {
		return strconv.FormatUint(c.Seq, 10)
	}
	return strconv.FormatUint(c.Seq, 10) + "." + strconv.Itoa(c.Index)
}

// MarshalText implements encoding.TextMarshaler.
func (c Cursor) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (c *Cursor) UnmarshalText(b []byte) error {
	p, err := Parse(string(b))
	*c = p
	return err
}

// Less reports whether c comes before d in the log.
func (c Cursor) Less(d Cursor) bool {
	return c.Seq < d.Seq || (c.Seq == d.Seq && c.Index < d.Index)
}

// ErrInvalid is returned by Parse for text that is not a cursor.
var ErrInvalid = errors.New("invalid cursor")

// Parse reads "<seq>.<index>". A bare "<seq>" means the whole message:
// the cursor of its last event, whatever its index (as tail printed
// cursors before they named events).
func Parse(s string) (Cursor, error) {
	seq, idx, dotted := strings.Cut(s, ".")
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return Cursor{}, fmt.Errorf("%w %q: want <stream sequence>.<index>", ErrInvalid, s)
	}
	if !dotted {
		return Cursor{Seq: n, Index: wholeMessage}, nil
	}
	i, err := strconv.Atoi(idx)
	if err != nil || i < 0 {
		return Cursor{}, fmt.Errorf("%w %q: the index must be a number from 0", ErrInvalid, s)
	}
	return Cursor{Seq: n, Index: i}, nil
}

// wholeMessage is an index past any message's last event.
const wholeMessage = 1<<31 - 1

// Event is one event delivered with its cursor and the record that held it.
// A message no engine wrote (one that does not decode) is delivered too, as
// an Event with Err set, Event nil and the cursor past the message (End):
// the nodes pass over such a message, and so can a reader, instead of
// stopping at it for good (roomctl verify reports it).
type Event struct {
	Cursor Cursor
	Event  *domain.Event
	Record *eventstore.Record
	Err    error
}

// Read calls fn for every event matching filters after cursor after (the
// zero Cursor: from the beginning), up to the end of the log as of the
// call, and returns the cursor of the last event delivered (after, if none).
// Events carry the Prev they were stored with.
// An error from fn stops the read and is returned unchanged.
func Read(ctx context.Context, log *eventstore.Log, filters []string, after Cursor, fn func(Event) error) (Cursor, error) {
	last := after
	_, err := log.Read(ctx, filters, start(after), each(after, &last, fn))
	return last, err
}

// Tail is Read that follows the log until ctx ends (then it returns nil).
func Tail(ctx context.Context, log *eventstore.Log, filters []string, after Cursor, fn func(Event) error) error {
	var last Cursor
	return log.Tail(ctx, filters, start(after), each(after, &last, fn))
}

// start is the stream sequence where a read after c begins: c's own
// message, unless c is that message's last event (unknown until read, so
// its message is read again and skipped).
func start(c Cursor) uint64 { return max(c.Seq, 1) }

func each(after Cursor, last *Cursor, fn func(Event) error) func(eventstore.Record) error {
	return func(rec eventstore.Record) error {
		// With each event's prev, as stored: what a reader prints or
		// exports must keep the hash links.
		events, _, err := domain.DecodeHashed(rec.Data)
		if err != nil {
			c := End(rec.Seq)
			if !after.Less(c) {
				return nil
			}
			if err := fn(Event{Cursor: c, Record: &rec, Err: fmt.Errorf("stream sequence %d: %w", rec.Seq, err)}); err != nil {
				return err
			}
			*last = c
			return nil
		}
		for i := range events {
			c := Cursor{Seq: rec.Seq, Index: i}
			if !after.Less(c) {
				continue
			}
			if err := fn(Event{Cursor: c, Event: &events[i], Record: &rec}); err != nil {
				return err
			}
			*last = c
		}
		return nil
	}
}
