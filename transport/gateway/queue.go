package gateway

import "sync"

// frameQueue is a connection's bounded FIFO of frames to write. It holds
// memory only for the frames waiting, unlike a buffered channel of the same
// bound: a gateway with many mostly idle connections keeps a small heap, and
// the garbage collector has little to scan (a preallocated 1024-slot channel
// per connection was most of the heap, and its scans most of login latency's
// tail).
type frameQueue struct {
	mu     sync.Mutex
	frames [][]byte // waiting from frames[head] on
	head   int
	limit  int
	// ready wakes the writer when a frame is pushed; taken wakes a pusher
	// waiting for room (pushWait) when the writer takes frames.
	ready, taken chan struct{}
}

func newFrameQueue(limit int) *frameQueue {
	return &frameQueue{limit: limit, ready: make(chan struct{}, 1), taken: make(chan struct{}, 1)}
}

// push appends b unless the queue holds limit frames, or half of it and b is
// droppable. It reports whether b was queued, and whether the queue was full.
func (q *frameQueue) push(b []byte, droppable bool) (queued, full bool) {
	q.mu.Lock()
	n := len(q.frames) - q.head
	switch {
	case n >= q.limit:
		q.mu.Unlock()
		return false, true
	case droppable && n >= q.limit/2:
		q.mu.Unlock()
		return false, false
	}
	q.frames = append(q.frames, b)
	q.mu.Unlock()
	signal(q.ready)
	return true, false
}

// pop removes and returns the oldest frame (false if none).
func (q *frameQueue) pop() ([]byte, bool) {
	q.mu.Lock()
	if q.head == len(q.frames) {
		q.mu.Unlock()
		return nil, false
	}
	b := q.frames[q.head]
	q.frames[q.head] = nil
	q.head++
	switch n := len(q.frames) - q.head; {
	case n == 0:
		// Drained: start over, and let a burst's backing array go.
		q.frames, q.head = q.frames[:0], 0
		if cap(q.frames) > 64 {
			q.frames = nil
		}
	case q.head >= 64 && q.head >= n:
		// A queue that never drains would append for ever to one array
		// whose front it has consumed: move what waits into an array its
		// own size once the spent front is as long as the rest.
		q.frames, q.head = append(make([][]byte, 0, 2*n), q.frames[q.head:]...), 0
	}
	q.mu.Unlock()
	signal(q.taken)
	return b, true
}

// len returns how many frames wait.
func (q *frameQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.frames) - q.head
}

// signal wakes whoever waits on ch, once, without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
