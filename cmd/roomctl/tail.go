package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// tail prints events as JSON lines, each with its stream sequence (the
// cursor to resume from), from a cursor or a time, and follows the log.
func tail(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	var lf logFlags
	lf.register(fs)
	app := fs.String("app", "", "only this app")
	room := fs.String("room", "", "only this room (needs -app)")
	from := fs.Uint64("from", 1, "stream sequence to start at (a cursor from an earlier tail, plus one)")
	since := fs.String("since", "", "start at the first message stored at or after this RFC 3339 time")
	follow := fs.Bool("follow", false, "keep printing new events")
	if err := fs.Parse(args); err != nil {
		return exitError{2, err.Error()}
	}
	if *room != "" && *app == "" {
		return exitError{2, "tail: -room needs -app"}
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
	start := *from
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
		start = seq
	}
	enc := json.NewEncoder(out)
	print := func(rec eventstore.Record) error {
		events, err := domain.DecodeEvents(rec.Data)
		if err != nil {
			return err
		}
		for _, e := range events {
			if err := enc.Encode(struct {
				Cursor uint64        `json:"cursor"`
				Event  *domain.Event `json:"event"`
			}{rec.Seq, &e}); err != nil {
				return err
			}
		}
		return nil
	}
	if *follow {
		return log.Tail(ctx, []string{filter}, start, print)
	}
	_, err = log.Read(ctx, []string{filter}, start, print)
	return err
}
