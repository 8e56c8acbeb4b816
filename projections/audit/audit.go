// Package audit verifies a room log: every aggregate's events are gapless and
// hash-chained, and the cross-aggregate invariants held at every point of the
// log, not just at its end. roomctl verify and the race tests use it.
package audit

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// MaxViolations bounds how many violations an Auditor keeps.
const MaxViolations = 100

type aggHead struct {
	seq  uint64 // the last event's sequence
	hash string // the hash of its stored bytes
	at   uint64 // the stream sequence of the message that holds it
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

	anchors map[domain.Key]*anchor
	start   map[domain.Key]uint64
	// unreadable is, per subject, the stream sequence of the last message
	// no engine could have written (already flagged): the next append on
	// the subject names it as the message before it.
	unreadable map[string]uint64
	kept       bool
	first      uint64

	// Messages and Events count what was read; Skipped counts anchors
	// that could not be checked (below the retained history).
	Messages, Events, Skipped int
	violations                []string
	dropped                   int
}

// New returns an Auditor of a log whose subjects start with prefix, that
// checks room counts against policy.
func New(prefix string, policy func(domain.AppID) domain.Policy) *Auditor {
	return &Auditor{prefix: prefix, policy: policy, heads: map[domain.Key]aggHead{}, rooms: map[domain.Key]*domain.Room{},
		mode: map[sessKey]domain.RoomMode{}, user: map[sessKey]domain.UserID{},
		in: map[sessKey]map[domain.RoomID]bool{}, publish: map[streamKey]domain.RoomID{},
		anchors: map[domain.Key]*anchor{}, start: map[domain.Key]uint64{}}
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
//
// A broken hash link between two events blames the earlier one: its stored
// bytes no longer hash to what its successor recorded when it was written,
// so it is the event that was changed (or the successor was not written
// after it, which the message also says). A gap in an aggregate's event
// sequence names the missing sequences.
func (a *Auditor) Apply(rec eventstore.Record) error {
	events, hashes, err := domain.DecodeHashed(rec.Data)
	if err != nil {
		// Not written by an engine: the nodes pass over it, and so does
		// the audit, after flagging it. The aggregate's chain goes on
		// from the event before it.
		a.violate(rec.Seq, "%s: unreadable message, skipped by the nodes: %v", rec.Subject, err)
		if a.unreadable == nil {
			a.unreadable = map[string]uint64{}
		}
		a.unreadable[rec.Subject] = rec.Seq
		return nil
	}
	a.ApplyDecoded(rec, events, hashes)
	return nil
}

// ApplyDecoded is Apply for a record already decoded with
// domain.DecodeHashed (by cursor.ReadDecoded, on several cores).
func (a *Auditor) ApplyDecoded(rec eventstore.Record, events []domain.Event, hashes []string) {
	a.Messages++
	k := events[0].Key()
	if app, kind, id, err := eventstore.ParseSubject(a.prefix, rec.Subject); err != nil {
		a.violate(rec.Seq, "subject %q: %v", rec.Subject, err)
	} else if (domain.Key{Kind: domain.Kind(kind), App: domain.AppID(app), ID: id}) != k {
		// The engine loads an aggregate by reading its subject: events on
		// another aggregate's subject corrupt that aggregate's history.
		a.violate(rec.Seq, "events of %s stored on the subject of %s:%s:%s", k, kind, app, id)
	}
	h := a.heads[k]
	if a.start[k] == 0 {
		a.start[k] = events[0].Seq
		if a.kept && events[0].Seq > 1 {
			// The history before this event was removed by retention: its
			// first kept event's link cannot be checked, only what follows.
			h = aggHead{seq: events[0].Seq - 1, hash: events[0].Prev, at: 0}
		}
	}
	a.checkExpected(rec, k, h)
	for i := range events {
		e := &events[i]
		a.Events++
		if e.Key() != k {
			a.violate(rec.Seq, "one message holds events of %s and %s", k, e.Key())
		}
		switch {
		case e.Seq > h.seq+1:
			a.violate(rec.Seq, "%s: %s missing: event seq %d follows %d%s", k, seqRange(h.seq+1, e.Seq-1), e.Seq, h.seq, h.since())
		case e.Seq <= h.seq:
			a.violate(rec.Seq, "%s: event seq %d follows %d: stored twice or out of order", k, e.Seq, h.seq)
		case e.Prev != h.hash && h.seq == 0:
			a.violate(rec.Seq, "%s: broken hash chain: seq %d is the first event but names a predecessor %q", k, e.Seq, e.Prev)
		case e.Prev != h.hash:
			// Blame the predecessor, at the stream sequence that holds it.
			at, where := h.at, fmt.Sprintf("stream sequence %d", rec.Seq)
			if i > 0 {
				at, where = rec.Seq, "the same message"
			}
			a.violate(at, "%s: broken hash chain: seq %d was altered: its stored bytes hash to %s, but seq %d (%s) recorded %s "+
				"(or seq %d was not written after it)", k, h.seq, short(h.hash), e.Seq, where, short(e.Prev), e.Seq)
		}
		h.seq, h.hash, h.at = e.Seq, hashes[i], rec.Seq
		if an := a.anchors[k]; an != nil && an.seq == e.Seq {
			an.checked = true
			if an.hash != hashes[i] {
				a.violate(rec.Seq, "%s: seq %d does not match %s: signed hash %s, stored %s: the history was rewritten",
					k, e.Seq, an.what, short(an.hash), short(hashes[i]))
			}
		}
		a.event(rec.Seq, e)
	}
	a.heads[k] = h
}

// checkExpected checks the expected-sequence header every append carries:
// the stream sequence of the message before it on the same subject. A
// different one means a message of this aggregate was deleted, or this one
// was stored again out of its place.
func (a *Auditor) checkExpected(rec eventstore.Record, k domain.Key, h aggHead) {
	v := rec.Header.Get(jetstream.ExpectedLastSubjSeqHeader)
	if v == "" || (a.kept && h.at == 0) {
		return
	}
	want, err := strconv.ParseUint(v, 10, 64)
	switch {
	case err != nil:
		a.violate(rec.Seq, "%s: unreadable expected-sequence header %q", k, v)
	case want > h.at && want == a.unreadable[rec.Subject]:
		// The message before it is the unreadable one, flagged already.
	case want > h.at:
		a.violate(rec.Seq, "%s: the message before it, at stream sequence %d, is missing (deleted from the log)", k, want)
	case want < h.at:
		a.violate(rec.Seq, "%s: written after stream sequence %d, but stream sequence %d came between: stored out of its place",
			k, want, h.at)
	}
}

// Anchor makes the Auditor check that aggregate k's event seq hashes to
// hash (what describes where that came from: a signed checkpoint), and
// that the log holds k's history at least up to seq. Anchors are set
// before the read.
// at is the stream sequence that held it when it was signed.
func (a *Auditor) Anchor(k domain.Key, seq uint64, hash string, at uint64, what string) {
	a.anchors[k] = &anchor{seq: seq, hash: hash, at: at, what: what}
}

// Retained tells the Auditor that the log's history before stream sequence
// first was removed by a retention limit: an aggregate whose first kept
// event is not its first is checked from there on, and anchors below it
// (or of aggregates whose whole history was before first) are skipped.
func (a *Auditor) Retained(first uint64) { a.kept, a.first = true, first }

// Finish reports what can only be seen at the end of the read: histories
// that end before a signed checkpoint says they reached. Call it once,
// after the last Apply.
func (a *Auditor) Finish(last uint64) {
	keys := slices.SortedFunc(maps.Keys(a.anchors), func(x, y domain.Key) int { return strings.Compare(x.String(), y.String()) })
	for _, k := range keys {
		an := a.anchors[k]
		h := a.heads[k]
		switch {
		case an.checked:
		case a.kept && a.start[k] > an.seq, a.kept && a.start[k] == 0 && an.at < a.first:
			a.Skipped++
		case h.seq < an.seq:
			a.violate(last, "%s: %s covers seq %d, but the log ends at seq %d: %s removed",
				k, an.what, an.seq, h.seq, seqRange(h.seq+1, an.seq))
		default:
			a.Skipped++
		}
	}
}

type anchor struct {
	seq, at uint64
	hash    string
	what    string
	checked bool
}

func (h aggHead) since() string {
	if h.at == 0 {
		return ""
	}
	return fmt.Sprintf(" (after stream sequence %d)", h.at)
}

func seqRange(from, to uint64) string {
	if from == to {
		return fmt.Sprintf("seq %d is", from)
	}
	return fmt.Sprintf("seqs %d..%d are", from, to)
}

func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	if hash == "" {
		return `""`
	}
	return hash
}

// limit is how many rooms session s may be in: a multi-room session's
// app's MaxRooms, if the app allows multi-room sessions at all.
func (a *Auditor) limit(s sessKey) int {
	if p := a.policy(s.app); a.mode[s] == domain.MultiRoom && p.MultiRoom {
		return p.MaxRooms
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
