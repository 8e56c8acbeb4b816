package client

import "time"

// Clock is the time source of a client: heartbeats, the silence watchdog,
// request timeouts, reconnect backoff and the reconnect window all use it.
// Tests may pass a clock they move by hand. Network I/O (dialing, writes)
// stays bounded by real time.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a scheduled call that can be cancelled.
type Timer interface {
	// Stop cancels the call; false if it already ran or was stopped.
	Stop() bool
}

// systemClock is the real clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
