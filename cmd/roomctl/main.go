// Command roomctl is roomlog's operator tool: it mints tokens, replays and
// verifies room histories, tails the event streams, and kicks users or
// destroys rooms through the admin API.
//
// Commands that read the log connect to a roomd's NATS port (-nats, default
// nats://127.0.0.1:4222), or open a stopped node's data folder (-data).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

type command struct {
	name, summary string
	// run writes what it was asked for to out; errOut is for warnings
	// (roomctl itself prints the error run returns).
	run func(ctx context.Context, args []string, out, errOut io.Writer) error
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
	if len(args) == 0 {
		// No command: the help, on stderr, as for any bad usage.
		help(errOut, cmds)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && args[0] == "help" {
			// roomctl help verify: the command's own help.
			return run(ctx, []string{args[1], "-h"}, out, errOut)
		}
		// Asked for: on stdout, and not a failure.
		help(out, cmds)
		return 0
	}
	for _, c := range cmds {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], out, errOut)
			var exit exitError
			switch {
			case errors.Is(err, flag.ErrHelp):
				return 0
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
	fmt.Fprintf(errOut, "roomctl: unknown command %q (roomctl -h lists them)\n", args[0])
	return 2
}

// help prints roomctl's usage: what it is, its commands, examples.
func help(w io.Writer, cmds []command) {
	fmt.Fprint(w, `usage: roomctl <command> [flags]     (roomctl <command> -h: the command's own help)

roomctl is roomlog's operator tool. verify, replay and tail read the event log
itself: from a running roomd's NATS port (-nats, default nats://127.0.0.1:4222)
or a stopped node's data folder (-data). kick, destroy and rooms call the admin
API (-http) with an admin token signed with the server's secret.

commands:
`)
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
examples:
  roomctl verify -pubkey roomlog-data/checkpoint.key.pub
  roomctl replay -app dev -room class-1 -timeline
  roomctl replay -app dev -room class-1 -diff 2026-11-21T10:00:00Z -at 2026-11-21T11:00:00Z
  roomctl tail -app dev -follow -after 1042.1
`)
}

// parseFlags parses a command's flags. -h or -help prints the command's
// usage on out, since it was asked for, and returns flag.ErrHelp, which
// ends roomctl with status 0 and nothing on stderr. A bad flag is a usage
// error (status 2) that carries the usage, for stderr.
func parseFlags(fs *flag.FlagSet, args []string, out io.Writer) error {
	var usage bytes.Buffer
	fs.SetOutput(&usage)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		if _, werr := out.Write(usage.Bytes()); werr != nil {
			return werr
		}
		return flag.ErrHelp
	}
	if err != nil {
		// The flag package wrote the error and the usage; keep the usage
		// only, after the error, which run prints once as roomctl's line.
		usage.Reset()
		fs.Usage()
		return exitError{2, fs.Name() + ": " + err.Error() + "\n\n" + strings.TrimRight(usage.String(), "\n")}
	}
	if fs.NArg() > 0 {
		// No command takes arguments: a stray one is most likely a value
		// that lost its quotes (-reason class over), never to be ignored.
		return exitError{2, fmt.Sprintf("%s: unexpected argument %q (quote a value with spaces)", fs.Name(), fs.Arg(0))}
	}
	return nil
}

// withUsage gives fs a usage that starts with text (a synopsis and what
// the command does) and lists the flags.
func withUsage(fs *flag.FlagSet, text string) {
	fs.Usage = func() { fmt.Fprint(fs.Output(), text); fs.PrintDefaults() }
}

// exitError ends roomctl with a code (1: found a problem; 2: bad usage).
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
