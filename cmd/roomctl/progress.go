package main

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress draws a bar with rate and ETA on stderr while a long read runs,
// only when stderr is a terminal: piped or redirected, roomctl stays quiet.
// A nil *progress does nothing.
type progress struct {
	bar *progressbar.ProgressBar
}

// progressTo, when set, draws every bar there whatever the terminal (the
// benchmarks measure a replay with its bar).
var progressTo io.Writer

// newProgress returns a bar over total messages, or nil when stderr is not
// a terminal or the read is too small to need one.
func newProgress(total uint64, what string) *progress {
	w := progressTo
	if w == nil {
		if total < 10_000 || !term.IsTerminal(int(os.Stderr.Fd())) {
			return nil
		}
		w = os.Stderr
	}
	return &progress{bar: progressbar.NewOptions64(int64(total),
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("msg"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetWidth(30),
	)}
}

// set moves the bar to n messages read (drawn every 1,024, so that a bar
// costs a replay nothing).
func (p *progress) set(n uint64) {
	if p != nil && n&1023 == 0 {
		p.bar.Set64(int64(n))
	}
}

// done removes the bar.
func (p *progress) done() {
	if p != nil {
		p.bar.Finish()
	}
}
