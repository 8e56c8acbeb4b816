package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/projections/cursor"
)

const tailUsage = `usage: roomctl tail [-app A [-room R]] [-after CURSOR | -from SEQ | -since TIME] [-follow]

Prints events as JSON lines, each with its cursor: {"cursor":"1042.1","event":{...}}.
A cursor names one event (the stream sequence of its message and its index in
it, see docs/events.md); -after CURSOR prints exactly the events after it, so
a consumer that stops anywhere resumes from the last cursor it printed without
losing or repeating an event, even inside a multi-event message. -after,
-from and -since are alternatives: give one. A message no engine wrote is
passed over, as the nodes pass over it, with a line on stderr naming it.

flags:
`

// tail prints events as JSON lines, each with its cursor, from a cursor or
// a time, and follows the log.
func tail(ctx context.Context, args []string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	withUsage(fs, tailUsage)
	var lf logFlags
	lf.register(fs)
	app := fs.String("app", "", "only this app")
	room := fs.String("room", "", "only this room (needs -app)")
	afterFlag := fs.String("after", "", "print the events after this cursor (as printed by an earlier tail)")
	from := fs.Uint64("from", 1, "stream sequence to start at (every event of that message included)")
	since := fs.String("since", "", "start at the first message stored at or after this RFC 3339 time")
	follow := fs.Bool("follow", false, "keep printing new events")
	if err := parseFlags(fs, args, out); err != nil {
		return err
	}
	if *room != "" && *app == "" {
		return exitError{2, "tail: -room needs -app"}
	}
	var starts []string
	for _, f := range []string{"after", "from", "since"} {
		if isSet(fs, f) {
			starts = append(starts, "-"+f)
		}
	}
	if len(starts) > 1 {
		return exitError{2, "tail: " + strings.Join(starts, " and ") + " are alternatives (where to start): give one"}
	}
	var after cursor.Cursor
	if *from > 1 {
		after = cursor.End(*from - 1)
	}
	if *afterFlag != "" {
		c, err := cursor.Parse(*afterFlag)
		if err != nil {
			return exitError{2, "tail: -after: " + err.Error()}
		}
		after = c
	}
	log, err := lf.open(ctx)
	if err != nil {
		return err
	}
	defer log.Close()
	filter := log.Prefix() + ".>"
	switch {
	case *room != "":
		filter = log.Subject(*app, string(domain.KindRoom), *room)
	case *app != "":
		filter = log.Prefix() + "." + eventstore.Token(*app) + ".>"
	}
	if *since != "" {
		t, err := time.Parse(time.RFC3339Nano, *since)
		if err != nil {
			return exitError{2, "tail: -since: " + err.Error()}
		}
		seq, ok, err := log.StartTime(ctx, []string{filter}, t)
		if err != nil {
			return err
		}
		if !ok {
			if !*follow {
				return nil
			}
			if seq, err = log.LastSeq(ctx); err != nil {
				return err
			}
			seq++
		}
		after = cursor.End(seq - 1)
	}
	enc := json.NewEncoder(out)
	print := func(e cursor.Event) error {
		if e.Err != nil {
			// As the nodes do: the export goes on past it.
			fmt.Fprintf(errOut, "roomctl: tail: passed over a message no engine wrote (roomctl verify reports it): %v\n", e.Err)
			return nil
		}
		return enc.Encode(struct {
			Cursor cursor.Cursor `json:"cursor"`
			Event  *domain.Event `json:"event"`
		}{e.Cursor, e.Event})
	}
	if *follow {
		return cursor.Tail(ctx, log, []string{filter}, after, print)
	}
	_, err = cursor.Read(ctx, log, []string{filter}, after, print)
	return err
}
