package node_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/netcut"
)

// readyz asks the node's /readyz.
func readyz(t *testing.T, n *node.Node) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 20 * time.Second}
	res, err := c.Get("http://" + n.HTTPAddr() + "/readyz")
	if err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	return res.StatusCode, string(b)
}

// A node whose log falls silent while its connection to NATS stays up (its
// NATS server paused: every byte held on the wire, as in a stream leader
// election nothing answers) stays ready for ReadyGrace, saying how long the
// log has been silent, so that a short election does not drain the fleet;
// then it answers 503 saying why. Once the log answers again the node is
// ready again, without a restart.
func TestReadyzRidesOutASilentLogForTheGraceThenSaysWhyItIsNotReady(t *testing.T) {
	server := estest.Open(t, func(c *eventstore.Config) { c.Listen, c.Password = "127.0.0.1:-1", estest.Password })
	link := netcut.Start(t, strings.TrimPrefix(server.ClientURL(), "nats://"))
	lc := server.ClientConfig()
	lc.URL, lc.Logger = "nats://"+link.Addr(), nil
	// The grace is well above /readyz's own 2 s wait for the log, so that a
	// probe sees the log silent before the grace is out.
	const grace = 5 * time.Second
	n, err := node.Start(estest.Ctx(t), node.Config{Log: lc, Policy: domain.Config{Default: domain.DefaultPolicy()},
		Secret: []byte("0123456789abcdef0123456789abcdef"), HTTPListen: "127.0.0.1:0", Logger: estest.Logger(t),
		ReadyGrace: grace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if code, body := readyz(t, n); code != http.StatusOK || body != "ready\n" {
		t.Fatalf("/readyz of a healthy node: %d %q", code, body)
	}
	// Start returns before the node's media plane has announced itself; a
	// first announcement the log does not answer stops that part for good
	// (a separate matter): wait for it.
	deadline := time.Now().Add(30 * time.Second)
	for !slices.Contains(n.MediaNodes.Alive(), n.SFU.Node()) {
		if time.Now().After(deadline) {
			t.Fatalf("the node's media plane has not announced itself after 30s: %v", n.MediaNodes.Alive())
		}
		time.Sleep(10 * time.Millisecond)
	}

	link.Freeze()
	var silent string // the last 200 that said the log was silent
	deadline = time.Now().Add(60 * time.Second)
	for {
		code, body := readyz(t, n)
		if code == http.StatusServiceUnavailable {
			if silent == "" {
				t.Fatalf("/readyz turned 503 without first answering 200 while the log was silent: %q", body)
			}
			if !strings.HasPrefix(body, "the log has not answered for ") {
				t.Fatalf("/readyz 503 does not say the log is silent: %q", body)
			}
			t.Logf("ready while silent: %q; then unready: %q", silent, body)
			break
		}
		if code != http.StatusOK {
			t.Fatalf("/readyz while the log is silent: %d %q", code, body)
		}
		if strings.HasPrefix(body, "ready (the log has not answered for ") {
			silent = body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still answers 200 a minute after the log fell silent: %q", body)
		}
		time.Sleep(100 * time.Millisecond)
	}

	link.Thaw()
	deadline = time.Now().Add(60 * time.Second)
	for {
		code, body := readyz(t, n)
		if code == http.StatusOK && body == "ready\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz a minute after the log answers again: %d %q", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
