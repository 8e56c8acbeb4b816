// Command roomload measures roomlog against raw baselines measured in the
// same run and prints the results as Markdown (docs/benchmarks.md is made of
// its output). Every figure is the median of several rounds: the machines it
// runs on are shared and noisy.
//
//	go run ./cmd/roomload core    [-rooms 1000] [-duration 5s] [-rounds 5] [-sync interval,always]
//	go run ./cmd/roomload rebuild [-events 1000000] [-rooms 1000] [-rounds 5]
//	go run ./cmd/roomload login   [-sessions 1000] [-rate 500] [-duration 10s] [-rounds 3]
//	go run ./cmd/roomload fanout  [-members 1000] [-window 8] [-duration 5s] [-rounds 3]
//	go run ./cmd/roomload history [-messages 100000] [-noise 1] [-page 20] [-rounds 5]
//	go run ./cmd/roomload media   [-scenarios 1x1,1x10,1x50,1x100,4x10] [-rate 1000] [-duration 3s] [-rounds 3]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/cmd/roomload/loadgen"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/history"
	"github.com/roomlog/roomlog/media/mediabench"
)

func main() {
	if mediabench.Forwarding() {
		// "media" re-executes this program as its forwarder process.
		if err := mediabench.ServeForwarder(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "roomload forwarder:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) < 2 {
		usage()
	}
	ctx := context.Background()
	var err error
	switch os.Args[1] {
	case "core", "rebuild", "history", "serve-node":
		// These measure a node's work in this process: with a node's
		// collector setting.
		node.TuneGC()
	case "login", "fanout":
		// This process only generates load (the servers run in their own):
		// its collector must not pause the clocks that measure them.
		measuringGC()
	}
	switch os.Args[1] {
	case "core":
		err = core(ctx, os.Args[2:])
	case "rebuild":
		err = rebuild(ctx, os.Args[2:])
	case "history":
		err = historyBench(ctx, os.Args[2:])
	case "login":
		err = login(ctx, os.Args[2:])
	case "fanout":
		err = fanout(ctx, os.Args[2:])
	case "media":
		err = mediaBench(ctx, os.Args[2:])
	case "serve-node": // the child processes of login and fanout
		err = serveNode(ctx, os.Args[2:])
	case "serve-raw":
		err = serveRaw(ctx, os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "roomload:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: roomload <benchmark> [flags]

benchmarks:
  core     engine commands/s (decide + append) vs raw JetStream appends with the same headers
  rebuild  projection rebuild vs a raw ordered-consumer read of the same stream
  login    login -> Logined latency with 1,000 connected sessions vs raw JetStream publish latency
  fanout   broadcast fan-out to a 1,000-member room vs a raw WebSocket broadcast server
  history  message history paging over a room of 100,000 broadcasts vs raw direct gets of the same subject
  media    SFU forwarded packets/s, forwarder CPU per packet and per core, memory vs a bare Pion forwarding loop`)
	os.Exit(2)
}

// measuringGC keeps the load generator's collector out of its measurements:
// off until the heap reaches 4 GiB (GOGC, when set, decides instead).
func measuringGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(-1)
		debug.SetMemoryLimit(4 << 30)
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openLog starts an embedded server with storage in a fresh temporary folder.
func openLog(ctx context.Context, mode eventstore.SyncMode) (*eventstore.Log, func(), error) {
	dir, err := os.MkdirTemp("", "roomload-*")
	if err != nil {
		return nil, nil, err
	}
	log, err := eventstore.Open(ctx, eventstore.Config{DataDir: dir, Sync: mode, Logger: quiet()})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return log, func() { log.Close(); os.RemoveAll(dir) }, nil
}

func newEngine(log *eventstore.Log) (*engine.Engine, error) {
	d, err := domain.NewDecider(domain.Config{Default: loadgen.Policy()})
	if err != nil {
		return nil, err
	}
	return engine.New(engine.Config{Log: log, Decider: d, Logger: quiet()})
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

func header(what string) {
	fmt.Printf("<!-- %s, %s, %d CPUs, %s -->\n", what, runtime.Version(), runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339))
}

func core(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("core", flag.ExitOnError)
	rooms := fs.Int("rooms", 1000, "rooms (subjects), one command or append in flight in each")
	dur := fs.Duration("duration", 5*time.Second, "length of each measurement")
	rounds := fs.Int("rounds", 5, "rounds; each alternates raw and engine, and medians are reported")
	syncs := fs.String("sync", "interval,always", "durability modes to measure")
	fs.Parse(args)
	header("roomload core")
	fmt.Printf("| durability | raw appends/s (pipelined) | raw appends/s (goroutine per room) | engine commands/s | engine / raw pipelined | engine / raw per room |\n")
	fmt.Printf("|---|---:|---:|---:|---:|---:|\n")
	for _, m := range strings.Split(*syncs, ",") {
		mode, err := eventstore.ParseSyncMode(m)
		if err != nil {
			return err
		}
		log, done, err := openLog(ctx, mode)
		if err != nil {
			return err
		}
		e, err := newEngine(log)
		if err != nil {
			done()
			return err
		}
		sessions, err := loadgen.Setup(ctx, e, *rooms)
		if err != nil {
			done()
			return err
		}
		var raw, perRoom, eng, r1, r2 []float64
		for range *rounds {
			a, err := loadgen.RawAppends(ctx, log, *rooms, *dur)
			if err != nil {
				done()
				return err
			}
			b, err := loadgen.RawAppendsPerRoom(ctx, log, *rooms, *dur)
			if err != nil {
				done()
				return err
			}
			c := loadgen.EngineCommands(ctx, e, sessions, *dur)
			if c.Failures > 0 {
				done()
				return fmt.Errorf("%d engine commands failed", c.Failures)
			}
			raw, perRoom, eng = append(raw, a.Rate()), append(perRoom, b.Rate()), append(eng, c.Rate())
			r1, r2 = append(r1, c.Rate()/a.Rate()), append(r2, c.Rate()/b.Rate())
			fmt.Fprintf(os.Stderr, "%s round: %v | %v | %v\n", mode, a, b, c)
		}
		done()
		fmt.Printf("| %s | %.0f | %.0f | %.0f | **%.2f** | **%.2f** |\n", mode, median(raw), median(perRoom), median(eng), median(r1), median(r2))
	}
	return nil
}

func rebuild(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("rebuild", flag.ExitOnError)
	events := fs.Int("events", 1_000_000, "events to write before measuring")
	rooms := fs.Int("rooms", 1000, "rooms the events are spread over")
	rounds := fs.Int("rounds", 5, "rounds; each reads raw then rebuilds, and medians are reported")
	fs.Parse(args)
	log, done, err := openLog(ctx, eventstore.SyncModeInterval)
	if err != nil {
		return err
	}
	defer done()
	e, err := newEngine(log)
	if err != nil {
		return err
	}
	start := time.Now()
	nEvents, nMsgs, err := loadgen.Fill(ctx, e, *rooms, *events)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %d events in %d messages in %v\n", nEvents, nMsgs, time.Since(start).Round(time.Millisecond))
	var raw, rb, ratio []float64
	hash := ""
	for range *rounds {
		a, err := loadgen.RawRead(ctx, log)
		if err != nil {
			return err
		}
		b, h, err := loadgen.Rebuild(ctx, log)
		if err != nil {
			return err
		}
		if hash != "" && h != hash {
			return errors.New("two rebuilds of the same log gave different states")
		}
		hash = h
		raw, rb, ratio = append(raw, a.Rate()), append(rb, b.Rate()), append(ratio, b.Rate()/a.Rate())
		fmt.Fprintf(os.Stderr, "round: %v | %v\n", a, b)
	}
	perMsg := float64(nEvents) / float64(nMsgs)
	header("roomload rebuild")
	fmt.Printf("| events | messages | raw read msgs/s | rebuild msgs/s | rebuild events/s | rebuild / raw | state hash |\n")
	fmt.Printf("|---:|---:|---:|---:|---:|---:|---|\n")
	fmt.Printf("| %d | %d | %.0f | %.0f | %.0f | **%.2f** | `%s` |\n", nEvents, nMsgs, median(raw), median(rb), median(rb)*perMsg,
		median(ratio), hash[:16])
	return nil
}

func historyBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("history", flag.ExitOnError)
	messages := fs.Int("messages", 100_000, "broadcasts in the room")
	noise := fs.Int("noise", 1, "another room's broadcasts per message of the room, interleaved in the stream")
	page := fs.Int("page", 20, "messages per history page")
	rounds := fs.Int("rounds", 5, "rounds; each alternates raw and history, and medians are reported")
	fs.Parse(args)
	log, done, err := openLog(ctx, eventstore.SyncModeInterval)
	if err != nil {
		return err
	}
	defer done()
	e, err := newEngine(log)
	if err != nil {
		return err
	}
	start := time.Now()
	key, err := loadgen.FillHistory(ctx, e, *messages, *noise)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %d + %d broadcasts in %v\n", *messages, *messages**noise, time.Since(start).Round(time.Millisecond))
	reader, err := history.New(history.Config{Log: log})
	if err != nil {
		return err
	}
	subject := log.Subject(string(key.App), string(key.Kind), key.ID)
	ms := func(d []time.Duration) []float64 {
		out := make([]float64, len(d))
		for i, x := range d {
			out[i] = float64(x) / float64(time.Millisecond)
		}
		return out
	}
	var first, rawFirst, pagesPerS, msgsPerS, rawMsgs, ratio []float64
	for range *rounds {
		rf, err := loadgen.RawFirstPage(ctx, log, subject, 50)
		if err != nil {
			return err
		}
		hf, err := loadgen.HistoryFirstPage(ctx, reader, key, *page, 50)
		if err != nil {
			return err
		}
		raw, err := loadgen.RawSubjectRead(ctx, log, subject)
		if err != nil {
			return err
		}
		pages, err := loadgen.HistoryPages(ctx, reader, key, *page, *messages)
		if err != nil {
			return err
		}
		m := float64(*messages) / pages.Elapsed.Seconds()
		first, rawFirst = append(first, median(ms(hf))), append(rawFirst, median(ms(rf)))
		pagesPerS, msgsPerS, rawMsgs = append(pagesPerS, pages.Rate()), append(msgsPerS, m), append(rawMsgs, raw.Rate())
		ratio = append(ratio, m/raw.Rate())
		fmt.Fprintf(os.Stderr, "round: first page %.3f ms (raw last get %.3f ms) | %v | %v\n", median(ms(hf)), median(ms(rf)), pages, raw)
	}
	header("roomload history")
	fmt.Printf("| messages in the room | other messages | page | first page ms | raw last-message get ms | pages/s paging back | history msgs/s | raw forward read msgs/s | history / raw |\n")
	fmt.Printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	fmt.Printf("| %d | %d | %d | %.2f | %.3f | %.0f | %.0f | %.0f | **%.2f** |\n", *messages, *messages**noise, *page,
		median(first), median(rawFirst), median(pagesPerS), median(msgsPerS), median(rawMsgs), median(ratio))
	return nil
}
