package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/projections/timeline"
)

const replayUsage = `usage: roomctl replay -room R [-app A] [-to-seq N | -at TIME] [-timeline | -diff FROM] [-json]

Folds one room's history from its first event, checking its hash chain, up to
a point (-to-seq: after the room event with that sequence; -at: after the last
event at or before that time; neither: the end), then prints:

  (default)     the room's state at that point, as clients saw it (JSON)
  -timeline     every event up to that point, one line each: who joined, left
                and why, streams, messages, kicks, extra info (-json: JSON lines
                with the event and its cursor; -since POINT starts the listing later)
  -diff FROM    what changed between FROM (a room sequence or an RFC 3339 time)
                and that point (-json: a JSON array)

On a terminal, a long replay shows a progress bar with its rate and ETA on
stderr; piped, it prints nothing but the answer.

flags:
`

// replay folds one room's history and prints its state, its timeline, or
// a diff between two points.
func replay(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	withUsage(fs, replayUsage)
	var lf logFlags
	lf.register(fs)
	app := fs.String("app", "dev", "app ID")
	room := fs.String("room", "", "room ID (required)")
	toSeq := fs.Uint64("to-seq", 0, "stop after the room event with this sequence (0: the end)")
	at := fs.String("at", "", "stop after the last event at or before this RFC 3339 time")
	showTimeline := fs.Bool("timeline", false, "print the room's timeline instead of its state")
	since := fs.String("since", "", "with -timeline: list from this room sequence or RFC 3339 time on")
	diffFrom := fs.String("diff", "", "print what changed from this room sequence or RFC 3339 time to the end point")
	asJSON := fs.Bool("json", false, "with -timeline or -diff: print JSON")
	if err := parseFlags(fs, args, out); err != nil {
		return err
	}
	if *room == "" {
		return exitError{2, "replay: -room is required"}
	}
	if *showTimeline && *diffFrom != "" {
		return exitError{2, "replay: -timeline and -diff are two different answers: choose one"}
	}
	var until timeline.Point
	if *toSeq != 0 {
		until.Seq = *toSeq
	}
	if *at != "" {
		t, err := time.Parse(time.RFC3339Nano, *at)
		if err != nil {
			return exitError{2, "replay: -at: " + err.Error()}
		}
		until.Time = t
	}
	var from, start timeline.Point
	var err error
	if *diffFrom != "" {
		if from, err = timeline.ParsePoint(*diffFrom); err != nil {
			return exitError{2, "replay: -diff: " + err.Error()}
		}
	}
	if *since != "" {
		if start, err = timeline.ParsePoint(*since); err != nil {
			return exitError{2, "replay: -since: " + err.Error()}
		}
	}
	log, err := lf.open(ctx)
	if err != nil {
		return err
	}
	defer log.Close()
	last, err := log.LastSeq(ctx)
	if err != nil {
		return err
	}
	bar := newProgress(last, "replay")
	defer bar.done()

	enc := json.NewEncoder(out)
	var each func(timeline.Entry, *domain.Room) error
	var before *domain.Room // the state at from, for -diff
	switch {
	case *showTimeline:
		each = func(e timeline.Entry, _ *domain.Room) error {
			if !start.IsEnd() && !reached(e, start) {
				return nil
			}
			if *asJSON {
				return enc.Encode(e)
			}
			_, err := fmt.Fprintf(out, "#%-5d %s  %s\n", e.Seq, e.Time.UTC().Format("2006-01-02 15:04:05.000"), e.Text)
			return err
		}
	case *diffFrom != "":
		each = func(e timeline.Entry, r *domain.Room) error {
			if !from.After(e) {
				before = r.Clone()
			}
			return nil
		}
	}
	r, err := timeline.Replay(ctx, log, domain.AppID(*app), domain.RoomID(*room), until, each, bar.set)
	bar.done()
	if errors.Is(err, timeline.ErrNoHistory) {
		return exitError{1, err.Error()}
	}
	if err != nil {
		return err
	}
	switch {
	case *showTimeline:
		return nil
	case *diffFrom != "":
		changes := timeline.Diff(before, r)
		if *asJSON {
			if changes == nil {
				changes = []timeline.Change{}
			}
			enc.SetIndent("", "  ")
			return enc.Encode(changes)
		}
		fmt.Fprintf(out, "from %s (room seq %d) to %s (room seq %d):\n", from, seqOf(before), until, r.Seq)
		if len(changes) == 0 {
			fmt.Fprintln(out, "  nothing changed")
		}
		for _, c := range changes {
			fmt.Fprintf(out, "  %s %s\n", mark(c.Op), c.Text)
		}
		return nil
	}
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// reached reports whether entry e is at or after point p.
func reached(e timeline.Entry, p timeline.Point) bool {
	if p.Seq != 0 {
		return e.Seq >= p.Seq
	}
	return !e.Time.Before(p.Time)
}

func seqOf(r *domain.Room) uint64 {
	if r == nil {
		return 0
	}
	return r.Seq
}

func mark(op string) string {
	switch op {
	case "added":
		return "+"
	case "removed":
		return "-"
	}
	return "~"
}
