package main

import (
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/checkpoint"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// Whoever can change the stream (the data folder's holder; the shared NATS
// user no longer may) erases the whole log with a retention of a second,
// then lifts it again. The stream keeps history forever, yet starts past
// sequence 1: verify reports it. It used to take every signed head for one
// that retention expired, and said OK.
func TestVerifyReportsALogErasedByARetentionLiftedAgain(t *testing.T) {
	dir, pub := signedHistory(t)
	withLog(t, dir, func(log *eventstore.Log) {
		ctx := estest.Ctx(t)
		js, done := rawJS(t, log)
		defer done()
		s, err := js.Stream(ctx, log.StreamName())
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		orig := cfg
		cfg.MaxAge, cfg.Duplicates = time.Second, time.Second
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			info, err := s.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.State.Msgs == 0 {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("the stream still holds %d messages", info.State.Msgs)
			case <-tick.C:
			}
		}
		if _, err := js.UpdateStream(ctx, orig); err != nil { // history kept forever again
			t.Fatal(err)
		}
	})
	for _, args := range [][]string{{}, {"-pubkey", pub, "-min-round", "1"}} {
		out, code := roomctl(t, append([]string{"verify", "-data", dir}, args...)...)
		if code != 1 || !strings.Contains(out, "VIOLATION the log starts at stream sequence") ||
			!strings.Contains(out, "keeps history forever") {
			t.Errorf("verify %s of a log erased by a retention lifted again: exit %d, want 1 and a VIOLATION naming the start\n%s",
				strings.Join(args, " "), code, out)
		}
	}
}

// The checkpoint bucket deleted is tampering, a verdict (exit 1), not an
// outage (exit 3, which operations.md keeps for "could not read through"
// so that a script tells the two apart). It used to exit 3.
func TestVerifyReportsADeletedCheckpointBucket(t *testing.T) {
	dir, pub := signedHistory(t)
	withLog(t, dir, func(log *eventstore.Log) {
		js, done := rawJS(t, log)
		defer done()
		if err := js.DeleteKeyValue(estest.Ctx(t), checkpoint.Bucket); err != nil {
			t.Fatal(err)
		}
	})
	out, code := roomctl(t, "verify", "-data", dir, "-pubkey", pub)
	if code != 1 || !strings.Contains(out, "VIOLATION the checkpoint bucket roomlog-checkpoints does not exist") {
		t.Fatalf("verify -pubkey of a log whose checkpoint bucket was deleted: exit %d, want 1 and a VIOLATION\n%s", code, out)
	}
	if !strings.Contains(out, "read 10 events") {
		t.Errorf("the rest of the log was not checked:\n%s", out)
	}
}
