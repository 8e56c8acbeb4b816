package main

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/eventstore"
)

// sink keeps the test's allocations from being optimised away.
var sink []byte

// The per-round line says how many collections the node ran in between
// (the slowest logins of a burst fall in them) and how much it allocated.
func TestServerSideCountsTheNodesCollections(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, done, err := startNode(ctx, eventstore.SyncModeInterval, "127.0.0.1:0", false)
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
	for range 16 { // the node runs in this process here
		sink = make([]byte, 1<<20)
	}
	runtime.GC()
	runtime.GC()
	after, err := scrapeNode(ctx, n.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	if got := after.gcCycles - before.gcCycles; got < 2 {
		t.Fatalf("%v GC cycles counted across two runtime.GC calls", got)
	}
	if got := after.allocated - before.allocated; got < 16<<20 {
		t.Fatalf("%v bytes allocated counted across 16 MiB of allocations", got)
	}
	line := serverSide(before, after, 4)
	if !strings.Contains(line, "GC cycles ") {
		t.Fatalf("the server-side line does not say how many GC cycles ran: %q", line)
	}
	// 16 MiB over 4 logins: at least 4,194 kB each.
	_, tail, _ := strings.Cut(line, "allocated ")
	var perLogin float64
	if _, err := fmt.Sscanf(tail, "%f kB per login", &perLogin); err != nil || perLogin < 4194 {
		t.Fatalf("the server-side line does not say what a login allocated (%v): %q", err, line)
	}
}
