package main

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/transport/auth"
)

const testSecret = "a dev secret of at least 32 bytes, used as it is"

// mint runs roomctl token and returns stdout and stderr apart: scripts read
// stdout, so nothing but the token may go there.
func mint(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), append([]string{"token"}, args...), &out, &errOut)
	return out.String(), errOut.String(), code
}

func verifier(t *testing.T) *auth.Signer {
	t.Helper()
	s, err := auth.NewSigner(auth.Config{Secret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// printed runs roomctl token, checks that stdout is one token and a newline,
// and returns the token.
func printed(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, code := mint(t, args...)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	tok, ok := strings.CutSuffix(stdout, "\n")
	if !ok || tok == "" || strings.ContainsAny(tok, " \n") {
		t.Fatalf("stdout %q: want only a token and a newline", stdout)
	}
	return tok
}

func TestTokenClient(t *testing.T) {
	t.Setenv(auth.SecretEnv, testSecret)
	s := verifier(t)

	before := time.Now()
	tok := printed(t, "-app", "dev", "-user", "u1", "-name", "Ann", "-rooms", "class 1.A,r2", "-publish=false", "-ttl", "2h")
	c, err := s.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	want := auth.Claims{App: "dev", User: "u1", Name: "Ann", Rooms: []string{"class 1.A", "r2"},
		IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("claims %+v, want %+v", c, want)
	}
	if d := c.ExpiresAt.Sub(before.Truncate(time.Second)); d < 2*time.Hour || d > 2*time.Hour+time.Minute {
		t.Errorf("expires %s after the call, want 2h", d)
	}

	// Defaults: every room, may publish, 24 hours.
	tok = printed(t, "-app", "dev", "-user", "u2")
	c, err = s.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !c.AllRooms || c.Rooms != nil || !c.Publish || c.User != "u2" {
		t.Errorf("defaults: %+v", c)
	}
	if d := c.ExpiresAt.Sub(before.Truncate(time.Second)); d < 24*time.Hour || d > 24*time.Hour+time.Minute {
		t.Errorf("default ttl: expires %s after the call, want 24h", d)
	}
	if _, err := s.VerifyAdmin(tok); !errors.Is(err, auth.ErrAudience) {
		t.Errorf("a client token passed as admin: %v", err)
	}
}

func TestTokenSecretFlagWins(t *testing.T) {
	t.Setenv(auth.SecretEnv, "another secret, also long enough to be accepted")
	tok := printed(t, "-secret", testSecret, "-app", "dev", "-user", "u1")
	if _, err := verifier(t).Verify(tok); err != nil {
		t.Fatalf("token signed with -secret: %v", err)
	}
}

func TestTokenAdmin(t *testing.T) {
	t.Setenv(auth.SecretEnv, testSecret)
	s := verifier(t)
	for _, tc := range []struct {
		args    []string
		subject string
	}{{[]string{"-admin"}, "admin"}, {[]string{"-admin", "-subject", "ops", "-ttl", "10m"}, "ops"}} {
		tok := printed(t, tc.args...)
		sub, err := s.VerifyAdmin(tok)
		if err != nil || sub != tc.subject {
			t.Errorf("%v: VerifyAdmin = %q, %v", tc.args, sub, err)
		}
		if _, err := s.Verify(tok); !errors.Is(err, auth.ErrAudience) {
			t.Errorf("%v: an admin token passed as a client token: %v", tc.args, err)
		}
	}
}

func TestTokenUsageErrors(t *testing.T) {
	cases := []struct {
		name, env string
		args      []string
		says      string
	}{
		{"no secret", "", []string{"-app", "dev", "-user", "u1"}, auth.SecretEnv},
		{"no secret for admin", "", []string{"-admin"}, auth.SecretEnv},
		{"short secret", "", []string{"-secret", "short", "-app", "dev", "-user", "u1"}, "32 bytes"},
		{"no user", testSecret, []string{"-app", "dev"}, "-user"},
		{"no app", testSecret, []string{"-user", "u1"}, "-app"},
		{"empty room", testSecret, []string{"-app", "dev", "-user", "u1", "-rooms", "a,,b"}, "empty room"},
		{"star in a list", testSecret, []string{"-app", "dev", "-user", "u1", "-rooms", "*,a"}, `"*"`},
		{"negative ttl", testSecret, []string{"-app", "dev", "-user", "u1", "-ttl", "-1h"}, "expiry"},
		{"admin with client flags", testSecret, []string{"-admin", "-rooms", "a"}, "-rooms"},
		{"subject without admin", testSecret, []string{"-app", "dev", "-user", "u1", "-subject", "ops"}, "-admin"},
		{"stray argument", testSecret, []string{"-admin", "extra"}, "extra"},
		{"unknown flag", testSecret, []string{"-room", "a"}, "-room"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(auth.SecretEnv, tc.env)
			stdout, stderr, code := mint(t, tc.args...)
			if code != 2 || stdout != "" || !strings.Contains(stderr, tc.says) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and a message naming %s", code, stdout, stderr, tc.says)
			}
		})
	}
}
