package estest

import (
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// Lines holds what a logger made by Capture wrote, for a test that checks
// what an operator would read in the log. Every line also goes to the
// test's output, until the test ends.
type Lines struct {
	mu    sync.Mutex
	lines []string
	out   io.Writer
}

// Capture returns a logger of warnings and errors (as Logger) whose lines
// the test can read back.
func Capture(tb testing.TB) (*slog.Logger, *Lines) {
	l := &Lines{out: io.Discard}
	if t, ok := tb.(*testing.T); ok {
		l.out = t.Output()
	}
	// A server's goroutines may log a moment after the test ends.
	tb.Cleanup(func() { l.mu.Lock(); l.out = io.Discard; l.mu.Unlock() })
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelWarn})), l
}

// Write implements io.Writer; slog handlers write one line per call.
func (l *Lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.TrimSuffix(string(p), "\n"))
	return l.out.Write(p)
}

// Find returns the first line that contains every one of parts, if any.
func (l *Lines) Find(parts ...string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
next:
	for _, line := range l.lines {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue next
			}
		}
		return line, true
	}
	return "", false
}

// Wait waits (generously: up to 45 s) until a line contains every one of
// parts, and returns it; the test fails if none does.
func (l *Lines) Wait(tb testing.TB, parts ...string) string {
	tb.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		if line, ok := l.Find(parts...); ok {
			return line
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no log line with %q after 45s", parts)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
