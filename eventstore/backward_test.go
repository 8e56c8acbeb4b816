package eventstore

import (
	"fmt"
	"slices"
	"testing"
)

// A subject read backward gives every record below the bound, newest
// first, however sparse it is among other subjects, and stops when asked.
func TestReadSubjectBackward(t *testing.T) {
	l := openEmbedded(t, nil)
	ctx := testCtx(t)
	room, busy := l.Subject("a", "room", "r1"), l.Subject("a", "room", "busy")
	var want []uint64
	last := map[string]uint64{}
	for i := range 600 {
		// r1 gets one message in seven at first, then every one: the
		// reader must cope with both densities.
		subject := busy
		if i%7 == 0 || i >= 500 {
			subject = room
		}
		ack, err := l.Append(ctx, Message{Subject: subject, MsgID: fmt.Sprint("m", i), Expected: last[subject],
			Data: []byte(fmt.Sprint(i))})
		if err != nil {
			t.Fatal(err)
		}
		last[subject] = ack.Seq
		if subject == room {
			want = append(want, ack.Seq)
		}
	}
	slices.Reverse(want)
	read := func(before uint64, stopAfter int) ([]uint64, uint64) {
		t.Helper()
		var got []uint64
		oldest, err := l.ReadSubjectBackward(ctx, room, before, func(r Record) (bool, error) {
			if r.Subject != room {
				t.Fatalf("record of %s", r.Subject)
			}
			got = append(got, r.Seq)
			return stopAfter == 0 || len(got) < stopAfter, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got, oldest
	}
	if got, _ := read(0, 0); !slices.Equal(got, want) {
		t.Fatalf("read %d records %v..., want %d", len(got), got[:min(5, len(got))], len(want))
	}
	if got, _ := read(want[0], 0); !slices.Equal(got, want[1:]) {
		t.Fatalf("read below %d: %d records, want %d", want[0], len(got), len(want)-1)
	}
	// Page by page, each page starting below the last one's oldest record.
	var paged []uint64
	for before := uint64(0); ; {
		page, oldest := read(before, 30)
		paged = append(paged, page...)
		if len(page) < 30 {
			break
		}
		before = oldest
	}
	if !slices.Equal(paged, want) {
		t.Fatalf("paged read gave %d records, want %d", len(paged), len(want))
	}
	n := 0
	if _, err := l.ReadSubjectBackward(ctx, l.Subject("a", "room", "none"), 0, func(Record) (bool, error) {
		n++
		return true, nil
	}); err != nil || n != 0 {
		t.Fatalf("an empty subject gave %d records, %v", n, err)
	}
}
