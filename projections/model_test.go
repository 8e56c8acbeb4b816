package projections_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/domain/domaintest"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections"
)

const app = domain.AppID("app")

// ---- the rig: a real engine on a real embedded JetStream, and a live projection ----

// clock is a clock the tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// recorder keeps every record a live projection tells its subscribers of.
type recorder struct {
	mu   sync.Mutex
	cond *sync.Cond
	recs []projections.Record
	// last only, for a test that folds more than it should keep.
	lastOnly bool
}

func newRecorder() *recorder {
	r := &recorder{}
	r.cond = sync.NewCond(&r.mu)
	return r
}

func (r *recorder) add(rec projections.Record) {
	r.mu.Lock()
	if r.lastOnly {
		r.recs = r.recs[:0]
	}
	r.recs = append(r.recs, rec)
	r.cond.Broadcast()
	r.mu.Unlock()
}

// upTo returns the records told so far, once the one at seq has been told
// (a subscriber runs after the fold, so it can trail WaitFor by a little).
func (r *recorder) upTo(t *testing.T, seq uint64) []projections.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	})
	defer stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.recs) == 0 || r.recs[len(r.recs)-1].Seq < seq {
		if ctx.Err() != nil {
			t.Fatalf("subscriber never told of stream sequence %d (%d records told)", seq, len(r.recs))
		}
		r.cond.Wait()
	}
	return slices.Clone(r.recs)
}

// rig is one roomd node in miniature: an engine appending to a real log, and
// (unless made with newWriter) a live projection following that log, which
// is also the engine's source of folded states.
type rig struct {
	t     *testing.T
	log   *eventstore.Log
	eng   *engine.Engine
	clock *clock
	live  *projections.Live // nil for a writer
	rec   *recorder
	run   *liveRun
	// ctx, if set, is what commands run under, instead of a context per
	// command (whose cleanups a test of thousands of commands would pile up).
	ctx context.Context
}

// liveRun is a Live.Run in progress.
type liveRun struct {
	cancel context.CancelFunc
	done   chan error
}

var t0 = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)

func multiPolicy() domain.Policy {
	p := domain.DefaultPolicy()
	p.MultiRoom = true
	p.MaxRooms = 3
	return p
}

// newRig returns a rig whose live projection starts with the first command,
// so that a test may Subscribe before that.
func newRig(t *testing.T, p domain.Policy) *rig {
	t.Helper()
	r := newWriter(t, p)
	r.live = projections.NewLive(projections.NewModel())
	r.rec = newRecorder()
	r.live.Subscribe(r.rec.add)
	r.eng = newEngine(t, r.log, p, r.clock, r.live)
	return r
}

// newWriter returns a rig with no live projection: just an engine on a log.
func newWriter(t *testing.T, p domain.Policy) *rig {
	t.Helper()
	r := &rig{t: t, log: estest.Open(t, nil), clock: &clock{t: t0}}
	r.eng = newEngine(t, r.log, p, r.clock, nil)
	return r
}

func newEngine(t *testing.T, log *eventstore.Log, p domain.Policy, c *clock, src engine.Source) *engine.Engine {
	t.Helper()
	d, err := domain.NewDecider(domain.Config{Default: p})
	if err != nil {
		t.Fatal(err)
	}
	cfg := engine.Config{Log: log, Decider: d, Clock: c.Now, Logger: estest.Logger(t)}
	if src != nil {
		cfg.Source = src
	}
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func everything(log *eventstore.Log) []string { return []string{log.Prefix() + ".>"} }

// start starts the live projection, stopped (and checked) when the test ends.
func (r *rig) start() {
	if r.live == nil || r.run != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.run = &liveRun{cancel: cancel, done: make(chan error, 1)}
	go func(run *liveRun) { run.done <- r.live.Run(ctx, r.log, everything(r.log)) }(r.run)
	r.t.Cleanup(func() {
		cancel()
		if err := within(r.t, r.run.done, "live projection stopping"); err != nil {
			r.t.Errorf("live projection: %v", err)
		}
	})
}

// exec runs c and every follow-up its events call for, as the reactor does,
// and waits until the live projection has folded all of it. It returns every
// event appended and c's refusal, if any; any other failure ends the test.
func (r *rig) exec(c domain.Command) ([]domain.Event, error) {
	r.t.Helper()
	return r.execIn(app, c)
}

func (r *rig) execIn(a domain.AppID, c domain.Command) ([]domain.Event, error) {
	r.t.Helper()
	r.start()
	ctx := r.ctx
	if ctx == nil {
		ctx = estest.Ctx(r.t)
	}
	res, err := r.eng.Execute(ctx, domain.Meta{App: a}, c)
	if err != nil {
		var de *domain.Error
		if !errors.As(err, &de) || de.Code == domain.ErrInternal.Code || de.Code == domain.ErrUnavailable.Code ||
			de.Code == domain.ErrTimeout.Code {
			r.t.Fatalf("%s %+v: %v", c.CommandName(), c, err)
		}
	}
	appended := res.Appended
	for i := 0; i < len(appended); i++ {
		for j := range appended[i].Events {
			for _, f := range domain.FollowUps(&appended[i].Events[j]) {
				fres, ferr := r.eng.Execute(ctx, domain.Meta{App: a, Causation: f.Cause.ID.String(),
					Correlation: f.Cause.Correlation}, f.Command)
				if ferr != nil {
					r.t.Fatalf("follow-up %s of %s: %v", f.Command.CommandName(), f.Cause.Type, ferr)
				}
				appended = append(appended, fres.Appended...)
			}
		}
	}
	var events []domain.Event
	var last uint64
	for _, ap := range appended {
		events = append(events, ap.Events...)
		last = max(last, ap.Seq)
	}
	if r.live != nil {
		if err := r.live.WaitFor(ctx, last); err != nil {
			r.t.Fatalf("live projection stuck at %d of %d: %v", r.live.Cursor(), last, err)
		}
	}
	return events, err
}

// must runs commands that the rules accept, failing the test on a refusal.
func (r *rig) must(cs ...domain.Command) []domain.Event {
	r.t.Helper()
	var all []domain.Event
	for _, c := range cs {
		events, err := r.exec(c)
		if err != nil {
			r.t.Fatalf("given %s %+v: %v", c.CommandName(), c, err)
		}
		all = append(all, events...)
	}
	return all
}

// random runs n generated commands (refusals included) over a population
// with awkward IDs, moving the clock as the generator says.
func (r *rig) random(gen *domaintest.Gen, n int) {
	r.t.Helper()
	for range n {
		r.clock.Advance(gen.Advance())
		events, _ := r.exec(gen.Next())
		gen.Observe(events)
	}
}

func population(multi bool, seed uint64) *domaintest.Gen {
	return domaintest.New(domaintest.Config{Users: 8, SessionsPerUser: 2, Rooms: 6, Streams: 5, MultiRoom: multi,
		Weird: true}, seed)
}

// records reads the whole log back as projection records.
func (r *rig) records() []projections.Record {
	r.t.Helper()
	var recs []projections.Record
	_, err := r.log.Read(estest.Ctx(r.t), everything(r.log), 1, func(raw eventstore.Record) error {
		if rec, err := projections.Decode(raw); err == nil { // as a projection, skip bad records
			recs = append(recs, rec)
		}
		return nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return recs
}

func (r *rig) lastSeq() uint64 {
	r.t.Helper()
	last, err := r.log.LastSeq(estest.Ctx(r.t))
	if err != nil {
		r.t.Fatal(err)
	}
	return last
}

// liveHash returns the hash of the live model.
func (r *rig) liveHash() string {
	r.t.Helper()
	var h string
	r.live.Read(func(m *projections.Model) { h = hashOf(r.t, m) })
	return h
}

// connection returns the live model's connection of session s in room, or nil.
func (r *rig) connection(s domain.SessionID, room domain.RoomID) *projections.Connection {
	var c *projections.Connection
	r.live.Read(func(m *projections.Model) {
		if a := m.App(app); a != nil {
			if got := a.Connections[s][room]; got != nil {
				cp := *got
				c = &cp
			}
		}
	})
	return c
}

// room returns a copy of the live model's state of a room, or nil.
func (r *rig) room(id domain.RoomID) *domain.Room {
	var room *domain.Room
	r.live.Read(func(m *projections.Model) {
		if a := m.App(app); a != nil && a.Rooms[id] != nil {
			room = a.Rooms[id].Clone()
		}
	})
	return room
}

func hashOf(t *testing.T, m *projections.Model) string {
	t.Helper()
	h, err := m.Hash()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// within returns what ch delivers, failing the test if nothing comes in 10 s:
// a hang fails one test with a message instead of the whole binary.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("%s: nothing after 10 s", what)
		panic("unreachable")
	}
}

func fold(recs []projections.Record) *projections.Model {
	m := projections.NewModel()
	for _, rec := range recs {
		m.Apply(rec)
	}
	return m
}

// ---- command builders ----

func login(s domain.SessionID, u domain.UserID, r domain.RoomID) domain.JoinRoom {
	return domain.JoinRoom{Session: s, User: domain.User{ID: u, Name: "name of " + string(u)}, Mode: domain.SingleRoom,
		Room: r, Role: domain.Anchor, Grant: domain.Grant{User: u, AllRooms: true, CanPublish: true},
		Create: domain.CreateIfMissing, Via: domain.ViaLogin}
}

func loginMulti(s domain.SessionID, u domain.UserID, r domain.RoomID) domain.JoinRoom {
	c := login(s, u, r)
	c.Mode = domain.MultiRoom
	return c
}

// ---- Apply ----

func TestApplySkipsRecordsAtOrBelowTheCursor(t *testing.T) {
	r := newRig(t, multiPolicy())
	r.must(login("s1", "u1", "r1"), login("s2", "u2", "r1"),
		domain.SendBroadcast{Session: "s1", Room: "r1", Body: "hello"})
	recs := r.records()
	last := recs[len(recs)-1]
	if last.Events[0].Type != domain.RoomBroadcastSent {
		t.Fatalf("the last record is %s, want the broadcast (folding it twice would count it twice)", last.Events[0].Type)
	}
	m := fold(recs)
	want, cursor := hashOf(t, m), m.Cursor

	for _, c := range []struct {
		name string
		rec  projections.Record
	}{
		{"the same record again", last},
		{"an older record", recs[1]},
		{"the first record", recs[0]},
		{"a record with events of its own at the cursor", projections.Record{Seq: cursor, Subject: last.Subject,
			Events: recs[0].Events}},
	} {
		if m.Apply(c.rec) {
			t.Errorf("%s (stream sequence %d, cursor %d): Apply = true, want false", c.name, c.rec.Seq, cursor)
		}
		if got := hashOf(t, m); got != want || m.Cursor != cursor {
			t.Errorf("%s changed the model: cursor %d, want %d; hash changed: %v", c.name, m.Cursor, cursor, got != want)
		}
	}

	// The same events under a newer sequence are a new record: folded.
	again := last
	again.Seq = cursor + 1
	if !m.Apply(again) || m.Cursor != cursor+1 || hashOf(t, m) == want {
		t.Errorf("a record past the cursor was not folded (cursor %d)", m.Cursor)
	}
}

func TestSameRecordsGiveByteIdenticalModels(t *testing.T) {
	r := newRig(t, multiPolicy())
	r.random(population(true, 7), 150)
	recs := r.records()
	a, b := fold(recs), fold(recs)
	ja, err := a.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	jb, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(ja) != string(jb) {
		t.Fatal("two folds of the same records marshal differently")
	}
	if h := hashOf(t, a); h != r.liveHash() {
		t.Errorf("a fold of the log's records differs from the live model that folded them as they came")
	}
}

// ---- connection states ----

// where names one session in one room.
type where struct {
	s domain.SessionID
	r domain.RoomID
}

func TestConnectionStates(t *testing.T) {
	logined := projections.Connection{State: domain.StateLogined}
	destroyed := projections.Connection{State: domain.StateLogout, Code: 1902002, Reason: domain.ReasonRoomDestroyed}
	timedOut := projections.Connection{State: domain.StateLogout, Code: 1002053, Reason: domain.ReasonHeartbeatTimeout}
	kicked := projections.Connection{State: domain.StateKickOut, Code: 1002055, Reason: domain.ReasonKickedByBackend}
	duplicate := func(by domain.SessionID) projections.Connection {
		return projections.Connection{State: domain.StateKickOut, Code: 1002050, Reason: domain.ReasonKickedDuplicateLogin, By: by}
	}
	two := []domain.Command{login("s1", "u1", "r1"), login("s2", "u2", "r1")}
	for _, c := range []struct {
		name  string
		given []domain.Command
		when  domain.Command
		then  map[where]projections.Connection
	}{
		{name: "a session that joins a room is Logined there",
			when: login("s1", "u1", "r1"),
			then: map[where]projections.Connection{{"s1", "r1"}: logined}},
		{name: "a logout is Logout with code 0 and reason logout; the others stay Logined",
			given: two, when: domain.LeaveRoom{Session: "s1", Room: "r1", Reason: domain.ReasonLogout},
			then: map[where]projections.Connection{
				{"s1", "r1"}: {State: domain.StateLogout, Reason: domain.ReasonLogout},
				{"s2", "r1"}: logined}},
		{name: "a ZIM leave is Logout with reason leave",
			given: two, when: domain.LeaveRoom{Session: "s1", Room: "r1", Reason: domain.ReasonLeave},
			then: map[where]projections.Connection{{"s1", "r1"}: {State: domain.StateLogout, Reason: domain.ReasonLeave}}},
		{name: "the last member's logout stays a logout when the empty room goes with it",
			given: []domain.Command{login("s1", "u1", "r1")},
			when:  domain.LeaveRoom{Session: "s1", Room: "r1", Reason: domain.ReasonLogout},
			then:  map[where]projections.Connection{{"s1", "r1"}: {State: domain.StateLogout, Reason: domain.ReasonLogout}}},
		{name: "a backend kick is KickOut 1002055",
			given: two, when: domain.KickUser{Room: "r1", User: "u1", Detail: "spam"},
			then: map[where]projections.Connection{{"s1", "r1"}: kicked, {"s2", "r1"}: logined}},
		{name: "a backend kick of the last member stays a kick when the empty room goes with it",
			given: []domain.Command{login("s1", "u1", "r1")}, when: domain.KickUser{Room: "r1", User: "u1"},
			then: map[where]projections.Connection{{"s1", "r1"}: kicked}},
		{name: "a duplicate login is KickOut 1002050 by the new session, which is Logined",
			given: []domain.Command{login("s1", "u1", "r1")}, when: login("s2", "u1", "r1"),
			then: map[where]projections.Connection{{"s1", "r1"}: duplicate("s2"), {"s2", "r1"}: logined}},
		{name: "a duplicate login kicks the old session out of its other rooms too, by the new session",
			given: []domain.Command{loginMulti("s1", "u1", "r1"), loginMulti("s1", "u1", "r2")},
			when:  loginMulti("s2", "u1", "r1"),
			then: map[where]projections.Connection{
				{"s1", "r1"}: duplicate("s2"), {"s1", "r2"}: duplicate("s2"), {"s2", "r1"}: logined}},
		{name: "a heartbeat timeout is Logout 1002053 heartbeat_timeout in every room of the session",
			given: []domain.Command{loginMulti("s1", "u1", "r1"), loginMulti("s1", "u1", "r2"), login("s2", "u2", "r1")},
			when:  domain.TimeoutSession{Session: "s1", LastSeen: t0},
			then: map[where]projections.Connection{
				{"s1", "r1"}: timedOut, {"s1", "r2"}: timedOut, {"s2", "r1"}: logined}},
		{name: "destroying a room is Logout 1902002 room_destroyed for every member",
			given: append(slices.Clone(two), login("s3", "u3", "r2")), when: domain.DestroyRoom{Room: "r1", Detail: "closing"},
			then: map[where]projections.Connection{
				{"s1", "r1"}: destroyed, {"s2", "r1"}: destroyed, {"s3", "r2"}: logined}},
		{name: "a switch is Logout with reason switch in the old room and Logined in the new one",
			given: two,
			when: domain.SwitchRoom{Session: "s1", From: "r1", To: "r2",
				Grant: domain.Grant{User: "u1", AllRooms: true}, Create: domain.CreateIfMissing},
			then: map[where]projections.Connection{
				{"s1", "r1"}: {State: domain.StateLogout, Reason: domain.ReasonSwitch}, {"s1", "r2"}: logined}},
		{name: "logging in again after a kick is Logined again",
			given: append(slices.Clone(two), domain.KickUser{Room: "r1", User: "u1"}), when: login("s1", "u1", "r1"),
			then: map[where]projections.Connection{{"s1", "r1"}: logined}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, multiPolicy())
			r.must(c.given...)
			r.clock.Advance(time.Minute)
			at := r.clock.Now()
			events := r.must(c.when)
			for w, want := range c.then {
				// The live model holds the Logined connections; how one
				// ended is read from the log.
				got := r.connection(w.s, w.r)
				if want.State != domain.StateLogined {
					if got != nil {
						t.Errorf("%s in %s: the live model still holds the ended connection %+v", w.s, w.r, got)
					}
					c, ok, err := projections.ReadConnection(estest.Ctx(t), r.log, app, w.s, w.r)
					if err != nil || !ok {
						t.Errorf("%s in %s: ReadConnection = ok %v, err %v", w.s, w.r, ok, err)
						continue
					}
					got = &c
				} else if fromLog, _, err := projections.ReadConnection(estest.Ctx(t), r.log, app, w.s, w.r); err != nil ||
					got == nil || fromLog != *got {
					t.Errorf("%s in %s: live %+v, from the log %+v (%v)", w.s, w.r, got, fromLog, err)
				}
				if got == nil {
					t.Errorf("%s in %s: no connection, want %+v", w.s, w.r, want)
					continue
				}
				if got.State != want.State || got.Code != want.Code || got.Reason != want.Reason || got.By != want.By {
					t.Errorf("%s in %s: %s code %d reason %q by %q, want %s code %d reason %q by %q", w.s, w.r,
						got.State, got.Code, got.Reason, got.By, want.State, want.Code, want.Reason, want.By)
				}
				// Since and RoomSeq name the room event that set the state:
				// one of the command's if it changed the state, else older.
				if e, ok := settingEvent(events, w.r, w.s); ok {
					if !got.Since.Equal(at) || got.RoomSeq != e.Seq {
						t.Errorf("%s in %s: since %v at room seq %d, want %v at room seq %d (%s)", w.s, w.r,
							got.Since, got.RoomSeq, at, e.Seq, e.Type)
					}
				} else if !got.Since.Before(at) {
					t.Errorf("%s in %s: changed at %v by a command that did not concern it", w.s, w.r, got.Since)
				}
			}
		})
	}
}

// settingEvent returns the last event in room that gives session s a
// connection state: its join, its departure, or the room's destruction.
func settingEvent(events []domain.Event, room domain.RoomID, s domain.SessionID) (domain.Event, bool) {
	var found domain.Event
	ok := false
	for _, e := range events {
		if e.Aggregate != domain.KindRoom || domain.RoomID(e.AggregateID) != room {
			continue
		}
		switch d := e.Data.(type) {
		case *domain.MemberJoinedData:
			if d.Session == s {
				found, ok = e, true
			}
		case *domain.MemberLeftData:
			if d.Session == s {
				found, ok = e, true
			}
		case *domain.RoomDestroyedData:
			for _, m := range d.Members {
				if m.Session == s {
					found, ok = e, true
				}
			}
		}
	}
	return found, ok
}

func TestASessionNeverInARoomHasNoConnectionThere(t *testing.T) {
	r := newRig(t, multiPolicy())
	r.must(login("s1", "u1", "r1"))
	if c := r.connection("s1", "r2"); c != nil {
		t.Errorf("s1 in r2: %+v, want none", c)
	}
	if c := r.connection("s2", "r1"); c != nil {
		t.Errorf("s2 in r1: %+v, want none", c)
	}
}

// ---- destroyed rooms ----

func TestADestroyedRoomLeavesTheModelAndARecreatedOneStartsFresh(t *testing.T) {
	r := newRig(t, multiPolicy())
	first := login("s1", "u1", "r1")
	first.RoomName, first.Config = "first", domain.RoomConfig{Attributes: map[string]string{"topic": "cats"}}
	r.must(first,
		domain.SetRoomExtraInfo{Session: "s1", Room: "r1", Key: "k", Value: "v"},
		domain.PublishStream{Session: "s1", Stream: "cam", Room: "r1"},
		domain.PlayStream{Session: "s1", Stream: "cam", Room: "r1"},
		domain.SendBroadcast{Session: "s1", Room: "r1", Body: "hello"})
	before := r.room("r1")

	events := r.must(domain.DestroyRoom{Room: "r1"})
	if gone := r.room("r1"); gone != nil {
		t.Fatalf("the destroyed room is still in the model: %+v", gone)
	}
	r.live.Read(func(m *projections.Model) {
		if size := m.Size(); size != (projections.Size{}) {
			t.Errorf("with its only room destroyed the model still holds %+v", size)
		}
	})
	// The log keeps it, as the domain folds it.
	ctx := estest.Ctx(t)
	state, ok, err := projections.ReadState(ctx, r.log, domain.RoomKey(app, "r1"))
	gone, _ := state.(*domain.Room)
	if err != nil || !ok || gone == nil {
		t.Fatalf("ReadState of the destroyed room = %v, ok %v, err %v", state, ok, err)
	}
	destroyedAt := roomEvent(t, events, "r1", domain.RoomDestroyed).Seq
	if gone.Exists || gone.Seq != destroyedAt || gone.Seq != before.Seq+1 {
		t.Errorf("destroyed room: exists %v at seq %d, want exists false at seq %d", gone.Exists, gone.Seq, destroyedAt)
	}
	if len(gone.Members) > 0 || len(gone.Streams) > 0 || len(gone.ExtraInfo) > 0 || len(gone.Attributes) > 0 || gone.Name != "" {
		t.Errorf("the destroyed room still shows what it had: %+v", gone)
	}
	if s, ok, err := projections.ReadState(ctx, r.log, domain.StreamKey(app, "cam")); err != nil || !ok || s.(*domain.StreamEntry).Claimed {
		t.Errorf("stream ID cam after its room was destroyed, from the log: %+v, %v, %v; want a released entry", s, ok, err)
	}
	if _, ok, err := projections.ReadState(ctx, r.log, domain.RoomKey(app, "never")); ok || err != nil {
		t.Errorf("ReadState of a room the log never had: ok %v, err %v", ok, err)
	}

	r.clock.Advance(time.Minute)
	second := login("s2", "u2", "r1")
	second.RoomName, second.Config = "second", domain.RoomConfig{Attributes: map[string]string{"mood": "calm"}}
	r.must(second)
	again := r.room("r1")
	if !again.Exists || again.Name != "second" || !again.CreatedAt.Equal(r.clock.Now()) {
		t.Errorf("recreated room: exists %v, name %q, created %v", again.Exists, again.Name, again.CreatedAt)
	}
	if !maps.Equal(again.Attributes, map[string]string{"mood": "calm"}) || len(again.ExtraInfo) > 0 ||
		len(again.Streams) > 0 || again.Rates.Broadcast.Count != 0 {
		t.Errorf("the recreated room inherited state: attributes %v, extra info %v, streams %v, broadcasts %d",
			again.Attributes, again.ExtraInfo, again.Streams, again.Rates.Broadcast.Count)
	}
	if got := slices.Sorted(maps.Keys(again.Members)); !slices.Equal(got, []domain.UserID{"u2"}) {
		t.Errorf("recreated room members %v, want [u2]", got)
	}
	if again.Seq != destroyedAt+2 { // created, joined
		t.Errorf("recreated room at seq %d, want %d: the room's sequence continues", again.Seq, destroyedAt+2)
	}
	// The model's copy began at the recreation, so the engine is not given
	// it (it reads the room from the log, voided claims and all).
	if _, _, ok, err := r.live.State(ctx, domain.RoomKey(app, "r1"), 0); ok || err != nil {
		t.Errorf("State of the recreated room = ok %v, err %v; want not ok: the model's copy misses its past", ok, err)
	}
	fromLog, _, _ := projections.ReadState(ctx, r.log, domain.RoomKey(app, "r1"))
	if want := fromLog.(*domain.Room); want.Name != "second" || want.Seq != again.Seq || len(want.Members) != 1 {
		t.Errorf("the recreated room from the log: %+v", want)
	}
	// Once destroyed again, nothing of it is left in memory.
	r.must(domain.DestroyRoom{Room: "r1"})
	r.live.Read(func(m *projections.Model) {
		if size := m.Size(); size != (projections.Size{}) {
			t.Errorf("with its only room destroyed twice the model still holds %+v", size)
		}
	})
}

func roomEvent(t *testing.T, events []domain.Event, room domain.RoomID, typ domain.EventType) domain.Event {
	t.Helper()
	for _, e := range events {
		if e.Aggregate == domain.KindRoom && domain.RoomID(e.AggregateID) == room && e.Type == typ {
			return e
		}
	}
	t.Fatalf("no %s in room %s", typ, room)
	return domain.Event{}
}

// ---- Marshal / Unmarshal ----

func TestMarshalRoundTripKeepsTheHashAndFoldsOnIdentically(t *testing.T) {
	r := newRig(t, multiPolicy())
	gen := population(true, 11)
	r.random(gen, 120)
	// Another app, with an awkward ID, alongside.
	r.must(loginMulti("s1", "u1", "r.1 *"))
	if _, err := r.execIn("other.app >", loginMulti("s1", "u1", "r1")); err != nil {
		t.Fatal(err)
	}
	half := r.lastSeq()
	r.random(gen, 120)
	recs := r.records()

	var firstHalf, secondHalf []projections.Record
	for _, rec := range recs {
		if rec.Seq <= half {
			firstHalf = append(firstHalf, rec)
		} else {
			secondHalf = append(secondHalf, rec)
		}
	}
	orig := fold(firstHalf)
	b, err := orig.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	copied, err := projections.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if hashOf(t, copied) != hashOf(t, orig) || copied.Cursor != orig.Cursor {
		t.Fatalf("round trip changed the model: cursor %d, want %d", copied.Cursor, orig.Cursor)
	}
	b2, err := copied.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(b2) != string(b) {
		t.Fatal("the round-tripped model marshals to other bytes")
	}

	for _, rec := range secondHalf {
		orig.Apply(rec)
		copied.Apply(rec)
		if ho, hc := hashOf(t, orig), hashOf(t, copied); ho != hc {
			t.Fatalf("after stream sequence %d the round-tripped model differs from the original", rec.Seq)
		}
	}
	if hashOf(t, copied) != r.liveHash() {
		t.Error("the round-tripped model, folded on, differs from the live model")
	}
}

func TestUnmarshalRejectsWhatIsNotAModel(t *testing.T) {
	for _, b := range []string{"", "not json", `{"cursor":"x"}`, `[1,2]`} {
		if _, err := projections.Unmarshal([]byte(b)); err == nil {
			t.Errorf("Unmarshal(%q) = nil error", b)
		}
	}
}

func TestUnmarshalOfAnEmptyModelFoldsLikeANewOne(t *testing.T) {
	r := newRig(t, multiPolicy())
	r.must(login("s1", "u1", "r1"))
	b, err := projections.NewModel().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m, err := projections.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range r.records() {
		m.Apply(rec)
	}
	if hashOf(t, m) != r.liveHash() {
		t.Error("a model restored from an empty one folds differently from a new one")
	}
}

// ---- Live ----

func TestLiveSubscribersSeeEveryRecordInOrderOnceItIsFolded(t *testing.T) {
	r := newRig(t, multiPolicy())
	type seen struct {
		seq, cursor uint64
		missing     []string // aggregates of the record the model had not yet folded it into
	}
	ch := make(chan seen, 10_000)
	r.live.Subscribe(func(rec projections.Record) {
		s := seen{seq: rec.Seq}
		r.live.Read(func(m *projections.Model) {
			s.cursor = m.Cursor
			for _, e := range rec.Events {
				// An aggregate the record ended has left the model; the
				// cursor says it was folded.
				if head := headOf(m, e.Key()); head != 0 && head < e.Seq {
					s.missing = append(s.missing, fmt.Sprintf("%s at seq %d, event seq %d", e.Key(), head, e.Seq))
				}
			}
		})
		ch <- s
	})
	r.random(population(false, 3), 100)
	last := r.lastSeq()

	var want []uint64
	for _, rec := range r.records() {
		want = append(want, rec.Seq)
	}
	var got []uint64
	ctx := estest.Ctx(t)
	for len(got) == 0 || got[len(got)-1] < last {
		select {
		case s := <-ch:
			got = append(got, s.seq)
			// The fold does not wait for its subscribers: it may be ahead.
			if s.cursor < s.seq || len(s.missing) > 0 {
				t.Errorf("told of stream sequence %d with the model at cursor %d, not folded into %v", s.seq, s.cursor, s.missing)
			}
		case <-ctx.Done():
			t.Fatalf("told of %d records, the last %v; the log ends at %d", len(got), got[len(got)-1:], last)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("subscriber saw %d records, the log has %d; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
}

func headOf(m *projections.Model, k domain.Key) uint64 {
	a := m.App(k.App)
	if a == nil {
		return 0
	}
	switch k.Kind {
	case domain.KindRoom:
		if r := a.Rooms[domain.RoomID(k.ID)]; r != nil {
			return r.Seq
		}
	case domain.KindSession:
		if s := a.Sessions[domain.SessionID(k.ID)]; s != nil {
			return s.Seq
		}
	case domain.KindStream:
		if s := a.Streams[domain.StreamID(k.ID)]; s != nil {
			return s.Seq
		}
	}
	return 0
}

func firstDiff(a, b []uint64) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestLiveTellsSubscribersOnlyOfRecordsItFolds(t *testing.T) {
	r := newRig(t, multiPolicy())
	r.must(login("s1", "u1", "r1"), domain.SendBroadcast{Session: "s1", Room: "r1", Body: "hi"})
	recs := r.records()

	live := projections.NewLive(projections.NewModel())
	var told []uint64
	live.Subscribe(func(rec projections.Record) { told = append(told, rec.Seq) })
	for _, rec := range recs {
		live.Apply(rec)
	}
	live.Apply(recs[len(recs)-1])
	live.Apply(recs[0])
	live.Close() // once everything folded was told
	want := make([]uint64, len(recs))
	for i, rec := range recs {
		want[i] = rec.Seq
	}
	if !slices.Equal(told, want) {
		t.Errorf("subscriber told of %v, want %v (replayed records are not news)", told, want)
	}
}

func TestLiveWaitFor(t *testing.T) {
	r := newRig(t, multiPolicy())
	r.must(login("s1", "u1", "r1"), login("s2", "u2", "r1"), domain.SendBroadcast{Session: "s1", Room: "r1", Body: "hi"})
	recs := r.records()
	if len(recs) < 4 {
		t.Fatalf("want at least 4 records, got %d", len(recs))
	}

	t.Run("returns once the cursor reaches the sequence", func(t *testing.T) {
		live := projections.NewLive(projections.NewModel())
		target := recs[2].Seq
		done := make(chan error, 1)
		go func() { done <- live.WaitFor(estest.Ctx(t), target) }()
		for _, rec := range recs[:2] {
			live.Apply(rec)
			select {
			case err := <-done:
				t.Fatalf("WaitFor(%d) returned %v at cursor %d", target, err, live.Cursor())
			default:
			}
		}
		live.Apply(recs[2])
		if err := within(t, done, "WaitFor"); err != nil {
			t.Fatalf("WaitFor(%d) = %v", target, err)
		}
		if live.Cursor() < target {
			t.Fatalf("WaitFor returned at cursor %d < %d", live.Cursor(), target)
		}
	})

	t.Run("returns once the cursor passes the sequence", func(t *testing.T) {
		// A filtered projection skips sequences that are not its own.
		live := projections.NewLive(projections.NewModel())
		done := make(chan error, 1)
		go func() { done <- live.WaitFor(estest.Ctx(t), recs[2].Seq) }()
		live.Apply(recs[3])
		if err := within(t, done, "WaitFor"); err != nil {
			t.Fatalf("WaitFor = %v", err)
		}
	})

	t.Run("a sequence already folded needs no wait", func(t *testing.T) {
		live := projections.NewLive(fold(recs))
		for _, seq := range []uint64{0, 1, recs[len(recs)-1].Seq} {
			if err := live.WaitFor(estest.Ctx(t), seq); err != nil {
				t.Errorf("WaitFor(%d) = %v", seq, err)
			}
		}
	})

	t.Run("returns ctx's error when ctx is cancelled first", func(t *testing.T) {
		live := projections.NewLive(fold(recs))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- live.WaitFor(ctx, live.Cursor()+1) }()
		cancel()
		if err := within(t, done, "WaitFor after cancel"); !errors.Is(err, context.Canceled) {
			t.Fatalf("WaitFor = %v, want context.Canceled", err)
		}
	})

	t.Run("returns ctx's error when ctx's deadline passes first", func(t *testing.T) {
		live := projections.NewLive(fold(recs))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- live.WaitFor(ctx, live.Cursor()+1) }()
		if err := within(t, done, "WaitFor past its deadline"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitFor = %v, want context.DeadlineExceeded", err)
		}
	})

	t.Run("returns once the running projection folds an append", func(t *testing.T) {
		next := r.lastSeq() + 1
		done := make(chan error, 1)
		go func() { done <- r.live.WaitFor(estest.Ctx(t), next) }()
		r.must(domain.SendBroadcast{Session: "s2", Room: "r1", Body: "again"})
		if err := within(t, done, "WaitFor"); err != nil {
			t.Fatalf("WaitFor(%d) = %v", next, err)
		}
	})
}

func TestLiveState(t *testing.T) {
	r := newRig(t, multiPolicy())
	join := login("s1", "u1", "r1")
	join.Config.Attributes = map[string]string{"topic": "cats"}
	r.must(join, login("s2", "u2", "r1"),
		domain.PublishStream{Session: "s1", Stream: "cam", Room: "r1"},
		domain.PlayStream{Session: "s2", Stream: "cam", Room: "r1"},
		domain.SetRoomExtraInfo{Session: "s1", Room: "r1", Key: "k", Value: "v"},
		domain.SendCustomCommand{Session: "s1", Room: "r1", To: []domain.UserID{"u2"}, Body: "psst"})
	ctx := estest.Ctx(t)
	cursor := r.live.Cursor()
	hash := r.liveHash()

	state := func(k domain.Key) any {
		t.Helper()
		s, cur, ok, err := r.live.State(ctx, k, 0)
		if err != nil || !ok {
			t.Fatalf("State(%s) = ok %v, err %v", k, ok, err)
		}
		if cur != cursor {
			t.Fatalf("State(%s) at cursor %d, want %d", k, cur, cursor)
		}
		return s
	}

	t.Run("a copy: changing it changes nothing in the model", func(t *testing.T) {
		room, ok := state(domain.RoomKey(app, "r1")).(*domain.Room)
		if !ok {
			t.Fatalf("room state is %T", state(domain.RoomKey(app, "r1")))
		}
		pristine := state(domain.RoomKey(app, "r1")).(*domain.Room)
		if len(room.Members) != 2 || room.Streams["cam"] == nil || !room.Members["u2"].Playing["cam"] {
			t.Fatalf("room state does not show what happened: %+v", room)
		}
		room.Name = "changed"
		room.Attributes["topic"] = "dogs"
		room.ExtraInfo["k"] = domain.ExtraInfo{Value: "changed"}
		room.Members["u2"].Playing["other"] = true
		room.Members["u1"].Publishing["other"] = true
		room.Members["u1"].UserName = "changed"
		room.Streams["cam"].ExtraInfo = "changed"
		room.Rates.CommandToOne["u2"] = domain.Window{Count: 99}
		delete(room.Members, "u2")
		room.Seq = 999

		sess := state(domain.SessionKey(app, "s1")).(*domain.Session)
		pristineSess := state(domain.SessionKey(app, "s1")).(*domain.Session)
		clear(sess.Claims)
		sess.User = "changed"
		entry := state(domain.StreamKey(app, "cam")).(*domain.StreamEntry)
		pristineEntry := state(domain.StreamKey(app, "cam")).(*domain.StreamEntry)
		entry.Room = "changed"

		if got := state(domain.RoomKey(app, "r1")); !reflect.DeepEqual(got, pristine) {
			t.Errorf("changing a room copy changed the model's room")
		}
		if got := state(domain.SessionKey(app, "s1")); !reflect.DeepEqual(got, pristineSess) {
			t.Errorf("changing a session copy changed the model's session")
		}
		if got := state(domain.StreamKey(app, "cam")); !reflect.DeepEqual(got, pristineEntry) {
			t.Errorf("changing a stream entry copy changed the model's entry")
		}
		if r.liveHash() != hash {
			t.Errorf("changing copies changed the model's hash")
		}
	})

	t.Run("an aggregate the model never saw is not ok", func(t *testing.T) {
		for _, k := range []domain.Key{domain.RoomKey(app, "nowhere"), domain.SessionKey(app, "nobody"),
			domain.StreamKey(app, "nothing"), domain.RoomKey("other app", "r1"), {Kind: "planet", App: app, ID: "r1"}} {
			s, cur, ok, err := r.live.State(ctx, k, 0)
			if err != nil || ok || s != nil || cur != cursor {
				t.Errorf("State(%s) = %v, cursor %d, ok %v, err %v; want nil, %d, false, nil", k, s, cur, ok, err, cursor)
			}
		}
	})

	t.Run("waits for the fold to reach atLeast", func(t *testing.T) {
		next := r.lastSeq() + 1
		type result struct {
			room   *domain.Room
			cursor uint64
			err    error
		}
		done := make(chan result, 1)
		go func() {
			s, cur, _, err := r.live.State(ctx, domain.RoomKey(app, "r1"), next)
			room, _ := s.(*domain.Room)
			done <- result{room, cur, err}
		}()
		events := r.must(domain.SendBroadcast{Session: "s2", Room: "r1", Body: "late"})
		res := within(t, done, "State")
		if res.err != nil || res.cursor < next || res.room == nil || res.room.Seq < events[0].Seq {
			t.Fatalf("State waited for %d and got cursor %d, err %v, room %+v", next, res.cursor, res.err, res.room)
		}
	})

	t.Run("returns ctx's error when the fold does not get there", func(t *testing.T) {
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		_, _, ok, err := r.live.State(short, domain.RoomKey(app, "r1"), r.lastSeq()+100)
		if ok || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("State = ok %v, err %v; want context.DeadlineExceeded", ok, err)
		}
	})
}

// ---- Rebuild ----

func TestRebuildFromAnEmptyModelEqualsTheLiveModel(t *testing.T) {
	r := newRig(t, multiPolicy())
	big := func(multi bool, seed uint64) *domaintest.Gen {
		return domaintest.New(domaintest.Config{Users: 30, SessionsPerUser: 2, Rooms: 20, Streams: 15,
			MultiRoom: multi, Weird: true}, seed)
	}
	r.random(big(true, 5), 900)
	r.random(big(false, 6), 900)
	last := r.lastSeq()
	if last <= 1024 {
		t.Fatalf("only %d records: too few to fold across decoding batches", last)
	}
	m := projections.NewModel()
	if err := projections.Rebuild(estest.Ctx(t), r.log, everything(r.log), m); err != nil {
		t.Fatal(err)
	}
	if m.Cursor != last {
		t.Errorf("rebuilt to cursor %d, the log ends at %d", m.Cursor, last)
	}
	if hashOf(t, m) != r.liveHash() {
		t.Error("the rebuilt model differs from the live one")
	}
	// Rebuilding a model that is already at the end changes nothing.
	h := hashOf(t, m)
	if err := projections.Rebuild(estest.Ctx(t), r.log, everything(r.log), m); err != nil {
		t.Fatal(err)
	}
	if hashOf(t, m) != h || m.Cursor != last {
		t.Error("a second rebuild changed the model")
	}
}

func TestRebuildContinuesFromARestoredSnapshot(t *testing.T) {
	r := newRig(t, multiPolicy())
	gen := population(true, 9)
	r.random(gen, 150)
	store := projections.NewMemStore()
	var snap projections.Snapshot
	var err error
	r.live.Read(func(m *projections.Model) { snap, err = projections.TakeSnapshot("proj.rooms.v1", m) })
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save(estest.Ctx(t), snap); err != nil {
		t.Fatal(err)
	}
	r.random(gen, 150)

	m, err := projections.Restore(estest.Ctx(t), store, "proj.rooms.v1")
	if err != nil {
		t.Fatal(err)
	}
	if m.Cursor != snap.Cursor || m.Cursor == 0 || m.Cursor >= r.lastSeq() {
		t.Fatalf("restored at cursor %d, snapshot at %d, log at %d", m.Cursor, snap.Cursor, r.lastSeq())
	}
	if err := projections.Rebuild(estest.Ctx(t), r.log, everything(r.log), m); err != nil {
		t.Fatal(err)
	}
	if m.Cursor != r.lastSeq() || hashOf(t, m) != r.liveHash() {
		t.Errorf("rebuilt from the snapshot to cursor %d: differs from the live model", m.Cursor)
	}
}

// A record that is not an event message (written onto a room's subject by
// hand, or by a newer version) is skipped and counted by Rebuild and by Run,
// which fold everything after it: one bad message must not wedge every node
// nor stop the next start from rebuilding.
func TestRebuildAndRunSkipARecordThatIsNotAnEventMessage(t *testing.T) {
	for _, c := range []struct {
		name string
		body string
		want error
	}{
		{"bytes that are not JSON", "\x00garbage", domain.ErrMalformedEvent},
		{"an empty message", "[]", domain.ErrMalformedEvent},
		{"an event of an unknown type", `[{"type":"room.teleported","app":"app","aggregate":"room",` +
			`"aggregate_id":"r1","seq":3,"time":"2026-11-21T09:00:00Z","data":{}}]`, domain.ErrUnknownEventType},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWriter(t, multiPolicy())
			w.must(login("s1", "u1", "r1"), domain.SendBroadcast{Session: "s1", Room: "r1", Body: "before"})
			ack, err := w.log.Append(estest.Ctx(t), eventstore.Message{Subject: w.log.Subject(string(app), "room", "r1"),
				MsgID: "junk-1", Expected: w.lastSeq(), Data: []byte(c.body)})
			if err != nil {
				t.Fatal(err)
			}
			bad := ack.Seq
			// The room goes on after the bad record, on its own subject.
			w.must(domain.SendBroadcast{Session: "s1", Room: "r1", Body: "after"})
			want := projections.Skipped{Count: 1, Last: bad}

			m := projections.NewModel()
			if err := projections.Rebuild(estest.Ctx(t), w.log, everything(w.log), m); err != nil {
				t.Fatalf("Rebuild = %v, want the bad record skipped", err)
			}
			if m.Cursor != w.lastSeq() || m.Skipped != want {
				t.Errorf("Rebuild: cursor %d, skipped %+v; want %d, %+v", m.Cursor, m.Skipped, w.lastSeq(), want)
			}
			if r := m.App(app).Rooms["r1"]; r == nil || r.Seq != 4 {
				t.Errorf("Rebuild: room r1 not folded past the bad record: %+v", r)
			}

			live := projections.NewLive(projections.NewModel())
			reports := make(chan projections.Malformed, 10)
			live.OnMalformed(func(b projections.Malformed) { reports <- b })
			ctx, cancel := context.WithCancel(estest.Ctx(t))
			done := make(chan error, 1)
			go func() { done <- live.Run(ctx, w.log, everything(w.log)) }()
			if err := live.WaitFor(ctx, w.lastSeq()); err != nil {
				t.Fatal(err)
			}
			got := within(t, reports, "the report of the bad record")
			if got.Seq != bad || got.Subject != w.log.Subject(string(app), "room", "r1") || !errors.Is(got.Err, c.want) {
				t.Errorf("reported %+v, want seq %d, %v", got, bad, c.want)
			}
			if s := live.Skipped(); s != want {
				t.Errorf("Live skipped %+v, want %+v", s, want)
			}
			var h string
			live.Read(func(lm *projections.Model) { h = hashOf(t, lm) })
			if h != hashOf(t, m) {
				t.Error("the live model differs from the rebuilt one")
			}
			cancel()
			if err := within(t, done, "Live.Run after its context ended"); err != nil {
				t.Fatalf("Live.Run = %v", err)
			}
		})
	}
}

func TestRebuildSkipsABadRecordHoweverFarTheLogGoesOn(t *testing.T) {
	w := newWriter(t, multiPolicy())
	w.must(login("s1", "u1", "r1"))
	ack, err := w.log.Append(estest.Ctx(t), eventstore.Message{Subject: w.log.Subject(string(app), "room", "junk"),
		MsgID: "junk-1", Data: []byte("garbage")})
	if err != nil {
		t.Fatal(err)
	}
	// Several decoding batches of good records after the bad one.
	gen := domaintest.New(domaintest.Config{Users: 30, SessionsPerUser: 2, Rooms: 20, Streams: 15, MultiRoom: true}, 21)
	w.random(gen, 2000)
	if after := w.lastSeq() - ack.Seq; after < 3*512 {
		t.Fatalf("only %d records after the bad one", after)
	}
	m := projections.NewModel()
	if err := projections.Rebuild(estest.Ctx(t), w.log, everything(w.log), m); err != nil {
		t.Fatalf("Rebuild = %v", err)
	}
	if m.Cursor != w.lastSeq() || m.Skipped != (projections.Skipped{Count: 1, Last: ack.Seq}) {
		t.Fatalf("Rebuild: cursor %d of %d, skipped %+v", m.Cursor, w.lastSeq(), m.Skipped)
	}
	good := projections.NewModel()
	for _, r := range w.records() {
		good.Apply(r)
	}
	good.Skipped = m.Skipped // the same count, for the hashes to compare
	if hashOf(t, m) != hashOf(t, good) {
		t.Error("the rebuilt model differs from one folded from the good records alone")
	}
}

func TestLiveRunSkipsABadRecordThatArrivesWhileItRuns(t *testing.T) {
	w := newWriter(t, multiPolicy())
	w.must(login("s1", "u1", "r1"))
	live := projections.NewLive(projections.NewModel())
	reports := make(chan projections.Malformed, 10)
	live.OnMalformed(func(b projections.Malformed) { reports <- b })
	ctx, cancel := context.WithCancel(estest.Ctx(t))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- live.Run(ctx, w.log, everything(w.log)) }()
	if err := live.WaitFor(ctx, w.lastSeq()); err != nil {
		t.Fatal(err)
	}
	ack, err := w.log.Append(estest.Ctx(t), eventstore.Message{Subject: w.log.Subject(string(app), "room", "junk"),
		MsgID: "junk-1", Data: []byte("{")})
	if err != nil {
		t.Fatal(err)
	}
	// A reader waiting for the bad record's sequence is not left hanging.
	if err := live.WaitFor(ctx, ack.Seq); err != nil {
		t.Fatal(err)
	}
	if got := within(t, reports, "the report of the bad record"); got.Seq != ack.Seq || !errors.Is(got.Err, domain.ErrMalformedEvent) {
		t.Fatalf("reported %+v, want a malformed event at %d", got, ack.Seq)
	}
	w.must(domain.SendBroadcast{Session: "s1", Room: "r1", Body: "after"})
	if err := live.WaitFor(ctx, w.lastSeq()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("Live.Run stopped: %v", err)
	default:
	}
}

func TestLiveRunReturnsNilWhenItsContextEnds(t *testing.T) {
	w := newWriter(t, multiPolicy())
	w.must(login("s1", "u1", "r1"))
	live := projections.NewLive(projections.NewModel())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- live.Run(ctx, w.log, everything(w.log)) }()
	if err := live.WaitFor(estest.Ctx(t), w.lastSeq()); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := within(t, done, "Live.Run after its context ended"); err != nil {
		t.Fatalf("Run = %v after its context ended, want nil", err)
	}
}

func TestLiveRunContinuesFromTheModelsCursor(t *testing.T) {
	r := newRig(t, multiPolicy())
	r.random(population(false, 12), 60)
	half := fold(r.records())
	r.random(population(false, 13), 60)

	live := projections.NewLive(half)
	var told []uint64
	var mu sync.Mutex
	live.Subscribe(func(rec projections.Record) { mu.Lock(); told = append(told, rec.Seq); mu.Unlock() })
	ctx, cancel := context.WithCancel(estest.Ctx(t))
	done := make(chan error, 1)
	start := half.Cursor
	go func() { done <- live.Run(ctx, r.log, everything(r.log)) }()
	if err := live.WaitFor(ctx, r.lastSeq()); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := within(t, done, "Live.Run after its context ended"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(told) > 0 && told[0] <= start {
		t.Errorf("a live projection from cursor %d was told of %d again", start, told[0])
	}
	var h string
	live.Read(func(m *projections.Model) { h = hashOf(t, m) })
	if h != r.liveHash() {
		t.Error("a live projection started from a folded model differs from one that folded everything")
	}
}

func TestUnmarshalOfJSONThatIsNotAModelNeitherPanicsNorBreaksApply(t *testing.T) {
	w := newWriter(t, multiPolicy())
	w.must(login("s1", "u1", "r1"))
	recs := w.records()
	for _, in := range []string{`{"apps":null}`, `{"apps":{"app":null}}`} {
		t.Run(in, func(t *testing.T) {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("panic: %v", r)
				}
			}()
			m, err := projections.Unmarshal([]byte(in))
			if err != nil {
				return // refusing it is fine
			}
			for _, rec := range recs {
				m.Apply(rec)
			}
		})
	}
}

// A clone folds on apart from its original: what a snapshot serializes
// does not change under it, and equal folds hash equal.
func TestCloneIsADeepCopyThatFoldsOnIdentically(t *testing.T) {
	r := newRig(t, multiPolicy())
	gen := population(true, 13)
	r.random(gen, 150)
	half := r.lastSeq()
	r.random(gen, 150)
	var first, second []projections.Record
	for _, rec := range r.records() {
		if rec.Seq <= half {
			first = append(first, rec)
		} else {
			second = append(second, rec)
		}
	}
	orig := fold(first)
	c := orig.Clone()
	frozen := hashOf(t, c)
	if frozen != hashOf(t, orig) {
		t.Fatal("a clone hashes differently from its original")
	}
	for _, rec := range second {
		orig.Apply(rec)
	}
	if hashOf(t, c) != frozen {
		t.Fatal("folding into the original changed its clone")
	}
	for _, rec := range second {
		c.Apply(rec)
	}
	if hashOf(t, c) != hashOf(t, orig) || hashOf(t, c) != r.liveHash() {
		t.Fatal("a clone folded on differs from its original and from the live model")
	}
}

// Each subscriber is told from a queue of its own: one that is stuck holds
// up neither the fold nor the others, and once it moves again it is told of
// everything, in order, once, what overflowed its queue read from the log.
// WaitFor waits for it, unless it is NotWaited.
func TestASlowSubscriberStallsNeitherTheFoldNorTheOthers(t *testing.T) {
	r := newRig(t, multiPolicy())
	r.random(population(true, 21), 80)
	last := r.lastSeq()

	live := projections.NewLive(projections.NewModel())
	release := make(chan struct{})
	var slowMu sync.Mutex
	var slow []uint64
	live.Subscribe(func(rec projections.Record) {
		<-release
		slowMu.Lock()
		slow = append(slow, rec.Seq)
		slowMu.Unlock()
	}, projections.Queue(4))
	stuck := make(chan struct{})
	live.Subscribe(func(projections.Record) { <-stuck }, projections.NotWaited(), projections.Queue(4))
	fast := make(chan uint64, 10_000)
	live.Subscribe(func(rec projections.Record) { fast <- rec.Seq })

	ctx, cancel := context.WithCancel(estest.Ctx(t))
	done := make(chan error, 1)
	go func() { done <- live.Run(ctx, r.log, everything(r.log)) }()
	defer func() {
		cancel()
		if err := within(t, done, "Live.Run"); err != nil {
			t.Error(err)
		}
		close(stuck)
		live.Close()
	}()

	var want []uint64
	for _, rec := range r.records() {
		want = append(want, rec.Seq)
	}
	var got []uint64
	for len(got) < len(want) {
		got = append(got, within(t, fast, "the fast subscriber's next record"))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("with another subscriber stuck the fast one was told of %d records, want %d; first difference at %d",
			len(got), len(want), firstDiff(got, want))
	}
	if c := live.Cursor(); c != last {
		t.Fatalf("the fold is at %d with a subscriber stuck, want %d", c, last)
	}
	if st := live.Subscribers()[0]; st.Overflows == 0 || st.Behind == 0 {
		t.Fatalf("the stuck subscriber's queue: %+v, want it overflowed and behind", st)
	}
	short, stop := context.WithTimeout(ctx, 50*time.Millisecond)
	defer stop()
	if err := live.WaitFor(short, last); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor with a waited-for subscriber stuck = %v, want it to wait", err)
	}

	close(release)
	if err := live.WaitFor(ctx, last); err != nil {
		t.Fatalf("WaitFor once the slow subscriber moves: %v (the stuck NotWaited one must not count)", err)
	}
	slowMu.Lock()
	defer slowMu.Unlock()
	if !slices.Equal(slow, want) {
		t.Fatalf("the slow subscriber was told of %d records, want %d; first difference at %d",
			len(slow), len(want), firstDiff(slow, want))
	}
}

// A session that leaves every room leaves the model; when it logs in again
// its copy there begins with the new claim, is partial (the engine reads it
// from the log), and knows its user from its join, so that readers that
// look a session's membership up by user (the SFU) still find it.
func TestASessionThatComesBackKnowsItsUser(t *testing.T) {
	r := newRig(t, multiPolicy())
	r.must(loginMulti("s1", "u1", "r1"), loginMulti("s2", "u2", "r1"),
		domain.LeaveRoom{Session: "s1", Room: "r1", Reason: domain.ReasonLogout})
	r.live.Read(func(m *projections.Model) {
		if s := m.App(app).Sessions["s1"]; s != nil {
			t.Fatalf("a session in no room is still in the model: %+v", s)
		}
	})
	r.must(loginMulti("s1", "u1", "r2"))
	ctx := estest.Ctx(t)
	if _, _, ok, err := r.live.State(ctx, domain.SessionKey(app, "s1"), 0); ok || err != nil {
		t.Fatalf("State of the returning session = ok %v, %v; want not ok (partial)", ok, err)
	}
	fromLog, ok, err := projections.ReadState(ctx, r.log, domain.SessionKey(app, "s1"))
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	want := fromLog.(*domain.Session)
	r.live.Read(func(m *projections.Model) {
		s := m.App(app).Sessions["s1"]
		if s == nil || !s.Opened || s.User != want.User || s.UserName != want.UserName || len(s.Claims) != 1 || s.Seq != want.Seq {
			t.Fatalf("the returning session in the model: %+v; from the log: %+v", s, want)
		}
	})
}

// A member sent away by the destroy of a room too large for one event
// (member_left, reason room_destroyed) reads back as one the room.destroyed
// lists: Logout 1902002. Before, its code was 0.
func TestAMemberSentAwayByADestroyReadsAsDestroyed(t *testing.T) {
	got := projections.LeftConnection(domain.ReasonRoomDestroyed, "")
	if got.State != domain.StateLogout || got.Code != domain.ErrRoomNotExist.Code || got.Reason != domain.ReasonRoomDestroyed {
		t.Errorf("left with reason room_destroyed: %+v, want Logout 1902002 room_destroyed", got)
	}
}
