package tests

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections/audit"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/gateway"
)

// clusterNode starts a roomd node on the external cluster c (R3).
//
// Its budgets are generous: commands 30 s and the log's silence before
// fail-fast 30 s (three times the defaults), the readiness grace 30 s (twice):
// with two -race copies of the suite side by side an election took more
// than 10 s. What the tests
// check is that commands ride an election out; the stall each fault causes
// is measured, not bounded.
func clusterNode(t *testing.T, c *estest.Cluster) *node.Node {
	t.Helper()
	p := estest.Policy() // no broadcast rate limit to speak of, nor a per-connection one
	return clienttest.StartNode(t, clienttest.NodeOptions{Policy: &p,
		Gateway: gateway.Config{RequestsPerSecond: 1e6, RequestBurst: 1e6, CommandTimeout: clusterBudget},
		Edit: func(cfg *node.Config) {
			cfg.Log = eventstore.Config{URL: c.URL(), Replicas: 3}
			cfg.Outage, cfg.ReadyGrace = clusterBudget, clusterBudget
		}})
}

// clusterBudget is the cluster tests' command budget and outage threshold;
// their clients wait longer still for a reply.
const clusterBudget = 30 * time.Second

// load is a steady broadcast load: each client sends one broadcast after
// another into r1 and records what was acknowledged and how long each took.
type load struct {
	mu      sync.Mutex
	acked   map[string]bool
	failed  []string
	lat     []sample
	stop    atomic.Bool
	wg      sync.WaitGroup
	started time.Time
}

type sample struct {
	at, took time.Duration
}

func (l *load) run(t *testing.T, name string, c *client.Client) {
	l.wg.Go(func() {
		for i := 0; !l.stop.Load(); i++ {
			body := fmt.Sprint(name, "/", i)
			start := time.Now()
			// As long as the client's RequestTimeout: the server's command
			// budget decides whether a broadcast rode the fault out; a
			// loaded machine's slow election is a stall, measured below.
			ctx, cancel := context.WithTimeout(context.Background(), 2*clusterBudget)
			_, err := c.SendBroadcastMessage(ctx, "r1", body)
			cancel()
			l.mu.Lock()
			l.lat = append(l.lat, sample{at: start.Sub(l.started), took: time.Since(start)})
			if err == nil {
				l.acked[body] = true
			} else {
				l.failed = append(l.failed, fmt.Sprintf("%s: %v", body, err))
			}
			l.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// stall returns the slowest command started in [from, to).
func (l *load) stall(from, to time.Duration) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var worst time.Duration
	for _, s := range l.lat {
		if s.at >= from && s.at < to {
			worst = max(worst, s.took)
		}
	}
	return worst
}

// clusterLogin logs name into r1 as an app would on a cluster just formed:
// a login refused as unavailable or timed out is tried again (up to three
// times, each said). Right after the stream is created, nats-server 2.15.2
// can leave its leader refusing every conditional append to a subject; the
// engine asks it to step down, and the commands in flight meanwhile fail.
func clusterLogin(t *testing.T, n *node.Node, cl *client.Client, r *clienttest.Recorder, name string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		_, err := cl.LoginRoom(clienttest.Ctx(t), "r1", clienttest.User(name),
			client.LoginOptions{Token: clienttest.Token(t, n, name)})
		if err == nil {
			r.WaitState("r1", client.StateLogined)
			return
		}
		if attempt == 3 || !(errors.Is(err, domain.ErrUnavailable) || errors.Is(err, domain.ErrTimeout)) {
			t.Fatalf("%s logs into r1: %v", name, err)
		}
		t.Logf("%s's login failed, trying again: %v", name, err)
	}
}

// Two roomd nodes on a real 3-node JetStream cluster (R3), four clients
// broadcasting without pause, through three faults: the stream leader
// killed (then restarted), a follower killed and restarted, the leader
// paused for 5 s. Every acknowledged broadcast is stored exactly once, the
// room's history is gapless and chained, /readyz never turns unready, and
// the client-visible stall of each fault is logged. No command may fail,
// except while the engine has a stuck stream leader step down (nats-server
// 2.15.2, see the end of the test); such failures are logged.
func TestClusterTwoNodesRideOutLeaderLossRestartsAndAPause(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster under faults takes about 40 s")
	}
	c := estest.StartCluster(t, 3)
	nodes := []*node.Node{clusterNode(t, c), clusterNode(t, c)}
	l := &load{acked: map[string]bool{}, started: time.Now()}
	for i := range 4 {
		n := nodes[i%2]
		name := fmt.Sprint("u", i)
		r := clienttest.NewRecorder(t, name)
		r.AllowReconnects()
		cl := clienttest.Dial(t, clienttest.URL(n.HTTPAddr()), r, func(o *client.Options) { o.RequestTimeout = 2 * clusterBudget })
		clusterLogin(t, n, cl, r, name)
		l.run(t, name, cl)
	}

	// /readyz is polled on both nodes all along.
	var unready atomic.Int64
	var lastUnready atomic.Value
	pollDone := make(chan struct{})
	var pollWG sync.WaitGroup
	for _, n := range nodes {
		pollWG.Go(func() {
			for {
				select {
				case <-pollDone:
					return
				case <-time.After(100 * time.Millisecond):
				}
				resp, err := http.Get("http://" + n.HTTPAddr() + "/readyz")
				if err != nil {
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					unready.Add(1)
					lastUnready.Store(string(b))
				}
			}
		})
	}

	since := func() time.Duration { return time.Since(l.started) }
	fault := func(name string, do func()) {
		from := since()
		do()
		time.Sleep(2 * time.Second) // load after the fault
		t.Logf("%s: slowest broadcast %v", name, l.stall(from, since()).Round(time.Millisecond))
	}
	time.Sleep(time.Second)
	fault("stream leader killed", func() {
		leader := c.WaitStreamLeader(eventstore.DefaultStream)
		c.Kill(leader)
		c.WaitStreamLeader(eventstore.DefaultStream)
		time.Sleep(time.Second)
		c.Start(leader)
	})
	fault("follower killed and restarted", func() {
		leader := c.WaitStreamLeader(eventstore.DefaultStream)
		follower := (leader + 1) % c.Size()
		c.Kill(follower)
		time.Sleep(time.Second)
		c.Start(follower)
	})
	fault("stream leader cut off for 5 s", func() {
		leader := c.WaitStreamLeader(eventstore.DefaultStream)
		c.Pause(leader, 5*time.Second)
		time.Sleep(5 * time.Second)
	})
	l.stop.Store(true)
	l.wg.Wait()
	close(pollDone)
	pollWG.Wait()

	// nats-server 2.15.2 can be left, after its stream leader was killed,
	// refusing every conditional append to one room; the engine detects it
	// and asks the leader to step down, but commands in flight meanwhile
	// may time out. Failures are tolerated only then, and said.
	var stepDowns uint64
	for _, n := range nodes {
		stepDowns += n.Engine.Stats().StepDowns
	}
	for _, f := range l.failed {
		if stepDowns > 0 {
			t.Logf("broadcast failed while a stuck stream leader was replaced: %s", f)
			continue
		}
		t.Errorf("broadcast failed: %s", f)
	}
	if n := unready.Load(); n > 0 {
		t.Errorf("/readyz answered unready %d times, last: %v", n, lastUnready.Load())
	}
	c.WaitStreamSynced(eventstore.DefaultStream)
	log := nodes[0].Log
	stored := map[string]int{}
	var prev string
	var seq uint64
	_, err := log.Read(estest.Ctx(t), []string{log.Subject(clienttest.App, string(domain.KindRoom), "r1")}, 1,
		func(rec eventstore.Record) error {
			head, evs, err := domain.VerifyEvents(prev, rec.Data)
			if err != nil {
				return err
			}
			prev = head
			for _, e := range evs {
				if seq++; e.Seq != seq {
					return fmt.Errorf("room seq %d after %d", e.Seq, seq-1)
				}
				if b, ok := e.Data.(*domain.BroadcastSentData); ok {
					stored[b.Body]++
				}
			}
			return nil
		})
	if err != nil {
		t.Fatalf("room history: %v", err)
	}
	var twice []string
	for body, n := range stored {
		if n > 1 {
			twice = append(twice, body)
		}
	}
	sort.Strings(twice)
	for _, body := range twice {
		t.Errorf("broadcast %q stored %d times", body, stored[body])
	}
	for body := range l.acked {
		if stored[body] != 1 {
			t.Errorf("acknowledged broadcast %q stored %d times", body, stored[body])
		}
	}
	t.Logf("%d broadcasts acknowledged, %d stored, %d failed, %d room events", len(l.acked), len(stored), len(l.failed), seq)

	// What roomctl verify checks, over the whole log: chains, gapless
	// sequences, expected-sequence headers, the cross-aggregate invariants.
	auditor := audit.New(log.Prefix(), func(domain.AppID) domain.Policy { return estest.Policy() })
	last, err := log.Read(estest.Ctx(t), nil, 1, auditor.Apply)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	auditor.Finish(last)
	for _, v := range auditor.Violations() {
		t.Errorf("verify: %s", v)
	}
	if got := c.StreamReplicas(eventstore.DefaultStream); got != 3 {
		t.Errorf("the stream has %d replicas, want 3", got)
	}
}

// After a full cluster restart, before the stream has a leader again, two
// nodes started together both come up (each waits for the stream, saying
// so, instead of failing or hanging).
func TestClusterNodesStartTogetherAfterAFullClusterRestart(t *testing.T) {
	c := estest.StartCluster(t, 3)
	first := clusterNode(t, c)
	first.Close()
	c.Shutdown()
	var wg sync.WaitGroup
	for i := range c.Size() {
		wg.Go(func() { c.Start(i) })
	}
	wg.Wait()
	start := time.Now()
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() {
			n, err := node.Start(estest.Ctx(t), node.Config{Log: eventstore.Config{URL: c.URL()},
				Policy: domain.Config{Default: estest.Policy()}, Secret: clienttest.Secret, HTTPListen: "127.0.0.1:0",
				Logger: estest.Logger(t)})
			if err == nil {
				t.Cleanup(func() { n.Close() })
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d after the cluster restart: %v", i, err)
		}
	}
	t.Logf("both nodes up %v after the cluster restarted", time.Since(start).Round(time.Millisecond))
	if got := c.StreamReplicas(eventstore.DefaultStream); got != 3 {
		t.Errorf("the stream has %d replicas, want 3", got)
	}
}
