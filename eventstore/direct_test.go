package eventstore

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// readBatch's answers as servers send them, fed through a plain inbox: an
// old server's single message (no count, no end of batch) is a whole answer
// after which the reader asks again, and a "no responders" status is the
// log being unavailable.
func TestReadBatchUnderstandsEveryAnswer(t *testing.T) {
	l := openEmbedded(t, nil)
	ctx := testCtx(t)
	inbox := l.nc.NewInbox()
	sub, err := l.nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	send := func(h nats.Header, data string) {
		t.Helper()
		if err := l.nc.PublishMsg(&nats.Msg{Subject: inbox, Header: h, Data: []byte(data)}); err != nil {
			t.Fatal(err)
		}
	}
	stored := func(seq string, pending string) nats.Header {
		h := nats.Header{}
		h.Set(jetstream.SequenceHeader, seq)
		h.Set(jetstream.TimeStampHeaer, time.Now().UTC().Format(time.RFC3339Nano))
		h.Set(jetstream.SubjectHeader, "roomlog.a.room.r1")
		h.Set(jetstream.MsgIDHeader, "m"+seq)
		if pending != "" {
			h.Set("Nats-Num-Pending", pending)
		}
		return h
	}
	status := func(code, pending string) nats.Header {
		h := nats.Header{}
		h.Set("Status", code)
		if pending != "" {
			h.Set("Nats-Num-Pending", pending)
		}
		return h
	}
	read := func() ([]uint64, bool, error) {
		var seqs []uint64
		more, err := l.readBatch(ctx, sub, func(r Record) error {
			if r.MsgID != "m"+string(r.Data) || r.Header.Get(jetstream.SequenceHeader) != "" {
				t.Errorf("record %+v: want its Msg-Id kept and the get's headers removed", r)
			}
			seqs = append(seqs, r.Seq)
			return nil
		})
		return seqs, more, err
	}

	// A batch that ends with records still pending, then one that ends.
	send(stored("3", "2"), "3")
	send(stored("5", "1"), "5")
	send(status("204", "1"), "")
	if seqs, more, err := read(); err != nil || !more || len(seqs) != 2 || seqs[1] != 5 {
		t.Fatalf("a batch with more pending: %v, more %v, %v", seqs, more, err)
	}
	send(stored("8", "0"), "8")
	send(status("204", "0"), "")
	if seqs, more, err := read(); err != nil || more || len(seqs) != 1 {
		t.Fatalf("the last batch: %v, more %v, %v", seqs, more, err)
	}
	// An old server: one message, nothing else.
	send(stored("9", ""), "9")
	if seqs, more, err := read(); err != nil || !more || len(seqs) != 1 || seqs[0] != 9 {
		t.Fatalf("an old server's answer: %v, more %v, %v", seqs, more, err)
	}
	send(status("404", ""), "")
	if seqs, more, err := read(); err != nil || more || len(seqs) != 0 {
		t.Fatalf("nothing found: %v, more %v, %v", seqs, more, err)
	}
	send(status("503", ""), "")
	if _, _, err := read(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("no responders: %v, want ErrUnavailable", err)
	}
}

// The leader answers where a subject, or a filter, goes on from a sequence:
// its next record's sequence, 0 past its last; and a subject's last.
func TestTheLeaderSaysWhereASubjectGoesOn(t *testing.T) {
	l := openEmbedded(t, nil)
	ctx := testCtx(t)
	a, b := l.Subject("app", "room", "a"), l.Subject("app", "session", "b")
	onA := appendChain(t, l, a, 2, 0) // seqs 1, 2
	onB := appendChain(t, l, b, 2, 0) // seqs 3, 4
	onA = append(onA, appendChain(t, l, a, 1, 2)...)
	for _, c := range []struct {
		subject string
		from    uint64
		want    uint64
	}{{a, 1, onA[0]}, {a, onA[1] + 1, onA[2]}, {l.KindFilter("room"), onB[0], onA[2]}, {b, onB[1] + 1, 0},
		{l.KindFilter("session"), 1, onB[0]}} {
		got, err := l.LeaderNext(ctx, c.subject, c.from)
		if err != nil || got != c.want {
			t.Errorf("LeaderNext(%s, %d) = %d, %v; want %d", c.subject, c.from, got, err, c.want)
		}
	}
	if last, err := l.LeaderLast(ctx, a); err != nil || last != onA[2] {
		t.Errorf("LeaderLast(%s) = %d, %v; want %d", a, last, err, onA[2])
	}
}
