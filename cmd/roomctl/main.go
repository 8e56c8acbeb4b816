// Command roomctl is roomlog's operator tool: it mints tokens, replays and
// verifies room histories, tails the event streams, and kicks users or
// destroys rooms through the admin API.
//
// Commands that read the log connect to a roomd's NATS port (-nats, default
// nats://127.0.0.1:4222), or open a stopped node's data folder (-data).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, out io.Writer) error
}

func commands() []command {
	return []command{
		{"verify", "check every history's chain, the cross-room invariants and roomd's signed checkpoints; name what was changed", verify},
		{"replay", "a room's state at any sequence or time, its timeline, or the diff between two points", replay},
		{"tail", "print events as JSON lines, each with the cursor to resume after, and follow", tail},
		{"kick", "kick a user out of a room (admin API)", kick},
		{"destroy", "destroy a room (admin API)", destroy},
		{"rooms", "list the rooms of an app, or show one (admin API)", rooms},
		{"token", "mint a client or admin token signed with the server's secret", token},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, out, errOut io.Writer) int {
	cmds := commands()
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(errOut, `usage: roomctl <command> [flags]     (roomctl <command> -h: the command's own help)

roomctl is roomlog's operator tool. verify, replay and tail read the event log
itself: from a running roomd's NATS port (-nats, default nats://127.0.0.1:4222)
or a stopped node's data folder (-data). kick, destroy and rooms call the admin
API (-http) with an admin token signed with the server's secret.

commands:
`)
		for _, c := range cmds {
			fmt.Fprintf(errOut, "  %-8s %s\n", c.name, c.summary)
		}
		fmt.Fprint(errOut, `
examples:
  roomctl verify -pubkey roomlog-data/checkpoint.key.pub
  roomctl replay -app dev -room class-1 -timeline
  roomctl replay -app dev -room class-1 -diff 2026-11-21T10:00:00Z -at 2026-11-21T11:00:00Z
  roomctl tail -app dev -follow -after 1042.1
`)
		return 2
	}
	for _, c := range cmds {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], out)
			var exit exitError
			switch {
			case errors.As(err, &exit):
				fmt.Fprintln(errOut, "roomctl:", exit.msg)
				return exit.code
			case err != nil:
				fmt.Fprintln(errOut, "roomctl:", err)
				return 1
			}
			return 0
		}
	}
	fmt.Fprintf(errOut, "roomctl: unknown command %q\n", args[0])
	return 2
}

// exitError ends roomctl with a code (1: found a problem; 2: bad usage).
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
