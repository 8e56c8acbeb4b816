package estest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/roomlog/roomlog/tests/netcut"
)

// Cluster is a real JetStream cluster of nats-server instances in this
// process, joined by routes on loopback, as an operator runs one for R3
// streams. Nodes keep their storage, and the proxy addresses their peers
// and clients reach them by, across Stop and Start, so a stopped node comes
// back as the same cluster member (on new ports of its own).
//
// Every route, and every client's connection to a node, goes through a
// netcut proxy, so that a test can kill a node the way SIGKILL does (its
// peers lose it at once, with no goodbye: Kill) or pause it as SIGSTOP does
// (Pause), which a graceful in-process Shutdown cannot do: it hands its
// leaderships over first.
type Cluster struct {
	tb    testing.TB
	name  string
	mu    sync.Mutex
	nodes []*clusterNode
	// routes[i][j] carries the routes node i dials to node j.
	routes [][]*netcut.Proxy
}

type clusterNode struct {
	opts *server.Options
	srv  *server.Server // nil while stopped
	// client carries every client connection to the node.
	client *netcut.Proxy
}

// StartCluster starts an n-node JetStream cluster on loopback, waits until
// it has a meta leader, and shuts it down when the test ends.
//
// Each server listens on a port of its own choosing (never one picked
// beforehand and released, which another process may take meanwhile: two
// test runs side by side did); the proxies in front of it are pointed at it
// once it listens.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	c := &Cluster{tb: tb, name: fmt.Sprintf("roomlog-test-%d", time.Now().UnixNano()%1e6)}
	c.routes = make([][]*netcut.Proxy, n)
	for i := range n {
		c.routes[i] = make([]*netcut.Proxy, n)
		for j := range n {
			if j != i {
				c.routes[i][j] = netcut.Start(tb, unstarted)
			}
		}
	}
	for i := range n {
		var routes []string
		for j := range n {
			if j != i {
				routes = append(routes, "nats://"+c.routes[i][j].Addr())
			}
		}
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   tb.TempDir(),
			NoSigs:     true,
			NoLog:      true,
			Cluster: server.ClusterOpts{
				Name: c.name,
				Host: "127.0.0.1",
				Port: server.RANDOM_PORT,
				// Neither peers nor clients may learn the real
				// ports: everything goes through the proxies.
				NoAdvertise: true,
			},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		}
		client := netcut.Start(tb, unstarted)
		c.nodes = append(c.nodes, &clusterNode{opts: o, client: client})
	}
	tb.Cleanup(c.Shutdown)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = c.start(i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		tb.Fatal(err)
	}
	c.WaitMetaLeader()
	return c
}

// unstarted is where a proxy points before its server listens: nothing
// listens on port 1, so a connection there is refused, as by a server that
// is down.
const unstarted = "127.0.0.1:1"

// Size returns the number of nodes.
func (c *Cluster) Size() int { return len(c.nodes) }

// URL returns every node's client URL, comma separated, as roomd's
// -nats-url takes them.
func (c *Cluster) URL() string {
	urls := make([]string, len(c.nodes))
	for i := range c.nodes {
		urls[i] = c.NodeURL(i)
	}
	return strings.Join(urls, ",")
}

// NodeURL returns node i's client URL (through its proxy).
func (c *Cluster) NodeURL(i int) string {
	return "nats://" + c.nodes[i].client.Addr()
}

// Server returns node i's server, nil while it is stopped.
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].srv
}

// Start starts node i (again), with its storage, and waits until it accepts
// clients. It does not wait for the node to rejoin its streams.
func (c *Cluster) Start(i int) {
	c.tb.Helper()
	if err := c.start(i); err != nil {
		c.tb.Fatal(err)
	}
}

// start is Start for any goroutine: it returns what went wrong. The server
// listens on new ports each time, and its proxies follow it.
func (c *Cluster) start(i int) error {
	nd := c.nodes[i]
	c.mu.Lock()
	running := nd.srv != nil
	c.mu.Unlock()
	if running {
		return fmt.Errorf("cluster node %d is already running", i)
	}
	srv, err := server.NewServer(nd.opts.Clone())
	if err != nil {
		return fmt.Errorf("cluster node %d: %w", i, err)
	}
	srv.Start()
	// Generous: a loaded machine can be slow to start a server, and
	// nothing here fails by waiting.
	if !srv.ReadyForConnections(2 * time.Minute) {
		srv.Shutdown()
		return fmt.Errorf("cluster node %d not ready after 2 minutes", i)
	}
	c.retarget(i, srv.Addr().String(), srv.ClusterAddr().String())
	c.mu.Lock()
	nd.srv = srv
	c.mu.Unlock()
	return nil
}

// peerLinks returns the proxies of every route of node i.
func (c *Cluster) peerLinks(i int) []*netcut.Proxy {
	var ps []*netcut.Proxy
	for j := range c.nodes {
		if j != i {
			ps = append(ps, c.routes[i][j], c.routes[j][i])
		}
	}
	return ps
}

// Kill stops node i as SIGKILL would: its routes are cut first, so that it
// cannot hand its stream leaderships over, then it is shut down (its clients
// lose their connections). Start brings it back.
func (c *Cluster) Kill(i int) {
	for _, p := range c.peerLinks(i) {
		p.Refuse(true)
		p.Cut()
	}
	c.Stop(i)
	for _, p := range c.peerLinks(i) {
		p.Refuse(false)
	}
}

// Pause freezes node i for d, as SIGSTOP does to a process: its peers hear
// nothing from it and it hears nothing from them, and its clients' connections
// stay open but carry nothing; what was sent meanwhile arrives afterwards. It
// returns at once; the node thaws after d.
func (c *Cluster) Pause(i int, d time.Duration) {
	links := append(c.peerLinks(i), c.nodes[i].client)
	for _, p := range links {
		p.Freeze()
	}
	time.AfterFunc(d, func() {
		for _, p := range links {
			p.Thaw()
		}
	})
}

// Stop shuts node i down (a graceful stop: it hands its stream leaderships
// over first) and waits until it has stopped.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	srv := c.nodes[i].srv
	c.nodes[i].srv = nil
	c.mu.Unlock()
	// Its ports are free for anyone once it stops: nothing may reach
	// whatever listens there next.
	c.retarget(i, unstarted, unstarted)
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// retarget points the proxies in front of node i at its client and route
// addresses.
func (c *Cluster) retarget(i int, client, route string) {
	c.nodes[i].client.Retarget(client)
	for j := range c.nodes {
		if j != i {
			c.routes[j][i].Retarget(route)
		}
	}
}

// Shutdown stops every node.
func (c *Cluster) Shutdown() {
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Go(func() { c.Stop(i) })
	}
	wg.Wait()
}

// WaitMetaLeader waits until the running nodes agree on a JetStream meta
// leader.
func (c *Cluster) WaitMetaLeader() {
	c.tb.Helper()
	c.waitFor("a JetStream meta leader", func() bool {
		for i := range c.nodes {
			if s := c.Server(i); s != nil && s.JetStreamIsLeader() {
				return true
			}
		}
		return false
	})
}

// StreamLeader returns the index of the node leading stream (in the global
// account), or -1 if none does now.
func (c *Cluster) StreamLeader(stream string) int {
	for i := range c.nodes {
		if s := c.Server(i); s != nil && s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// WaitStreamLeader waits until stream has a leader among the running nodes,
// and returns its index.
func (c *Cluster) WaitStreamLeader(stream string) int {
	c.tb.Helper()
	leader := -1
	c.waitFor("a leader for stream "+stream, func() bool {
		leader = c.StreamLeader(stream)
		return leader >= 0
	})
	return leader
}

// WaitStreamSynced waits until every running node's replica of stream holds
// the same last sequence, so that a read served by any of them sees the
// whole stream.
func (c *Cluster) WaitStreamSynced(stream string) {
	c.tb.Helper()
	c.waitFor("all replicas of "+stream+" in step", func() bool {
		last, n := uint64(0), 0
		for i := range c.nodes {
			s := c.Server(i)
			if s == nil {
				continue
			}
			jsz, err := s.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
			if err != nil {
				return false
			}
			found := false
			for _, a := range jsz.AccountDetails {
				for _, sd := range a.Streams {
					if sd.Name == stream {
						found = true
						if n > 0 && sd.State.LastSeq != last {
							return false
						}
						last, n = sd.State.LastSeq, n+1
					}
				}
			}
			if !found {
				return false
			}
		}
		return n > 0
	})
}

// StreamReplicas asks the cluster for stream's configured replicas.
func (c *Cluster) StreamReplicas(stream string) int {
	c.tb.Helper()
	nc, err := nats.Connect(c.URL(), nats.Timeout(5*time.Second))
	if err != nil {
		c.tb.Fatalf("connect to the cluster: %v", err)
	}
	defer nc.Close()
	js, err := nc.JetStream(nats.MaxWait(10 * time.Second))
	if err != nil {
		c.tb.Fatal(err)
	}
	// Asked again while the cluster does not answer: on a loaded machine
	// an election (of the meta or the stream leader) can leave one request
	// unanswered for longer than its wait.
	deadline := time.Now().Add(45 * time.Second)
	for {
		info, err := js.StreamInfo(stream)
		if err == nil {
			return info.Config.Replicas
		}
		if !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) &&
			!errors.Is(err, nats.ErrNoResponders) || time.Now().After(deadline) {
			c.tb.Fatalf("stream info %s: %v", stream, err)
		}
		c.tb.Logf("stream info %s: %v; asking again", stream, err)
		time.Sleep(200 * time.Millisecond) // no responders answers at once
	}
}

func (c *Cluster) waitFor(what string, ok func() bool) {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	for !ok() {
		select {
		case <-ctx.Done():
			c.tb.Fatalf("cluster: no %s after 45s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
