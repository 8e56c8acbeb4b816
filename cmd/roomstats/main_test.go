package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections/consume"
	"github.com/roomlog/roomlog/projections/cursor"
	"github.com/roomlog/roomlog/projections/stats"
)

// build compiles roomstats (without the race detector, whatever the test
// runs with: the children are the real binary, killed as a real process).
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "roomstats")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// start runs roomstats as a child process.
func start(t *testing.T, bin, url, state string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "-nats", url, "-nats-password", estest.Password, "-state", state, "-http", "off", "-save-every", "700", "-log-level", "error")
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if s := errOut.String(); s != "" && !strings.Contains(s, "parked") {
			t.Logf("roomstats said: %s", s)
		}
	})
	return cmd
}

// readDirect computes the stats by reading the log, with no consumer
// involved, skipping undecodable messages as the consumer parks them.
func readDirect(t *testing.T, log *eventstore.Log) *stats.Stats {
	t.Helper()
	st := stats.New()
	_, err := log.Read(estest.Ctx(t), []string{log.KindFilter("room")}, 1, func(rec eventstore.Record) error {
		events, err := domain.DecodeEvents(rec.Data)
		if err != nil {
			return nil
		}
		for i := range events {
			st.Fold(cursor.Event{Cursor: cursor.Cursor{Seq: rec.Seq, Index: i}, Event: &events[i], Record: &rec})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// roomstats saves a finished message as past all its events.
	st.Cursor = cursor.End(st.Cursor.Seq)
	return st
}

func savedState(t *testing.T, path string) *stats.Stats {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return stats.New()
	}
	st := stats.New()
	if err := json.Unmarshal(b, st); err != nil {
		t.Fatalf("state file: %v", err)
	}
	return st
}

// waitAdvanced waits (up to limit) until the saved state is past from.
func waitAdvanced(t *testing.T, path string, from cursor.Cursor, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !from.Less(savedState(t, path).Cursor) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

func canonical(t *testing.T, st *stats.Stats) string {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var again stats.Stats
	json.Unmarshal(b, &again)
	b, _ = json.Marshal(&again)
	return string(b)
}

// roomstats -h prints the help asked for on stdout and exits 0, with nothing
// on stderr; a bad flag exits 2 with the error and the usage on stderr.
func TestHelpIsAnAnswerNotAnError(t *testing.T) {
	flags := []string{"nats", "nats-password", "name", "state", "http", "save-every", "max-attempts", "skip-expired", "keep", "log-level"}
	for _, h := range []string{"-h", "-help", "--help"} {
		var out, errOut bytes.Buffer
		code := exitCode(run(context.Background(), []string{h}, &out, &errOut), &errOut)
		if code != 0 || errOut.Len() != 0 {
			t.Errorf("roomstats %s: exit %d, stderr %q; want 0 and nothing", h, code, errOut.String())
		}
		if !strings.HasPrefix(out.String(), "usage: roomstats ") || !strings.Contains(out.String(), "Follows every room's events") {
			t.Errorf("roomstats %s: no synopsis and description:\n%s", h, out.String())
		}
		for _, f := range flags {
			if !strings.Contains(out.String(), "\n  -"+f+" ") && !strings.Contains(out.String(), "\n  -"+f+"\n") {
				t.Errorf("roomstats %s does not describe -%s:\n%s", h, f, out.String())
			}
		}
	}
	for _, args := range [][]string{{"-no-such-flag"}, {"-http", "off", "stray"}, {"-log-level", "bogus"},
		{"-save-every", "0"}, {"-max-attempts", "-1"}, {"-keep", "30s"}, {"-keep", "-1h"}} {
		var out, errOut bytes.Buffer
		code := exitCode(run(context.Background(), args, &out, &errOut), &errOut)
		if code != 2 || out.Len() != 0 || !strings.HasPrefix(errOut.String(), "roomstats: ") ||
			!strings.Contains(errOut.String(), args[len(args)-1]) || !strings.Contains(errOut.String(), "usage: roomstats") {
			t.Errorf("roomstats %v: exit %d, stdout %q, stderr:\n%s", args, code, out.String(), errOut.String())
		}
	}
}

// roomstats is killed with SIGKILL and started again at random points, 20
// times, while 100,000 events (and a message it cannot read) are written;
// its final counts equal those computed straight from the log. Under the
// race detector, which slows the log's server in this process about
// eightfold, the run is 20,000 events: the same kills, a shorter history
// (.ci/run runs it without -race too). Every kill must be what ended the
// process, and at least half must land before roomstats reached the end of
// the log: kills of a consumer already done would pass without testing
// that it resumes.
func TestKilledTwentyTimesItCountsEveryEventOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100,000 events and starts roomstats 21 times")
	}
	bin := build(t)
	log := estest.Open(t, func(c *eventstore.Config) { c.Listen, c.Password = "127.0.0.1:-1", estest.Password })
	state := filepath.Join(t.TempDir(), "state.json")
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	begin := time.Now()
	rng := rand.New(rand.NewPCG(seed, 1))

	total, poisonAt := 100_000, 20_000
	if raceEnabled {
		total, poisonAt = 20_000, 4_000
	}
	written := make(chan int, 1)
	go func() {
		events, _ := estest.WriteRooms(t, log, estest.RoomsConfig{Events: total, Seed: seed, Pace: func(n int) {
			if n == poisonAt {
				// A message no decoder reads: reported and parked, never retried
				// forever. (An event of a type the consumer does not know, a
				// newer roomd's, stops it instead: consume's own tests.)
				_, err := log.Append(context.Background(), eventstore.Message{Subject: log.Subject("app", "room", "junk"),
					MsgID: ulid.Make().String(), Data: []byte(`{"not":"an array of events"}`)})
				if err != nil {
					t.Error(err)
				}
			}
		}})
		written <- events
	}()

	var events int
	done := false
	// Where each kill left the saved state, to tell below that the kills
	// landed mid-run, not after roomstats had finished the log.
	var killedAt []cursor.Cursor
	for kill := 0; kill < 20; kill++ {
		before := savedState(t, state).Cursor
		cmd := start(t, bin, log.ClientURL(), state)
		if kill%2 == 1 {
			// Every other life is killed only once it has saved progress,
			// however slow a loaded machine makes its start: those kills
			// land in the middle of real work. The others may land
			// anywhere, start-up included. Once the writer is done,
			// roomstats may have nothing left to do: a short wait.
			limit := time.Minute
			if done {
				limit = 5 * time.Second
			}
			waitAdvanced(t, state, before, limit)
			time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
		} else {
			time.Sleep(time.Duration(100+rng.IntN(500)) * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		// The kill is what ended it: a roomstats that had already exited
		// (failed to start, say) would make the kills prove nothing.
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("kill %d: roomstats had already ended before it (%v)", kill, cmd.ProcessState)
		}
		killedAt = append(killedAt, savedState(t, state).Cursor)
		if !done {
			select {
			case events = <-written:
				done = true
			default:
			}
		}
	}
	if !done {
		events = <-written
	}
	t.Logf("wrote %d events; after 20 kills roomstats had reached cursor %s (%v)", events, savedState(t, state).Cursor, time.Since(begin))

	want := readDirect(t, log)
	// A kill landed mid-run when the state it left was short of the log's
	// end: roomstats had not finished. With at most 600 ms per life, the
	// writer still writing and a catch-up of tens of seconds, all 20
	// usually do; half is the floor below which the test would mostly kill
	// an idle consumer. And the lives must have done work, not died before
	// they got going: the ten that wait for progress before their kill
	// advance the saved state, unless roomstats had already finished.
	midRun, progressed := 0, 0
	var prev cursor.Cursor
	for _, c := range killedAt {
		if c.Less(want.Cursor) {
			midRun++
		}
		if prev.Less(c) {
			progressed++
		}
		prev = c
	}
	t.Logf("%d of 20 kills landed before roomstats reached the end of the log; %d of its lives advanced the saved state", midRun, progressed)
	if midRun < 10 {
		t.Errorf("only %d of 20 kills landed before roomstats reached the end of the log (%s): the kills did not interrupt it, the test proves little",
			midRun, want.Cursor)
	}
	if progressed < 5 {
		t.Errorf("only %d of 20 lives of roomstats advanced its saved state: the kills mostly hit a consumer that had not started", progressed)
	}
	t.Logf("catching up from %s to %s at %v", savedState(t, state).Cursor, want.Cursor, time.Since(begin))
	cmd := start(t, bin, log.ClientURL(), state)
	deadline := time.Now().Add(2 * time.Minute)
	for savedState(t, state).Cursor != want.Cursor {
		if time.Now().After(deadline) {
			t.Fatalf("roomstats stayed at %s, the log ends at %s", savedState(t, state).Cursor, want.Cursor)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("caught up at %v", time.Since(begin))
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("roomstats on SIGTERM: %v", err)
	}
	got := savedState(t, state)
	if got.Events != want.Events || canonical(t, got) != canonical(t, want) {
		t.Fatalf("roomstats counted %d room events, the log has %d; states differ:\nroomstats %.400s\ndirect    %.400s",
			got.Events, want.Events, canonical(t, got), canonical(t, want))
	}
	if want.Events < uint64(total) || len(want.Leaves) < 5 || want.StreamsPublished == 0 {
		t.Errorf("the history was thin (%d events, %d leave reasons): the test proves little", want.Events, len(want.Leaves))
	}
	// The poison message was parked, once.
	recs, err := consume.ParkedRecords(estest.Ctx(t), log, "roomstats")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs.Watch(wctx, cancel, func(e eventstore.Entry) {
		if strings.Contains(string(e.Value), "malformed event message") {
			n++
		}
	})
	if n != 1 {
		t.Errorf("%d parked records of the undecodable message, want 1", n)
	}
}

// A roomstats stopped (SIGTERM) while it is still connecting exits cleanly,
// as it does once running: nothing was done, nothing is lost.
func TestStoppedWhileStartingItExitsCleanly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	err := run(ctx, []string{"-nats", "nats://127.0.0.1:1", "-http", "off", "-state", filepath.Join(t.TempDir(), "state.json")},
		&out, &errOut)
	if code := exitCode(err, &errOut); code != 0 {
		t.Fatalf("exit %d, said %q", code, errOut.String())
	}
}
