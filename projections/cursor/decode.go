package cursor

import (
	"context"
	"errors"
	"runtime"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// Decoded is one record with its events decoded.
type Decoded struct {
	Record eventstore.Record
	Events []domain.Event
	// Hashes holds each event's hash when ReadDecoded was asked for them.
	Hashes []string
	// Err is the decoding error, if the record could not be decoded.
	Err error
}

// decodeBatch is how many records one decoding job holds: large enough to
// make the hand-over between goroutines cheap, small enough to keep every
// worker busy.
const decodeBatch = 256

// ReadDecoded is eventstore.Log.Read with the events of each record decoded
// (and hashed, with hashes) by several goroutines at once while the log is
// read, and handed to fn in log order. Decoding costs more than reading:
// spread over the machine's cores, a replay or an audit runs close to the
// rate of a raw read. An error from fn stops the read and is returned.
func ReadDecoded(ctx context.Context, log *eventstore.Log, filters []string, from uint64, hashes bool,
	fn func(*Decoded) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := max(runtime.GOMAXPROCS(0), 2)
	type job struct {
		recs []Decoded
		done chan struct{}
	}
	jobs := make(chan *job, workers*2)
	order := make(chan *job, workers*4)
	for range workers {
		go func() {
			for j := range jobs {
				for i := range j.recs {
					d := &j.recs[i]
					if hashes {
						d.Events, d.Hashes, d.Err = domain.DecodeHashed(d.Record.Data)
					} else {
						d.Events, d.Err = domain.DecodeEvents(d.Record.Data)
					}
				}
				close(j.done)
			}
		}()
	}
	readErr := make(chan error, 1)
	go func() {
		defer close(order)
		defer close(jobs)
		var cur *job
		send := func() bool {
			if cur == nil {
				return true
			}
			select {
			case order <- cur:
			case <-ctx.Done():
				return false
			}
			select {
			case jobs <- cur:
			case <-ctx.Done():
				return false
			}
			cur = nil
			return true
		}
		_, err := log.Read(ctx, filters, from, func(rec eventstore.Record) error {
			if cur == nil {
				cur = &job{recs: make([]Decoded, 0, decodeBatch), done: make(chan struct{})}
			}
			cur.recs = append(cur.recs, Decoded{Record: rec})
			if len(cur.recs) == decodeBatch && !send() {
				return ctx.Err()
			}
			return nil
		})
		if err == nil && !send() {
			err = ctx.Err()
		}
		readErr <- err
	}()
	for j := range order {
		select {
		case <-j.done:
		case <-ctx.Done():
			return errors.Join(ctx.Err(), <-readErr)
		}
		for i := range j.recs {
			if err := fn(&j.recs[i]); err != nil {
				cancel()
				for range order {
				}
				<-readErr
				return err
			}
		}
	}
	return <-readErr
}
