// Command roomstats is an example analytics consumer of the room log: it
// follows every room's events through a durable watermill subscription
// (package projections/consume) and keeps concurrent users per room over
// time, session durations, messages per minute, leaves and kicks by reason
// and streams published. It serves them as Prometheus metrics (/metrics),
// JSON (/stats.json) and a page with plots (/).
//
// Its state and the cursor it reached are saved together in one file
// (-state), so roomstats can be stopped or killed at any point and started
// again without losing or double-counting an event.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/roomlog/roomlog/cmd/internal/atomicfile"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/projections/consume"
	"github.com/roomlog/roomlog/projections/cursor"
	"github.com/roomlog/roomlog/projections/stats"
)

const usage = `usage: roomstats [flags]

Follows every room's events from a roomd's NATS port and serves analytics:
  /metrics     Prometheus metrics
  /stats.json  the whole state, with the cursor it reached
  /            a page with plots (no external resources)

The state is saved with its cursor in -state; a restarted roomstats resumes
exactly after it. It keeps the last -keep of the log's time (per-minute
figures, rooms that have had no member since); the totals count everything. A message it cannot read is retried -max-attempts times,
then reported and parked (kept in the bucket roomlog-parked-<name>).

flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := exitCode(run(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr)
	stop()
	os.Exit(code)
}

// exitCode reports err on errOut and says how roomstats exits: 0 when it
// stopped cleanly or printed the help asked for (-h), 2 on bad usage, 1
// when it failed.
func exitCode(err error, errOut io.Writer) int {
	var bad usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &bad):
		fmt.Fprintf(errOut, "roomstats: %v\n\n%s", bad.err, bad.usage)
		return 2
	}
	fmt.Fprintln(errOut, "roomstats:", err)
	return 1
}

// usageError is a bad flag: it carries the usage, to print after it.
type usageError struct {
	err   error
	usage string
}

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func run(ctx context.Context, args []string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("roomstats", flag.ContinueOnError)
	var usageText bytes.Buffer
	fs.SetOutput(&usageText)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	natsURL := fs.String("nats", envOr("ROOMLOG_NATS_URL", "nats://127.0.0.1:4222"), "NATS URL of a running roomd (ROOMLOG_NATS_URL)")
	// The usage shows a URL's password as "xxxxx".
	fs.Lookup("nats").DefValue = eventstore.RedactURLs(*natsURL)
	// The password's default is read after parsing, so that -h never
	// prints it; -nats-password "" still means none.
	password := fs.String("nats-password", "",
		`password of NATS user "roomlog" (a development roomd keeps it in <data>/nats-password) (default $`+eventstore.PasswordEnv+`)`)
	name := fs.String("name", "roomstats", "name of the durable consumer (one per independent roomstats)")
	statePath := fs.String("state", "roomstats-state.json", "file holding the state and its cursor")
	httpAddr := fs.String("http", "127.0.0.1:7071", `where to serve /metrics, /stats.json and / ("off": nowhere)`)
	saveEvery := fs.Int("save-every", 10_000, "save the state at least every this many events")
	maxAttempts := fs.Int("max-attempts", 5, "tries of a message that fails before it is parked")
	expired := fs.Bool("skip-expired", false, "if retention removed events after the saved cursor, carry on from the first kept one")
	keep := fs.Duration("keep", stats.DefaultKeep,
		"how far back, in the log's time, to keep per-minute figures and rooms that have had no member since (0: everything)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			// Asked for: the usage goes to stdout, and it is no failure.
			if _, werr := out.Write(usageText.Bytes()); werr != nil {
				return werr
			}
			return flag.ErrHelp
		}
		// The flag package wrote the error and the usage: keep the usage,
		// for exitCode to print after the error.
		usageText.Reset()
		fs.Usage()
		return usageError{err, usageText.String()}
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0)), usageText.String()}
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "nats-password" })
	if !given {
		*password = os.Getenv(eventstore.PasswordEnv)
	}
	var level slog.Level
	bad := func(format string, a ...any) error {
		fs.Usage()
		return usageError{fmt.Errorf(format, a...), usageText.String()}
	}
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return bad("-log-level: %v", err)
	}
	if *saveEvery <= 0 || *maxAttempts <= 0 {
		return bad("-save-every (%d) and -max-attempts (%d) must be positive", *saveEvery, *maxAttempts)
	}
	if *keep < 0 || (*keep > 0 && *keep < time.Minute) {
		return bad("-keep (%v) must be 0 or at least a minute", *keep)
	}
	logger := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: level}))

	st, err := load(*statePath)
	if err != nil {
		return err
	}
	st.Keep = *keep
	srv := &server{stats: st}
	// roomstats binds to the stream as roomd made it, and never creates or
	// changes it (it only keeps its consumer and parked bucket).
	log, err := eventstore.Open(ctx, eventstore.Config{URL: *natsURL, Password: *password, BindStream: true, Logger: logger})
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped (SIGTERM) while starting: nothing was done
		}
		return err
	}
	defer log.Close()
	c, err := consume.New(consume.Config{Log: log, Name: *name, After: st.Cursor, SaveEvery: *saveEvery,
		MaxAttempts: *maxAttempts, Expired: *expired, Logger: logger,
		Handle: func(_ context.Context, e cursor.Event) error {
			srv.mu.Lock()
			srv.stats.Fold(e)
			srv.mu.Unlock()
			return nil
		},
		Save: func(_ context.Context, c cursor.Cursor) error {
			srv.mu.Lock()
			if srv.stats.Cursor.Less(c) {
				srv.stats.Cursor = c // past a parked message
			}
			b, err := json.Marshal(srv.stats)
			srv.mu.Unlock()
			if err != nil {
				return err
			}
			return atomicfile.Write(*statePath, b)
		},
		Parked: func(p consume.Parked) {
			srv.mu.Lock()
			srv.parked = append(srv.parked, p)
			srv.mu.Unlock()
		}})
	if err != nil {
		return err
	}
	if *httpAddr != "off" {
		ln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			return err
		}
		hs := &http.Server{Handler: srv.routes(), ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(ln)
		defer hs.Close()
		fmt.Fprintf(out, "roomstats: serving http://%s/ ; resuming after cursor %s\n", ln.Addr(), st.Cursor)
	}
	return c.Run(ctx)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// load reads the saved state, or returns empty stats if there is none.
func load(path string) (*stats.Stats, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return stats.New(), nil
	}
	if err != nil {
		return nil, err
	}
	st := stats.New()
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("state %s: %w", path, err)
	}
	return st, nil
}

// server serves the stats.
type server struct {
	mu     sync.Mutex
	stats  *stats.Stats
	parked []consume.Parked
}
