package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/checkpoint"
	"github.com/roomlog/roomlog/projections/audit"
	"github.com/roomlog/roomlog/projections/cursor"
)

const verifyUsage = `usage: roomctl verify [flags]

Reads the whole log and checks that every aggregate's events are gapless and
hash-chained, that the cross-room invariants held at every point, and, with
-pubkey, that the log matches the chain heads roomd signed (checkpoints).

A changed event is named by its own sequence (its successor recorded its
original hash); missing events by theirs; a history cut short, or rewritten
with a self-consistent chain, by the signed checkpoint it fails. Changes after
the last checkpoint at the very end of a history cannot be detected: see
docs/architecture.md, "What verify detects".

Exit status: 0 sound, 1 problems found (each printed as a VIOLATION line),
2 bad usage, 3 the log could not be read through (nothing is concluded).

flags:
`

func verify(ctx context.Context, args []string, out, _ io.Writer) error {
	err := verifyLog(ctx, args, out)
	var exit exitError
	if err == nil || errors.Is(err, flag.ErrHelp) || errors.As(err, &exit) {
		return err
	}
	// Not a verdict on the log: a script must tell an outage from tampering.
	return exitError{3, err.Error()}
}

func verifyLog(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	withUsage(fs, verifyUsage)
	var lf logFlags
	lf.register(fs)
	multi := fs.Bool("multi-room", true, "the apps allow multi-room sessions (as the node was configured)")
	maxRooms := fs.Int("max-rooms", 5, "rooms a multi-room session may be in (as the node was configured)")
	apps := fs.String("apps", "", "roomd's JSON file of per-app policies (its -apps): each app is checked against its own")
	pubkey := fs.String("pubkey", os.Getenv("ROOMLOG_CHECKPOINT_PUBKEY"),
		"roomd's checkpoint public key (a PEM file, or base64): check the log against the signed heads (ROOMLOG_CHECKPOINT_PUBKEY)")
	minRound := fs.Uint64("min-round", 0, "fail unless the checkpoints reach at least this round (one you saw before)")
	if err := parseFlags(fs, args, out); err != nil {
		return err
	}
	if *minRound > 0 && *pubkey == "" {
		return exitError{2, "verify: -min-round needs -pubkey (or ROOMLOG_CHECKPOINT_PUBKEY): without it no round is checked"}
	}
	p := domain.DefaultPolicy()
	p.MultiRoom, p.MaxRooms = *multi, *maxRooms
	perApp := map[domain.AppID]domain.Policy{}
	if *apps != "" {
		b, err := os.ReadFile(*apps)
		if err != nil {
			return exitError{2, "verify: -apps: " + err.Error()}
		}
		if perApp, err = domain.ParseAppPolicies(b, p); err != nil {
			return exitError{2, fmt.Sprintf("verify: -apps %s: %v", *apps, err)}
		}
	}
	log, err := lf.open(ctx)
	if err != nil {
		return err
	}
	defer log.Close()
	a := audit.New(log.Prefix(), func(app domain.AppID) domain.Policy {
		if ap, ok := perApp[app]; ok {
			return ap
		}
		return p
	})
	var problems []string
	var signed checkpoint.Signed
	if *pubkey != "" {
		pub, err := checkpoint.ParsePublicKey(*pubkey)
		if err != nil {
			return exitError{2, "verify: -pubkey: " + err.Error()}
		}
		store, err := checkpoint.OpenStore(ctx, log, 1)
		switch {
		case errors.Is(err, eventstore.ErrStreamMismatch):
			// Not an outage: the bucket is gone (the shared NATS user may
			// delete records, not buckets; whoever could, did).
			problems = append(problems, fmt.Sprintf("the checkpoint bucket %s does not exist: it was deleted, "+
				"or no roomd with a checkpoint key ever ran on this log", checkpoint.Bucket))
		case err != nil:
			return err
		default:
			if signed, err = checkpoint.Load(ctx, store, pub); err != nil {
				return err
			}
		}
		problems = append(problems, signed.Problems...)
		for k, h := range signed.Heads {
			a.Anchor(k, h.Seq, h.Hash, h.At, fmt.Sprintf("the signed checkpoint of round %d (%s)", h.Round, h.Time.Format("2006-01-02T15:04:05Z")))
		}
		switch {
		case store == nil:
		case signed.Round == nil:
			problems = append(problems, "no signed checkpoint round: nothing to check the log against")
		case signed.Round.Round < *minRound:
			problems = append(problems, fmt.Sprintf("checkpoint round %d is older than round %d given by -min-round: checkpoints were rolled back",
				signed.Round.Round, *minRound))
		}
	}
	deleted, first, last, maxAge, err := streamGaps(ctx, log)
	if err != nil {
		return err
	}
	if first > 1 {
		a.Retained(first)
		if maxAge == 0 {
			// Retention removes from the start, but this stream keeps
			// history forever: the start was removed some other way (a
			// retention set and lifted again, by whoever could change
			// the stream).
			problems = append(problems, fmt.Sprintf("the log starts at stream sequence %d, but its stream keeps history forever "+
				"(no retention): the %d messages before it were removed", first, first-1))
		}
	}
	bar := newProgress(last, "verify")
	err = cursor.ReadDecoded(ctx, log, []string{log.Prefix() + ".>"}, 1, true, func(d *cursor.Decoded) error {
		bar.set(d.Record.Seq)
		if d.Err != nil {
			// Not written by an engine: flagged, and passed over as the
			// nodes do, so that the rest of the log is still checked.
			return a.Apply(d.Record)
		}
		a.ApplyDecoded(d.Record, d.Events, d.Hashes)
		return nil
	})
	bar.done()
	if err != nil {
		return err
	}
	a.Finish(last)
	fmt.Fprintf(out, "read %d events in %d messages, stream sequences %d to %d\n", a.Events, a.Messages, first, last)
	if len(deleted) > 0 {
		problems = append(problems, fmt.Sprintf("%d messages were deleted from the log (stream sequences %s): "+
			"roomd never deletes; whatever they held is gone", len(deleted), seqList(deleted)))
	}
	if signed.Round != nil {
		fmt.Fprintf(out, "checked against %d signed heads of checkpoint round %d (%s, key %s)",
			len(signed.Heads)-a.Skipped, signed.Round.Round, signed.Round.Time.Format("2006-01-02T15:04:05Z"), keyID(*pubkey))
		if a.Skipped > 0 {
			fmt.Fprintf(out, "; %d below the retained history", a.Skipped)
		}
		fmt.Fprintln(out)
	}
	problems = append(problems, a.Violations()...)
	if len(problems) > 0 {
		for _, line := range problems {
			fmt.Fprintln(out, "VIOLATION", line)
		}
		return exitError{1, fmt.Sprintf("%d problems found", len(problems))}
	}
	if *pubkey == "" {
		fmt.Fprintln(out, "OK: every aggregate is gapless and chained; no invariant was broken at any point "+
			"(signed checkpoints not checked: give -pubkey)")
		return nil
	}
	fmt.Fprintln(out, "OK: every aggregate is gapless, chained and matches its signed head; no invariant was broken at any point")
	return nil
}

func keyID(s string) string {
	pub, err := checkpoint.ParsePublicKey(s)
	if err != nil {
		return "?"
	}
	return checkpoint.KeyID(pub)
}

// streamGaps returns the stream's first and last sequences and the
// sequences deleted between them. roomd never deletes a message; retention
// removes only from the start, which moves the first sequence.
func streamGaps(ctx context.Context, log *eventstore.Log) (deleted []uint64, first, last uint64, maxAge time.Duration, err error) {
	nc, err := log.NewConn("roomctl-verify")
	if err != nil {
		return nil, 0, 0, 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	s, err := js.Stream(ctx, log.StreamName())
	if err != nil {
		return nil, 0, 0, 0, err
	}
	info, err := s.Info(ctx, jetstream.WithDeletedDetails(true))
	if err != nil {
		return nil, 0, 0, 0, err
	}
	st := info.State
	for _, q := range st.Deleted {
		if q > 0 && q >= st.FirstSeq && q <= st.LastSeq {
			deleted = append(deleted, q)
		}
	}
	return deleted, st.FirstSeq, st.LastSeq, info.Config.MaxAge, nil
}

// seqList prints sequences, at most ten.
func seqList(seqs []uint64) string {
	s := ""
	for i, q := range seqs {
		if i == 10 {
			return s + fmt.Sprintf(" and %d more", len(seqs)-10)
		}
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprint(q)
	}
	return s
}
