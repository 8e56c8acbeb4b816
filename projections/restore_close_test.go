package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections"
)

// A snapshot whose cursor is past the end of the log it is restored against
// (the stream was recreated, the snapshot bucket kept) must not be used as
// is: folding on from it ignores every new record up to its old cursor.
func TestASnapshotPastTheLogsEndIsNotUsed(t *testing.T) {
	old := newRig(t, multiPolicy())
	old.random(population(true, 5), 120)
	store := projections.NewMemStore()
	snap, err := old.live.Snapshot("proj.rooms.v3")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save(estest.Ctx(t), snap); err != nil {
		t.Fatal(err)
	}

	fresh := newWriter(t, multiPolicy())
	fresh.must(login("s1", "u1", "r1"))
	if fresh.lastSeq() >= snap.Cursor {
		t.Fatalf("setup: fresh log at %d, snapshot at %d", fresh.lastSeq(), snap.Cursor)
	}
	want := projections.NewModel()
	if err := projections.Rebuild(estest.Ctx(t), fresh.log, everything(fresh.log), want); err != nil {
		t.Fatal(err)
	}

	m, err := projections.Restore(estest.Ctx(t), store, "proj.rooms.v3")
	if err != nil {
		t.Fatal(err)
	}
	err = projections.Rebuild(estest.Ctx(t), fresh.log, everything(fresh.log), m)
	if err != nil {
		return // refused: fine, the node rebuilds from the beginning
	}
	if hashOf(t, m) != hashOf(t, want) {
		t.Errorf("Rebuild from a snapshot at cursor %d over a log that ends at %d: no error, and the model "+
			"(cursor %d) differs from folding the log (cursor %d); room r1 folded: %v",
			snap.Cursor, fresh.lastSeq(), m.Cursor, want.Cursor, m.App(app) != nil && m.App(app).Rooms["r1"] != nil &&
				m.App(app).Rooms["r1"].Seq == want.App(app).Rooms["r1"].Seq)
	}
}

// A waited-for subscriber that fell behind its queue, and whose catch-up
// read fails because Run ended, is never told of what was folded; WaitFor
// then waits for it forever, and Close (which drops it) wakes nobody.
func TestCloseTellsASubscriberThatFellBehindEverythingFolded(t *testing.T) {
	r := newWriter(t, multiPolicy())
	r.random(population(true, 7), 60)
	last := r.lastSeq()

	live := projections.NewLive(projections.NewModel())
	release := make(chan struct{})
	told := make(chan uint64, 10_000)
	live.Subscribe(func(rec projections.Record) { <-release; told <- rec.Seq }, projections.Queue(1))

	ctx, cancel := context.WithCancel(estest.Ctx(t))
	done := make(chan error, 1)
	go func() { done <- live.Run(ctx, r.log, everything(r.log)) }()
	deadline := time.Now().Add(30 * time.Second)
	for live.Cursor() < last && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if live.Cursor() != last {
		t.Fatalf("fold at %d, want %d", live.Cursor(), last)
	}
	cancel()
	if err := within(t, done, "Live.Run"); err != nil {
		t.Fatal(err)
	}

	waited := make(chan error, 1)
	wctx, wcancel := context.WithTimeout(estest.Ctx(t), 60*time.Second)
	defer wcancel()
	go func() { waited <- live.WaitFor(wctx, last) }()
	close(release)
	time.Sleep(500 * time.Millisecond)
	cs := time.Now()
	live.Close() // "stops the subscribers once they have been told of everything folded so far"
	var got []uint64
	for len(told) > 0 {
		got = append(got, <-told)
	}
	if len(got) == 0 || got[len(got)-1] != last {
		t.Errorf("after Close the subscriber was told of %d records, last %v; the fold reached %d", len(got), got, last)
	}
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("WaitFor(%d) = %v", last, err)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("WaitFor(%d), blocked before Close, still blocked %v after Close returned (it only returns when its own context ends)",
			last, time.Since(cs).Round(time.Second))
	}
}
