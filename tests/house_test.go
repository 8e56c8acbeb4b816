package tests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Nothing built is committed: no executable (ELF, Mach-O, PE) and no file
// over 2 MB is tracked by git. A 27 MB roomd binary once was.
func TestNoBuiltBinaryIsCommitted(t *testing.T) {
	out, err := exec.Command("git", "-C", "..", "ls-files", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v (the tests run from a git checkout)", err)
	}
	magic := [][]byte{{0x7f, 'E', 'L', 'F'}, {0xcf, 0xfa, 0xed, 0xfe}, {0xfe, 0xed, 0xfa, 0xcf}, []byte("MZ")}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		path := filepath.Join("..", name)
		info, err := os.Stat(path)
		if err != nil {
			continue // deleted in the work tree
		}
		if info.Size() > 2<<20 {
			t.Errorf("%s is committed and %d MB large", name, info.Size()>>20)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		head := make([]byte, 4)
		n, _ := f.Read(head)
		f.Close()
		for _, m := range magic {
			if n >= len(m) && bytes.Equal(head[:len(m)], m) && !strings.HasSuffix(name, ".txt") {
				t.Errorf("%s is committed and is an executable", name)
			}
		}
	}
}
