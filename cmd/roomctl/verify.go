package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/projections/audit"
)

func verify(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	var lf logFlags
	lf.register(fs)
	multi := fs.Bool("multi-room", true, "the apps allow multi-room sessions (as the node was configured)")
	maxRooms := fs.Int("max-rooms", 5, "rooms a multi-room session may be in (as the node was configured)")
	if err := fs.Parse(args); err != nil {
		return exitError{2, err.Error()}
	}
	log, err := lf.open(ctx)
	if err != nil {
		return err
	}
	defer log.Close()
	p := domain.DefaultPolicy()
	p.MultiRoom, p.MaxRooms = *multi, *maxRooms
	a := audit.New(log.Prefix(), func(domain.AppID) domain.Policy { return p })
	last, err := log.Read(ctx, []string{log.Prefix() + ".>"}, 1, a.Apply)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "read %d events in %d messages, up to stream sequence %d\n", a.Events, a.Messages, last)
	if v := a.Violations(); len(v) > 0 {
		for _, line := range v {
			fmt.Fprintln(out, "VIOLATION", line)
		}
		return exitError{1, fmt.Sprintf("%d problems found", len(v))}
	}
	fmt.Fprintln(out, "OK: every aggregate is gapless and chained; no invariant was broken at any point")
	return nil
}
