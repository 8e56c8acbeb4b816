package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/protocol"
)

// roomctl2 runs roomctl and returns stdout and stderr apart.
func roomctl2(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// Secrets taken from the environment are never printed as flag defaults:
// the help names the variable instead.
func TestHelpDoesNotPrintSecretsFromTheEnvironment(t *testing.T) {
	const password, urlPassword, secret = "2b771bec87d1f0a9-nats", "9f3c1e77aa-in-the-url", "a server secret of at least 32 bytes, 5e1d"
	t.Setenv("ROOMLOG_NATS_PASSWORD", password)
	t.Setenv("ROOMLOG_NATS_URL", "nats://roomlog:"+urlPassword+"@127.0.0.1:4222")
	t.Setenv(auth.SecretEnv, secret)
	for _, c := range commands() {
		for _, args := range [][]string{{c.name, "-h"}, {c.name, "-no-such-flag"}} {
			out, errOut, _ := roomctl2(t, args...)
			all := out + errOut
			for _, s := range []string{password, urlPassword, secret} {
				if strings.Contains(all, s) {
					t.Errorf("roomctl %s prints a secret from the environment:\n%s", strings.Join(args, " "), all)
				}
			}
			if strings.Contains(all, "-nats-password") && !strings.Contains(all, "(default $ROOMLOG_NATS_PASSWORD)") {
				t.Errorf("roomctl %s does not say -nats-password defaults to $ROOMLOG_NATS_PASSWORD:\n%s", strings.Join(args, " "), all)
			}
		}
	}
}

// No command takes arguments: one left after the flags (most likely a value
// that lost its quotes) is bad usage, exit 2, before anything is read or
// called. kick, destroy, rooms, verify, replay and tail used to ignore it:
// "destroy -room lobby -reason class over" destroyed the room with reason
// "class". Nothing listens on -http, so a call would exit 1.
func TestStrayArgumentsAreRefused(t *testing.T) {
	t.Setenv("ROOMLOG_SECRET", adminSecret)
	dir, _ := history(t, false)
	for _, args := range [][]string{
		{"destroy", "-http", "127.0.0.1:1", "-room", "lobby", "-reason", "class", "over"},
		{"kick", "-http", "127.0.0.1:1", "-room", "lobby", "-user", "alice", "-reason", "spam", "and", "abuse"},
		{"rooms", "-http", "127.0.0.1:1", "lobby"},
		{"token", "-user", "alice", "-app", "dev", "extra"},
		{"verify", "-data", dir, "/backup/dir"},
		{"replay", "-data", dir, "-room", "class 1.A", "5"},
		{"tail", "-data", dir, "dev"},
	} {
		out, errOut, code := roomctl2(t, args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "unexpected argument") {
			t.Errorf("roomctl %s: exit %d, stdout %q, stderr %q; want exit 2, unexpected argument",
				strings.Join(args, " "), code, out, errOut)
		}
	}
}

// Flags documented as alternatives are refused together, as are flags that
// mean nothing without another, rather than one silently winning.
func TestAlternativeFlagsAreRefused(t *testing.T) {
	dir, mid := history(t, false)
	at := mid.Format(time.RFC3339Nano)
	for _, args := range [][]string{
		{"tail", "-after", "2.0", "-since", at},
		{"tail", "-after", "2.0", "-from", "3"},
		{"tail", "-from", "3", "-since", at},
		{"replay", "-room", "class 1.A", "-to-seq", "2", "-at", at},
		{"replay", "-room", "class 1.A", "-since", "3"},
		{"replay", "-room", "class 1.A", "-timeline", "-since", "4", "-to-seq", "3"},
	} {
		out, errOut, code := roomctl2(t, append(append([]string{}, args...), "-data", dir)...)
		if code != 2 || out != "" || !strings.HasPrefix(errOut, "roomctl: "+args[0]+": ") {
			t.Errorf("roomctl %s: exit %d, stdout %q, stderr %q; want exit 2 and a message", strings.Join(args, " "), code, out, errOut)
		}
	}
}

// A diff from a point after its end point is refused (exit 2), rather than
// printed as "nothing changed".
func TestReplayRefusesAReversedDiff(t *testing.T) {
	dir, mid := history(t, false) // seqs 1, 2 (created, joined), 3 (joined), 4 at mid (extra info), 5 (left)
	replay := func(args ...string) (string, string, int) {
		t.Helper()
		return roomctl2(t, append([]string{"replay", "-data", dir, "-room", "class 1.A"}, args...)...)
	}
	if out, errOut, code := replay("-diff", "3", "-to-seq", "3"); code != 0 || !strings.Contains(out, "nothing changed") {
		t.Fatalf("replay -diff 3 -to-seq 3: exit %d\n%s%s", code, out, errOut)
	}
	for _, args := range [][]string{
		{"-diff", "4", "-to-seq", "3"},
		{"-diff", mid.Format(time.RFC3339Nano), "-at", mid.Add(-time.Second).Format(time.RFC3339Nano)},
		{"-diff", "4", "-at", mid.Add(-time.Second).Format(time.RFC3339Nano)},
		{"-diff", mid.Format(time.RFC3339Nano), "-to-seq", "3"},
		// An end point before the room's first event: it used to exit 1,
		// "no history", for a room that has one.
		{"-diff", "3", "-at", mid.Add(-time.Hour).Format(time.RFC3339Nano)},
	} {
		out, errOut, code := replay(args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "is after") {
			t.Errorf("replay %s: exit %d, stdout %q, stderr %q; want exit 2 and a message", strings.Join(args, " "), code, out, errOut)
		}
	}
}

// A point past the room's last event is an error (exit 1, as for a room
// with no history), not the state at the end.
func TestReplayPastTheRoomsEndIsRefused(t *testing.T) {
	dir, _ := history(t, false) // the room's last event is seq 5
	if out, errOut, code := roomctl2(t, "replay", "-data", dir, "-room", "class 1.A", "-to-seq", "5"); code != 0 {
		t.Fatalf("replay -to-seq 5 (the end): exit %d\n%s%s", code, out, errOut)
	}
	for _, args := range [][]string{{"-to-seq", "999"}, {"-to-seq", "6", "-timeline"}, {"-diff", "2", "-to-seq", "6"}, {"-diff", "999"}} {
		out, errOut, code := roomctl2(t, append([]string{"replay", "-data", dir, "-room", "class 1.A"}, args...)...)
		if code != 1 || out != "" || !strings.Contains(errOut, "its last event is seq 5") {
			t.Errorf("replay %s: exit %d, stdout %q, stderr %q; want exit 1 naming the last event", strings.Join(args, " "), code, out, errOut)
		}
	}
}

// roomctl token refuses a validity over 10 years, as POST /tokens does.
func TestTokenValidityIsAtMostTenYears(t *testing.T) {
	t.Setenv(auth.SecretEnv, testSecret)
	for _, args := range [][]string{{"-app", "dev", "-user", "u1", "-ttl", "87600h1s"}, {"-admin", "-ttl", "87601h"}} {
		stdout, stderr, code := mint(t, args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "10 years") {
			t.Errorf("token %s: exit %d, stdout %q, stderr %q; want exit 2 naming the limit", strings.Join(args, " "), code, stdout, stderr)
		}
	}
	printed(t, "-app", "dev", "-user", "u1", "-ttl", "87600h")
}

// -http takes roomd's address as host:port or as a URL.
func TestAdminCommandsTakeAURLOrAHostPort(t *testing.T) {
	const secret = adminSecret
	n := adminNode(t)
	for _, addr := range []string{n.HTTPAddr(), "http://" + n.HTTPAddr(), "http://" + n.HTTPAddr() + "/"} {
		if out, errOut, code := roomctl2(t, "rooms", "-http", addr, "-secret", secret); code != 0 || !strings.Contains(out, `"rooms"`) {
			t.Errorf("rooms -http %s: exit %d\n%s%s", addr, code, out, errOut)
		}
	}
	for _, addr := range []string{"ftp://" + n.HTTPAddr(), "http://", "http://" + n.HTTPAddr() + "?x=1"} {
		if out, errOut, code := roomctl2(t, "rooms", "-http", addr, "-secret", secret); code != 2 || !strings.Contains(errOut, "-http") {
			t.Errorf("rooms -http %s: exit %d, stdout %q, stderr %q; want exit 2 naming -http", addr, code, out, errOut)
		}
	}
}

// docs/admin.md: roomctl token refuses IDs no login could use. An app ID
// over 64 bytes (domain.MaxAppIDBytes) can log in nowhere; its token was
// printed with exit 0.
func TestTokenRefusesAnAppIDNoLoginCanUse(t *testing.T) {
	n := adminNode(t)
	app := strings.Repeat("a", domain.MaxAppIDBytes+1)
	out, errOut, code := roomctl2(t, "token", "-secret", adminSecret, "-app", app, "-user", "alice")
	if code != 2 || !strings.Contains(errOut, "app ID") {
		t.Errorf("token -app <%d bytes>: exit %d, %q; want exit 2 naming the app ID", len(app), code, errOut)
	}
	if code == 0 {
		w := wire.Dial(t, n.HTTPAddr())
		w.Send("1", protocol.OpLogin, protocol.LoginRequest{Room: "lobby", User: protocol.User{ID: "alice", Name: "alice"},
			Token: strings.TrimSpace(out)})
		f := w.Reply("1")
		t.Errorf("token -app <%d bytes>: exit 0 (stderr %q), and a login with it fails: code %d %s", len(app), errOut, f.Code, f.Message)
	}
}
