package eventstore

import (
	"strconv"
	"testing"
)

// TestReadEndsWhenPendingRecordsAreDeleted covers the end of a bounded
// read when records it counted at the start disappear before they are
// delivered: it must neither hang nor stop short. The log never deletes,
// and its stream denies deletes, but an older stream may not.
func TestReadEndsWhenPendingRecordsAreDeleted(t *testing.T) {
	// The stream denies deletes; this test's allows them, to take records
	// away under a read as a server whose running count is off would.
	denyDeletes = false
	l := openEmbedded(t, nil)
	denyDeletes = true
	ctx := testCtx(t)
	const n = 3 * readBatch // more than one pull, so the tail is not yet buffered
	pending := make([]*PendingAck, 0, n)
	for i := range n {
		// One subject per record keeps Expected at 0 while pipelining.
		p, err := l.AppendAsync(Message{Subject: l.Subject("app", "room", strconv.Itoa(i)), MsgID: strconv.Itoa(i), Data: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, p)
	}
	for _, p := range pending {
		if _, err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	lastSeq, err := l.LastSeq(ctx)
	if err != nil || lastSeq != n {
		t.Fatalf("LastSeq = %d, %v", lastSeq, err)
	}

	count := 0
	last, err := l.Read(ctx, nil, 0, func(r Record) error {
		if count++; count == 1 {
			// The last two records vanish after Read counted them.
			for _, seq := range []uint64{n - 1, n} {
				if err := l.stream.DeleteMsg(ctx, seq); err != nil {
					t.Fatalf("DeleteMsg(%d): %v", seq, err)
				}
			}
		}
		return nil
	})
	if err != nil || count != n-2 || last != n-2 {
		t.Fatalf("Read = %d, %v after %d records; want %d records", last, err, count, n-2)
	}
}
