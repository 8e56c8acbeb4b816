package node_test

import (
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections"
)

// savedCursor returns the cursor of the projection snapshot in log's bucket
// (0 if there is none).
func savedCursor(t *testing.T, log *eventstore.Log) uint64 {
	t.Helper()
	blobs, err := log.OpenBlobs(estest.Ctx(t), eventstore.BlobsConfig{Bucket: "roomlog-snapshots"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := projections.Restore(estest.Ctx(t), projections.NewBlobStore(blobs), node.SnapshotName)
	if err != nil {
		t.Fatal(err)
	}
	return m.Cursor
}

// snapshotNode starts a node on dir whose snapshots are due only by time
// (SnapshotEvery far away), with clock.
func snapshotNode(t *testing.T, dir string, clock *estest.Clock) *node.Node {
	t.Helper()
	n, err := node.Start(estest.Ctx(t), node.Config{Log: eventstore.Config{DataDir: dir},
		Policy: domain.Config{Default: estest.Policy()}, Secret: []byte("snapshot-test-secret-0123456789abcdef"),
		HTTPListen: "127.0.0.1:0", NoMedia: true, Clock: clock, SnapshotEvery: 1_000_000,
		SnapshotInterval: time.Minute, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A quiet node (far fewer records than SnapshotEvery) saved no snapshot
// before, so each restart folded the whole log again; and with retention,
// one whose log had expired records restarted without the state they had
// built. It now saves one SnapshotInterval after the last on the next
// record folded, and at shutdown whatever was folded since.
func TestAQuietNodeSavesItsProjectionByTimeAndAtShutdown(t *testing.T) {
	dir := t.TempDir()
	clock := estest.NewClock(time.Now())
	n := snapshotNode(t, dir, clock)
	estest.Exec(t, n.Engine, estest.Login("s1", "u1", "r1"))
	first, err := n.Log.LastSeq(estest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Live.WaitFor(estest.Ctx(t), first); err != nil {
		t.Fatal(err)
	}
	if got := savedCursor(t, n.Log); got != 0 {
		t.Fatalf("a snapshot at %d saved within the interval", got)
	}
	// The first record folded after the interval saves one (the
	// snapshotter may still be on s1's records, or already on s2's).
	clock.Advance(2 * time.Minute)
	estest.Exec(t, n.Engine, estest.Login("s2", "u2", "r1"))
	estest.Eventually(t, "a snapshot saved by time", func() bool { return savedCursor(t, n.Log) >= first })

	estest.Exec(t, n.Engine, estest.Login("s3", "u3", "r1")) // not due: within the interval
	last, err := n.Log.LastSeq(estest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	// What shutdown saves is what was folded: the fold is asynchronous, and
	// on a loaded machine it may not have reached the log's end yet.
	if err := n.Live.WaitFor(estest.Ctx(t), last); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	log := estest.Open(t, func(c *eventstore.Config) { c.DataDir = dir })
	if got := savedCursor(t, log); got != last {
		t.Fatalf("after shutdown the snapshot is at %d, want the log's end %d", got, last)
	}
}
