// Package atomicfile replaces files so that a crash, or a machine that
// stops, leaves the old file or the new one, never a mix or an empty one:
// what the commands keep beside the log (roomd's development secrets,
// roomstats' state).
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with b (mode 0600): a temporary file beside it,
// synced, then renamed over it.
func Write(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename: nothing left to remove
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
