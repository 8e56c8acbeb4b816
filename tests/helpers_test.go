package tests

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections"
	"github.com/roomlog/roomlog/projections/audit"
)

// allFilter is the subject filter of every aggregate of every app.
func allFilter(log *eventstore.Log) []string { return []string{log.Prefix() + ".>"} }

// runLive starts a live projection of log, stopped when the test ends.
func runLive(t *testing.T, log *eventstore.Log) *projections.Live {
	t.Helper()
	live := projections.NewLive(projections.NewModel())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- live.Run(ctx, log, allFilter(log)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("live projection: %v", err)
		}
	})
	return live
}

func newEngine(t *testing.T, log *eventstore.Log, p domain.Policy, clock func() time.Time, src engine.Source) *engine.Engine {
	t.Helper()
	d, err := domain.NewDecider(domain.Config{Default: p})
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(engine.Config{Log: log, Decider: d, Clock: clock, Source: src, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// execute runs a command and then every follow-up its events call for, as
// the reactor would, and returns all events appended. Refusals are expected
// for random commands; anything else fails the test.
func execute(t *testing.T, e *engine.Engine, app domain.AppID, c domain.Command) ([]domain.Event, error) {
	t.Helper()
	events, err := executeContended(t, e, app, c)
	if errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("%s %+v: %v", c.CommandName(), c, err)
	}
	return events, err
}

// executeContended is execute for commands racing others on the same
// aggregates: an engine that gives up after its conflict retries answers
// ErrUnavailable, which is returned rather than failing the test.
func executeContended(t *testing.T, e *engine.Engine, app domain.AppID, c domain.Command) ([]domain.Event, error) {
	t.Helper()
	res, err := e.Execute(context.Background(), domain.Meta{App: app}, c)
	if err != nil {
		var de *domain.Error
		if !errors.As(err, &de) || de.Code == domain.ErrInternal.Code {
			t.Fatalf("%s %+v: %v", c.CommandName(), c, err)
		}
	}
	var events []domain.Event
	for _, a := range res.Appended {
		events = append(events, a.Events...)
	}
	for i := 0; i < len(events); i++ {
		for _, f := range domain.FollowUps(&events[i]) {
			fres, ferr := e.Execute(context.Background(),
				domain.Meta{App: app, Causation: f.Cause.ID.String(), Correlation: f.Cause.Correlation}, f.Command)
			if errors.Is(ferr, domain.ErrUnavailable) {
				continue // gave up under contention: the reactor would retry it
			}
			if ferr != nil {
				t.Fatalf("follow-up %s of %s: %v", f.Command.CommandName(), f.Cause.Type, ferr)
			}
			for _, a := range fres.Appended {
				events = append(events, a.Events...)
			}
		}
	}
	return events, err
}

// auditLog reads the whole log through an Auditor and fails on violations.
func auditLog(t *testing.T, log *eventstore.Log, p domain.Policy) *audit.Auditor {
	t.Helper()
	a := audit.New(log.Prefix(), func(domain.AppID) domain.Policy { return p })
	if _, err := log.Read(estest.Ctx(t), allFilter(log), 1, a.Apply); err != nil {
		t.Fatal(err)
	}
	for _, v := range a.Violations() {
		t.Error(v)
	}
	if vs := a.Violations(); len(vs) > 0 {
		t.Logf("history of what the first violation names:\n%s", historyAround(t, log, vs[0]))
	}
	return a
}

// historyAround prints, up to the violation's stream sequence, every event
// that mentions the session or stream the violation names.
func historyAround(t *testing.T, log *eventstore.Log, violation string) string {
	var upto uint64
	fmt.Sscanf(violation, "stream sequence %d:", &upto)
	var who string
	for _, word := range []string{"session ", "stream "} {
		if i := strings.Index(violation, ": "+word); i >= 0 {
			who = strings.Fields(violation[i+len(word)+2:])[0]
		}
	}
	var b strings.Builder
	log.Read(estest.Ctx(t), allFilter(log), 1, func(rec eventstore.Record) error {
		if rec.Seq > upto {
			return nil
		}
		events, _ := domain.DecodeEvents(rec.Data)
		for _, e := range events {
			if data := fmt.Sprintf("%+v", e.Data); e.AggregateID == who || strings.Contains(data, who) {
				fmt.Fprintf(&b, "%6d %s %s #%d corr …%s %s\n", rec.Seq, e.Key(), e.Type, e.Seq,
					e.Correlation[max(0, len(e.Correlation)-6):], data)
			}
		}
		return nil
	})
	return b.String()
}

// caughtUp waits until live has folded everything in the log.
func caughtUp(t *testing.T, log *eventstore.Log, live *projections.Live) {
	t.Helper()
	ctx := estest.Ctx(t)
	last, err := log.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := live.WaitFor(ctx, last); err != nil {
		t.Fatalf("live projection stuck at %d of %d: %v", live.Cursor(), last, err)
	}
}

func hashOf(t *testing.T, m *projections.Model) string {
	t.Helper()
	h, err := m.Hash()
	if err != nil {
		t.Fatal(err)
	}
	return h
}
