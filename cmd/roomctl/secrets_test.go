package main

import (
	"strings"
	"testing"
)

// ROOMLOG_NATS_URL without a scheme ("roomlog:pw@host:4222", which the
// tools accept and connect with) must not show its password in -h either.
func TestHelpHidesASchemelessURLsPassword(t *testing.T) {
	const urlPassword = "9f3c1e77aa-in-the-url"
	t.Setenv("ROOMLOG_NATS_URL", "roomlog:"+urlPassword+"@127.0.0.1:4222")
	out, errOut, _ := roomctl2(t, "verify", "-h")
	if strings.Contains(out+errOut, urlPassword) {
		t.Errorf("roomctl verify -h prints the URL's password:\n%s", grepLine(out+errOut, urlPassword))
	}
}

// -http with credentials is refused, but the refusal must not echo them.
func TestHTTPRefusalDoesNotEchoAPassword(t *testing.T) {
	const pw = "proxy-pass-51a9"
	_, errOut, code := roomctl2(t, "rooms", "-http", "https://ops:"+pw+"@rooms.example.com/prefix", "-secret", adminSecret)
	if code != 2 || strings.Contains(errOut, pw) {
		t.Errorf("rooms -http with a password: exit %d, stderr %q", code, errOut)
	}
}

func grepLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
