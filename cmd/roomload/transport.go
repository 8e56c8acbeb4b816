package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/cmd/roomload/loadgen"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/gateway"
)

// startNode starts a whole roomd node in this process, on loopback.
func startNode(ctx context.Context, mode eventstore.SyncMode) (*node.Node, func(string) string, func(), error) {
	dir, err := os.MkdirTemp("", "roomload-node-*")
	if err != nil {
		return nil, nil, nil, err
	}
	secret := []byte("roomload-secret-0123456789abcdef")
	n, err := node.Start(ctx, node.Config{Log: eventstore.Config{DataDir: dir, Sync: mode}, Secret: secret,
		Policy: domain.Config{Default: loadgen.Policy()}, HTTPListen: "127.0.0.1:0", SnapshotEvery: -1,
		Gateway: gateway.Config{RequestsPerSecond: 1e6, RequestBurst: 1e6, QueueSize: 8192}, Logger: quiet()})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	token := func(user string) string {
		t, err := n.Signer.Mint(auth.Claims{App: string(loadgen.App), User: user, AllRooms: true, Publish: true,
			ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			panic(err)
		}
		return t
	}
	return n, token, func() { n.Close(); os.RemoveAll(dir) }, nil
}

func login(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("login", flag.ExitOnError)
	sessions := fs.Int("sessions", 1000, "connected sessions")
	rate := fs.Float64("rate", 500, "logins per second in all")
	dur := fs.Duration("duration", 10*time.Second, "length of each measurement")
	rounds := fs.Int("rounds", 3, "rounds; medians are reported")
	fs.Parse(args)
	n, token, done, err := startNode(ctx, eventstore.SyncModeInterval)
	if err != nil {
		return err
	}
	defer done()
	var l50, l99, r50, r99 []float64
	for range *rounds {
		raw, err := loadgen.PublishLatency(ctx, n.Log, *sessions, *rate, *dur)
		if err != nil {
			return err
		}
		lat, err := loadgen.LoginLatency(ctx, n.HTTPAddr(), token, *sessions, *rate, *dur)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "round: raw publish %v | login %v\n", raw, lat)
		r50, r99 = append(r50, ms(raw.P50)), append(r99, ms(raw.P99))
		l50, l99 = append(l50, ms(lat.P50)), append(l99, ms(lat.P99))
	}
	header("roomload login")
	fmt.Printf("| sessions | logins/s | raw JetStream publish p50 / p99 (ms) | login → Logined p50 / p99 (ms) |\n")
	fmt.Printf("|---:|---:|---:|---:|\n")
	fmt.Printf("| %d | %.0f | %.3f / %.3f | **%.3f / %.3f** |\n", *sessions, *rate, median(r50), median(r99), median(l50), median(l99))
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
	fs.Parse(args)
	n, token, done, err := startNode(ctx, eventstore.SyncModeInterval)
	if err != nil {
		return err
	}
	defer done()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	raw := &http.Server{Handler: loadgen.NewRawBroadcastServer()}
	go raw.Serve(ln)
	defer raw.Close()
	header("roomload fanout")
	fmt.Printf("| members | load | raw WebSocket deliveries/s | raw p50 / p99 (ms) | roomlog deliveries/s | roomlog p50 / p99 (ms) | roomlog / raw deliveries |\n")
	fmt.Printf("|---:|---|---:|---:|---:|---:|---:|\n")
	for _, load := range []struct {
		name string
		rate float64
	}{{"saturated (" + fmt.Sprint(*window) + " in flight)", 0}, {fmt.Sprintf("paced (%.0f broadcasts/s)", *paced), *paced}} {
		var rawRate, rate, ratio, rawP50, rawP99, p50, p99 []float64
		for range *rounds {
			b, err := loadgen.RoomFanOut(ctx, ln.Addr().String(), func(string) string { return "" }, *members, *window, load.rate, *dur)
			if err != nil {
				return fmt.Errorf("raw: %w", err)
			}
			r, err := loadgen.RoomFanOut(ctx, n.HTTPAddr(), token, *members, *window, load.rate, *dur)
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
