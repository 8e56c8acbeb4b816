package projections_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/projections"
)

// soakCycles is how many login/logout cycles TestSoakMemoryFollowsTheLiveSessions
// runs: ROOMLOG_SOAK_CYCLES, or 300 (docs/benchmarks.md quotes a run of 3600,
// an hour of churn at one cycle a second of the fake clock).
func soakCycles(t *testing.T) int {
	if s := os.Getenv("ROOMLOG_SOAK_CYCLES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 20 {
			t.Fatalf("ROOMLOG_SOAK_CYCLES=%q: want a number of at least 20", s)
		}
		return n
	}
	return 300
}

// A long run of sessions that come and go (each logs in, publishes, plays,
// is kicked out by a duplicate login or logs out; rooms are created and
// destroyed with them) leaves the live model, and so its snapshot, the size
// of what is live: a few resident sessions and their rooms, not every session
// ever seen. One cycle a second of a fake clock.
func TestSoakMemoryFollowsTheLiveSessions(t *testing.T) {
	cycles := soakCycles(t)
	r := newRig(t, multiPolicy())
	r.rec.lastOnly = true
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.ctx = ctx
	// Residents: live the whole run.
	r.must(login("res-1", "resident-1", "lobby"), login("res-2", "resident-2", "lobby"), login("res-3", "resident-3", "stage"),
		domain.PublishStream{Session: "res-3", Stream: "stage-cam", Room: "stage"})
	live := projections.Size{Rooms: 2, Sessions: 3, Streams: 1, Connections: 3}

	type figures struct {
		size      projections.Size
		snapBytes int
		heap      uint64
		routines  int
	}
	measure := func() figures {
		var f figures
		f.size = r.live.Size()
		snap, err := r.live.Snapshot("soak")
		if err != nil {
			t.Fatal(err)
		}
		f.snapBytes = len(snap.Data)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		f.heap, f.routines = ms.HeapInuse, runtime.NumGoroutine()
		return f
	}
	var fifths []figures // after each fifth of the run
	start := time.Now()
	for i := range cycles {
		if i > 0 && i%(cycles/5) == 0 {
			fifths = append(fifths, measure())
		}
		r.clock.Advance(time.Second)
		s, u := domain.SessionID(fmt.Sprint("s-", i)), domain.UserID(fmt.Sprint("u-", i))
		room := domain.RoomID(fmt.Sprint("room-", i%7))
		stream := domain.StreamID(fmt.Sprint("cam-", i))
		r.must(login(s, u, room), domain.PublishStream{Session: s, Stream: stream, Room: room},
			domain.PlayStream{Session: s, Stream: stream, Room: room},
			domain.SendBroadcast{Session: s, Room: room, Body: "hello"})
		switch i % 3 {
		case 0: // logs out
			r.must(domain.LeaveRoom{Session: s, Room: room, Reason: domain.ReasonLogout})
		case 1: // its user logs in elsewhere: the old session is kicked out, the new one logs out
			again := domain.SessionID(fmt.Sprint("s-", i, "-again"))
			r.must(login(again, u, room), domain.LeaveRoom{Session: again, Room: room, Reason: domain.ReasonLogout})
		case 2: // its room is destroyed under it
			r.must(domain.DestroyRoom{Room: room})
		}
	}
	end := measure()
	fifths = append(fifths, end)
	warm := fifths[0]
	for i, f := range fifths {
		t.Logf("after %d of %d cycles: %+v, snapshot %d B, heap in use %.1f MiB, %d goroutines",
			(i+1)*(cycles/5), cycles, f.size, f.snapBytes, float64(f.heap)/(1<<20), f.routines)
	}
	t.Logf("%d cycles in %v", cycles, time.Since(start).Round(time.Millisecond))
	if d, err := time.ParseDuration(os.Getenv("ROOMLOG_SOAK_SETTLE")); err == nil {
		// JetStream keeps what was just written in a cache that expires
		// after a few idle seconds: the heap once it has.
		time.Sleep(d)
		f := measure()
		t.Logf("%v later: heap in use %.1f MiB, %d goroutines", d, float64(f.heap)/(1<<20), f.routines)
	}
	for i, f := range fifths {
		if f.size != live {
			t.Errorf("after %d cycles the model holds %+v; live are %+v", (i+1)*(cycles/5), f.size, live)
		}
	}
	// The same live state, a later cursor and later times: a few bytes more.
	if end.snapBytes > warm.snapBytes+64 {
		t.Errorf("the snapshot grew from %d to %d bytes with the same sessions live", warm.snapBytes, end.snapBytes)
	}
}
