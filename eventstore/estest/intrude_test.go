package estest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/roomlog/roomlog/eventstore/estest"
)

// InChild runs the test's body in the child, whatever its name holds
// (regexp metacharacters in a subtest's name once made the child match no
// test, exit 0, and the parent pass unchecked).
func TestInChildRunsTheBody(t *testing.T) {
	dir := os.Getenv("ESTEST_MARKERS")
	if dir == "" {
		dir = t.TempDir()
		t.Setenv("ESTEST_MARKERS", dir) // the children inherit it
	}
	for _, name := range []string{"plain", "a+b", "x(1)"} {
		t.Run(name, func(t *testing.T) {
			marker := filepath.Join(dir, filepath.Base(t.Name()))
			if estest.InChild(t) {
				if err := os.WriteFile(marker, []byte("ran"), 0o600); err != nil {
					t.Fatal(err)
				}
				return
			}
			if _, err := os.Stat(marker); err != nil {
				t.Errorf("the child never ran the body of %q, and InChild reported success", t.Name())
			}
		})
	}
}
