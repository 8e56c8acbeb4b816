package eventstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockFile is the file in a data folder that the embedded server holds an
// exclusive lock on while it runs. It contains the holder's process ID.
const LockFile = "LOCK"

// dirLock is a held lock on a data folder.
type dirLock struct {
	f *os.File
}

// lockDataDir takes the data folder's lock, creating the folder if needed.
// The lock is an OS file lock: the kernel releases it when the process
// exits, however it exits, so a crash never leaves a stale lock behind. A
// folder already locked is refused with ErrLocked, naming the holder's
// process ID.
func lockDataDir(dir string) (*dirLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: data folder %s: %w", ErrInvalidConfig, dir, err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: data folder %s: %w", ErrInvalidConfig, dir, err)
	}
	if err := flock(f); err != nil {
		f.Close()
		if !errors.Is(err, errWouldBlock) {
			return nil, fmt.Errorf("eventstore: lock %s: %w", path, err)
		}
		holder := "another process"
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
				holder = fmt.Sprintf("process %d", pid)
			}
		}
		return nil, fmt.Errorf("%w: data folder %s is in use by %s (a running roomd?): two servers on one folder "+
			"would corrupt the log; stop it, give this one another folder, or connect to its NATS port instead",
			ErrLocked, dir, holder)
	}
	// The process ID is for the message above and for operators; the lock
	// itself is the kernel's, not the file's content.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f}, nil
}

// release gives the lock up. The file stays: removing it would let a
// process that opened it just before lock a file no longer in the folder.
func (l *dirLock) release() {
	if l == nil {
		return
	}
	_ = funlock(l.f)
	l.f.Close()
}
