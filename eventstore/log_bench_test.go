package eventstore

import (
	"context"
	"strconv"
	"testing"
)

// benchEvent has the size of a typical small room event as JSON.
const benchEvent = `{"type":"room.member_joined","room":"room-42","user":"user-1234","session":"s-01JABCDEF","at":"2026-01-01T00:00:00Z","extra":{"role":"host","nick":"Alice"}}`

// forSyncModes runs fn once per sync mode on a fresh embedded log.
func forSyncModes(b *testing.B, fn func(b *testing.B, l *Log)) {
	for _, mode := range []SyncMode{SyncModeInterval, SyncModeAlways} {
		b.Run(string(mode), func(b *testing.B) {
			fn(b, openEmbedded(b, func(c *Config) { c.Sync = mode }))
		})
	}
}

// BenchmarkAppend appends one message at a time to one subject, each
// expecting the previous one: the latency of a single command.
func BenchmarkAppend(b *testing.B) {
	forSyncModes(b, func(b *testing.B, l *Log) {
		ctx := context.Background()
		subj := l.Subject("bench", "room", "r1")
		var expected uint64
		i := 0
		for b.Loop() {
			ack, err := l.Append(ctx, Message{Subject: subj, MsgID: strconv.Itoa(i), Expected: expected, Data: []byte(benchEvent)})
			if err != nil {
				b.Fatal(err)
			}
			expected = ack.Seq
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
	})
}

// BenchmarkAppendAsync1000Subjects pipelines appends across 1,000
// subjects with one in flight per subject, each with Expected and MsgID:
// the raw-JetStream baseline for a busy server with many rooms.
func BenchmarkAppendAsync1000Subjects(b *testing.B) {
	forSyncModes(b, func(b *testing.B, l *Log) {
		const subjects = 1000
		ctx := context.Background()
		subj := make([]string, subjects)
		for s := range subj {
			subj[s] = l.Subject("bench", "room", strconv.Itoa(s))
		}
		expected := make([]uint64, subjects)
		inflight := make([]*PendingAck, subjects)
		wait := func(s int) {
			if inflight[s] == nil {
				return
			}
			ack, err := inflight[s].Wait(ctx)
			if err != nil {
				b.Fatal(err)
			}
			expected[s], inflight[s] = ack.Seq, nil
		}
		i := 0
		for b.Loop() {
			s := i % subjects
			wait(s)
			p, err := l.AppendAsync(Message{Subject: subj[s], MsgID: strconv.Itoa(i), Expected: expected[s], Data: []byte(benchEvent)})
			if err != nil {
				b.Fatal(err)
			}
			inflight[s] = p
			i++
		}
		for s := range inflight {
			wait(s)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
	})
}

// fill appends n records spread over 1,000 subjects, pipelined.
func fill(b *testing.B, l *Log, n int) {
	ctx := context.Background()
	const subjects = 1000
	expected := make([]uint64, subjects)
	inflight := make([]*PendingAck, subjects)
	for i := 0; i < n+subjects; i++ {
		s := i % subjects
		if p := inflight[s]; p != nil {
			ack, err := p.Wait(ctx)
			if err != nil {
				b.Fatal(err)
			}
			expected[s], inflight[s] = ack.Seq, nil
		}
		if i < n {
			p, err := l.AppendAsync(Message{Subject: l.Subject("bench", "room", strconv.Itoa(s)), MsgID: strconv.Itoa(i), Expected: expected[s], Data: []byte(benchEvent)})
			if err != nil {
				b.Fatal(err)
			}
			inflight[s] = p
		}
	}
}

// BenchmarkRead measures Read: a replay of the whole log, and the load of
// one room's 100 records out of 100,000 (consumer set-up included). The
// sync mode does not matter for reads.
func BenchmarkRead(b *testing.B) {
	const total = 100_000
	l := openEmbedded(b, nil)
	fill(b, l, total)
	ctx := context.Background()

	read := func(b *testing.B, filters []string, want int) {
		for b.Loop() {
			n := 0
			if _, err := l.Read(ctx, filters, 0, func(Record) error { n++; return nil }); err != nil {
				b.Fatal(err)
			}
			if n != want {
				b.Fatalf("read %d records, want %d", n, want)
			}
		}
		b.ReportMetric(float64(want)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	}
	b.Run("replay-100k", func(b *testing.B) { read(b, nil, total) })
	b.Run("room-100-of-100k", func(b *testing.B) {
		read(b, []string{l.Subject("bench", "room", "42")}, total/1000)
	})
}

// BenchmarkLast measures the direct get of a subject's last record, the
// cheapest way to learn an aggregate's version.
func BenchmarkLast(b *testing.B) {
	l := openEmbedded(b, nil)
	fill(b, l, 10_000)
	ctx := context.Background()
	subj := l.Subject("bench", "room", "7")
	for b.Loop() {
		if _, ok, err := l.Last(ctx, subj); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}
