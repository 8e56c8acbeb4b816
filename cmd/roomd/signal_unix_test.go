//go:build unix

package main

import (
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The first SIGTERM starts the graceful shutdown; a second one, from an
// operator who will not wait for the drain, stops roomd at once instead of
// being swallowed while the drain goes on.
func TestASecondSignalStopsAtOnce(t *testing.T) {
	var logs strings.Builder
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	exited := make(chan int, 1)
	ctx, stop := stopOnSignal(logger, func(code int) { exited <- code })
	defer stop()

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the first SIGTERM did not start the shutdown")
	}
	select {
	case code := <-exited:
		t.Fatalf("the first SIGTERM exited (%d) instead of draining", code)
	default:
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exited:
		if code != 1 {
			t.Errorf("a second SIGTERM exited with %d, want 1", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a second SIGTERM during the shutdown was swallowed")
	}
	if !strings.Contains(logs.String(), "second signal") {
		t.Errorf("nothing said why roomd stopped at once: %q", logs.String())
	}
}
