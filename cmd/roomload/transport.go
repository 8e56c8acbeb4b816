package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/cmd/roomload/loadgen"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/gateway"
)

// loadSecret signs the tokens of the nodes the transport benchmarks start.
var loadSecret = []byte("roomload-secret-0123456789abcdef")

// loadPassword is the NATS password of the nodes the transport benchmarks
// start (loopback only).
const loadPassword = "roomload-nats-password"

// startNode starts a whole roomd node in this process, on loopback, its
// NATS server also listening on natsListen ("": in-process only), with
// Go's profiler on a loopback listener of its own if pprof is set.
func startNode(ctx context.Context, mode eventstore.SyncMode, natsListen string, pprof bool) (*node.Node, func(), error) {
	pprofListen := ""
	if pprof {
		pprofListen = "127.0.0.1:0"
	}
	dir, err := os.MkdirTemp("", "roomload-node-*")
	if err != nil {
		return nil, nil, err
	}
	n, err := node.Start(ctx, node.Config{Log: eventstore.Config{DataDir: dir, Sync: mode, Listen: natsListen, Password: loadPassword},
		Secret: loadSecret, Policy: domain.Config{Default: loadgen.Policy()}, HTTPListen: "127.0.0.1:0", PprofListen: pprofListen,
		SnapshotEvery: -1, Gateway: gateway.Config{RequestsPerSecond: 1e6, RequestBurst: 1e6, QueueSize: 8192},
		Logger: quiet()})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return n, func() { n.Close(); os.RemoveAll(dir) }, nil
}

// tokens returns a minter of client tokens signed with loadSecret.
func tokens() (func(string) string, error) {
	signer, err := auth.NewSigner(auth.Config{Secret: loadSecret})
	if err != nil {
		return nil, err
	}
	return func(user string) string {
		t, err := signer.Mint(auth.Claims{App: string(loadgen.App), User: user, AllRooms: true, Publish: true,
			ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			panic(err)
		}
		return t
	}, nil
}

// The transport benchmarks measure servers in processes of their own, as in
// production, where the clients are elsewhere: in one process, the load
// generator's thousand clients would share the server's garbage collector
// and double its heap. "serve-node" and "serve-raw" are those processes:
// they print "ready" and their addresses, and run until stdin closes.

// clientProcsFlag is the load generator's share of the machine. On a small
// machine the clients and the server under test share the cores; left to
// Go's default, the clients' thousand readers take as many cores as the
// server, and the kernel's time slicing between the two processes, not the
// server, makes the latency tail (measured on 2 cores: the server's own
// request-to-written p99 went from 1.3 to 0.97 ms with the clients on one).
// The children are started before it applies, so servers keep Go's default.
func clientProcsFlag(fs *flag.FlagSet) *int {
	return fs.Int("client-procs", 1, "GOMAXPROCS of the load generator's clients (the servers keep Go's default)")
}

// serveNode runs a node until stdin closes.
func serveNode(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve-node", flag.ExitOnError)
	sync := fs.String("sync", "interval", "durability: interval or always")
	pprof := fs.Bool("pprof", false, "serve Go's profiler under /debug/pprof/ on a loopback listener (its address ends the ready line)")
	fs.Parse(args)
	mode, err := eventstore.ParseSyncMode(*sync)
	if err != nil {
		return err
	}
	n, done, err := startNode(ctx, mode, "127.0.0.1:0", *pprof)
	if err != nil {
		return err
	}
	defer done()
	fmt.Printf("ready %s %s %s\n", n.HTTPAddr(), n.Log.ClientURL(), n.PprofAddr())
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// serveRaw runs the raw WebSocket broadcast baseline until stdin closes.
func serveRaw(context.Context, []string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: loadgen.NewRawBroadcastServer()}
	go srv.Serve(ln)
	defer srv.Close()
	fmt.Printf("ready %s\n", ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// spawn runs this program with args in a child process and returns the
// addresses its ready line gives; stop ends it.
func spawn(args ...string) (addrs []string, stop func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	stop = func() { stdin.Close(); cmd.Wait() }
	line, err := bufio.NewReader(stdout).ReadString('\n')
	fields := strings.Fields(line)
	if err != nil || len(fields) < 2 || fields[0] != "ready" {
		stop()
		return nil, nil, fmt.Errorf("%s: no ready line (%q, %v)", args[0], line, err)
	}
	return fields[1:], stop, nil
}

func login(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("login", flag.ExitOnError)
	sessions := fs.Int("sessions", 1000, "connected sessions")
	rate := fs.Float64("rate", 500, "logins per second in all")
	dur := fs.Duration("duration", 10*time.Second, "length of each measurement")
	rounds := fs.Int("rounds", 5, "rounds; medians are reported")
	procs := clientProcsFlag(fs)
	pprof := fs.Bool("pprof", false, "serve the node's profiler (its address is printed) to see where a round's time goes")
	fs.Parse(args)
	addrs, stop, err := spawn("serve-node", fmt.Sprintf("-pprof=%t", *pprof))
	if err != nil {
		return err
	}
	defer stop()
	if *pprof {
		fmt.Fprintf(os.Stderr, "node profiler: http://%s/debug/pprof/\n", addrs[2])
	}
	runtime.GOMAXPROCS(*procs)
	// The raw baseline publishes from this process to the node's JetStream,
	// over loopback TCP like the clients' logins.
	log, err := eventstore.Open(ctx, eventstore.Config{URL: addrs[1], Password: loadPassword, Logger: quiet()})
	if err != nil {
		return err
	}
	defer log.Close()
	token, err := tokens()
	if err != nil {
		return err
	}
	var r50, r99, l50, l99, f50, f99, n50, n99 []float64
	for range *rounds {
		raw, err := loadgen.PublishLatency(ctx, log, *sessions, *rate, *dur)
		if err != nil {
			return err
		}
		// The node's own histograms around the logins say how much of a
		// login's time the server spent in its commands (a tail that is
		// not there is scheduling, the network or the clients), and its
		// GC count and allocations what the round (dialing included) cost
		// its collector.
		before, err := scrapeNode(ctx, addrs[0])
		if err != nil {
			return err
		}
		lat, err := loadgen.LoginLatency(ctx, addrs[0], token, *sessions, *rate, *dur)
		if err != nil {
			return err
		}
		after, err := scrapeNode(ctx, addrs[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "round: raw publish %v | login %v | first %v | later %v | %s\n", raw, lat.All, lat.First, lat.Later,
			serverSide(before, after, lat.All.N))
		r50, r99 = append(r50, ms(raw.P50)), append(r99, ms(raw.P99))
		l50, l99 = append(l50, ms(lat.All.P50)), append(l99, ms(lat.All.P99))
		f50, f99 = append(f50, ms(lat.First.P50)), append(f99, ms(lat.First.P99))
		n50, n99 = append(n50, ms(lat.Later.P50)), append(n99, ms(lat.Later.P99))
	}
	header("roomload login")
	fmt.Printf("| sessions | logins/s | raw JetStream publish p50 / p99 (ms) | login → Logined p50 / p99 (ms) | first logins p50 / p99 (ms) | later logins p50 / p99 (ms) |\n")
	fmt.Printf("|---:|---:|---:|---:|---:|---:|\n")
	fmt.Printf("| %d | %.0f | %.3f / %.3f | **%.3f / %.3f** | %.3f / %.3f | %.3f / %.3f |\n", *sessions, *rate,
		median(r50), median(r99), median(l50), median(l99), median(f50), median(f99), median(n50), median(n99))
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fanout(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fanout", flag.ExitOnError)
	members := fs.Int("members", 1000, "members of the room")
	window := fs.Int("window", 8, "broadcasts in flight from the sender")
	dur := fs.Duration("duration", 5*time.Second, "length of each measurement")
	rounds := fs.Int("rounds", 3, "rounds; medians are reported")
	paced := fs.Float64("paced", 20, "broadcasts per second of the paced (latency) measurement")
	procs := clientProcsFlag(fs)
	fs.Parse(args)
	node, stopNode, err := spawn("serve-node")
	if err != nil {
		return err
	}
	defer stopNode()
	raw, stopRaw, err := spawn("serve-raw")
	if err != nil {
		return err
	}
	defer stopRaw()
	runtime.GOMAXPROCS(*procs)
	token, err := tokens()
	if err != nil {
		return err
	}
	header("roomload fanout")
	fmt.Printf("| members | load | raw WebSocket deliveries/s | raw p50 / p99 (ms) | roomlog deliveries/s | roomlog p50 / p99 (ms) | roomlog / raw deliveries |\n")
	fmt.Printf("|---:|---|---:|---:|---:|---:|---:|\n")
	for _, load := range []struct {
		name string
		rate float64
	}{{"saturated (" + fmt.Sprint(*window) + " in flight)", 0}, {fmt.Sprintf("paced (%.0f broadcasts/s)", *paced), *paced}} {
		var rawRate, rate, ratio, rawP50, rawP99, p50, p99 []float64
		for range *rounds {
			b, err := loadgen.RoomFanOut(ctx, raw[0], func(string) string { return "" }, *members, *window, load.rate, *dur)
			if err != nil {
				return fmt.Errorf("raw: %w", err)
			}
			r, err := loadgen.RoomFanOut(ctx, node[0], token, *members, *window, load.rate, *dur)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "%s round: raw %d deliveries %.0f/s %v | roomlog %d deliveries %.0f/s %v\n",
				load.name, b.Deliveries, b.Rate(), b.Latency, r.Deliveries, r.Rate(), r.Latency)
			rawRate, rate, ratio = append(rawRate, b.Rate()), append(rate, r.Rate()), append(ratio, r.Rate()/b.Rate())
			rawP50, rawP99 = append(rawP50, ms(b.Latency.P50)), append(rawP99, ms(b.Latency.P99))
			p50, p99 = append(p50, ms(r.Latency.P50)), append(p99, ms(r.Latency.P99))
		}
		fmt.Printf("| %d | %s | %.0f | %.1f / %.1f | %.0f | %.1f / %.1f | **%.2f** |\n", *members, load.name, median(rawRate),
			median(rawP50), median(rawP99), median(rate), median(p50), median(p99), median(ratio))
	}
	return nil
}
