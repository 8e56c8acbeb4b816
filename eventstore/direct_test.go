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
