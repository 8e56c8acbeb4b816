package main

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/eventstore"
)

// The per-round line says how many collections the node ran in between:
// the slowest logins of a burst fall in them.
func TestServerSideCountsTheNodesCollections(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, done, err := startNode(ctx, eventstore.SyncModeInterval, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	before, err := scrapeNode(ctx, n.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	if len(before.buckets) == 0 {
		t.Fatal("no histogram read from the node's /metrics")
	}
	runtime.GC() // the node runs in this process here
	runtime.GC()
	after, err := scrapeNode(ctx, n.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	if got := after.gcCycles - before.gcCycles; got < 2 {
		t.Fatalf("%v GC cycles counted across two runtime.GC calls", got)
	}
	if line := serverSide(before, after); !strings.Contains(line, "GC cycles ") {
		t.Fatalf("the server-side line does not say how many GC cycles ran: %q", line)
	}
}
