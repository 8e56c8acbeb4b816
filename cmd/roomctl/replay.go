package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// replay folds one room's history, optionally stopping at a room sequence or
// a time, and prints the state clients saw at that point.
func replay(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	var lf logFlags
	lf.register(fs)
	app := fs.String("app", "dev", "app ID")
	room := fs.String("room", "", "room ID (required)")
	toSeq := fs.Uint64("to-seq", 0, "stop after the room event with this sequence (0: the end)")
	at := fs.String("at", "", "stop before the first event after this RFC 3339 time")
	if err := fs.Parse(args); err != nil {
		return exitError{2, err.Error()}
	}
	if *room == "" {
		return exitError{2, "replay: -room is required"}
	}
	var until time.Time
	if *at != "" {
		t, err := time.Parse(time.RFC3339Nano, *at)
		if err != nil {
			return exitError{2, "replay: -at: " + err.Error()}
		}
		until = t
	}
	log, err := lf.open(ctx)
	if err != nil {
		return err
	}
	defer log.Close()
	var r domain.Room
	prev := ""
	subject := log.Subject(*app, string(domain.KindRoom), *room)
	errStop := fmt.Errorf("stop")
	_, err = log.Read(ctx, []string{subject}, 1, func(rec eventstore.Record) error {
		head, events, err := domain.VerifyEvents(prev, rec.Data)
		if err != nil {
			return fmt.Errorf("stream sequence %d: %w", rec.Seq, err)
		}
		for i := range events {
			e := &events[i]
			if (*toSeq != 0 && e.Seq > *toSeq) || (!until.IsZero() && e.Time.After(until)) {
				return errStop
			}
			r.Apply(e)
		}
		prev = head
		return nil
	})
	if err != nil && err != errStop {
		return err
	}
	if r.Seq == 0 {
		return exitError{1, fmt.Sprintf("room %q of app %q has no history", *room, *app)}
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(&r)
}
