package eventschema

import (
	"errors"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/domain/domaintest"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// Every event of a log written by the real engine from generated commands,
// with awkward IDs, validates against its type's schema.
func TestEveryEventOfAGeneratedLogValidates(t *testing.T) {
	log := estest.Open(t, nil)
	p := domain.DefaultPolicy()
	p.MultiRoom, p.MaxRooms = true, 2
	d, err := domain.NewDecider(domain.Config{Default: p})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	e, err := engine.New(engine.Config{Log: log, Decider: d, Clock: func() time.Time { return now }, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var exec func(domain.Meta, domain.Command) []domain.Event
	exec = func(m domain.Meta, c domain.Command) []domain.Event {
		res, err := e.Execute(estest.Ctx(t), m, c)
		var de *domain.Error
		if err != nil && (!errors.As(err, &de) || de.Code == domain.ErrInternal.Code || de.Code == domain.ErrUnavailable.Code) {
			t.Fatalf("%s: %v", c.CommandName(), err)
		}
		var events []domain.Event
		for _, ap := range res.Appended {
			for i := range ap.Events {
				events = append(events, ap.Events[i])
				for _, f := range domain.FollowUps(&ap.Events[i]) {
					events = append(events, exec(domain.Meta{App: m.App, Causation: f.Cause.ID.String(),
						Correlation: f.Cause.Correlation}, f.Command)...)
				}
			}
		}
		return events
	}
	gen := domaintest.New(domaintest.Config{Users: 8, SessionsPerUser: 2, Rooms: 5, Streams: 4, MultiRoom: true, Weird: true}, 7)
	for range 400 {
		now = now.Add(gen.Advance())
		gen.Observe(exec(domain.Meta{App: "app.*"}, gen.Next()))
	}
	types := map[string]int{}
	n := 0
	if _, err := log.Read(estest.Ctx(t), nil, 1, func(rec eventstore.Record) error {
		if err := ValidateMessage(rec.Data); err != nil {
			t.Errorf("stream sequence %d: %v\n%s", rec.Seq, err, rec.Data)
		}
		events, _ := domain.DecodeEvents(rec.Data)
		for _, ev := range events {
			types[string(ev.Type)]++
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(types) < 12 {
		t.Errorf("the generated log has only %d event types (%v): the test proves little", len(types), types)
	}
	t.Logf("%d events of %d types validated", n, len(types))
}
