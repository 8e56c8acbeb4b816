package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// README: roomd refuses settings nobody meant. A misspelled key in the
// -apps file, at any depth, stops it at start with the file and the key
// named, rather than leaving the default in force.
func TestAppsFileRefusesUnknownKeys(t *testing.T) {
	for name, body := range map[string]string{
		"a misspelled limit":  `{"classroom": {"limits": {"broadcst_per_second": 20}}}`,
		"a misspelled policy": `{"classroom": {"multiroom": true}}`,
	} {
		path := filepath.Join(t.TempDir(), "apps.json")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		o, err := parse([]string{"-data", t.TempDir(), "-secret", "0123456789abcdef0123456789abcdef", "-nats-listen", "off",
			"-apps", path}, env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		key := map[string]string{"a misspelled limit": "broadcst_per_second", "a misspelled policy": "multiroom"}[name]
		_, _, err = config(o, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), key) ||
			!strings.Contains(err.Error(), "classroom") {
			t.Errorf("%s: %v, want a refusal naming %s, app classroom and %q", name, err, path, key)
		}
	}
}

// roomd -h never prints the secret or the NATS password of the environment
// (flags are filled from it after parsing), and names their variables.
func TestHelpDoesNotPrintSecretsFromTheEnvironment(t *testing.T) {
	const secret, password = "a roomd secret of at least 32 bytes, 0c4f7a", "2b771bec87d1f0a9-nats"
	var out strings.Builder
	_, err := parse([]string{"-h"}, env(map[string]string{"ROOMLOG_SECRET": secret, "ROOMLOG_NATS_PASSWORD": password}), &out)
	if err == nil || strings.Contains(out.String(), secret) || strings.Contains(out.String(), password) {
		t.Fatalf("roomd -h: %v\n%s", err, out.String())
	}
	for _, v := range []string{"ROOMLOG_SECRET", "ROOMLOG_NATS_PASSWORD"} {
		if !strings.Contains(out.String(), "("+v+")") {
			t.Errorf("roomd -h does not name %s:\n%s", v, out.String())
		}
	}
}
