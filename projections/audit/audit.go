// Package audit verifies a room log: every aggregate's events are gapless and
// hash-chained, and the cross-aggregate invariants held at every point of the
// log, not just at its end. roomctl verify and the race tests use it.
package audit

import (
	"fmt"
	"maps"
	"slices"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// MaxViolations bounds how many violations an Auditor keeps.
const MaxViolations = 100

type aggHead struct {
	seq  uint64
	hash string
}

type sessKey struct {
	app domain.AppID
	id  domain.SessionID
}

type streamKey struct {
	app domain.AppID
	id  domain.StreamID
}

// Auditor folds a log record by record and reports what is wrong with it.
type Auditor struct {
	prefix string
	policy func(domain.AppID) domain.Policy

	heads   map[domain.Key]aggHead
	rooms   map[domain.Key]*domain.Room
	mode    map[sessKey]domain.RoomMode
	user    map[sessKey]domain.UserID
	in      map[sessKey]map[domain.RoomID]bool
	publish map[streamKey]domain.RoomID

	// Messages and Events count what was read.
	Messages, Events int
	violations       []string
	dropped          int
}

// New returns an Auditor of a log whose subjects start with prefix, that
// checks room counts against policy.
func New(prefix string, policy func(domain.AppID) domain.Policy) *Auditor {
	return &Auditor{prefix: prefix, policy: policy, heads: map[domain.Key]aggHead{}, rooms: map[domain.Key]*domain.Room{},
		mode: map[sessKey]domain.RoomMode{}, user: map[sessKey]domain.UserID{},
		in: map[sessKey]map[domain.RoomID]bool{}, publish: map[streamKey]domain.RoomID{}}
}

func (a *Auditor) violate(at uint64, format string, args ...any) {
	if len(a.violations) >= MaxViolations {
		a.dropped++
		return
	}
	a.violations = append(a.violations, fmt.Sprintf("stream sequence %d: ", at)+fmt.Sprintf(format, args...))
}

// Violations returns what was found wrong, in log order.
func (a *Auditor) Violations() []string {
	if a.dropped > 0 {
		return append(slices.Clone(a.violations), fmt.Sprintf("... and %d more", a.dropped))
	}
	return a.violations
}

// Apply checks and folds one record. It returns an error only for a record
// it cannot read; broken rules are collected as violations.
func (a *Auditor) Apply(rec eventstore.Record) error {
	a.Messages++
	var first domain.Event
	events, err := domain.DecodeEvents(rec.Data)
	if err != nil {
		return fmt.Errorf("stream sequence %d: %w", rec.Seq, err)
	}
	first = events[0]
	k := first.Key()
	if app, kind, id, err := eventstore.ParseSubject(a.prefix, rec.Subject); err != nil {
		a.violate(rec.Seq, "subject %q: %v", rec.Subject, err)
	} else if (domain.Key{Kind: domain.Kind(kind), App: domain.AppID(app), ID: id}) != k {
		// The engine loads an aggregate by reading its subject: events on
		// another aggregate's subject corrupt that aggregate's history.
		a.violate(rec.Seq, "events of %s stored on the subject of %s:%s:%s", k, kind, app, id)
	}
	h := a.heads[k]
	head, _, err := domain.VerifyEvents(h.hash, rec.Data)
	if err != nil {
		a.violate(rec.Seq, "%s: %v", k, err)
		// Carry on from the bytes as stored, so that only this message is
		// blamed, not the next one that chains to it correctly.
		head, _ = domain.StoredHead(rec.Data)
	}
	for i := range events {
		e := &events[i]
		a.Events++
		if e.Key() != k {
			a.violate(rec.Seq, "one message holds events of %s and %s", k, e.Key())
		}
		if e.Seq != h.seq+1 {
			a.violate(rec.Seq, "%s: event seq %d follows %d", k, e.Seq, h.seq)
		}
		h.seq = e.Seq
		a.event(rec.Seq, e)
	}
	h.hash = head
	a.heads[k] = h
	return nil
}

func (a *Auditor) limit(s sessKey) int {
	if a.mode[s] == domain.MultiRoom {
		return a.policy(s.app).MaxRooms
	}
	return 1
}

func (a *Auditor) event(at uint64, e *domain.Event) {
	switch d := e.Data.(type) {
	case *domain.SessionOpenedData:
		s := sessKey{e.App, domain.SessionID(e.AggregateID)}
		if u, ok := a.user[s]; ok && u != d.User {
			a.violate(at, "session %s opened as %s after joining as %s", s.id, d.User, u)
		}
		a.mode[s], a.user[s] = d.Mode, d.User
	}
	if e.Aggregate != domain.KindRoom {
		return
	}
	k := e.Key()
	room := domain.RoomID(e.AggregateID)
	r := a.rooms[k]
	if r == nil {
		r = &domain.Room{}
		a.rooms[k] = r
	}
	switch d := e.Data.(type) {
	case *domain.MemberJoinedData:
		s := sessKey{e.App, d.Session}
		if old, ok := r.Members[d.User]; ok && old.Session != d.Session {
			a.violate(at, "room %q: user %s joined with session %s while in it with %s", room, d.User, d.Session, old.Session)
		}
		if u, ok := a.user[s]; ok && u != d.User {
			a.violate(at, "session %s joined room %q as %s, it is %s", d.Session, room, d.User, u)
		}
		a.user[s] = d.User
		if a.in[s] == nil {
			a.in[s] = map[domain.RoomID]bool{}
		}
		a.in[s][room] = true
		if n := len(a.in[s]); n > a.limit(s) {
			a.violate(at, "session %s is in %d rooms (%v), at most %d allowed", d.Session, n,
				slices.Sorted(maps.Keys(a.in[s])), a.limit(s))
		}
		if _, in := r.Members[d.User]; !in && r.MaxMembers > 0 && len(r.Members) >= r.MaxMembers {
			a.violate(at, "room %q: %s joined with %d members in it, at most %d allowed", room, d.User, len(r.Members),
				r.MaxMembers)
		}
	case *domain.MemberLeftData:
		delete(a.in[sessKey{e.App, d.Session}], room)
	case *domain.RoomDestroyedData:
		for _, m := range r.Members {
			delete(a.in[sessKey{e.App, m.Session}], room)
		}
		for id := range r.Streams {
			delete(a.publish, streamKey{e.App, id})
		}
	case *domain.StreamPublishedData:
		sk := streamKey{e.App, d.Stream}
		if other, ok := a.publish[sk]; ok {
			a.violate(at, "stream %s published in room %q while published in room %q", d.Stream, room, other)
		}
		a.publish[sk] = room
	case *domain.StreamStoppedData:
		if a.publish[streamKey{e.App, d.Stream}] == room {
			delete(a.publish, streamKey{e.App, d.Stream})
		}
	}
	r.Apply(e)
}
