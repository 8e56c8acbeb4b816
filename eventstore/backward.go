package eventstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// errWindowDone stops a forward read at the end of a backward window.
var errWindowDone = errors.New("window done")

// ReadSubjectBackward calls fn with the records on the literal subject whose
// stream sequence is below before (0: every record), newest first, until fn
// returns false or an error, or the subject has no older record. It returns
// the sequence of the oldest record it passed to fn (0 if none).
//
// JetStream reads forward only, so the subject is read in windows of stream
// sequences, each with the batched direct gets of ReadSubject, walking back
// from before. hint is how many records the caller expects to need: the
// first window is sized for it, the next ones from the density of the
// subject in the windows read so far, so that a page of a busy room takes
// one or two round trips and a page of a quiet one a few more.
func (l *Log) ReadSubjectBackward(ctx context.Context, subject string, before uint64, hint int,
	fn func(Record) (bool, error)) (uint64, error) {
	if !l.owns(subject, false) {
		return 0, fmt.Errorf("%w: %q is not a literal subject under %q", ErrInvalidSubject, subject, l.prefix)
	}
	if before == 0 {
		last, ok, err := l.Last(ctx, subject)
		if err != nil || !ok {
			return 0, err
		}
		before = last.Seq + 1
	}
	hint = max(hint, 8)
	window := uint64(hint) * 2 // the density is unknown yet: assume one record in two
	var oldest uint64
	var buf []Record
	for hi := before; hi > 1; {
		lo := max(1, hi-min(window, hi-1))
		buf = buf[:0]
		// The batch is sized for the records the window should hold: a
		// batch reads on past the window's end, and those are wasted.
		expect := min(int(window), hint+hint/2+1, directBatchSize)
		_, err := l.readSubject(ctx, subject, lo, expect, func(rec Record) error {
			if rec.Seq >= hi {
				return errWindowDone
			}
			buf = append(buf, rec)
			return nil
		})
		if err != nil && !errors.Is(err, errWindowDone) {
			return oldest, err
		}
		for _, rec := range slices.Backward(buf) {
			oldest = rec.Seq
			more, err := fn(rec)
			if err != nil || !more {
				return oldest, err
			}
		}
		// Size the next window for what the caller may still need at the
		// density seen in this one, with a margin (four times as large when
		// it held nothing).
		span := hi - lo
		if n := uint64(len(buf)); n > 0 {
			window = max(span*uint64(hint)*3/(2*n)+1, uint64(hint))
		} else {
			window = span * 4
		}
		window = min(window, 1<<24)
		hi = lo
	}
	return oldest, nil
}
