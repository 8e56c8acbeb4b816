package main

import (
	"strings"
	"testing"
	"time"
)

// replayUsage: "a -diff or -since point after the end point is refused
// (exit 2)". A -since time after a -to-seq end (mixed kinds) is not.
func TestReplaySinceAfterTheEndOfMixedKindsIsRefused(t *testing.T) {
	dir, mid := history(t, false) // seqs 1,2 (created, joined) 3 (joined), 4 at mid, 5 (left)
	for _, args := range [][]string{
		{"-timeline", "-since", mid.Add(time.Second).Format(time.RFC3339Nano), "-to-seq", "3"},
		{"-timeline", "-since", "5", "-at", mid.Add(-time.Second).Format(time.RFC3339Nano)},
	} {
		out, errOut, code := roomctl2(t, append([]string{"replay", "-data", dir, "-room", "class 1.A"}, args...)...)
		if code != 2 {
			t.Errorf("replay %s: exit %d, stdout %q, stderr %q; want exit 2 (the -since point is after the end)",
				strings.Join(args, " "), code, out, errOut)
		}
	}
}
