// Command roomd runs a roomlog node: an embedded NATS server with JetStream
// (or an external cluster), the engine, the projections, the reactor and the
// timekeeper, and the transports in front of them.
//
// Every flag has an environment variable (ROOMLOG_ and the flag name in
// capitals, dashes as underscores); a flag on the command line wins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// options are roomd's settings.
type options struct {
	data       string
	natsURL    string
	natsListen string
	sync       string
	replicas   int
	multiRoom  bool
	maxRooms   int
	logLevel   string
}

func parse(args []string, env func(string) string) (options, error) {
	var o options
	fs := flag.NewFlagSet("roomd", flag.ContinueOnError)
	str := func(p *string, name, def, usage string) {
		if v := env(envName(name)); v != "" {
			def = v
		}
		fs.StringVar(p, name, def, usage+" ("+envName(name)+")")
	}
	str(&o.data, "data", "roomlog-data", "folder of the embedded JetStream store")
	str(&o.natsURL, "nats-url", "", "external NATS URL(s); set, no server is embedded")
	str(&o.natsListen, "nats-listen", "127.0.0.1:4222", `embedded server's client port for roomctl and other nodes ("off": none)`)
	str(&o.sync, "sync", "interval", `embedded durability: "interval" (fsync every 2 min) or "always" (every write)`)
	str(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	replicas, maxRooms, multi := "1", "5", "true"
	for _, v := range []struct {
		p    *string
		name string
	}{{&replicas, "replicas"}, {&maxRooms, "max-rooms"}, {&multi, "multi-room"}} {
		if e := env(envName(v.name)); e != "" {
			*v.p = e
		}
	}
	var err error
	ri, _ := strconv.Atoi(replicas)
	mi, _ := strconv.Atoi(maxRooms)
	mb, _ := strconv.ParseBool(multi)
	fs.IntVar(&o.replicas, "replicas", ri, "stream replicas in an external cluster ("+envName("replicas")+")")
	fs.IntVar(&o.maxRooms, "max-rooms", mi, "rooms one multi-room session may be in ("+envName("max-rooms")+")")
	fs.BoolVar(&o.multiRoom, "multi-room", mb, "allow multi-room sessions ("+envName("multi-room")+")")
	if err = fs.Parse(args); err != nil {
		return o, err
	}
	return o, nil
}

func envName(flag string) string {
	return "ROOMLOG_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func main() {
	o, err := parse(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		os.Exit(2)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "roomd: -log-level:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := run(o, logger); err != nil {
		logger.Error("roomd stopped", "err", err)
		os.Exit(1)
	}
}

func run(o options, logger *slog.Logger) error {
	mode, err := eventstore.ParseSyncMode(o.sync)
	if err != nil {
		return err
	}
	policy := domain.DefaultPolicy()
	policy.MultiRoom, policy.MaxRooms = o.multiRoom, o.maxRooms
	cfg := node.Config{Policy: domain.Config{Default: policy}, Logger: logger,
		Log: eventstore.Config{URL: o.natsURL, Replicas: o.replicas}}
	if o.natsURL == "" {
		cfg.Log.DataDir, cfg.Log.Sync = o.data, mode
		if o.natsListen != "off" {
			cfg.Log.Listen = o.natsListen
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	n, err := node.Start(startCtx, cfg)
	cancel()
	if err != nil {
		return err
	}
	logger.Info("roomd is running", "log", describe(o, n), "multi_room", o.multiRoom, "max_rooms", o.maxRooms)
	<-ctx.Done()
	logger.Info("roomd is stopping")
	return n.Close()
}

func describe(o options, n *node.Node) string {
	if o.natsURL != "" {
		return "external NATS at " + o.natsURL
	}
	s := fmt.Sprintf("embedded JetStream in %s (sync %s)", o.data, o.sync)
	if u := n.Log.ClientURL(); u != "" {
		s += ", NATS clients at " + u
	}
	return s
}
