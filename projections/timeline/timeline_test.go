package timeline

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roomlog/roomlog/domain"
)

// Every event type is told in words, not by its type name.
func TestEveryEventTypeIsDescribed(t *testing.T) {
	for _, et := range domain.EventTypes() {
		raw, err := os.ReadFile(filepath.Join("..", "..", "domain", "testdata", "events", string(et)+".json"))
		if err != nil {
			t.Fatalf("%s: %v", et, err)
		}
		events, err := domain.DecodeEvents(append(append([]byte{'['}, bytes.TrimSpace(raw)...), ']'))
		if err != nil {
			t.Fatalf("%s: %v", et, err)
		}
		if text := Describe(&events[0]); text == string(et) || strings.TrimSpace(text) == "" {
			t.Errorf("%s is described as %q", et, text)
		}
	}
}

func TestParsePoint(t *testing.T) {
	if p, err := ParsePoint("17"); err != nil || p.Seq != 17 {
		t.Errorf("17: %+v %v", p, err)
	}
	if p, err := ParsePoint("2026-11-21T09:00:00Z"); err != nil || p.Time.IsZero() {
		t.Errorf("a time: %+v %v", p, err)
	}
	for _, bad := range []string{"0", "yesterday", "-3"} {
		if _, err := ParsePoint(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
