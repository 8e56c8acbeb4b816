package main

import (
	"os"
	"testing"
)

// verify, replay and tail "open the log read-only". Pointed with -data at a
// folder that holds no roomlog data (a typo, the parent folder, a restore
// target not filled yet), they say so and write nothing into it (no LOCK,
// no empty jetstream/ folder).
func TestDataOnAFolderWithoutALogLeavesItUntouched(t *testing.T) {
	for _, cmd := range []string{"verify", "tail"} {
		dir := t.TempDir()
		out, code := roomctl(t, cmd, "-data", dir)
		if code == 0 || cmd == "verify" && code != 3 {
			t.Errorf("%s -data <empty folder>: exit %d, want 1 (3 for verify: it could not read a log)\n%s", cmd, code, out)
		}
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if len(names) > 0 {
			t.Errorf("roomctl %s -data <empty folder> (%q) wrote %v into it", cmd, out, names)
		}
	}
}
