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
	"github.com/roomlog/roomlog/eventstore"
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

-to-seq and -at are alternatives, -since goes with -timeline only, and a -diff
or -since point after the end point is refused (exit 2). A -to-seq after the
room's last event is an error (exit 1), as is a room with no history, or one
whose first events retention removed.

On a terminal, a long replay shows a progress bar with its rate and ETA on
stderr; piped, it prints nothing but the answer.

flags:
`

// replay folds one room's history and prints its state, its timeline, or
// a diff between two points.
func replay(ctx context.Context, args []string, out, _ io.Writer) error {
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
	if isSet(fs, "to-seq") && isSet(fs, "at") {
		return exitError{2, "replay: -to-seq and -at are alternatives (where to stop): give one"}
	}
	if *since != "" && !*showTimeline {
		return exitError{2, "replay: -since is for -timeline (where its listing starts)"}
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
	// Points of one kind are compared before anything is read.
	if from.Beyond(until) {
		return exitError{2, fmt.Sprintf("replay: -diff %s is after the end point (%s): give the earlier point to -diff", from, until)}
	}
	if start.Beyond(until) {
		return exitError{2, fmt.Sprintf("replay: -since %s is after the end point (%s): the timeline would be empty", start, until)}
	}
	log, err := lf.open(ctx)
	if err != nil {
		return err
	}
	defer log.Close()
	pastEnd := func(seq, last uint64) error {
		return exitError{1, fmt.Sprintf("replay: room %q of app %q has no event with seq %d: its last event is seq %d",
			*room, *app, seq, last)}
	}
	// A sequence past the room's end is refused before anything is
	// printed, when the room's last message says where the end is.
	roomLast, hasEvents, err := lastRoomSeq(ctx, log, *app, *room)
	switch {
	case err != nil:
		return err
	case hasEvents && until.Seq > roomLast:
		return pastEnd(until.Seq, roomLast)
	case hasEvents && until.IsEnd() && from.Seq > roomLast:
		return pastEnd(from.Seq, roomLast)
	}
	last, err := log.LastSeq(ctx)
	if err != nil {
		return err
	}
	bar := newProgress(last, "replay")
	defer bar.done()

	enc := json.NewEncoder(out)
	var each func(timeline.Entry, *domain.Room) error
	var before *domain.Room // the state at from, for -diff
	listed := 0             // timeline entries printed
	if *showTimeline {
		each = func(e timeline.Entry, _ *domain.Room) error {
			if !start.IsEnd() && !reached(e, start) {
				return nil
			}
			listed++
			if *asJSON {
				return enc.Encode(e)
			}
			_, err := fmt.Fprintf(out, "#%-5d %s  %s\n", e.Seq, e.Time.UTC().Format("2006-01-02 15:04:05.000"), e.Text)
			return err
		}
	}
	var r *domain.Room
	if *diffFrom != "" {
		before, r, err = timeline.ReplayAt(ctx, log, domain.AppID(*app), domain.RoomID(*room), from, until, bar.set)
	} else {
		r, err = timeline.Replay(ctx, log, domain.AppID(*app), domain.RoomID(*room), until, each, bar.set)
	}
	bar.done()
	if errors.Is(err, timeline.ErrNoHistory) {
		if hasEvents && from.Seq != 0 {
			// The end point is a time before the room's first event.
			return exitError{2, fmt.Sprintf("replay: -diff %s is after the end point (%s, before the room's first event): give the earlier point to -diff",
				from, until)}
		}
		return exitError{1, err.Error()}
	}
	if err != nil {
		return err
	}
	switch {
	case until.Seq > r.Seq:
		return pastEnd(until.Seq, r.Seq)
	case *showTimeline && !start.IsEnd() && listed == 0:
		// A -since of the other kind than the end point, after it: no
		// event reached it (one at or before the end always would).
		return exitError{2, fmt.Sprintf("replay: -since %s is after the end point (%s): the timeline would be empty", start, until)}
	case from.Seq > r.Seq && until.IsEnd():
		return pastEnd(from.Seq, r.Seq)
	case from.Seq > r.Seq:
		// The end point is a time, -diff a later sequence.
		return exitError{2, fmt.Sprintf("replay: -diff %s is after the end point (%s, room seq %d): give the earlier point to -diff",
			from, until, r.Seq)}
	case !from.Time.IsZero() && until.Seq != 0:
		// -diff is a time, the end a sequence: -diff comes after the end
		// if the event after it is at or before that time.
		next, _, err := timeline.Page(ctx, log, domain.AppID(*app), domain.RoomID(*room), r.Seq, time.Time{}, 1)
		if err != nil {
			return err
		}
		if len(next) > 0 && !from.After(next[0]) {
			return exitError{2, fmt.Sprintf("replay: -diff %s is after the end point (%s): give the earlier point to -diff", from, until)}
		}
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

// lastRoomSeq returns the sequence of a room's last event, read from its
// last message; ok is false when the room has none or it does not decode.
func lastRoomSeq(ctx context.Context, log *eventstore.Log, app, room string) (seq uint64, ok bool, err error) {
	rec, found, err := log.Last(ctx, log.Subject(app, string(domain.KindRoom), room))
	if err != nil || !found {
		return 0, false, err
	}
	events, err := domain.DecodeEvents(rec.Data)
	if err != nil || len(events) == 0 {
		return 0, false, nil // not written by an engine: the replay tells
	}
	return events[len(events)-1].Seq, true, nil
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
