// Package timeline tells a room's history as people read it: who joined and
// left and why, streams, messages, kicks and extra info, one line per event;
// the room's state at any sequence or time; and what changed between two
// points. roomctl replay and the admin API's history routes use it.
package timeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/projections/cursor"
)

// Entry is one event of a room's timeline.
type Entry struct {
	// Cursor addresses the event in the log (see package cursor).
	Cursor cursor.Cursor `json:"cursor"`
	// Seq is the room's event sequence, Time the event's time.
	Seq  uint64           `json:"seq"`
	Time time.Time        `json:"time"`
	Type domain.EventType `json:"type"`
	// Text says what happened, in words.
	Text string `json:"text"`
	// Event is the event itself.
	Event *domain.Event `json:"event"`
}

// Point is a place in a room's history: after the event with sequence Seq,
// or after the last event at or before Time. The zero Point is the end.
type Point struct {
	Seq  uint64
	Time time.Time
}

// IsEnd reports whether p is the end of the history.
func (p Point) IsEnd() bool { return p.Seq == 0 && p.Time.IsZero() }

// Beyond reports whether p comes after end, when both are room sequences
// or both times (nothing comes after the end of the history; points of
// different kinds are compared by reading the history).
func (p Point) Beyond(end Point) bool {
	return end.Seq != 0 && p.Seq > end.Seq || !end.Time.IsZero() && p.Time.After(end.Time)
}

// past reports whether e comes after p.
func (p Point) past(e *domain.Event) bool {
	return (p.Seq != 0 && e.Seq > p.Seq) || (!p.Time.IsZero() && e.Time.After(p.Time))
}

// After reports whether entry e comes after point p (the end: never).
func (p Point) After(e Entry) bool {
	switch {
	case p.Seq != 0:
		return e.Seq > p.Seq
	case !p.Time.IsZero():
		return e.Time.After(p.Time)
	}
	return false
}

// String prints p as roomctl's flags take it.
func (p Point) String() string {
	switch {
	case p.Seq != 0:
		return fmt.Sprintf("seq %d", p.Seq)
	case !p.Time.IsZero():
		return p.Time.Format(time.RFC3339Nano)
	}
	return "the end"
}

// ParsePoint reads a sequence number or an RFC 3339 time.
func ParsePoint(s string) (Point, error) {
	var seq uint64
	if _, err := fmt.Sscan(s, &seq); err == nil && fmt.Sprint(seq) == s {
		if seq == 0 {
			return Point{}, errors.New("sequence 0 is before the first event")
		}
		return Point{Seq: seq}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return Point{}, fmt.Errorf("%q is neither a room sequence nor an RFC 3339 time", s)
	}
	return Point{Time: t}, nil
}

// ErrNoHistory is returned for a room with no events (at that point).
var ErrNoHistory = errors.New("no history")

// ErrTruncated is returned by Replay for a room whose first events were
// removed by the log's retention limit: its state cannot be rebuilt.
var ErrTruncated = errors.New("the start of the history was removed by retention")

// errStop ends a read early.
var errStop = errors.New("stop")

// Replay folds the history of room id of app from its first event up to
// the point until, checking its hash chain, and calls fn (if not nil) with
// each event's entry and the state just after it. It returns the state at
// until, or ErrNoHistory if the room had no event by then. progress, if
// not nil, is told the stream sequence of each message read. A message no
// engine wrote (one that does not decode) is passed over, as the nodes
// pass over it; roomctl verify reports it.
func Replay(ctx context.Context, log *eventstore.Log, app domain.AppID, id domain.RoomID, until Point,
	fn func(Entry, *domain.Room) error, progress func(seq uint64)) (*domain.Room, error) {
	return replay(ctx, log, app, id, until, nil, fn, progress)
}

// ReplayAt is Replay that also returns the state at point at (at or before
// until; nil if the room had no event by then), for a diff between the two.
// It copies the state once, where Replay's fn would have to copy it at
// every event.
func ReplayAt(ctx context.Context, log *eventstore.Log, app domain.AppID, id domain.RoomID, at, until Point,
	progress func(seq uint64)) (atState, untilState *domain.Room, err error) {
	seen := false // the first event past at
	untilState, err = replay(ctx, log, app, id, until, func(e *domain.Event, r *domain.Room) {
		if !seen && at.past(e) {
			seen = true
			if r.Seq > 0 {
				atState = r.Clone()
			}
		}
	}, nil, progress)
	if err == nil && !seen {
		atState = untilState.Clone() // no event between at and until
	}
	return atState, untilState, err
}

// replay is Replay, with pre (if not nil) called with each event and the
// state just before it.
func replay(ctx context.Context, log *eventstore.Log, app domain.AppID, id domain.RoomID, until Point,
	pre func(*domain.Event, *domain.Room), fn func(Entry, *domain.Room) error, progress func(seq uint64)) (*domain.Room, error) {
	r := &domain.Room{}
	prev := ""
	subject := log.Subject(string(app), string(domain.KindRoom), string(id))
	key := domain.RoomKey(app, id)
	err := cursor.ReadDecoded(ctx, log, []string{subject}, 1, true, func(d *cursor.Decoded) error {
		rec := &d.Record
		if progress != nil {
			progress(rec.Seq)
		}
		if d.Err != nil {
			// Not written by an engine: the nodes pass over it (the room
			// goes on, chained to the event before it), so the replay
			// does too; roomctl verify reports it.
			return nil
		}
		events := d.Events
		if r.Seq == 0 && prev == "" && events[0].Seq > 1 {
			return fmt.Errorf("room %q of app %q: %w: its first kept event is seq %d", id, app, ErrTruncated, events[0].Seq)
		}
		for i := range events {
			e := &events[i]
			if until.past(e) {
				return errStop
			}
			if err := misplaced(rec.Seq, e, key); err != nil {
				return err
			}
			if e.Prev != prev {
				return brokenLink(rec.Seq, e, prev)
			}
			if pre != nil {
				pre(e, r)
			}
			r.Apply(e)
			if fn != nil {
				if err := fn(entry(rec.Seq, i, e), r); err != nil {
					return err
				}
			}
			prev = d.Hashes[i]
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	if r.Seq == 0 {
		return nil, fmt.Errorf("room %q of app %q: %w at %s", id, app, ErrNoHistory, until)
	}
	return r, nil
}

// Page returns at most limit entries of a room's history after room
// sequence afterSeq, or (if afterSeq is 0 and since is set) from the first
// event at or after since. more says whether the history goes on. It
// starts at the right message with a binary search over direct gets, so a
// page deep in a long history costs no more than the first. Like Replay,
// it checks the hash chain, from the message before the page's first (an
// error wrapping domain.ErrBrokenChain names the first link that fails),
// and passes over a message no engine wrote.
func Page(ctx context.Context, log *eventstore.Log, app domain.AppID, id domain.RoomID, afterSeq uint64, since time.Time,
	limit int) (entries []Entry, more bool, err error) {
	subject := log.Subject(string(app), string(domain.KindRoom), string(id))
	key := domain.RoomKey(app, id)
	pred := func(rec eventstore.Record) (bool, error) {
		events, err := domain.DecodeEvents(rec.Data)
		if err != nil {
			// Unreadable (passed over below): counted as a hit, it can
			// only start the read early, never past the first entry.
			return true, nil
		}
		last := events[len(events)-1]
		if afterSeq > 0 || since.IsZero() {
			return last.Seq > afterSeq, nil
		}
		return !last.Time.Before(since), nil
	}
	start, ok, err := log.Search(ctx, subject, pred)
	if err != nil || !ok {
		return nil, false, err
	}
	prev, anchored, err := headBefore(ctx, log, subject, start)
	if err != nil {
		return nil, false, err
	}
	// A page is short: batched direct gets, not a consumer to set up.
	_, err = log.ReadSubject(ctx, subject, start, func(rec eventstore.Record) error {
		events, hashes, err := domain.DecodeHashed(rec.Data)
		if err != nil {
			return nil // not written by an engine: passed over, as by the nodes
		}
		for i := range events {
			e := &events[i]
			wanted := e.Seq > afterSeq && (afterSeq != 0 || !e.Time.Before(since))
			if wanted && len(entries) == limit {
				more = true // the next page checks it
				return errStop
			}
			if err := misplaced(rec.Seq, e, key); err != nil {
				return err
			}
			if !anchored {
				// The first kept message of a history retention cut:
				// nothing before it to check its first link against.
				prev, anchored = e.Prev, true
			}
			if e.Prev != prev {
				return brokenLink(rec.Seq, e, prev)
			}
			prev = hashes[i]
			if wanted {
				entries = append(entries, entry(rec.Seq, i, e))
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, false, err
	}
	return entries, more, nil
}

// LastSeq returns the room sequence of a room's last event; ok is false
// when the log holds no event of the room. Messages not written by an
// engine are passed over, as Page does.
func LastSeq(ctx context.Context, log *eventstore.Log, app domain.AppID, id domain.RoomID) (seq uint64, ok bool, err error) {
	subject := log.Subject(string(app), string(domain.KindRoom), string(id))
	_, err = log.ReadSubjectBackward(ctx, subject, 0, func(rec eventstore.Record) (bool, error) {
		events, err := domain.DecodeEvents(rec.Data)
		if err != nil || len(events) == 0 {
			return true, nil
		}
		seq, ok = events[len(events)-1].Seq, true
		return false, nil
	})
	return seq, ok, err
}

// misplaced is the error for event e of the message at stream sequence
// seq if it is not an event of aggregate want, whose subject held it: its
// chain may be whole (another room's history copied there by someone
// holding the NATS password), but it is not this room's.
func misplaced(seq uint64, e *domain.Event, want domain.Key) error {
	if e.Key() == want {
		return nil
	}
	return fmt.Errorf("stream sequence %d: %w: an event of %s stored on the subject of %s (roomctl verify names what was changed)",
		seq, domain.ErrBrokenChain, e.Key(), want)
}

// brokenLink is the error for event e of the message at stream sequence
// seq, which names a Prev other than want.
func brokenLink(seq uint64, e *domain.Event, want string) error {
	return fmt.Errorf("stream sequence %d: %w: %s seq %d names %q, expected %q (roomctl verify names what was changed)",
		seq, domain.ErrBrokenChain, e.Key(), e.Seq, e.Prev, want)
}

// headBefore finds what the first event at stream sequence start must name
// as its Prev: the stored head of the subject's last message an engine
// wrote before start, or "" if there is none and the history begins at
// start. anchored is false when the messages before start were removed by
// retention, and the first link cannot be checked.
func headBefore(ctx context.Context, log *eventstore.Log, subject string, start uint64) (head string, anchored bool, err error) {
	_, err = log.ReadSubjectBackward(ctx, subject, start, func(rec eventstore.Record) (bool, error) {
		h, err := domain.StoredHead(rec.Data)
		if err != nil {
			return true, nil // not written by an engine: the one before it
		}
		head, anchored = h, true
		return false, nil
	})
	if err != nil || anchored {
		return head, anchored, err
	}
	first, ok, err := log.Get(ctx, subject, start)
	if err != nil || !ok {
		return "", false, err
	}
	if events, err := domain.DecodeEvents(first.Data); err == nil && events[0].Seq == 1 {
		return "", true, nil
	}
	return "", false, nil
}

func entry(seq uint64, i int, e *domain.Event) Entry {
	return Entry{Cursor: cursor.Cursor{Seq: seq, Index: i}, Seq: e.Seq, Time: e.Time, Type: e.Type, Text: Describe(e), Event: e}
}

// Describe says what an event means, in one line.
func Describe(e *domain.Event) string {
	switch d := e.Data.(type) {
	case *domain.RoomCreatedData:
		s := fmt.Sprintf("room created by %s (%s, via %s)", d.By, d.Session, d.Via)
		if d.Name != "" {
			s += fmt.Sprintf(", named %q", d.Name)
		}
		return s
	case *domain.MemberJoinedData:
		pub := ""
		if d.CanPublish {
			pub = ", may publish"
		}
		return fmt.Sprintf("%s joined as %s (session %s, via %s%s)", who(d.User, d.UserName), d.Role, d.Session, d.Via, pub)
	case *domain.MemberLeftData:
		s := fmt.Sprintf("%s left: %s (session %s)", who(d.User, d.UserName), d.Reason, d.Session)
		if d.BySession != "" {
			s += " by session " + string(d.BySession)
		}
		return s + detail(d.Detail)
	case *domain.StreamPublishedData:
		return fmt.Sprintf("%s published stream %s%s", who(d.User, d.UserName), d.Stream, extra(d.ExtraInfo))
	case *domain.StreamStoppedData:
		return fmt.Sprintf("stream %s of %s stopped: %s", d.Stream, who(d.User, d.UserName), d.Reason)
	case *domain.StreamExtraInfoData:
		return fmt.Sprintf("%s set stream %s's extra info to %q", who(d.User, d.UserName), d.Stream, d.ExtraInfo)
	case *domain.PlayStartedData:
		return fmt.Sprintf("%s started playing stream %s", d.User, d.Stream)
	case *domain.PlayStoppedData:
		return fmt.Sprintf("%s stopped playing stream %s", d.User, d.Stream)
	case *domain.BroadcastSentData:
		return fmt.Sprintf("%s said %q", who(d.From, d.FromName), d.Body)
	case *domain.CustomCommandSentData:
		to := "everyone"
		if len(d.To) > 0 {
			to = fmt.Sprint(d.To)
		}
		return fmt.Sprintf("%s sent a custom command to %s: %q", who(d.From, d.FromName), to, d.Body)
	case *domain.ExtraInfoUpdatedData:
		return fmt.Sprintf("%s set extra info %q to %q", who(d.By, d.ByName), d.Key, d.Value)
	case *domain.AttributesUpdatedData:
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(d.Set)) {
			parts = append(parts, fmt.Sprintf("%s=%q", k, d.Set[k]))
		}
		for _, k := range d.Deleted {
			parts = append(parts, "-"+k)
		}
		return fmt.Sprintf("%s updated attributes: %s", d.By, strings.Join(parts, " "))
	case *domain.MemberAttributesUpdatedData:
		var users []string
		for _, m := range d.Members {
			users = append(users, string(m.User))
		}
		return fmt.Sprintf("%s updated the attributes of %s", who(d.By, d.ByName), strings.Join(users, ", "))
	case *domain.ClaimVoidedData:
		return fmt.Sprintf("claim %d of %s %s voided: it will never be honoured", d.Claim, d.Registry, d.ID)
	case *domain.RoomDestroyedData:
		return fmt.Sprintf("room destroyed: %s (%d members, %d streams)%s", d.Reason, len(d.Members), len(d.Streams), detail(d.Detail))
	case *domain.SessionOpenedData:
		return fmt.Sprintf("session opened by %s (%s)", who(d.User, d.UserName), d.Mode)
	case *domain.RoomClaimedData:
		return fmt.Sprintf("claimed room %q", d.Room)
	case *domain.RoomReleasedData:
		return fmt.Sprintf("released room %q: %s", d.Room, d.Reason)
	case *domain.SessionKickedData:
		return fmt.Sprintf("session kicked: %s by session %s (%d rooms released)", d.Reason, d.BySession, len(d.Released))
	case *domain.SessionTimedOutData:
		return fmt.Sprintf("session timed out (last seen %s, %d rooms released)", d.LastSeen.Format(time.RFC3339), len(d.Released))
	case *domain.StreamClaimedData:
		return fmt.Sprintf("stream claimed by %s in room %q", d.User, d.Room)
	case *domain.StreamReleasedData:
		return fmt.Sprintf("stream released: %s", d.Reason)
	}
	return string(e.Type)
}

func who(u domain.UserID, name string) string {
	if name == "" || name == string(u) {
		return string(u)
	}
	return fmt.Sprintf("%s (%s)", u, name)
}

func detail(s string) string {
	if s == "" {
		return ""
	}
	return fmt.Sprintf(" (%s)", s)
}

func extra(s string) string {
	if s == "" {
		return ""
	}
	return fmt.Sprintf(" (extra info %q)", s)
}
