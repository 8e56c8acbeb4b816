package gateway

import (
	"fmt"
	"testing"
)

// The queue is FIFO and bounded: droppable frames (barrage) stop at half the
// bound, the others at the bound; what the writer takes makes room again.
func TestFrameQueueBounds(t *testing.T) {
	q := newFrameQueue(4)
	for i := range 2 {
		if queued, full := q.push([]byte(fmt.Sprint(i)), true); !queued || full {
			t.Fatalf("droppable frame %d: queued %v, full %v", i, queued, full)
		}
	}
	if queued, full := q.push([]byte("x"), true); queued || full {
		t.Fatalf("a droppable frame at half the bound: queued %v, full %v, want dropped", queued, full)
	}
	for i := 2; i < 4; i++ {
		if queued, _ := q.push([]byte(fmt.Sprint(i)), false); !queued {
			t.Fatalf("frame %d refused below the bound", i)
		}
	}
	if queued, full := q.push([]byte("4"), false); queued || !full {
		t.Fatalf("a frame over the bound: queued %v, full %v, want full", queued, full)
	}
	if b, ok := q.pop(); !ok || string(b) != "0" {
		t.Fatalf("first out: %q, %v", b, ok)
	}
	if queued, _ := q.push([]byte("4"), false); !queued {
		t.Fatal("no room after the writer took a frame")
	}
	for want := 1; want <= 4; want++ {
		if b, ok := q.pop(); !ok || string(b) != fmt.Sprint(want) {
			t.Fatalf("out of order: %q, %v; want %d", b, ok, want)
		}
	}
	if _, ok := q.pop(); ok {
		t.Fatal("a frame out of an empty queue")
	}
}

// A queue that never fully drains (a client that always has a frame or two
// waiting) keeps an array the size of what waits, not of everything that
// ever passed through it.
func TestFrameQueueThatNeverDrainsKeepsASmallArray(t *testing.T) {
	q := newFrameQueue(1024)
	q.push([]byte("first"), false)
	for i := range 100_000 {
		if queued, _ := q.push([]byte(fmt.Sprint(i)), false); !queued {
			t.Fatalf("frame %d refused", i)
		}
		if _, ok := q.pop(); !ok {
			t.Fatalf("no frame to pop at %d", i)
		}
		if c := cap(q.frames); c > 256 {
			t.Fatalf("after %d frames through a queue holding one, its array has room for %d", i+1, c)
		}
	}
	if b, ok := q.pop(); !ok || string(b) != "99999" {
		t.Fatalf("last frame %q, %v; want 99999", b, ok)
	}
}
