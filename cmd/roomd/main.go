// Command roomd runs a roomlog node: an embedded NATS server with JetStream
// (or an external cluster), the engine, the projections, the reactor and the
// timekeeper, the WebSocket gateway and the admin API.
//
// Every flag has an environment variable: ROOMLOG_ and the flag name in
// capitals, dashes as underscores (-nats-url is ROOMLOG_NATS_URL). A flag on
// the command line wins over the variable.
//
// Without a secret (-secret / ROOMLOG_SECRET) roomd runs in development mode:
// it keeps a generated secret in its data folder, allows multi-room sessions,
// accepts browsers from localhost, and prints how to get a token.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/cmd/internal/atomicfile"
	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/checkpoint"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/web"
)

// options are roomd's settings.
type options struct {
	role, data, natsURL, natsListen, natsPassword, sync, http, secret, origins, apps, logLevel string
	checkpointKey                                                                              string
	checkpointEvery, retention                                                                 time.Duration
	replicas, maxRooms                                                                         int
	multiRoom                                                                                  string // "true", "false", or "" (dev: true, else false)
	open, updateStream                                                                         bool
	heartbeat, heartbeatTimeout                                                                time.Duration
	shutdownGrace                                                                              time.Duration
	logFormat, pprof                                                                           string
	// media plane
	mediaIPs, mediaNAT, mediaICE, mediaPorts string
	mediaUDPPort                             int
	noMedia                                  bool
}

func envName(flag string) string {
	return "ROOMLOG_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// parse reads the flags, then fills every flag not given on the command line
// from its environment variable.
func parse(args []string, getenv func(string) string, errOut io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("roomd", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.StringVar(&o.role, "role", "all", `"all": a whole node; "nats": only the embedded JetStream server, for nodes started with -nats-url; "gateway": a node without media plane (its clients' media goes to the media nodes); "media": a media node (SFU) without gateway, sharing the log`)
	fs.StringVar(&o.data, "data", "roomlog-data", "folder of the embedded JetStream store")
	fs.StringVar(&o.natsURL, "nats-url", "", "external NATS URL(s); set, nothing is embedded")
	fs.StringVar(&o.natsListen, "nats-listen", "127.0.0.1:4222", `the embedded server's client port, for roomctl and other nodes ("off": none)`)
	fs.StringVar(&o.natsPassword, "nats-password", "", `password of NATS user "roomlog": what the embedded server accepts, or what -nats-url needs (development: generated, kept in the data folder)`)
	fs.StringVar(&o.sync, "sync", "interval", `durability of the embedded store: "interval" (fsync every 2 min) or "always"`)
	fs.IntVar(&o.replicas, "replicas", 0, "stream replicas in an external cluster (3 for an R3 cluster; 0: the existing stream's, 1 for a new one)")
	fs.BoolVar(&o.updateStream, "update-stream", false, "change an existing stream whose settings (-replicas ...) differ from this node's, instead of refusing to start")
	fs.StringVar(&o.http, "http", "127.0.0.1:7070", "address of the WebSocket gateway (/ws), the admin API (/admin/v1/), /metrics and /healthz, /readyz")
	fs.StringVar(&o.secret, "secret", "", "secret signing tokens, at least 32 bytes (none: development mode)")
	fs.StringVar(&o.origins, "origins", "", "browser origins allowed to connect, comma separated host patterns (development: localhost:*,127.0.0.1:*)")
	fs.StringVar(&o.multiRoom, "multi-room", "", "allow multi-room sessions (default: true in development, false otherwise)")
	fs.IntVar(&o.maxRooms, "max-rooms", 5, "rooms one multi-room session may be in")
	fs.StringVar(&o.apps, "apps", "", "JSON file of per-app policies (see README)")
	fs.DurationVar(&o.heartbeat, "heartbeat", 30*time.Second, "how often clients send heartbeats")
	fs.DurationVar(&o.heartbeatTimeout, "heartbeat-timeout", 90*time.Second, "silence after which a session times out")
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace", 10*time.Second, "how long shutdown waits for clients to go")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", `"text" (key=value lines) or "json" (one JSON object a line)`)
	fs.StringVar(&o.pprof, "pprof", "", "serve Go's profiler under /debug/pprof/ on a listener of its own at this address, e.g. 127.0.0.1:6060 (none: off; keep it private: it shows the process's flags)")
	fs.StringVar(&o.checkpointKey, "checkpoint-key", "", "Ed25519 private key (PEM, PKCS #8) that signs the log's chain heads "+
		"(development: generated as <data>/checkpoint.key; otherwise none: history is not signed)")
	fs.DurationVar(&o.retention, "retention", 0, "remove history older than this (0: keep it forever); see docs/architecture.md, Retention")
	fs.DurationVar(&o.checkpointEvery, "checkpoint-every", 10*time.Second, "how often the chain heads are signed (0: never)")
	fs.BoolVar(&o.open, "open", false, "open the demo page in the default browser once the node runs")
	fs.BoolVar(&o.noMedia, "no-media", false, "run no media plane (SFU): media operations answer media_unavailable")
	fs.StringVar(&o.mediaIPs, "media-ips", "127.0.0.1,::1", `local addresses the SFU offers to WebRTC peers, comma separated ("0.0.0.0": every interface)`)
	fs.StringVar(&o.mediaNAT, "media-public-ips", "", "public addresses to offer instead (a node behind a 1:1 NAT), comma separated")
	fs.StringVar(&o.mediaICE, "media-ice-servers", "", "STUN/TURN URLs given to the SFU's peer connections, comma separated (default none)")
	fs.IntVar(&o.mediaUDPPort, "media-udp-port", 0, "carry all media on this one UDP port (ICE UDP mux; 0: an ephemeral port per peer)")
	fs.StringVar(&o.mediaPorts, "media-ports", "", `ephemeral UDP port range for media without -media-udp-port, as "min-max"`)
	for _, f := range []string{"data", "nats-url", "nats-password", "sync", "secret"} {
		fs.Lookup(f).Usage += " (" + envName(f) + ")"
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && !given[f.Name] {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(f.Name), err))
			}
		}
	})
	if o.natsListen == "" {
		o.natsListen = "off" // -nats-listen= : no port either
	}
	return o, errors.Join(errs...)
}

func main() {
	o, err := parse(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "roomd:", err)
		os.Exit(2)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "roomd: -log-level:", err)
		os.Exit(2)
	}
	logger, err := newLogger(os.Stderr, o.logFormat, level)
	if err != nil {
		fmt.Fprintln(os.Stderr, "roomd:", err)
		os.Exit(2)
	}
	logger.Debug("garbage collector", "gogc", node.TuneGC())
	ctx, stop := stopOnSignal(logger, os.Exit)
	defer stop()
	if err := run(ctx, o, logger, os.Stdout); err != nil {
		logger.Error("roomd stopped", "err", err)
		os.Exit(1)
	}
}

// stopOnSignal returns a context cancelled by the first SIGINT or SIGTERM,
// which starts a graceful shutdown. A second one, from an operator who will
// not wait for the drain (a second Ctrl-C) or a supervisor that sends it
// again, stops the process at once with exit status 1.
func stopOnSignal(logger *slog.Logger, exit func(int)) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-signals:
		case <-done:
			return
		}
		cancel()
		select {
		case s := <-signals:
			logger.Error("roomd stopped at once by a second signal, without draining", "signal", s.String())
			exit(1)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(signals)
		close(done)
		cancel()
	}
}

// newLogger returns the logger -log-format asks for.
func newLogger(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf(`-log-format: want "text" or "json", got %q`, format)
}

// config turns options into a node configuration, and says whether this is
// development mode.
func config(o options, logger *slog.Logger) (node.Config, bool, error) {
	mode, err := eventstore.ParseSyncMode(o.sync)
	if err != nil {
		return node.Config{}, false, err
	}
	if o.natsURL != "" && mode == eventstore.SyncModeAlways {
		// Not refused: one environment may serve a fleet, whose -role nats
		// server it is meant for.
		logger.Warn("-sync always does not reach an external server (-nats-url): its own JetStream " +
			"configuration (sync_interval: always) decides")
	}
	if err := checkDurations(o); err != nil {
		return node.Config{}, false, err
	}
	dev := o.secret == ""
	secret := []byte(o.secret)
	if !dev && len(secret) < auth.MinSecretLen {
		// Refused before anything starts (the embedded JetStream would
		// otherwise have created its stream and buckets first).
		return node.Config{}, false, fmt.Errorf("-secret is %d bytes, at least %d needed", len(secret), auth.MinSecretLen)
	}
	if dev {
		if secret, err = devSecret(o.data); err != nil {
			return node.Config{}, false, err
		}
	}
	policy := domain.DefaultPolicy()
	policy.MultiRoom, policy.MaxRooms = dev, o.maxRooms
	switch o.multiRoom {
	case "true":
		policy.MultiRoom = true
	case "false":
		policy.MultiRoom = false
	case "":
	default:
		return node.Config{}, false, fmt.Errorf("-multi-room: want true or false, got %q", o.multiRoom)
	}
	policies := domain.Config{Default: policy}
	if o.apps != "" {
		if policies.Apps, err = loadApps(o.apps, policy); err != nil {
			return node.Config{}, false, err
		}
	}
	// Linked settings: clients send a heartbeat every -heartbeat, so a
	// -heartbeat-timeout not above it times every client out.
	if o.heartbeatTimeout <= o.heartbeat {
		return node.Config{}, false, fmt.Errorf("-heartbeat-timeout %v must exceed -heartbeat %v (clients heartbeat once per interval; 3 times it is usual)",
			o.heartbeatTimeout, o.heartbeat)
	}
	if o.heartbeatTimeout < 2*o.heartbeat {
		logger.Warn("-heartbeat-timeout is less than twice -heartbeat: one late heartbeat times a client out",
			"heartbeat", o.heartbeat, "heartbeat_timeout", o.heartbeatTimeout)
	}
	origins := splitList(o.origins)
	if len(origins) == 0 && dev {
		origins = []string{"localhost:*", "127.0.0.1:*"}
	}
	cfg := node.Config{Policy: policies, Logger: logger, Secret: secret, HTTPListen: o.http, PprofListen: o.pprof,
		Log: eventstore.Config{URL: o.natsURL, Replicas: o.replicas, Password: o.natsPassword, MaxAge: retention(o.retention),
			UpdateStream: o.updateStream},
		Gateway: gateway.Config{OriginPatterns: origins, HeartbeatInterval: o.heartbeat, HeartbeatTimeout: o.heartbeatTimeout},
		Web:     web.Config{DevTokens: dev}}
	if o.checkpointEvery == 0 && o.checkpointKey != "" {
		logger.Warn("-checkpoint-every 0: -checkpoint-key signs nothing on this node")
	}
	if o.checkpointEvery > 0 {
		cfg.CheckpointEvery = o.checkpointEvery
		switch {
		case o.checkpointKey != "":
			if cfg.CheckpointKey, err = checkpoint.LoadKey(o.checkpointKey); err != nil {
				return node.Config{}, false, err
			}
		case dev:
			if cfg.CheckpointKey, _, err = checkpoint.EnsureKey(filepath.Join(o.data, "checkpoint.key")); err != nil {
				return node.Config{}, false, err
			}
		default:
			logger.Warn("no -checkpoint-key: the history is not signed, and a rewritten history with a consistent chain would pass roomctl verify")
		}
	}
	cfg.NoMedia = o.noMedia
	switch o.role {
	case "gateway":
		cfg.NoMedia = true
	case "media":
		cfg.NoGateway = true
		if o.noMedia {
			return node.Config{}, false, errors.New("-role media with -no-media runs nothing")
		}
	}
	cfg.Media.IPs, cfg.Media.NAT1To1IPs, cfg.Media.UDPPort = splitList(o.mediaIPs), splitList(o.mediaNAT), o.mediaUDPPort
	for _, ip := range cfg.Media.IPs {
		if net.ParseIP(ip) == nil {
			return node.Config{}, false, fmt.Errorf("-media-ips: %q is not an IP address", ip)
		}
	}
	for _, ip := range cfg.Media.NAT1To1IPs {
		// An address, or a public/private pair (a host with several
		// private addresses behind a 1:1 NAT).
		public, private, pair := strings.Cut(ip, "/")
		if net.ParseIP(public) == nil || pair && net.ParseIP(private) == nil {
			return node.Config{}, false, fmt.Errorf("-media-public-ips: %q is not an IP address or a public/private pair", ip)
		}
	}
	if urls := splitList(o.mediaICE); len(urls) > 0 {
		cfg.Media.ICEServers = []webrtc.ICEServer{{URLs: urls}}
	}
	if o.mediaPorts != "" {
		a, b, _ := strings.Cut(o.mediaPorts, "-")
		lo, err1 := strconv.ParseUint(a, 10, 16)
		hi, err2 := strconv.ParseUint(b, 10, 16)
		if err1 != nil || err2 != nil || lo == 0 || hi < lo {
			return node.Config{}, false, fmt.Errorf("-media-ports: want min-max, got %q", o.mediaPorts)
		}
		cfg.Media.PortMin, cfg.Media.PortMax = uint16(lo), uint16(hi)
	}
	if o.natsURL == "" {
		if o.role != "all" && o.natsListen == "off" {
			// Its own log, which no other node can reach: a gateway whose
			// clients' media no media node would ever see, or a media node
			// no gateway would ever route to.
			return node.Config{}, false, fmt.Errorf("-role %s needs a log it shares with the other nodes: "+
				"-nats-url (the log's server), or a -nats-listen port for them to join", o.role)
		}
		cfg.Log.DataDir, cfg.Log.Sync = o.data, mode
		if o.natsListen != "off" {
			cfg.Log.Listen = o.natsListen
			if cfg.Log.Password == "" && !dev {
				return node.Config{}, false, errors.New("-nats-password (" + envName("nats-password") +
					") is required with -secret: the NATS port (-nats-listen) holds the log, and anyone " +
					"who reaches it unauthenticated could write to it (-nats-listen off: no port)")
			}
			if cfg.Log.Password == "" {
				if cfg.Log.Password, err = devFile(o.data, natsPasswordFile); err != nil {
					return node.Config{}, false, err
				}
			}
		}
	}
	return cfg, dev, nil
}

// checkDurations refuses durations no operator means: negative ones (taken
// silently as "forever", "never" or "no drain") and a heartbeat of zero.
func checkDurations(o options) error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"-heartbeat", o.heartbeat}, {"-retention", o.retention}, {"-checkpoint-every", o.checkpointEvery},
		{"-shutdown-grace", o.shutdownGrace}} {
		if d.v < 0 || d.name == "-heartbeat" && d.v == 0 {
			return fmt.Errorf("%s %v: want a positive duration", d.name, d.v)
		}
	}
	if o.retention > 0 && o.retention < eventstore.DuplicateWindow {
		return fmt.Errorf("-retention %v: want 0 (keep history forever) or at least %v, the log's de-duplication window",
			o.retention, eventstore.DuplicateWindow)
	}
	return nil
}

// retention maps -retention to eventstore.Config.MaxAge: 0 keeps history
// forever (and lifts a limit set before).
func retention(d time.Duration) time.Duration {
	if d <= 0 {
		return eventstore.KeepForever
	}
	return d
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// loadApps reads per-app policies from the file at path (see
// domain.ParseAppPolicies).
func loadApps(path string, def domain.Policy) (map[domain.AppID]domain.Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-apps: %w", err)
	}
	apps, err := domain.ParseAppPolicies(b, def)
	if err != nil {
		return nil, fmt.Errorf("-apps %s: %w", path, err)
	}
	return apps, nil
}

// Files that development mode keeps in the data folder.
const (
	devSecretFile    = "dev-secret"
	natsPasswordFile = "nats-password"
)

// devSecret returns the development secret kept in the data folder,
// creating it the first time, so that tokens survive a restart.
func devSecret(data string) ([]byte, error) {
	s, err := devFile(data, devSecretFile)
	return []byte(s), err
}

// devFile returns the random secret kept in file name of the data folder,
// creating it the first time (readable by its owner only).
func devFile(data, name string) (string, error) {
	path := filepath.Join(data, name)
	if b, err := os.ReadFile(path); err == nil {
		if secret := strings.TrimSpace(string(b)); secret != "" {
			return secret, nil
		}
		// Empty: left by a crash of an older roomd while it wrote the
		// file, before anything could use it. Made anew.
	}
	raw, err := auth.GenerateSecret()
	if err != nil {
		return "", err
	}
	secret := hex.EncodeToString(raw)
	if err := os.MkdirAll(data, 0o700); err != nil {
		return "", err
	}
	if err := atomicfile.Write(path, []byte(secret+"\n")); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return secret, nil
}

func run(ctx context.Context, o options, logger *slog.Logger, out io.Writer) error {
	switch o.role {
	case "all", "gateway", "media":
	case "nats":
		return runNATS(ctx, o, logger)
	default:
		return fmt.Errorf("-role: want all, gateway, media or nats, got %q", o.role)
	}
	cfg, dev, err := config(o, logger)
	if err != nil {
		return err
	}

	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	n, err := node.Start(startCtx, cfg)
	cancel()
	if err != nil {
		return err
	}
	if cfg.NoGateway {
		logger.Info("roomd is running as a media node", "node", n.SFU.Node(), "health", "http://"+n.HTTPAddr()+"/readyz",
			"log", describe(o, n))
	} else {
		logger.Info("roomd is running", "demo", "http://"+n.HTTPAddr()+"/", "websocket", "ws://"+n.HTTPAddr()+"/ws", "admin", "http://"+n.HTTPAddr()+"/admin/v1/",
			"log", describe(o, n), "multi_room", cfg.Policy.Default.MultiRoom, "development", dev, "media", !cfg.NoMedia)
	}
	if dev && !cfg.NoGateway {
		fmt.Fprintf(out, `
roomd is running in development mode (no -secret given).
  Demo page:  http://%[1]s/  (open it in two tabs)
  WebSocket:  ws://%[1]s/ws
  Admin API:  http://%[1]s/admin/v1/
  Secret:     kept in %[2]s
Get a client token for user alice (app "dev"):
  ROOMLOG_SECRET=$(cat %[2]s) go run ./cmd/roomctl token -app dev -user alice
and an admin token:
  ROOMLOG_SECRET=$(cat %[2]s) go run ./cmd/roomctl token -admin
%[3]s
`, n.HTTPAddr(), filepath.Join(o.data, devSecretFile), natsHint(o, n))
	}
	if o.open && !cfg.NoGateway {
		openBrowser(logger, "http://"+n.HTTPAddr()+"/")
	}
	<-ctx.Done()
	logger.Info("roomd is stopping: telling clients, draining, flushing")
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownGrace)
	defer cancel()
	return n.Shutdown(sctx)
}

// openBrowser opens url with the desktop's opener; failing that, it says
// where to go.
func openBrowser(logger *slog.Logger, url string) {
	opener := "xdg-open"
	switch runtime.GOOS {
	case "darwin":
		opener = "open"
	case "windows":
		opener = "explorer"
	}
	cmd := exec.Command(opener, url)
	if err := cmd.Start(); err != nil {
		logger.Warn("cannot open a browser; open the demo page yourself", "url", url, "err", err)
		return
	}
	go cmd.Wait()
}

// runNATS runs only the embedded JetStream server (with the log's stream),
// for nodes that connect to it with -nats-url: the log then outlives any of
// them.
func runNATS(ctx context.Context, o options, logger *slog.Logger) error {
	mode, err := eventstore.ParseSyncMode(o.sync)
	if err != nil {
		return err
	}
	if err := checkDurations(o); err != nil {
		return err
	}
	if o.natsListen == "off" {
		return errors.New("-role nats needs -nats-listen")
	}
	password, where := o.natsPassword, envName("nats-password")
	if password == "" {
		// No secret to tell development from production here: a server
		// alone keeps its generated password where its owner can read it.
		if password, err = devFile(o.data, natsPasswordFile); err != nil {
			return err
		}
		where = filepath.Join(o.data, natsPasswordFile)
	}
	log, err := eventstore.Open(ctx, eventstore.Config{DataDir: o.data, Sync: mode, Listen: o.natsListen,
		Password: password, Logger: logger, MaxAge: retention(o.retention), UpdateStream: o.updateStream})
	if err != nil {
		return err
	}
	logger.Info("roomd is serving JetStream", "nats", log.ClientURL(), "user", eventstore.DefaultUser,
		"password", where, "data", o.data, "sync", o.sync)
	<-ctx.Done()
	return log.Close()
}

// natsHint tells how roomctl reaches the NATS port of a development node.
func natsHint(o options, n *node.Node) string {
	// Only for a server this node embeds, whose password it keeps in the
	// data folder: -nats-url's may carry the password in the URL itself.
	if n.Log.ClientURL() == "" || o.natsPassword != "" || o.natsURL != "" {
		return ""
	}
	return fmt.Sprintf(`Verify the log against the chain heads this node signs (the NATS password is kept in %[1]s):
  ROOMLOG_NATS_PASSWORD=$(cat %[1]s) go run ./cmd/roomctl verify -nats %[2]s -pubkey %[3]s
`, filepath.Join(o.data, natsPasswordFile), n.Log.ClientURL(), filepath.Join(o.data, "checkpoint.key.pub"))
}

func describe(o options, n *node.Node) string {
	if o.natsURL != "" {
		return "external NATS at " + eventstore.RedactURLs(o.natsURL)
	}
	s := fmt.Sprintf("embedded JetStream in %s (sync %s)", o.data, o.sync)
	if u := n.Log.ClientURL(); u != "" {
		s += ", NATS clients at " + u
	}
	return s
}
