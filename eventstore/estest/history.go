package estest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// RoomsConfig shapes a generated room history.
type RoomsConfig struct {
	App   domain.AppID
	Rooms int // default 50
	Users int // default 500
	// Events is how many room events to write (about: the last message
	// may overshoot by a few).
	Events int
	// Start is the first event's time (default 2026-11-21 09:00 UTC); each
	// message is 10 to 2,000 ms after the previous one.
	Start time.Time
	Seed  uint64
	// Pace, if set, is called after every message (to interleave the
	// writer with something else).
	Pace func(written int)
}

// WriteRooms appends a plausible, well-chained room history straight to the
// log, much faster than through the engine: joins (creating rooms),
// leaves for every reason (a leave while publishing stops the streams in
// the same message), broadcasts, custom commands and streams published. It
// returns how many events and messages it wrote.
func WriteRooms(tb testing.TB, log *eventstore.Log, cfg RoomsConfig) (events, messages int) {
	tb.Helper()
	if cfg.Rooms == 0 {
		cfg.Rooms = 50
	}
	if cfg.Users == 0 {
		cfg.Users = 500
	}
	if cfg.App == "" {
		cfg.App = "app"
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed+1))
	type room struct {
		seq, last uint64
		prev      string
		exists    bool
		members   map[domain.UserID][]domain.StreamID
	}
	rooms := make([]*room, cfg.Rooms)
	for i := range rooms {
		rooms[i] = &room{members: map[domain.UserID][]domain.StreamID{}}
	}
	now := cfg.Start
	reasons := []domain.Reason{domain.ReasonLogout, domain.ReasonLeave, domain.ReasonSwitch, domain.ReasonKickedByBackend,
		domain.ReasonKickedDuplicateLogin, domain.ReasonHeartbeatTimeout}
	ctx := context.Background()
	for events < cfg.Events {
		now = now.Add(time.Duration(10+rng.IntN(1990)) * time.Millisecond)
		ri := rng.IntN(cfg.Rooms)
		r := rooms[ri]
		id := domain.RoomID(fmt.Sprintf("room %d", ri))
		var ps []domain.Payload
		u := domain.UserID(fmt.Sprintf("u%d", rng.IntN(cfg.Users)))
		s := domain.SessionID("s-" + string(u))
		streams, in := r.members[u]
		switch x := rng.IntN(100); {
		case !in && (x < 35 || len(r.members) == 0):
			if !r.exists {
				ps = append(ps, &domain.RoomCreatedData{By: u, Session: s, Via: domain.ViaLogin})
				r.exists = true
			}
			ps = append(ps, &domain.MemberJoinedData{User: u, Session: s, Role: domain.Anchor, CanPublish: true, Via: domain.ViaLogin})
			r.members[u] = nil
		case in && x < 50:
			reason := reasons[rng.IntN(len(reasons))]
			for _, st := range streams {
				ps = append(ps, &domain.StreamStoppedData{Stream: st, User: u, Session: s, Reason: reason})
			}
			ps = append(ps, &domain.MemberLeftData{User: u, Session: s, Reason: reason})
			delete(r.members, u)
		case in && x < 60:
			st := domain.StreamID(fmt.Sprintf("%s-cam-%d", u, r.seq))
			ps = append(ps, &domain.StreamPublishedData{Stream: st, User: u, Session: s})
			r.members[u] = append(streams, st)
		case in && x < 90:
			ps = append(ps, &domain.BroadcastSentData{From: u, Session: s, Body: "hello"})
		case in:
			ps = append(ps, &domain.CustomCommandSentData{From: u, Session: s, Body: `{"mic":"off"}`})
		default:
			continue
		}
		evs := make([]domain.Event, len(ps))
		for i, p := range ps {
			r.seq++
			evs[i] = domain.Event{ID: ulid.Make(), Type: p.EventType(), App: cfg.App, Aggregate: domain.KindRoom,
				AggregateID: string(id), Seq: r.seq, Time: now, Data: p}
		}
		body, head, err := domain.EncodeEvents(r.prev, evs)
		if err != nil {
			tb.Fatal(err)
		}
		ack, err := log.Append(ctx, eventstore.Message{Subject: log.Subject(string(cfg.App), string(domain.KindRoom), string(id)),
			MsgID: evs[0].ID.String(), Expected: r.last, Data: body})
		if err != nil {
			tb.Fatal(err)
		}
		r.prev, r.last = head, ack.Seq
		events += len(evs)
		messages++
		if cfg.Pace != nil {
			cfg.Pace(messages)
		}
	}
	return events, messages
}
