package node_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
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
	// The grace is well above /readyz's own 2 s wait for the log, so that a
	// probe sees the log silent before the grace is out.
	n, link := readyNodeBehind(t, 5*time.Second)
	link.Freeze()
	ridesOutThenSaysWhy(t, n, "ready (the log has not answered for ", "the log has not answered for ")
	link.Thaw()
	readyAgain(t, n)
}

// readyNodeBehind starts a node, with the ready grace given, whose NATS
// connections go through a proxy the test can freeze or cut, and checks
// that it is ready.
func readyNodeBehind(t *testing.T, grace time.Duration) (*node.Node, *netcut.Proxy) {
	t.Helper()
	return readyNodeBehindOn(t, grace, nil)
}

// readyNodeBehindOn is readyNodeBehind with the node on clock (nil: the
// system's).
func readyNodeBehindOn(t *testing.T, grace time.Duration, clock engine.Clock) (*node.Node, *netcut.Proxy) {
	t.Helper()
	server := estest.Open(t, func(c *eventstore.Config) { c.Listen, c.Password = "127.0.0.1:-1", estest.Password })
	link := netcut.Start(t, strings.TrimPrefix(server.ClientURL(), "nats://"))
	lc := server.ClientConfig()
	lc.URL, lc.Logger = "nats://"+link.Addr(), nil
	n, err := node.Start(estest.Ctx(t), node.Config{Log: lc, Policy: domain.Config{Default: domain.DefaultPolicy()},
		Secret: []byte("0123456789abcdef0123456789abcdef"), HTTPListen: "127.0.0.1:0", Logger: estest.Logger(t),
		ReadyGrace: grace, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if code, body := readyz(t, n); code != http.StatusOK || body != "ready\n" {
		t.Fatalf("/readyz of a healthy node: %d %q", code, body)
	}
	return n, link
}

// ridesOutThenSaysWhy polls /readyz until it answers 503, which must come
// after at least one 200 whose body starts with ready and must start with
// unready: the node rode the fault out for its grace, saying so, then said
// why it is not ready.
func ridesOutThenSaysWhy(t *testing.T, n *node.Node, ready, unready string) {
	t.Helper()
	var riding string // the last 200 that said what the node rides out
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := readyz(t, n)
		if code == http.StatusServiceUnavailable {
			if riding == "" {
				t.Fatalf("/readyz turned 503 without first answering 200 %q...: %q", ready, body)
			}
			if !strings.HasPrefix(body, unready) {
				t.Fatalf("/readyz 503 does not start with %q: %q", unready, body)
			}
			t.Logf("ready while riding it out: %q; then unready: %q", riding, body)
			return
		}
		if code != http.StatusOK {
			t.Fatalf("/readyz during the fault: %d %q", code, body)
		}
		if strings.HasPrefix(body, ready) {
			riding = body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still answers 200 a minute into the fault: %q", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readyAgain polls /readyz until the node is plainly ready.
func readyAgain(t *testing.T, n *node.Node) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := readyz(t, n)
		if code == http.StatusOK && body == "ready\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz a minute after the fault ended: %d %q", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A stream that has lost its quorum still answers a stream info (from a
// replica), so the probe above keeps finding the log; what tells the node
// it cannot store is its appends going unanswered. Once they have for
// longer than an election takes (Config.Outage), /readyz answers 503 saying
// so, however long ReadyGrace is, and ready again once an append is
// answered.
func TestReadyzTurnsUnreadyWhenTheLogLeavesAppendsUnanswered(t *testing.T) {
	server := estest.Open(t, func(c *eventstore.Config) { c.Listen, c.Password = "127.0.0.1:-1", estest.Password })
	link := netcut.Start(t, strings.TrimPrefix(server.ClientURL(), "nats://"))
	lc := server.ClientConfig()
	lc.URL, lc.Logger = "nats://"+link.Addr(), nil
	n, err := node.Start(estest.Ctx(t), node.Config{Log: lc, Policy: domain.Config{Default: estest.Policy()},
		Secret: []byte("0123456789abcdef0123456789abcdef"), HTTPListen: "127.0.0.1:0", Logger: estest.Logger(t),
		ReadyGrace: time.Hour, Outage: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	// Ready first: with an outage of a second, a loaded machine may leave
	// an append of the start unanswered that long (generous deadline).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, body := readyz(t, n)
		if code == http.StatusOK && body == "ready\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz of a healthy node: %d %q", code, body)
		}
	}

	// A member in a room the engine holds: a broadcast goes straight to
	// its append.
	m := domain.Meta{App: "app"}
	if _, err := n.Engine.Execute(estest.Ctx(t), m, estest.Login("s1", "u1", "r1")); err != nil {
		t.Fatal(err)
	}
	link.Freeze()
	done := make(chan error, 1)
	go func() {
		_, err := n.Engine.Execute(estest.Ctx(t), m, domain.SendBroadcast{Session: "s1", Room: "r1", Body: "hello"})
		done <- err
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := readyz(t, n)
		if code == http.StatusServiceUnavailable {
			if !strings.HasPrefix(body, "the log has not acknowledged an append for ") {
				t.Fatalf("/readyz 503 does not say appends go unanswered: %q", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz a minute after the log stopped answering appends: %d %q", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}

	link.Thaw()
	if err := <-done; err != nil {
		t.Fatalf("the broadcast that went on trying: %v", err)
	}
	if code, body := readyz(t, n); code != http.StatusOK || body != "ready\n" {
		t.Fatalf("/readyz once the log answers again: %d %q", code, body)
	}
}

// A node whose NATS server goes away (killed, restarted: its connection is
// cut and no new one is taken) stays ready while its client reconnects, for
// ReadyGrace, saying so; then it answers 503 saying how long it has been
// disconnected. Once NATS takes it back the node is ready again.
func TestReadyzRidesOutAReconnectionForTheGrace(t *testing.T) {
	n, link := readyNodeBehind(t, 3*time.Second)
	link.Refuse(true)
	link.Cut()
	ridesOutThenSaysWhy(t, n, "ready (reconnecting to NATS for ", "not connected to NATS for ")
	link.Refuse(false)
	readyAgain(t, n)
}

// The grace counts from when the node lost NATS, not from the last probe: a
// load balancer may probe more rarely than the grace (an AWS ALB's default
// is every 30 s, the grace 15 s), and its first probe after a NATS restart
// must not take the node, and with it the fleet, out at once. The node's
// clock moves an hour with no probe; then NATS goes away: the node is
// ready, reconnecting, until the grace has passed since the loss.
func TestReadyzGraceCountsFromTheLossNotFromTheLastProbe(t *testing.T) {
	clock := estest.NewClock(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC))
	n, link := readyNodeBehindOn(t, 15*time.Second, clock)
	clock.Advance(time.Hour)
	link.Refuse(true)
	link.Cut()
	estest.Eventually(t, "the node to notice NATS is gone", func() bool { return !n.Log.Connected() })
	if code, body := readyz(t, n); code != http.StatusOK || !strings.HasPrefix(body, "ready (reconnecting to NATS for ") {
		t.Fatalf("/readyz just after NATS went away, an hour after the last probe: %d %q", code, body)
	}
	clock.Advance(16 * time.Second)
	if code, body := readyz(t, n); code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "not connected to NATS for 16s") {
		t.Errorf("/readyz 16 s after NATS went away (grace 15 s): %d %q", code, body)
	}
	link.Refuse(false)
	readyAgain(t, n)
}
