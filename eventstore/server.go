package eventstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"
)

// SyncMode says when the embedded server fsyncs the log to disk. It is
// stored in configuration files and flags, so it is a closed, string-valued
// enum.
type SyncMode string

const (
	// SyncModeInterval fsyncs on a timer (JetStream's default, every two
	// minutes unless Config.SyncInterval says otherwise). Fast, but an
	// acknowledged append can be lost if the machine loses power before the
	// next fsync (a process crash alone loses nothing: the data is in the
	// OS page cache).
	SyncModeInterval SyncMode = "interval"
	// SyncModeAlways fsyncs every write before acknowledging it: no
	// acknowledged append is lost on power failure, at the cost of one
	// fsync per append (about 10x fewer appends per second on this
	// project's reference machine).
	SyncModeAlways SyncMode = "always"
)

// ParseSyncMode parses the string form of a SyncMode. The empty string is
// not accepted: defaults are filled by Open, not by parsing.
func ParseSyncMode(s string) (SyncMode, error) {
	switch m := SyncMode(s); m {
	case SyncModeInterval, SyncModeAlways:
		return m, nil
	}
	return "", fmt.Errorf("%w: unknown sync mode %q (want %q or %q)", ErrInvalidConfig, s, SyncModeInterval, SyncModeAlways)
}

// String returns the stored form of the mode.
func (m SyncMode) String() string { return string(m) }

// Defaults filled in by Open.
const (
	DefaultStream         = "ROOMLOG"
	DefaultPrefix         = "roomlog"
	DefaultMaxMsgSize     = 1 << 20
	DefaultConnectTimeout = 5 * time.Second
	DefaultUser           = "roomlog"
	// MinPasswordLen is the shortest Password an embedded server with
	// Listen accepts.
	MinPasswordLen = 16

	// maxMsgSizeLimit is nats-server's hard ceiling on max_payload.
	maxMsgSizeLimit = 64 << 20
	// asyncMaxPending bounds the appends in flight through AppendAsync.
	// nats.go's default (4000) is below what one-in-flight-per-room across
	// thousands of rooms needs.
	asyncMaxPending = 16384
	// asyncStallWait is how long AppendAsync waits for a free slot when
	// asyncMaxPending appends are in flight; nats.go's default of 200 ms
	// makes a deep pipeline fail with "stalled" under a short fsync pause.
	asyncStallWait = 5 * time.Second
	// asyncAckTimeout fails an AppendAsync whose acknowledgement never
	// comes, so it cannot hold a pending slot forever.
	asyncAckTimeout = 10 * time.Second
	// requestTimeout bounds JetStream requests made with a context that
	// has no deadline.
	requestTimeout = 5 * time.Second
)

// DuplicateWindow is how long the stream remembers Msg-Ids: a retry of a
// lost acknowledgement within this window is recognised as a duplicate
// (given the current expected sequence). A retention limit (Config.MaxAge)
// is at least this long.
const DuplicateWindow = 2 * time.Minute

// PasswordEnv is the environment variable the tools (roomctl, roomstats)
// read the NATS password from when no flag gives it.
const PasswordEnv = "ROOMLOG_NATS_PASSWORD"

// RedactURLs replaces the password of each URL of a comma-separated list
// (a Config.URL, with or without its nats:// scheme) with "xxxxx", for
// printing; a part that does not parse, which may hold one, is replaced
// whole.
func RedactURLs(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		full := p
		if !strings.Contains(p, "://") {
			full = "nats://" + p
		}
		u, err := url.Parse(full)
		switch {
		case err != nil:
			parts[i] = "(unreadable URL)"
		case u.User == nil:
		default:
			if _, ok := u.User.Password(); ok {
				parts[i] = strings.TrimPrefix(u.Redacted(), strings.TrimSuffix(full, p))
			}
		}
	}
	return strings.Join(parts, ",")
}

// KeepForever is the Config.MaxAge that keeps history forever.
const KeepForever time.Duration = -1

// Config configures Open. The zero value of every field means "default";
// Open fills defaults, then validates every field and reports all problems
// at once.
type Config struct {
	// URL is a comma-separated list of external NATS server URLs. Empty
	// means: start an embedded server in this process.
	URL string
	// DataDir is the embedded server's JetStream storage directory.
	// Required when embedded; ignored with URL. Open locks it (the file
	// LOCK inside) until Close: a second Open on the same folder, in this
	// process or another, fails with ErrLocked.
	DataDir string
	// Sync is the embedded server's fsync policy (default
	// SyncModeInterval). An external server's fsync policy is its own
	// configuration (jetstream { sync_interval: always }), so with URL only
	// the default is accepted.
	Sync SyncMode
	// SyncInterval is the fsync period in interval mode; 0 means the
	// server default (2 minutes). Embedded only.
	SyncInterval time.Duration
	// Listen is an optional "host:port" on which the embedded server also
	// accepts TCP clients (other roomd processes, roomctl). Port 0 or -1
	// picks a free port (see ClientURL). Empty means in-process only: no
	// socket is opened at all. Embedded only.
	Listen string
	// User and Password are the NATS credentials of every connection the
	// log opens (User defaults to DefaultUser). Embedded, they are the only
	// credentials the server accepts, for in-process and TCP clients
	// alike, and Password is required with Listen: an open port would let
	// anyone who reaches it write to the log. External, they are sent to
	// the server (credentials in URL work too).
	User     string
	Password string
	// Stream is the JetStream stream name (default DefaultStream).
	Stream string
	// Prefix is the subject prefix, one or more dot-separated tokens
	// (default DefaultPrefix). The stream owns "<Prefix>.>".
	Prefix string
	// Replicas is the stream's replication factor: 1 (the only value an
	// embedded single server supports) or up to 5 on an external cluster,
	// where 3 is the usual choice. 0 (the default) means: whatever the
	// existing stream has, and 1 for a stream Open creates.
	Replicas int
	// ReadOnly opens the log for reading only (tools such as roomctl tail,
	// verify and replay): Open binds to the existing stream and never
	// creates or changes it, and appends are refused.
	ReadOnly bool
	// BindStream binds to the existing stream and never creates or changes
	// it, like ReadOnly, but leaves the rest writable: a consumer (roomstats)
	// keeps its own key-value buckets and consumers on a log roomd made.
	BindStream bool
	// UpdateStream lets Open change an existing stream on an external
	// server whose settings (Replicas, MaxMsgSize, ...) differ from this
	// Config's. Without it Open refuses such a stream with
	// ErrStreamMismatch naming each difference. An embedded server's
	// stream is always brought in line: this process owns it.
	UpdateStream bool
	// MaxMsgSize is the largest message (headers included) the stream
	// accepts (default DefaultMaxMsgSize, at most 64 MiB).
	MaxMsgSize int32
	// MaxAge, when positive, is the retention limit: messages older than
	// it are removed from the start of the log by the server. A replay then
	// starts at the first kept event, verify checks chains from there, and
	// a consumer whose cursor fell off is told so (docs/architecture.md,
	// "Retention"). KeepForever removes any limit; 0 leaves an existing
	// stream's limit as it is (none for a new stream), so that tools that
	// open the log (roomctl, roomstats) never change it.
	MaxAge time.Duration
	// ConnectTimeout bounds server start-up, connecting, and Close's drain
	// (default DefaultConnectTimeout).
	ConnectTimeout time.Duration
	// Logger receives connection events and the embedded server's
	// warnings and errors (default slog.Default()). The server's notices
	// and debug lines are logged at debug level, so they only show when
	// the logger is enabled for it.
	Logger *slog.Logger
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Sync == "" {
		c.Sync = SyncModeInterval
	}
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.MaxMsgSize == 0 {
		c.MaxMsgSize = DefaultMaxMsgSize
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.User == "" {
		c.User = DefaultUser
	}
	return c
}

// validate checks every field of a defaulted Config and returns all the
// problems joined, each wrapping ErrInvalidConfig.
func (c Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	embedded := c.URL == ""
	if embedded {
		if c.DataDir == "" {
			bad("DataDir is required for the embedded server (or set URL)")
		}
		if c.Listen != "" {
			if _, _, err := splitListen(c.Listen); err != nil {
				bad("Listen %q: %v", c.Listen, err)
			}
			if len(c.Password) < MinPasswordLen || len(c.Password) > 72 {
				bad("Listen needs a Password of %d to 72 characters: anyone who reaches an open port could write to the log", MinPasswordLen)
			}
		}
		if c.Replicas > 1 || c.Replicas < 0 {
			bad("Replicas %d: the embedded server is a single node, so only 1 is possible", c.Replicas)
		}
	} else {
		for _, u := range strings.Split(c.URL, ",") {
			if err := checkURL(strings.TrimSpace(u)); err != nil {
				bad("URL %q: %v", RedactURLs(u), err)
			}
		}
		if c.Sync != SyncModeInterval {
			bad("Sync %q applies only to the embedded server; set sync_interval on the external server instead", c.Sync)
		}
		if c.SyncInterval != 0 {
			bad("SyncInterval applies only to the embedded server; set sync_interval on the external server instead")
		}
		if c.Listen != "" {
			bad("Listen applies only to the embedded server")
		}
		if c.Replicas < 0 || c.Replicas > 5 {
			bad("Replicas %d: want 1 to 5 (0: the stream's)", c.Replicas)
		}
	}
	if _, err := ParseSyncMode(string(c.Sync)); err != nil {
		errs = append(errs, err)
	}
	if c.MaxAge < 0 && c.MaxAge != KeepForever {
		bad("MaxAge %v is negative", c.MaxAge)
	}
	if c.MaxAge > 0 && c.MaxAge < DuplicateWindow {
		bad("MaxAge %v is shorter than the log's de-duplication window, %v", c.MaxAge, DuplicateWindow)
	}
	if c.SyncInterval < 0 {
		bad("SyncInterval %v is negative", c.SyncInterval)
	}
	if c.Sync == SyncModeAlways && c.SyncInterval != 0 {
		bad("SyncInterval %v contradicts Sync %q", c.SyncInterval, c.Sync)
	}
	if !validStreamName(c.Stream) {
		bad("Stream %q: want a name without whitespace, '.', '*', '>', '/' or '\\'", c.Stream)
	}
	if !validSubject(c.Prefix, false) || strings.HasPrefix(c.Prefix, "$") || strings.HasPrefix(c.Prefix, "_INBOX") {
		bad("Prefix %q: want dot-separated literal tokens, not starting with '$' or '_INBOX'", c.Prefix)
	}
	if c.MaxMsgSize < 0 || c.MaxMsgSize > maxMsgSizeLimit {
		bad("MaxMsgSize %d: want 1 to %d", c.MaxMsgSize, maxMsgSizeLimit)
	}
	if strings.ContainsAny(c.User, " \t\r\n:@/") {
		bad("User %q: want no whitespace, ':', '@' or '/'", c.User)
	}
	if c.User == ownerUser {
		bad("User %q is the embedded server's owner, kept for the process that embeds it", c.User)
	}
	if c.ConnectTimeout < 0 {
		bad("ConnectTimeout %v is negative", c.ConnectTimeout)
	}
	return errors.Join(errs...)
}

// splitListen parses Listen into the server's Host and Port. Port 0 is
// mapped to the server's "random port" (-1), because nats-server reads 0 as
// "the default port 4222", unlike net.Listen.
func splitListen(listen string) (string, int, error) {
	host, p, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("port %q: want -1 to 65535", p)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// checkURL accepts what nats.Connect accepts: "host:port" or
// scheme://host[:port] with a NATS scheme.
func checkURL(u string) error {
	if u == "" {
		return errors.New("empty server URL")
	}
	if !strings.Contains(u, "://") {
		u = "nats://" + u
	}
	p, err := url.Parse(u)
	if err != nil {
		// Never the parser's words: they quote the URL, or the part of
		// it after the user name (a password holding '/' is read as a
		// host and a port).
		return errors.New("not a URL; percent-encode any '/', '%', '@' or ':' in its password")
	}
	switch p.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("scheme %q: want nats, tls, ws or wss", p.Scheme)
	}
	if p.Hostname() == "" {
		return errors.New("no host")
	}
	return nil
}

// validStreamName follows nats-server's rule for stream names.
func validStreamName(name string) bool {
	return name != "" && len(name) <= 255 && !strings.ContainsAny(name, " \t\r\n.*>/\\")
}

// Log is the room log: one JetStream stream opened on an embedded or
// external NATS server. It is safe for concurrent use.
type Log struct {
	cfg Config
	log *slog.Logger
	srv *server.Server // nil when external
	// watch, if set, is told when the log's connection goes down and up
	// again (WatchConnection).
	watch atomic.Pointer[func(connected bool)]
	// owner is the password of the embedded server's owner user, which
	// this process's own connections log in as (see users); made at
	// random for each start and never written anywhere.
	owner  string
	lock   *dirLock // the data folder's lock; nil when external
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	prefix string

	closeOnce sync.Once
	closeErr  error

	readRetries atomic.Uint64

	// maxAge is the stream's retention limit as last read, at maxAgeAt
	// (UnixNano); maxAgeMu is held while it is read again (MaxAge).
	maxAge, maxAgeAt atomic.Int64
	maxAgeMu         sync.Mutex
}

// Open starts the embedded server (when cfg.URL is empty) or connects to
// the external one, then creates the stream or updates its configuration.
// Config problems are all reported at once, each wrapping
// ErrInvalidConfig; a data folder another log holds is ErrLocked. ctx bounds the stream creation; starting and connecting
// are bounded by cfg.ConnectTimeout.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	l := &Log{cfg: cfg, log: cfg.Logger.With("component", "eventstore"), prefix: cfg.Prefix}
	if err := l.open(ctx); err != nil {
		_ = l.Close()
		return nil, err
	}
	return l, nil
}

func (l *Log) open(ctx context.Context) error {
	if l.cfg.URL == "" {
		lock, err := lockDataDir(l.cfg.DataDir)
		if err != nil {
			return err
		}
		l.lock = lock
		if l.cfg.Password != "" {
			l.owner = rand.Text()
		}
		srv, err := startServer(l.cfg, l.owner)
		if err != nil {
			return err
		}
		l.srv = srv
	}
	nc, err := l.connect("roomlog-eventstore", nats.DrainTimeout(l.cfg.ConnectTimeout),
		nats.DisconnectErrHandler(func(c *nats.Conn, err error) {
			l.tellConnection(false)
			if err != nil {
				l.log.Warn("nats disconnected", "conn", "roomlog-eventstore", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			l.tellConnection(true)
			l.log.Info("nats reconnected", "conn", "roomlog-eventstore", "url", c.ConnectedUrlRedacted())
		}))
	if err != nil {
		return err
	}
	l.nc = nc
	if mp := nc.MaxPayload(); mp > 0 && int64(l.cfg.MaxMsgSize) > mp {
		l.log.Warn("MaxMsgSize exceeds the server's max_payload; larger messages will be refused",
			"max_msg_size", l.cfg.MaxMsgSize, "max_payload", mp)
	}
	l.js, err = jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(asyncMaxPending),
		jetstream.WithPublishAsyncTimeout(asyncAckTimeout),
		jetstream.WithDefaultTimeout(requestTimeout),
	)
	if err != nil {
		return fmt.Errorf("eventstore: jetstream: %w", err)
	}
	return l.openStream(ctx)
}

// denyDeletes is false only in the test of reads that lose records to an
// operator's deletes, which this configuration otherwise rules out, and in
// tests that tamper with the log (AllowTamperingInTests).
var denyDeletes, denyPurge = true, true

// AllowTamperingInTests makes the logs this process creates afterwards
// allow deleting messages and purging, as someone who can edit the data
// folder's files still could: for tests of what auditors detect, called
// from TestMain before any log is opened. Nothing in roomlog calls it.
func AllowTamperingInTests() { denyDeletes, denyPurge = false, false }

// streamConfig is the stream the log lives in.
func streamConfig(cfg Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "roomlog: append-only event log, one subject per aggregate",
		Subjects:    []string{cfg.Prefix + ".>"},
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		// History is kept forever unless MaxAge says otherwise: no limit
		// on count or bytes. Should an operator ever add one, DiscardNew
		// refuses new appends instead of silently dropping the oldest
		// history.
		Retention:         jetstream.LimitsPolicy,
		MaxConsumers:      -1,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxMsgsPerSubject: -1,
		MaxAge:            max(cfg.MaxAge, 0),
		Discard:           jetstream.DiscardNew,
		MaxMsgSize:        cfg.MaxMsgSize,
		Duplicates:        DuplicateWindow,
		// The log is append-only: no message may be deleted and the
		// stream may not be purged, by anyone. The server refuses to turn
		// either off again, so an intruder with credentials cannot either.
		DenyDelete: denyDeletes,
		DenyPurge:  denyPurge,
		// Direct gets (Last, Get, Search) are answered by any replica
		// without going through the stream leader's API queue.
		AllowDirect: true,
		// Atomic batch publish is deliberately not enabled: on a single
		// file-store server each batch builds and fsyncs its own staging
		// store (about 2 ms and 470 batches/s measured).
	}
}

// startServer starts the embedded server and waits until it accepts
// clients with JetStream enabled.
func startServer(cfg Config, owner string) (*server.Server, error) {
	opts := &server.Options{
		ServerName:   "roomlog-embedded",
		JetStream:    true,
		StoreDir:     cfg.DataDir,
		SyncAlways:   cfg.Sync == SyncModeAlways,
		SyncInterval: cfg.SyncInterval,
		DontListen:   cfg.Listen == "",
		MaxPayload:   max(cfg.MaxMsgSize, server.MAX_PAYLOAD_SIZE),
		// The process owns signals and logging, not the library.
		NoSigs: true,
		NoLog:  true,
	}
	// Every client, in-process ones included, logs in; see users.
	var err error
	if opts.Users, err = users(cfg, owner); err != nil {
		return nil, err
	}
	if cfg.Listen != "" {
		host, port, err := splitListen(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("%w: Listen %q: %w", ErrInvalidConfig, cfg.Listen, err)
		}
		opts.Host, opts.Port = host, port
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("eventstore: embedded server: %w", err)
	}
	logger := cfg.Logger.With("component", "nats-server")
	fatal := make(chan string, 1)
	srv.SetLoggerV2(serverLogger{log: logger, fatal: fatal}, logger.Enabled(context.Background(), slog.LevelDebug), false, false)
	srv.Start()
	stop := func(err error) (*server.Server, error) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, err
	}
	// A fatal start-up error (JetStream failing on an unusable DataDir)
	// is only logged: the server stops starting and would never become
	// ready. Watch for it instead of waiting out the whole timeout.
	deadline := time.Now().Add(cfg.ConnectTimeout)
	for !srv.ReadyForConnections(20 * time.Millisecond) {
		select {
		case msg := <-fatal:
			return stop(fmt.Errorf("%w: embedded server: %s", ErrUnavailable, msg))
		default:
		}
		if time.Now().After(deadline) {
			return stop(fmt.Errorf("%w: embedded server not ready after %v", ErrUnavailable, cfg.ConnectTimeout))
		}
	}
	if !srv.JetStreamEnabled() {
		return stop(fmt.Errorf("%w: embedded server started without JetStream (see the log)", ErrUnavailable))
	}
	return srv, nil
}

// users returns the embedded server's users, or none when no Password is
// set (then nothing can reach the server but this process: validate
// requires a Password with Listen). The server keeps only a bcrypt hash of
// each password.
//
// The shared user (cfg.User, cfg.Password) is what other processes log in
// as: other roomd nodes, roomd -role gateway or media, roomctl, operators.
// It may read and append, and create streams and buckets, but not delete or
// reconfigure the log's stream: a stream update alone (a retention of
// one second, then back) would erase the whole log, which DenyDelete and
// DenyPurge in the stream's configuration do not prevent. Only the owner,
// this process's own in-process connections with a password made at
// random for this start, may: it applies -retention and -update-stream.
func users(cfg Config, owner string) ([]*server.User, error) {
	if cfg.Password == "" {
		return nil, nil
	}
	// The lowest cost: the hash guards the password in memory, not
	// against guessing (Password is long and random), and every
	// connection pays for one comparison.
	hash, err := bcrypt.GenerateFromPassword([]byte(cfg.Password), bcrypt.MinCost)
	if err != nil {
		return nil, fmt.Errorf("%w: Password: %w", ErrInvalidConfig, err)
	}
	ownerHash, err := bcrypt.GenerateFromPassword([]byte(owner), bcrypt.MinCost)
	if err != nil {
		return nil, fmt.Errorf("eventstore: owner password: %w", err)
	}
	return []*server.User{{
		Username: cfg.User,
		Password: string(hash),
		Permissions: &server.Permissions{Publish: &server.SubjectPermission{
			Allow: []string{">"},
			// Deleting messages and purging are refused by the stream
			// itself (DenyDelete, DenyPurge), with an answer. Buckets
			// stay the operator's: removing the checkpoint bucket is how a
			// refusing signer starts over (verify reports it missing).
			Deny: []string{"$JS.API.STREAM.DELETE." + cfg.Stream, "$JS.API.STREAM.UPDATE." + cfg.Stream},
		}},
	}, {Username: ownerUser, Password: string(ownerHash)}}, nil
}

// ownerUser is the embedded server's owner (see users).
const ownerUser = "roomlog-owner"

// connect opens a connection to the log's server: in-process when
// embedded (about 5x the throughput of loopback TCP), by URL otherwise.
// It reconnects forever: a log that is down is reported per call as
// ErrUnavailable, not by closing the connection.
func (l *Log) connect(name string, extra ...nats.Option) (*nats.Conn, error) {
	log := l.log.With("conn", name)
	opts := []nats.Option{
		nats.Name(name),
		nats.Timeout(l.cfg.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Warn("nats async error", "subject", sub.Subject, "err", err)
				return
			}
			log.Warn("nats async error", "err", err)
		}),
	}
	switch {
	case l.owner != "":
		opts = append(opts, nats.UserInfo(ownerUser, l.owner))
	case l.cfg.Password != "":
		opts = append(opts, nats.UserInfo(l.cfg.User, l.cfg.Password))
	}
	target := l.cfg.URL
	if l.srv != nil {
		opts = append(opts, nats.InProcessServer(l.srv))
		target = nats.DefaultURL // ignored: the in-process provider is used instead
	}
	nc, err := nats.Connect(target, append(opts, extra...)...)
	if err != nil {
		return nil, classify("connect", err)
	}
	return nc, nil
}

// Close waits (up to ConnectTimeout) for in-flight AppendAsync
// acknowledgements, drains and closes the connection, and shuts the
// embedded server down, waiting for it to stop so its files are closed.
// Connections from NewConn are the caller's to close. Close is safe to call
// more than once; later calls return the first call's result.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		if l.js != nil {
			select {
			case <-l.js.PublishAsyncComplete():
			case <-time.After(l.cfg.ConnectTimeout):
				l.log.Warn("closing with async appends still unacknowledged", "pending", l.js.PublishAsyncPending())
			}
		}
		if l.nc != nil {
			l.closeErr = drain(l.nc, l.cfg.ConnectTimeout)
		}
		if l.srv != nil {
			l.srv.Shutdown()
			l.srv.WaitForShutdown()
		}
		l.lock.release()
	})
	return l.closeErr
}

// drain drains nc and waits until it is closed, closing it outright after
// timeout.
func drain(nc *nats.Conn, timeout time.Duration) error {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		// Closed already, or cut off from a server that is gone: there
		// is nothing left to drain (pending async appends have already
		// failed with a disconnection error).
		if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionReconnecting) {
			return nil
		}
		return fmt.Errorf("eventstore: drain: %w", err)
	}
	select {
	case <-closed:
		return nil
	case <-time.After(timeout):
		nc.Close()
		return fmt.Errorf("%w: drain did not finish in %v", ErrUnavailable, timeout)
	}
}

// StreamName returns the name of the JetStream stream the log lives in
// (for consumers built on NewConn).
func (l *Log) StreamName() string { return l.cfg.Stream }

// MaxMsgSize returns the largest message an append may carry: the
// configured MaxMsgSize, or the server's max_payload where that is smaller
// (an external server's).
func (l *Log) MaxMsgSize() int {
	n := int64(l.cfg.MaxMsgSize)
	if mp := l.nc.MaxPayload(); mp > 0 && mp < n {
		n = mp
	}
	return int(n)
}

// Prefix returns the subject prefix.
func (l *Log) Prefix() string { return l.prefix }

// Server returns the embedded server, or nil when the log is external.
func (l *Log) Server() *server.Server { return l.srv }

// ClientURL returns the URL other processes use to reach this log's server:
// the configured URL when external, the listening address when embedded
// with Listen, and "" when embedded in-process only.
func (l *Log) ClientURL() string {
	switch {
	case l.srv == nil:
		return l.cfg.URL
	case l.cfg.Listen != "":
		return l.srv.ClientURL()
	}
	return ""
}

// ClientConfig returns what another process needs to use this log's server:
// ClientURL, the credentials, the stream and the prefix. URL is empty when
// the server is embedded in-process only.
func (l *Log) ClientConfig() Config {
	return Config{URL: l.ClientURL(), User: l.cfg.User, Password: l.cfg.Password, Stream: l.cfg.Stream,
		Prefix: l.cfg.Prefix, Logger: l.cfg.Logger}
}

// NewConn opens another connection to the log's server (in-process when
// embedded), named name for server-side monitoring. Consumers and
// subscribers need their own connection: a connection's subscriptions share
// one delivery goroutine and one outbound buffer. The caller closes it.
func (l *Log) NewConn(name string) (*nats.Conn, error) {
	return l.connect(name)
}

// serverLogger forwards the embedded server's log lines to slog. Notices
// (start-up banners and such) go to debug level, so the server is quiet
// unless the logger is enabled for debug.
type serverLogger struct {
	log   *slog.Logger
	fatal chan<- string // receives the first fatal message, for startServer
}

func (s serverLogger) logf(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if s.log.Enabled(ctx, level) {
		s.log.Log(ctx, level, fmt.Sprintf(format, v...))
	}
}

func (s serverLogger) Noticef(format string, v ...any) { s.logf(slog.LevelDebug, format, v) }
func (s serverLogger) Warnf(format string, v ...any)   { s.logf(slog.LevelWarn, format, v) }
func (s serverLogger) Errorf(format string, v ...any)  { s.logf(slog.LevelError, format, v) }
func (s serverLogger) Debugf(format string, v ...any)  { s.logf(slog.LevelDebug, format, v) }
func (s serverLogger) Tracef(format string, v ...any)  { s.logf(slog.LevelDebug-4, format, v) }

// Fatalf logs at error level and does not exit: in an embedded server a
// fatal condition (JetStream failing to start) is reported by Open.
func (s serverLogger) Fatalf(format string, v ...any) {
	s.logf(slog.LevelError, format, v)
	select {
	case s.fatal <- fmt.Sprintf(format, v...):
	default:
	}
}

var _ server.Logger = serverLogger{}
