package cursor_test

import (
	"context"
	"errors"
	"testing"

	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections/cursor"
)

// Records decoded on several goroutines come out in log order, every one
// once, and an error from fn stops the read.
func TestReadDecodedKeepsLogOrder(t *testing.T) {
	log := estest.Open(t, nil)
	events, messages := estest.WriteRooms(t, log, estest.RoomsConfig{Rooms: 7, Events: 3000, Seed: 5})
	var last uint64
	n, m := 0, 0
	err := cursor.ReadDecoded(estest.Ctx(t), log, nil, 1, true, func(d *cursor.Decoded) error {
		if d.Err != nil || d.Record.Seq != last+1 || len(d.Hashes) != len(d.Events) {
			t.Fatalf("record %d after %d: %v, %d hashes for %d events", d.Record.Seq, last, d.Err, len(d.Hashes), len(d.Events))
		}
		last = d.Record.Seq
		n += len(d.Events)
		m++
		return nil
	})
	if err != nil || n != events || m != messages {
		t.Fatalf("read %d events in %d messages (%v); wrote %d in %d", n, m, err, events, messages)
	}
	stop := errors.New("enough")
	m = 0
	err = cursor.ReadDecoded(context.Background(), log, nil, 1, false, func(d *cursor.Decoded) error {
		if m++; m == 700 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || m != 700 {
		t.Fatalf("stopped at %d with %v", m, err)
	}
}
