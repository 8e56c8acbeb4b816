package estest

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/roomlog/roomlog/eventstore"
)

// SendToPullInbox publishes data, with no reply subject, to the pull inbox
// of log's connection named conn (a watermill subscriber's): a message that
// reaches the subscriber as a delivery but has no JetStream metadata. It
// waits for the inbox to exist: a subscription to one exact _INBOX subject
// (the connection's request inbox, _INBOX.<id>.*, is not one, and may be
// there first).
func SendToPullInbox(t *testing.T, log *eventstore.Log, conn string, data []byte) {
	t.Helper()
	var inbox string
	Eventually(t, "the pull inbox of "+conn, func() bool {
		cz, err := log.Server().Connz(&server.ConnzOptions{Subscriptions: true, SubscriptionsDetail: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cz.Conns {
			if c.Name != conn {
				continue
			}
			for _, s := range c.SubsDetail {
				if strings.HasPrefix(s.Subject, "_INBOX.") && !strings.ContainsAny(s.Subject, "*>") {
					inbox = s.Subject
				}
			}
		}
		return inbox != ""
	})
	nc, err := log.NewConn("intruder")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish(inbox, data); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// InChild runs the calling test again in a child process and fails if the
// child does, with the end of its output: what would take a process down (a
// panic on a goroutine of a library's) fails the test instead of the whole
// test binary. It returns true in the child, which then runs the test's
// body; false in the parent, which has nothing more to do.
func InChild(t *testing.T) bool {
	t.Helper()
	const env = "ROOMLOG_TEST_CHILD"
	if os.Getenv(env) == t.Name() {
		return true
	}
	// -test.run matches each level of a subtest's name on its own.
	parts := strings.Split(t.Name(), "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	args := []string{"-test.run=" + strings.Join(parts, "/"), "-test.count=1", "-test.v"}
	if d, ok := t.Deadline(); ok {
		args = append(args, "-test.timeout="+time.Until(d).String())
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), env+"="+t.Name())
	out, err := cmd.CombinedOutput()
	text := string(out)
	if err != nil {
		i := strings.Index(text, "panic:")
		if i < 0 {
			i = max(0, len(text)-3000)
		}
		t.Fatalf("the test's process failed (%v):\n%s", err, text[i:min(len(text), i+3000)])
	}
	if !strings.Contains(text, "--- PASS: "+t.Name()+" ") {
		t.Fatalf("the test's process did not run it:\n%s", text[max(0, len(text)-3000):])
	}
	return false
}
