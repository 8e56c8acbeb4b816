package projections_test

import (
	"errors"
	"os"
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections"
)

// The logs of this package may be purged, as retention (roomd -retention)
// or an operator would, so that a snapshot older than the log's start can
// be restored against it.
func TestMain(m *testing.M) {
	eventstore.AllowTamperingInTests()
	os.Exit(m.Run())
}

// A node stopped for longer than the log's max age restarts from its last
// snapshot, but retention has removed records the snapshot had not folded.
// Folding the rest onto it keeps what those records ended: here, a member
// that logged out in the gap stays in its room for good, on this node only.
// Rebuild must refuse such a snapshot (the node then folds the log as it
// is, as every other node does).
func TestASnapshotOlderThanTheLogsStartIsNotUsed(t *testing.T) {
	r := newRig(t, multiPolicy())
	r.must(login("s1", "u1", "r1"), login("s2", "u2", "r1"))
	snap := r.snapshot()
	// In the gap: u1 logs out. Kept: u2's room goes on.
	r.must(domain.LeaveRoom{Session: "s1", Room: "r1", Reason: domain.ReasonLogout})
	gapEnd := r.lastSeq()
	r.must(login("s3", "u3", "r1"))
	if got := r.room("r1"); got == nil || got.Members["u1"] != nil {
		t.Fatalf("setup: live room r1 %+v still holds u1", got)
	}

	estest.Purge(t, r.log, gapEnd+1) // the log now starts after u1's logout
	first, _, err := r.log.Span(estest.Ctx(t))
	if err != nil || first != gapEnd+1 || first <= snap.Cursor+1 {
		t.Fatalf("setup: log starts at %d (%v), snapshot at %d, logout at or before %d", first, err, snap.Cursor, gapEnd)
	}

	m := r.restore(snap)
	err = projections.Rebuild(estest.Ctx(t), r.log, everything(r.log), m)
	if !errors.Is(err, projections.ErrBehindLog) {
		ghost := m.App(app) != nil && m.App(app).Rooms["r1"] != nil && m.App(app).Rooms["r1"].Members["u1"] != nil
		t.Fatalf("Rebuild from a snapshot at %d over a log starting at %d returned %v, want ErrBehindLog; "+
			"u1, who logged out in the removed records, still in r1: %v", snap.Cursor, first, err, ghost)
	}
}

// A snapshot whose cursor is just before the log's first record misses
// nothing, and neither does one at the end of a log that was emptied: both
// are used, and fold to what the live projection holds.
func TestASnapshotThatMeetsTheLogsStartIsUsed(t *testing.T) {
	r := newRig(t, multiPolicy())
	r.must(login("s1", "u1", "r1"), login("s2", "u2", "r1"))
	early := r.snapshot()
	r.must(domain.LeaveRoom{Session: "s1", Room: "r1", Reason: domain.ReasonLogout}, login("s3", "u3", "r1"))

	estest.Purge(t, r.log, early.Cursor+1) // what the early snapshot folded is removed
	m := r.restore(early)
	if err := projections.Rebuild(estest.Ctx(t), r.log, everything(r.log), m); err != nil {
		t.Fatalf("Rebuild from a snapshot at %d over a log starting at %d: %v", early.Cursor, early.Cursor+1, err)
	}
	if got, want := hashOf(t, m), r.liveHash(); got != want {
		t.Errorf("the snapshot at %d folded on with the rest of the log differs from the live model", early.Cursor)
	}

	late := r.snapshot()
	estest.Purge(t, r.log, late.Cursor+1) // everything is removed
	m = r.restore(late)
	if err := projections.Rebuild(estest.Ctx(t), r.log, everything(r.log), m); err != nil {
		t.Fatalf("Rebuild from a snapshot at %d over a log emptied up to it: %v", late.Cursor, err)
	}
	if got, want := hashOf(t, m), r.liveHash(); got != want {
		t.Errorf("the snapshot at %d, restored over a log emptied up to it, differs from the live model", late.Cursor)
	}
}

// snapshot takes a snapshot of the live model.
// The stream was recreated (or another log restored in its place) while the
// snapshots bucket was kept, and the new log has grown past the snapshot's
// cursor by the time the node starts: the snapshot is another log's, and
// folding this log onto it would serve that log's rooms and members. Rebuild
// must refuse it.
func TestASnapshotOfAnotherLogIsNotUsed(t *testing.T) {
	old := newRig(t, multiPolicy())
	old.must(login("s1", "u1", "r1"), login("s2", "u2", "r2"))
	snap := old.snapshot()

	fresh := newRig(t, multiPolicy())
	fresh.must(login("s7", "u7", "r7"), login("s8", "u8", "r7"), login("s9", "u9", "r8"))
	if last := fresh.lastSeq(); last <= snap.Cursor {
		t.Fatalf("setup: the new log ends at %d, not past the snapshot's cursor %d", last, snap.Cursor)
	}
	m := fresh.restore(snap)
	err := projections.Rebuild(estest.Ctx(t), fresh.log, everything(fresh.log), m)
	if !errors.Is(err, projections.ErrNotOfLog) {
		t.Fatalf("Rebuild of another log's snapshot (at %d) returned %v, want ErrNotOfLog; the model holds room r1 "+
			"of the other log: %v", snap.Cursor, err, m.App(app) != nil && m.App(app).Rooms["r1"] != nil)
	}

	// Its own log's snapshot is used.
	own := fresh.snapshot()
	fresh.must(login("s10", "u10", "r7"))
	m = fresh.restore(own)
	if err := projections.Rebuild(estest.Ctx(t), fresh.log, everything(fresh.log), m); err != nil {
		t.Fatalf("Rebuild of the log's own snapshot: %v", err)
	}
	if got, want := hashOf(t, m), fresh.liveHash(); got != want {
		t.Error("the log's own snapshot, folded on, differs from the live model")
	}
}

func (r *rig) snapshot() projections.Snapshot {
	r.t.Helper()
	snap, err := r.live.Snapshot("proj.rooms.v3")
	if err != nil {
		r.t.Fatal(err)
	}
	return snap
}

// restore saves snap and restores a model from it.
func (r *rig) restore(snap projections.Snapshot) *projections.Model {
	r.t.Helper()
	store := projections.NewMemStore()
	if err := store.Save(estest.Ctx(r.t), snap); err != nil {
		r.t.Fatal(err)
	}
	m, err := projections.Restore(estest.Ctx(r.t), store, "proj.rooms.v3")
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}
