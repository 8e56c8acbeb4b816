// Package node assembles one roomd node: the log (an embedded JetStream or an
// external cluster), the engine that executes commands, the live projection
// that folds the log, the reactor and timekeeper that record what events and
// time call for, and the transports in front of them. cmd/roomd runs one;
// end-to-end tests start real ones in-process.
package node

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/checkpoint"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/presence"
	"github.com/roomlog/roomlog/eventstore/reactor"
	"github.com/roomlog/roomlog/eventstore/timekeeper"
	"github.com/roomlog/roomlog/media"
	"github.com/roomlog/roomlog/projections"
	"github.com/roomlog/roomlog/transport/admin"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/metrics"
	"github.com/roomlog/roomlog/transport/protocol"
	"github.com/roomlog/roomlog/transport/web"
)

// SnapshotName is the versioned name of the projection snapshot.
const SnapshotName = "proj.rooms.v3" // v3: ended sessions, connections and rooms leave the model

// Config configures a node.
type Config struct {
	// Log configures the log: DataDir for the embedded server, or URL.
	Log eventstore.Config
	// Policy holds the per-app policies.
	Policy domain.Config
	// Clock is the node's clock. Default engine.SystemClock.
	Clock engine.Clock
	// SnapshotEvery saves the projection after this many new records
	// (0: 100,000; negative: never, not even at shutdown).
	SnapshotEvery int
	// SnapshotInterval saves the projection at least this often while
	// records are folded (0: 10 minutes), so that a node restarts from a
	// recent one however quiet its log; it is also saved at shutdown.
	SnapshotInterval time.Duration
	// Secret signs client and admin tokens (at least 32 bytes).
	Secret []byte
	// HTTPListen is where the WebSocket gateway (/ws), the admin API
	// (/admin/v1/) and the health endpoints listen ("127.0.0.1:0": a free
	// port; empty: no HTTP at all).
	HTTPListen string
	// Gateway tunes the gateway; its Engine, Live, Log, Signer, Policy,
	// Clock and Logger are filled in by the node.
	Gateway gateway.Config
	// CheckpointKey, when set, signs each aggregate's chain head every
	// CheckpointEvery (default 10 s) and on demand (POST
	// /admin/v1/checkpoints), so that roomctl verify -pubkey detects a
	// rewritten history.
	CheckpointKey   ed25519.PrivateKey
	CheckpointEvery time.Duration
	// Web configures the browser SDK, the demo page and (development mode
	// only) the demo's token endpoint; its Signer, Clock and Logger are
	// filled in by the node.
	Web web.Config
	// Media configures the node's SFU; its Live, Node and Bus are filled
	// in by the node.
	Media media.Config
	// NoMedia runs the node without an SFU (a gateway-only node): its
	// clients' media goes to the live media nodes of the cluster, or
	// media_unavailable without any.
	NoMedia bool
	// NoGateway serves no WebSocket gateway and no admin API on
	// HTTPListen, only the health endpoints (a media-only node).
	NoGateway bool
	// MediaNodeBeat and MediaNodeTimeout tune media node liveness
	// (defaults 2 s and 10 s).
	MediaNodeBeat, MediaNodeTimeout time.Duration
	Logger                          *slog.Logger
	// PprofListen serves net/http/pprof under /debug/pprof/ on a listener
	// of its own at this address ("": off). Never on the HTTP listener,
	// which clients reach: a profile shows the process's insides, and
	// /debug/pprof/cmdline its flags, -secret included.
	PprofListen string
	// ReadyGrace is how long /readyz keeps answering "ready" while the log
	// does not answer or the node reconnects to NATS (default
	// DefaultReadyGrace).
	ReadyGrace time.Duration
	// Outage is how long the log may leave appends unanswered before the
	// node refuses new commands at once and /readyz answers 503 (default
	// engine.DefaultOutage, 10 s; see engine.Config.Outage).
	Outage time.Duration
}

// Node is a running roomd node.
type Node struct {
	cfg        Config
	Log        *eventstore.Log
	Engine     *engine.Engine
	Live       *projections.Live
	Timekeeper *timekeeper.Timekeeper
	Presence   *presence.Presence
	Gateway    *gateway.Server
	// SFU is the node's media plane (nil with NoMedia).
	SFU *media.SFU
	// MediaNodes watches the cluster's media nodes (and beats for SFU).
	MediaNodes *media.Nodes
	Signer     *auth.Signer
	Metrics    *metrics.Metrics
	// Checkpoints signs chain heads (nil without Config.CheckpointKey).
	Checkpoints *checkpoint.Checkpointer
	bus         *eventstore.Bus
	reactor     *reactor.Reactor
	snapshots   projections.Store
	// snapMu is held while a snapshot is saved; snapSaved is the cursor of
	// the last one saved (or restored), snapAt when (UnixNano).
	snapMu    sync.Mutex
	snapSaved atomic.Uint64
	snapAt    atomic.Int64
	httpSrv   *http.Server
	fresh     freshConns
	httpAddr  string
	pprofSrv  *http.Server
	pprofAddr string
	decider   *domain.Decider

	cancel context.CancelFunc
	wg     sync.WaitGroup
	// lostAt is when the node lost its NATS connection (0: connected);
	// logSilentAt when /readyz first found the log not answering (0: it
	// answered last time). UnixNano on the node's clock.
	lostAt, logSilentAt atomic.Int64
	errMu               sync.Mutex
	err                 error
}

// Start opens the log, restores and catches up the projection, and starts the
// node's background work.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Clock == nil {
		cfg.Clock = engine.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SnapshotEvery == 0 {
		cfg.SnapshotEvery = 100_000
	}
	if cfg.SnapshotInterval <= 0 {
		cfg.SnapshotInterval = 10 * time.Minute
	}
	if cfg.ReadyGrace <= 0 {
		cfg.ReadyGrace = DefaultReadyGrace
	}
	// The policies are checked before anything starts; the decider is
	// made once the log says how large its messages may be.
	if _, err := domain.NewDecider(cfg.Policy); err != nil {
		return nil, err
	}
	if cfg.Log.Logger == nil {
		cfg.Log.Logger = cfg.Logger
	}
	log, err := eventstore.Open(ctx, cfg.Log)
	if err != nil {
		return nil, err
	}
	if cfg.Policy.MaxMessageBytes == 0 {
		// Each step of a decision is one of the log's messages.
		cfg.Policy.MaxMessageBytes = log.MaxMsgSize()
	}
	decider, err := domain.NewDecider(cfg.Policy)
	if err != nil {
		log.Close()
		return nil, err
	}
	n := &Node{cfg: cfg, Log: log, decider: decider}
	log.WatchConnection(func(connected bool) {
		if connected {
			n.lostAt.Store(0)
		} else {
			n.lostAt.CompareAndSwap(0, n.cfg.Clock.Now().UnixNano())
		}
	})
	if err := n.start(ctx, decider); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

func (n *Node) start(ctx context.Context, decider *domain.Decider) error {
	started := time.Now()
	// Buckets a node creates get the stream's replicas.
	replicas := n.Log.Replicas()
	blobs, err := n.Log.OpenBlobs(ctx, eventstore.BlobsConfig{Bucket: "roomlog-snapshots", Replicas: replicas,
		Description: "roomlog projection snapshots"})
	if err != nil {
		return err
	}
	n.snapshots = projections.NewBlobStore(blobs)
	model, err := projections.Restore(ctx, n.snapshots, SnapshotName)
	if err != nil {
		n.cfg.Logger.Warn("snapshot unusable; rebuilding from the beginning", "err", err)
		model = projections.NewModel()
	}
	fromSnapshot := model.Cursor
	err = projections.Rebuild(ctx, n.Log, n.filters(), model)
	if errors.Is(err, projections.ErrAheadOfLog) || errors.Is(err, projections.ErrBehindLog) ||
		errors.Is(err, projections.ErrNotOfLog) {
		// The stream was recreated (or another restored in its place) and
		// the snapshots bucket kept, or retention removed records the
		// snapshot had not folded (the node was stopped longer than the
		// log's max age).
		n.cfg.Logger.Warn("snapshot does not meet the log; rebuilding from the beginning", "err", err)
		model, fromSnapshot = projections.NewModel(), 0
		err = projections.Rebuild(ctx, n.Log, n.filters(), model)
	}
	if err != nil {
		return fmt.Errorf("rebuild the projection: %w", err)
	}
	n.snapSaved.Store(fromSnapshot)
	n.snapAt.Store(n.cfg.Clock.Now().UnixNano())
	n.cfg.Logger.Info("projection ready", "snapshot_cursor", fromSnapshot, "cursor", model.Cursor,
		"took", time.Since(started).Round(time.Millisecond))
	if s := model.Skipped; s.Count > 0 {
		n.cfg.Logger.Error("the log holds messages no engine wrote; they were skipped (run roomctl verify)",
			"skipped", s.Count, "last_seq", s.Last)
	}
	n.Live = projections.NewLive(model)
	n.Metrics, err = metrics.New(metrics.Config{Live: n.Live, LastSeq: n.Log.LastSeq,
		Gateway: func() metrics.GatewayStats {
			if n.Gateway == nil {
				return metrics.GatewayStats{}
			}
			st := n.Gateway.Stats()
			return metrics.GatewayStats{Connections: st.Connections, Sessions: st.Sessions, QueuedFrames: st.QueuedFrames,
				SlowConsumers: st.SlowConsumers, DroppedBarrage: st.DroppedBarrage}
		},
		Reactor: func() metrics.ReactorStats {
			if n.reactor == nil {
				return metrics.ReactorStats{}
			}
			return metrics.ReactorStats{Retries: n.reactor.Retries(), Recreated: n.reactor.Recreated(), Malformed: n.reactor.Malformed()}
		}})
	if err != nil {
		return err
	}
	n.Live.Observe(n.Metrics.Fold)
	n.Live.OnMalformed(func(bad projections.Malformed) {
		n.cfg.Logger.Error("skipped a log message no engine wrote (run roomctl verify)", "seq", bad.Seq,
			"subject", bad.Subject, "err", bad.Err)
	})
	n.Engine, err = engine.New(engine.Config{Log: n.Log, Decider: decider, Clock: n.cfg.Clock.Now, Source: n.Live,
		Logger: n.cfg.Logger, Observer: n.Metrics, Outage: n.cfg.Outage})
	if err != nil {
		return err
	}
	n.Timekeeper, err = timekeeper.New(timekeeper.Config{Engine: n.Engine, Live: n.Live, Clock: n.cfg.Clock,
		Logger: n.cfg.Logger})
	if err != nil {
		return err
	}
	if n.cfg.SnapshotEvery > 0 {
		n.Live.Subscribe(n.snapshotter(), projections.NotWaited(), projections.Named("snapshotter"))
	}
	n.reactor, err = reactor.New(reactor.Config{Engine: n.Engine, Log: n.Log, Logger: n.cfg.Logger})
	if err != nil {
		return err
	}
	timeout := n.cfg.Gateway.HeartbeatTimeout
	if timeout == 0 {
		timeout = 90 * time.Second
	}
	node := n.Engine.NewID(n.cfg.Clock.Now()).String()
	// A session's record goes when it times out or leaves for good, and
	// session IDs are never reused: the marker each leaves must go too.
	records, err := n.Log.OpenRecords(ctx, eventstore.RecordsConfig{Bucket: presence.DefaultBucket, Replicas: replicas,
		Description: "roomlog session presence: last heartbeat per session", MarkerTTL: presence.MarkerTTL})
	if err != nil {
		return err
	}
	n.Presence, err = presence.New(presence.Config{Records: records, Engine: n.Engine, Clock: n.cfg.Clock,
		Timeout: timeout, Node: node, Logger: n.cfg.Logger})
	if err != nil {
		return err
	}
	if n.bus, err = n.Log.OpenBus("roomlog-bus"); err != nil {
		return err
	}
	if n.cfg.CheckpointKey != nil {
		store, err := checkpoint.OpenStore(ctx, n.Log, replicas)
		if err != nil {
			return err
		}
		if n.Checkpoints, err = checkpoint.New(checkpoint.Config{Log: n.Log, Store: store, Key: n.cfg.CheckpointKey,
			Interval: n.cfg.CheckpointEvery, Now: n.cfg.Clock.Now, Logger: n.cfg.Logger}); err != nil {
			return err
		}
	}
	if !n.cfg.NoMedia {
		mc := n.cfg.Media
		mc.Live, mc.Node, mc.Bus = n.Live, node, n.bus
		if mc.Logger == nil {
			mc.Logger = n.cfg.Logger
		}
		if n.SFU, err = media.New(mc); err != nil {
			return err
		}
	}
	nodeRecords, err := n.Log.OpenRecords(ctx, eventstore.RecordsConfig{Bucket: media.NodesBucket, Replicas: replicas,
		Description: "roomlog media nodes: last beat per node"})
	if err != nil {
		return err
	}
	nc := media.NodesConfig{Records: nodeRecords, Engine: n.Engine, Live: n.Live, Beat: n.cfg.MediaNodeBeat,
		Timeout: n.cfg.MediaNodeTimeout, Logger: n.cfg.Logger, Notify: n.publishMediaState,
		Lost: func(node string) {
			if n.Gateway != nil { // set before the watch starts
				n.Gateway.MediaNodeLost(node)
			}
		}}
	if n.SFU != nil {
		nc.Self = n.SFU.Node()
	}
	if n.MediaNodes, err = media.NewNodes(nc); err != nil {
		return err
	}
	if n.cfg.HTTPListen != "" {
		if err := n.startHTTP(node); err != nil {
			return err
		}
	}
	if n.cfg.PprofListen != "" {
		if err := n.servePprof(); err != nil {
			return err
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.goRun("projection", func() error { return n.Live.Run(runCtx, n.Log, n.filters()) })
	n.goRun("reactor", func() error { return n.reactor.Run(runCtx) })
	n.goRun("presence", func() error { return n.Presence.Run(runCtx) })
	n.goRun("timekeeper", func() error { return n.Timekeeper.Run(runCtx) })
	if n.Checkpoints != nil {
		n.goRun("checkpoints", func() error { return n.Checkpoints.Run(runCtx) })
	}
	if n.SFU != nil {
		n.goRun("media", func() error { return n.SFU.Run(runCtx) })
	}
	n.goRun("media nodes", func() error { return n.MediaNodes.Run(runCtx) })
	select {
	case <-n.reactor.Running():
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

func (n *Node) filters() []string { return []string{n.Log.Prefix() + ".>"} }

// goRun runs fn until the node stops; an error stops nothing but is kept
// for Err and logged.
func (n *Node) goRun(name string, fn func() error) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := fn(); err != nil {
			n.cfg.Logger.Error(name+" stopped", "err", err)
			n.errMu.Lock()
			n.err = errors.Join(n.err, fmt.Errorf("%s: %w", name, err))
			n.errMu.Unlock()
		}
	}()
}

// Err returns what stopped a background part of the node, if anything.
func (n *Node) Err() error {
	n.errMu.Lock()
	defer n.errMu.Unlock()
	return n.err
}

// snapshotter saves the projection every SnapshotEvery records, or on the
// first record folded SnapshotInterval after the last save, in the
// background, so that a restart folds only what came after. The fold only
// counts: the copy, its serialization and the save run on their own
// goroutine, one at a time.
func (n *Node) snapshotter() func(projections.Record) {
	var count int
	return func(projections.Record) {
		count++
		due := count >= n.cfg.SnapshotEvery ||
			n.cfg.Clock.Now().Sub(time.Unix(0, n.snapAt.Load())) >= n.cfg.SnapshotInterval
		if !due || !n.snapMu.TryLock() {
			return
		}
		count = 0
		go func() {
			defer n.snapMu.Unlock()
			n.saveSnapshot(time.Minute)
		}()
	}
}

// saveSnapshot saves the projection as it is now, taking at most limit;
// the caller holds snapMu.
func (n *Node) saveSnapshot(limit time.Duration) {
	n.snapAt.Store(n.cfg.Clock.Now().UnixNano()) // tried: not again at once if it failed
	snap, err := n.Live.Snapshot(SnapshotName)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		err = n.snapshots.Save(ctx, snap)
		cancel()
	}
	if err != nil {
		n.cfg.Logger.Warn("projection snapshot failed", "err", err)
		return
	}
	n.snapSaved.Store(snap.Cursor)
	n.cfg.Logger.Debug("projection snapshot saved", "cursor", snap.Cursor, "bytes", len(snap.Data))
}

// startHTTP starts the gateway, the admin API, the health endpoints and the
// web pages (the browser SDK, the demo). The
// gateway subscribes to the projection before it runs, so it sees every event.
func (n *Node) startHTTP(node string) error {
	var err error
	// A few seconds of leeway: a token minted on a host whose clock runs ahead
	// is valid at once here too.
	if n.Signer, err = auth.NewSigner(auth.Config{Secret: n.cfg.Secret, Clock: n.cfg.Clock.Now, Leeway: 5 * time.Second}); err != nil {
		return err
	}
	mux := http.NewServeMux()
	if !n.cfg.NoGateway {
		if err := n.mountGateway(mux, node); err != nil {
			return err
		}
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "alive") })
	mux.HandleFunc("GET /readyz", n.ready)
	mux.Handle("GET /metrics", n.Metrics.Handler())
	ln, err := net.Listen("tcp", n.cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	n.httpAddr = ln.Addr().String()
	n.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ConnState: n.fresh.track}
	// Browsers open spare connections they may never use; Shutdown would
	// wait 5 s for each before counting it idle. Nothing was asked on them:
	// they are closed as soon as the listener is.
	n.httpSrv.RegisterOnShutdown(n.fresh.closeAll)
	n.goRun("http", func() error {
		if err := n.httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	return nil
}

// servePprof serves Go's profiler on PprofListen until the node stops.
func (n *Node) servePprof() error {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", n.cfg.PprofListen)
	if err != nil {
		return fmt.Errorf("pprof: %w", err)
	}
	n.pprofAddr = ln.Addr().String()
	n.pprofSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	n.goRun("pprof", func() error {
		if err := n.pprofSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	return nil
}

// publishMediaState sends a media state event to every gateway.
func (n *Node) publishMediaState(e media.StateEvent) {
	b, _ := json.Marshal(e)
	if err := n.bus.Publish(media.StateSubject, b); err != nil {
		n.cfg.Logger.Warn("a media state event was not sent", "session", e.Session, "stream", e.Stream, "err", err)
	}
}

// mountGateway starts the WebSocket gateway and the admin API on mux.
func (n *Node) mountGateway(mux *http.ServeMux, node string) error {
	var err error
	gc := n.cfg.Gateway
	gc.Engine, gc.Live, gc.Log, gc.Signer, gc.Policy, gc.Clock, gc.Logger = n.Engine, n.Live, n.Log, n.Signer,
		n.decider.Policy, n.cfg.Clock, n.cfg.Logger
	gc.Presence, gc.Node, gc.Bus = n.Presence, node, n.bus
	if gc.ObserveRequest == nil {
		gc.ObserveRequest = func(op protocol.Op, took time.Duration) { n.Metrics.Request(string(op), took) }
	}
	if gc.Media, err = media.NewRouter(media.RouterConfig{Live: n.Live, Local: n.SFU, Bus: n.bus,
		Nodes: n.MediaNodes}); err != nil {
		return err
	}
	if n.Gateway, err = gateway.New(gc); err != nil {
		return err
	}
	acfg := admin.Config{Engine: n.Engine, Live: n.Live, Log: n.Log, Signer: n.Signer, Clock: n.cfg.Clock,
		Logger: n.cfg.Logger}
	if n.Checkpoints != nil {
		acfg.Checkpoints = n.Checkpoints
	}
	api, err := admin.New(acfg)
	if err != nil {
		return err
	}
	wc := n.cfg.Web
	wc.Signer, wc.Clock, wc.Logger = n.Signer, n.cfg.Clock.Now, n.cfg.Logger
	site, err := web.New(wc)
	if err != nil {
		return err
	}
	mux.Handle("GET /ws", n.Gateway)
	mux.Handle("/admin/", api)
	mux.Handle("/", site)
	return nil
}

// DefaultReadyGrace is how long /readyz keeps answering "ready" while the
// log does not answer, or while the node reconnects to NATS
// (Config.ReadyGrace): a stream leader election, or the restart of the NATS
// server a node was connected to, takes a few seconds, during which every
// node of the fleet would otherwise turn unready at the same moment and a
// load balancer drain them all. Commands meanwhile wait for the election or
// the reconnection (up to their timeout).
const DefaultReadyGrace = 15 * time.Second

// ready answers whether the node can serve: it was connected to NATS and the
// log answered within Config.ReadyGrace, and the projection runs.
func (n *Node) ready(w http.ResponseWriter, r *http.Request) {
	if err := n.Err(); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	// The grace counts from when the fault began, not from the last probe:
	// a load balancer may probe less often than the grace.
	now := n.cfg.Clock.Now()
	since := func(at int64) time.Duration {
		if at == 0 {
			return 0 // noticed here first
		}
		return now.Sub(time.Unix(0, at)).Round(time.Millisecond)
	}
	if !n.Log.Connected() {
		// The NATS server this node was connected to went away (killed,
		// restarted): the client reconnects to another of the cluster
		// within a second or two, and commands wait for it meanwhile.
		// Only the connection's handlers write lostAt (a probe racing a
		// reconnection must not leave a stale loss behind).
		lost := since(n.lostAt.Load())
		if lost > n.cfg.ReadyGrace {
			http.Error(w, fmt.Sprintf("not connected to NATS for %v", lost), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ready (reconnecting to NATS for %v)\n", lost)
		return
	}
	// A stream without a quorum still answers the stream info below
	// (from a replica): what says it cannot store is the appends it
	// leaves unanswered.
	if silent, down := n.Engine.LogSilent(); down {
		http.Error(w, fmt.Sprintf("the log has not acknowledged an append for %v; commands are refused until it does",
			silent.Round(time.Second)), http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := n.Log.LastSeq(ctx); err != nil {
		n.logSilentAt.CompareAndSwap(0, now.UnixNano())
		silent := since(n.logSilentAt.Load())
		if silent > n.cfg.ReadyGrace {
			http.Error(w, fmt.Sprintf("the log has not answered for %v: %v", silent.Round(time.Second), err),
				http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ready (the log has not answered for %v: %v)\n", silent, err)
		return
	}
	n.logSilentAt.Store(0)
	// Skipped messages do not stop the node from serving: the operator
	// learns of them here and in the log.
	if s := n.Live.Skipped(); s.Count > 0 {
		fmt.Fprintf(w, "ready; %d unreadable log messages skipped, the last at stream sequence %d (run roomctl verify)\n",
			s.Count, s.Last)
		return
	}
	fmt.Fprintln(w, "ready")
}

// freshConns tracks the HTTP connections on which no request has started
// yet (http.StateNew).
type freshConns struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (f *freshConns) track(c net.Conn, st http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		f.conns = map[net.Conn]struct{}{}
	}
	if st == http.StateNew {
		f.conns[c] = struct{}{}
	} else {
		delete(f.conns, c)
	}
}

func (f *freshConns) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
	}
}

// HTTPAddr returns the address the HTTP listener is bound to.
func (n *Node) HTTPAddr() string { return n.httpAddr }

// PprofAddr is the address Go's profiler is served on ("" without
// PprofListen).
func (n *Node) PprofAddr() string { return n.pprofAddr }

// Close stops the node: it stops accepting connections, tells clients why
// they are closed, stops its background work and closes the log.
func (n *Node) Close() error {
	return n.Shutdown(context.Background())
}

// Shutdown is Close bounded by ctx for the connections to drain (10 s if
// ctx has no deadline).
func (n *Node) Shutdown(ctx context.Context) error {
	sctx, cancel := ctx, context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		sctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	}
	pprofDone := make(chan struct{})
	if n.pprofSrv != nil {
		// A profile being taken is answered, within the same grace.
		go func() { n.pprofSrv.Shutdown(sctx); close(pprofDone) }()
	} else {
		close(pprofDone)
	}
	if n.httpSrv != nil {
		n.httpSrv.Shutdown(sctx)
		if n.Gateway != nil {
			n.Gateway.Shutdown(sctx)
		}
	}
	<-pprofDone
	cancel()
	if n.cancel != nil {
		n.cancel()
	}
	n.wg.Wait()
	if n.SFU != nil {
		n.SFU.Close() // done by its Run, unless the start failed before it ran
	}
	if n.Live != nil && n.snapshots != nil && n.cfg.SnapshotEvery > 0 {
		// The fold has stopped: what it folded since the last snapshot is
		// saved, so that the next start folds nothing twice.
		n.snapMu.Lock()
		if n.Live.Cursor() > n.snapSaved.Load() {
			n.saveSnapshot(5 * time.Second) // a log gone by now costs no more
		}
		n.snapMu.Unlock()
	}
	if n.Live != nil {
		n.Live.Close()
	}
	if n.bus != nil {
		n.bus.Close()
	}
	return n.Log.Close()
}
