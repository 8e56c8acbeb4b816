package audit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/domain/domaintest"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections/audit"
)

const app = domain.AppID("app")

// policy allows multi-room sessions in at most two rooms.
func policy() domain.Policy {
	p := domain.DefaultPolicy()
	p.MultiRoom = true
	p.MaxRooms = 2
	return p
}

// auditLog reads the whole log through a new Auditor.
func auditLog(t *testing.T, log *eventstore.Log, p domain.Policy) *audit.Auditor {
	t.Helper()
	a := audit.New(log.Prefix(), func(domain.AppID) domain.Policy { return p })
	if _, err := log.Read(estest.Ctx(t), nil, 1, a.Apply); err != nil {
		t.Fatalf("audit read: %v", err)
	}
	return a
}

// ---- a clean log, written by the real engine ----

func TestALogWrittenByTheEngineHasNoViolations(t *testing.T) {
	log := estest.Open(t, nil)
	p := policy()
	d, err := domain.NewDecider(domain.Config{Default: p})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	e, err := engine.New(engine.Config{Log: log, Decider: d, Clock: func() time.Time { return now },
		Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	exec := func(a domain.AppID, c domain.Command) []domain.Event {
		t.Helper()
		res, err := e.Execute(estest.Ctx(t), domain.Meta{App: a}, c)
		if err != nil {
			var de *domain.Error
			if !errors.As(err, &de) || de.Code == domain.ErrInternal.Code || de.Code == domain.ErrUnavailable.Code {
				t.Fatalf("%s: %v", c.CommandName(), err)
			}
		}
		appended := res.Appended
		for i := 0; i < len(appended); i++ {
			for j := range appended[i].Events {
				for _, f := range domain.FollowUps(&appended[i].Events[j]) {
					fres, ferr := e.Execute(estest.Ctx(t), domain.Meta{App: a, Causation: f.Cause.ID.String(),
						Correlation: f.Cause.Correlation}, f.Command)
					if ferr != nil {
						t.Fatalf("follow-up %s: %v", f.Command.CommandName(), ferr)
					}
					appended = append(appended, fres.Appended...)
				}
			}
		}
		var events []domain.Event
		for _, ap := range appended {
			events = append(events, ap.Events...)
		}
		return events
	}
	types := map[domain.EventType]bool{}
	for i, a := range []domain.AppID{"app", "other app.*"} {
		gen := domaintest.New(domaintest.Config{Users: 8, SessionsPerUser: 2, Rooms: 6, Streams: 5,
			MultiRoom: i == 0, Weird: true}, uint64(i+1))
		for range 300 {
			now = now.Add(gen.Advance())
			events := exec(a, gen.Next())
			gen.Observe(events)
			for _, ev := range events {
				types[ev.Type] = true
			}
		}
	}
	au := auditLog(t, log, p)
	for _, v := range au.Violations() {
		t.Error(v)
	}
	last, err := log.LastSeq(estest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if uint64(au.Messages) != last || au.Events < au.Messages {
		t.Errorf("audited %d events in %d messages; the log has %d messages", au.Events, au.Messages, last)
	}
	for _, want := range []domain.EventType{domain.RoomDestroyed, domain.RoomStreamPublished, domain.RoomStreamStopped,
		domain.RoomMemberLeft, domain.SessionTimedOut} {
		if !types[want] {
			t.Errorf("the generated history has no %s: the audit proved little", want)
		}
	}
}

// ---- hand-written logs ----

// book appends hand-made event messages to a real log. It keeps, per
// aggregate, the last event's sequence and hash and the stream sequence of
// its last message, so that every message is well formed unless a test
// breaks it on purpose.
type book struct {
	t     *testing.T
	log   *eventstore.Log
	now   time.Time
	heads map[domain.Key]*head
}

type head struct {
	seq  uint64 // the aggregate's last event sequence
	hash string // the hash of its last event
	last uint64 // the stream sequence of its last message
}

func newBook(t *testing.T) *book {
	return &book{t: t, log: estest.Open(t, nil), now: time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC),
		heads: map[domain.Key]*head{}}
}

func (b *book) head(k domain.Key) *head {
	h := b.heads[k]
	if h == nil {
		h = &head{}
		b.heads[k] = h
	}
	return h
}

// events returns events of aggregate k with the sequences that come next.
func (b *book) events(k domain.Key, ps ...domain.Payload) []domain.Event {
	b.now = b.now.Add(time.Second)
	seq := b.head(k).seq
	var events []domain.Event
	for _, p := range ps {
		seq++
		events = append(events, domain.Event{ID: ulid.Make(), Type: p.EventType(), App: k.App, Aggregate: k.Kind,
			AggregateID: k.ID, Seq: seq, Time: b.now, Data: p})
	}
	return events
}

// put appends one well-formed message of payloads for k and returns its
// stream sequence.
func (b *book) put(k domain.Key, ps ...domain.Payload) uint64 {
	b.t.Helper()
	return b.write(k, b.head(k).hash, b.events(k, ps...))
}

// write appends events, chained from prev, to k's subject as one message,
// and returns its stream sequence.
func (b *book) write(k domain.Key, prev string, events []domain.Event) uint64 {
	b.t.Helper()
	body, hash, err := domain.EncodeEvents(prev, events)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.raw(k, hash, events[len(events)-1].Seq, body)
}

// raw appends body to k's subject as it is.
func (b *book) raw(k domain.Key, hash string, seq uint64, body []byte) uint64 {
	b.t.Helper()
	h := b.head(k)
	ack, err := b.log.Append(estest.Ctx(b.t), eventstore.Message{Subject: b.log.Subject(string(k.App), string(k.Kind), k.ID),
		MsgID: ulid.Make().String(), Expected: h.last, Data: body})
	if err != nil {
		b.t.Fatalf("append to %s: %v", k, err)
	}
	h.seq, h.hash, h.last = seq, hash, ack.Seq
	return ack.Seq
}

// ---- what a history says, in brief ----

func room(id domain.RoomID) domain.Key       { return domain.RoomKey(app, id) }
func session(id domain.SessionID) domain.Key { return domain.SessionKey(app, id) }

func opened(u domain.UserID, mode domain.RoomMode) domain.Payload {
	return &domain.SessionOpenedData{User: u, Mode: mode}
}

func created(u domain.UserID, s domain.SessionID) domain.Payload {
	return &domain.RoomCreatedData{By: u, Session: s, Via: domain.ViaLogin}
}

func joined(u domain.UserID, s domain.SessionID) domain.Payload {
	return &domain.MemberJoinedData{User: u, Session: s, Role: domain.Anchor, CanPublish: true, Via: domain.ViaLogin}
}

func left(u domain.UserID, s domain.SessionID, reason domain.Reason) domain.Payload {
	return &domain.MemberLeftData{User: u, Session: s, Reason: reason}
}

func leftForDuplicate(u domain.UserID, s, by domain.SessionID) domain.Payload {
	return &domain.MemberLeftData{User: u, Session: s, Reason: domain.ReasonKickedDuplicateLogin, BySession: by}
}

func published(st domain.StreamID, u domain.UserID, s domain.SessionID) domain.Payload {
	return &domain.StreamPublishedData{Stream: st, User: u, Session: s}
}

func stopped(st domain.StreamID, u domain.UserID, s domain.SessionID) domain.Payload {
	return &domain.StreamStoppedData{Stream: st, User: u, Session: s, Reason: domain.ReasonStopped}
}

func broadcast(u domain.UserID, s domain.SessionID) domain.Payload {
	return &domain.BroadcastSentData{From: u, Session: s, Body: "hi"}
}

// enter writes a session's first login into a room it creates.
func (b *book) enter(s domain.SessionID, u domain.UserID, mode domain.RoomMode, r domain.RoomID) uint64 {
	b.t.Helper()
	if b.head(session(s)).seq == 0 {
		b.put(session(s), opened(u, mode))
	}
	if b.head(room(r)).seq == 0 {
		return b.put(room(r), created(u, s), joined(u, s))
	}
	return b.put(room(r), joined(u, s))
}

// ---- the cases ----

func TestAuditReportsEachBrokenRuleAtTheRecordThatBrokeIt(t *testing.T) {
	const single, multi = domain.SingleRoom, domain.MultiRoom
	for _, c := range []struct {
		name string
		// write writes a history; a broken one returns the stream sequence
		// of the message that broke a rule and what the violation says.
		write func(b *book) (at uint64, want []string)
	}{
		{"a history kept by the rules has no violations", func(b *book) (uint64, []string) {
			b.enter("s1", "u1", single, "r1")
			b.enter("s2", "u2", single, "r1")
			b.put(room("r1"), published("cam", "u1", "s1"), broadcast("u1", "s1"))
			b.put(room("r1"), stopped("cam", "u1", "s1"), left("u1", "s1", domain.ReasonLogout))
			b.enter("s1", "u1", single, "r2")
			return 0, nil
		}},
		{"a gap in a room's event sequence", func(b *book) (uint64, []string) {
			b.enter("s1", "u1", single, "r1")
			events := b.events(room("r1"), broadcast("u1", "s1"))
			events[0].Seq = 4 // 3 is missing
			at := b.write(room("r1"), b.head(room("r1")).hash, events)
			b.put(room("r1"), broadcast("u1", "s1")) // 5 follows 4: reported once
			return at, []string{`room:app:r1: seq 3 is missing: event seq 4 follows 2`}
		}},
		{"a repeated event sequence", func(b *book) (uint64, []string) {
			b.enter("s1", "u1", single, "r1")
			events := b.events(room("r1"), broadcast("u1", "s1"))
			events[0].Seq = 2
			return b.write(room("r1"), b.head(room("r1")).hash, events), []string{`room:app:r1: event seq 2 follows 2`}
		}},
		{"a gap in a session's event sequence", func(b *book) (uint64, []string) {
			b.put(session("s1"), opened("u1", multi))
			events := b.events(session("s1"), &domain.RoomClaimedData{Room: "r1", Command: "c1"})
			events[0].Seq = 3
			return b.write(session("s1"), b.head(session("s1")).hash, events), []string{`session:app:s1: seq 2 is missing: event seq 3 follows 1`}
		}},
		{"an event that does not name its predecessor's hash blames the predecessor", func(b *book) (uint64, []string) {
			at := b.enter("s1", "u1", single, "r1")
			b.write(room("r1"), strings.Repeat("0", 64), b.events(room("r1"), broadcast("u1", "s1")))
			// The next message chains from the broken one as stored: reported once.
			b.put(room("r1"), broadcast("u1", "s1"))
			return at, []string{`room:app:r1: broken hash chain: seq 2 was altered`}
		}},
		{"a first event that names a predecessor", func(b *book) (uint64, []string) {
			return b.write(room("r1"), strings.Repeat("0", 64), b.events(room("r1"), created("u1", "s1"))),
				[]string{`room:app:r1: broken hash chain`}
		}},
		{"a message that holds events of two aggregates", func(b *book) (uint64, []string) {
			events := append(b.events(room("r1"), created("u1", "s1")), b.events(session("s1"), opened("u1", single))...)
			return b.write(room("r1"), "", events), []string{`one message holds events of room:app:r1 and session:app:s1`}
		}},
		{"a member beyond the room's capacity", func(b *book) (uint64, []string) {
			b.put(session("s1"), opened("u1", single))
			b.put(room("r1"), &domain.RoomCreatedData{By: "u1", Session: "s1", Via: domain.ViaLogin, MaxMembers: 1},
				joined("u1", "s1"))
			b.put(session("s2"), opened("u2", single))
			return b.put(room("r1"), joined("u2", "s2")), []string{`room "r1": u2 joined with 1 members in it, at most 1 allowed`}
		}},
		{"a user in a room with a second session while still in it", func(b *book) (uint64, []string) {
			b.enter("s1", "u1", single, "r1")
			b.put(session("s2"), opened("u1", single))
			return b.put(room("r1"), joined("u1", "s2")),
				[]string{`room "r1": user u1 joined with session s2 while in it with s1`}
		}},
		{"a duplicate login that removes the older session first is fine", func(b *book) (uint64, []string) {
			b.enter("s1", "u1", single, "r1")
			b.put(session("s2"), opened("u1", single))
			b.put(room("r1"), leftForDuplicate("u1", "s1", "s2"), joined("u1", "s2"))
			return 0, nil
		}},
		{"a single-room session in two rooms", func(b *book) (uint64, []string) {
			b.enter("s1", "u1", single, "r1")
			return b.enter("s1", "u1", single, "r2"), []string{`session s1 is in 2 rooms ([r1 r2]), at most 1 allowed`}
		}},
		{"a single-room session that left one room may join another", func(b *book) (uint64, []string) {
			b.enter("s1", "u1", single, "r1")
			b.put(room("r1"), left("u1", "s1", domain.ReasonSwitch))
			b.enter("s1", "u1", single, "r2")
			return 0, nil
		}},
		{"a multi-room session in more rooms than its policy allows", func(b *book) (uint64, []string) {
			b.enter("s1", "u1", multi, "r1")
			b.enter("s1", "u1", multi, "r2")
			return b.enter("s1", "u1", multi, "r3"), []string{`session s1 is in 3 rooms ([r1 r2 r3]), at most 2 allowed`}
		}},
		{"a multi-room session in as many rooms as its policy allows is fine", func(b *book) (uint64, []string) {
			b.enter("s1", "u1", multi, "r1")
			b.enter("s1", "u1", multi, "r2")
			b.put(room("r1"), left("u1", "s1", domain.ReasonLeave))
			b.enter("s1", "u1", multi, "r3")
			return 0, nil
		}},
		{"a stream ID published in two rooms at once", func(b *book) (uint64, []string) {
			b.enter("s1", "u1", single, "r1")
			b.enter("s2", "u2", single, "r2")
			b.put(room("r1"), published("cam", "u1", "s1"))
			at := b.put(room("r2"), published("cam", "u2", "s2"))
			// Stopping it in one room later does not make it right.
			b.put(room("r1"), stopped("cam", "u1", "s1"))
			return at, []string{`stream cam published in room "r2" while published in room "r1"`}
		}},
		{"a stream ID stopped in one room and then published in another is fine", func(b *book) (uint64, []string) {
			b.enter("s1", "u1", single, "r1")
			b.enter("s2", "u2", single, "r2")
			b.put(room("r1"), published("cam", "u1", "s1"))
			b.put(room("r1"), stopped("cam", "u1", "s1"))
			b.put(room("r2"), published("cam", "u2", "s2"))
			return 0, nil
		}},
		{"the same stream ID in two apps is fine", func(b *book) (uint64, []string) {
			b.enter("s1", "u1", single, "r1")
			b.put(room("r1"), published("cam", "u1", "s1"))
			other := domain.RoomKey("other", "r1")
			b.put(domain.SessionKey("other", "s1"), opened("u1", single))
			b.put(other, created("u1", "s1"), joined("u1", "s1"), published("cam", "u1", "s1"))
			return 0, nil
		}},
		{"a destroyed room frees its members and its streams", func(b *book) (uint64, []string) {
			b.enter("s1", "u1", single, "r1")
			b.enter("s2", "u2", single, "r1")
			b.put(room("r1"), published("cam", "u1", "s1"))
			b.put(room("r1"), &domain.RoomDestroyedData{Reason: domain.DestroyBackend,
				Members: []domain.MemberClaim{{User: "u1", Session: "s1"}, {User: "u2", Session: "s2"}},
				Streams: []domain.StreamClaim{{Stream: "cam", User: "u1", Session: "s1"}}})
			b.enter("s1", "u1", single, "r2")
			b.put(room("r2"), published("cam", "u1", "s1"))
			b.put(room("r1"), created("u2", "s2"), joined("u2", "s2"))
			b.put(room("r1"), joined("u1", "s3")) // u1 is in r1 no more
			return 0, nil
		}},
		{"a session that joins a room as another user than it opened as", func(b *book) (uint64, []string) {
			b.put(session("s1"), opened("u1", single))
			return b.put(room("r1"), created("u2", "s1"), joined("u2", "s1")),
				[]string{`session s1 joined room "r1" as u2, it is u1`}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBook(t)
			at, want := c.write(b)
			got := auditLog(t, b.log, policy()).Violations()
			if len(want) == 0 {
				for _, v := range got {
					t.Errorf("unexpected violation: %s", v)
				}
				return
			}
			prefix := fmt.Sprintf("stream sequence %d: ", at)
			for _, v := range got {
				if !strings.HasPrefix(v, prefix) {
					t.Errorf("violation not at stream sequence %d: %s", at, v)
				}
			}
			for _, w := range want {
				found := false
				for _, v := range got {
					found = found || strings.HasPrefix(v, prefix+w)
				}
				if !found {
					t.Errorf("no violation %q%s; got %q", prefix, w, got)
				}
			}
		})
	}
}

func TestAuditSummarisesViolationsPastMaxViolations(t *testing.T) {
	b := newBook(t)
	b.enter("s1", "u1", domain.SingleRoom, "r1")
	const extra = 7
	for range audit.MaxViolations + extra {
		events := b.events(room("r1"), broadcast("u1", "s1"))
		events[0].Seq++ // skip one each time
		b.write(room("r1"), b.head(room("r1")).hash, events)
	}
	a := auditLog(t, b.log, policy())
	got := a.Violations()
	if len(got) != audit.MaxViolations+1 {
		t.Fatalf("%d violations reported, want %d kept and a summary", len(got), audit.MaxViolations)
	}
	if want := fmt.Sprintf("... and %d more", extra); got[len(got)-1] != want {
		t.Errorf("last line %q, want %q", got[len(got)-1], want)
	}
	// The kept ones are the first, in log order.
	if want := "stream sequence 3: room:app:r1: seq 3 is missing: event seq 4 follows 2 (after stream sequence 2)"; got[0] != want {
		t.Errorf("first violation %q, want %q", got[0], want)
	}
	var prev uint64
	for _, v := range got[:audit.MaxViolations] {
		var seq uint64
		if _, err := fmt.Sscanf(v, "stream sequence %d:", &seq); err != nil || seq <= prev {
			t.Fatalf("violations out of log order: %q after stream sequence %d", v, prev)
		}
		prev = seq
	}
	// Reading them does not change them.
	if again := a.Violations(); len(again) != len(got) || again[len(again)-1] != got[len(got)-1] {
		t.Errorf("a second call to Violations gave %d lines", len(again))
	}
}

// A record that cannot be read is flagged, and the audit goes on as the
// nodes do, past it: the room's chain continues from the event before it.
func TestAuditFlagsARecordItCannotReadAndGoesOn(t *testing.T) {
	for _, c := range []struct {
		name string
		body string
		want string
	}{
		{"bytes that are not JSON", "garbage", domain.ErrMalformedEvent.Error()},
		{"a message without events", "[]", domain.ErrMalformedEvent.Error()},
		{"an event of an unknown type", `[{"type":"room.teleported","app":"app","aggregate":"room",` +
			`"aggregate_id":"r1","seq":1,"time":"2026-11-21T09:00:00Z","data":{}}]`, domain.ErrUnknownEventType.Error()},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBook(t)
			b.enter("s1", "u1", domain.SingleRoom, "r1")
			at := b.raw(room("r1"), b.head(room("r1")).hash, b.head(room("r1")).seq, []byte(c.body))
			b.put(room("r1"), broadcast("u1", "s1")) // chains to the event before the bad record
			a := audit.New(b.log.Prefix(), func(domain.AppID) domain.Policy { return policy() })
			if _, err := b.log.Read(estest.Ctx(t), nil, 1, a.Apply); err != nil {
				t.Fatalf("Apply = %v, want the audit to go on", err)
			}
			v := a.Violations()
			if prefix := fmt.Sprintf("stream sequence %d: ", at); len(v) != 1 || !strings.HasPrefix(v[0], prefix) ||
				!strings.Contains(v[0], c.want) {
				t.Fatalf("violations %q, want one at %q: %s", v, prefix, c.want)
			}
		})
	}
}

func TestAuditBlamesOnlyTheMessageWhoseOwnEventsDoNotChain(t *testing.T) {
	b := newBook(t)
	b.enter("s1", "u1", domain.SingleRoom, "r1")
	events := b.events(room("r1"), broadcast("u1", "s1"), broadcast("u1", "s1"))
	events[0].Prev = b.head(room("r1")).hash
	first, err := json.Marshal(&events[0])
	if err != nil {
		t.Fatal(err)
	}
	events[1].Prev = strings.Repeat("0", 64) // not the hash of the first
	second, err := json.Marshal(&events[1])
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Join([][]byte{[]byte("["), first, []byte(","), second, []byte("]")}, nil)
	at := b.raw(room("r1"), domain.HashEvent(second), events[1].Seq, body)
	b.put(room("r1"), broadcast("u1", "s1")) // chains to the stored bytes of the broken message
	got := auditLog(t, b.log, policy()).Violations()
	prefix := fmt.Sprintf("stream sequence %d: ", at)
	if len(got) != 1 || !strings.HasPrefix(got[0], prefix+"room:app:r1: broken hash chain") {
		t.Fatalf("violations %q, want one broken chain at stream sequence %d", got, at)
	}
}

func TestAuditReportsEventsStoredOnAnotherAggregatesSubject(t *testing.T) {
	b := newBook(t)
	b.enter("s1", "u1", domain.SingleRoom, "r1")
	at := b.write(room("r2"), b.head(room("r1")).hash, b.events(room("r1"), broadcast("u1", "s1")))
	got := auditLog(t, b.log, policy()).Violations()
	if len(got) == 0 || !strings.HasPrefix(got[0], fmt.Sprintf("stream sequence %d: ", at)) {
		t.Fatalf("violations %q, want one at stream sequence %d: the events of room:app:r1 on the subject of room:app:r2", got, at)
	}
}
