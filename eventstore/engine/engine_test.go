package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections"
)

const app = estest.App

func newEngine(t *testing.T, log *eventstore.Log, src engine.Source) *engine.Engine {
	return estest.Engine(t, log, src, nil)
}

var login = estest.Login

func exec(t *testing.T, e *engine.Engine, c domain.Command) engine.Result {
	t.Helper()
	return estest.Exec(t, e, c)
}

// history reads one aggregate's events from the log, checking that sequence
// numbers have no gap and the hash chain holds.
func history(t *testing.T, log *eventstore.Log, k domain.Key) []domain.Event {
	t.Helper()
	var events []domain.Event
	prev := ""
	_, err := log.Read(estest.Ctx(t), []string{log.Subject(string(k.App), string(k.Kind), k.ID)}, 1,
		func(rec eventstore.Record) error {
			head, evs, err := domain.VerifyEvents(prev, rec.Data)
			if err != nil {
				return err
			}
			for _, e := range evs {
				if e.Seq != uint64(len(events))+1 {
					return fmt.Errorf("%s: seq %d after %d", k, e.Seq, len(events))
				}
				events = append(events, e)
			}
			prev = head
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return events
}

func TestExecuteStoresOneMessagePerAggregateStep(t *testing.T) {
	log := estest.Open(t, nil)
	e := newEngine(t, log, nil)
	res := exec(t, e, login("s1", "u1", "r1"))
	if len(res.Appended) != 2 {
		t.Fatalf("a first login appended %d messages, want 2 (session, room)", len(res.Appended))
	}
	if got := res.Appended[1].Events; len(got) != 2 || got[0].Type != domain.RoomCreated || got[1].Type != domain.RoomMemberJoined {
		t.Fatalf("room message holds %v", got)
	}
	for _, a := range res.Appended {
		for _, ev := range a.Events {
			if ev.ID.Time() == 0 || ev.Correlation != res.Meta.ID {
				t.Errorf("event %s lacks an ID or correlation: %+v", ev.Type, ev)
			}
		}
	}
	if got := history(t, log, domain.RoomKey(app, "r1")); len(got) != 2 {
		t.Fatalf("room history has %d events", len(got))
	}
}

// A second engine with a cold cache (another roomd) loads what the first one
// wrote, from the log alone or from a live projection.
func TestColdEnginesLoadFromTheLog(t *testing.T) {
	log := estest.Open(t, nil)
	first := newEngine(t, log, nil)
	exec(t, first, login("s1", "u1", "r1"))
	exec(t, first, domain.SendBroadcast{Session: "s1", Room: "r1", Body: "one"})

	fromLog := newEngine(t, log, nil)
	exec(t, fromLog, login("s2", "u2", "r1"))

	live := projections.NewLive(projections.NewModel())
	ctx, cancel := context.WithCancel(estest.Ctx(t))
	defer cancel()
	go live.Run(ctx, log, []string{log.Prefix() + ".>"})
	fromModel := newEngine(t, log, live)
	exec(t, fromModel, domain.SendBroadcast{Session: "s2", Room: "r1", Body: "two"})
	// The first engine's cache is stale by now: it catches up on conflict.
	exec(t, first, domain.SendBroadcast{Session: "s1", Room: "r1", Body: "three"})

	events := history(t, log, domain.RoomKey(app, "r1"))
	var bodies []string
	for _, ev := range events {
		if b, ok := ev.Data.(*domain.BroadcastSentData); ok {
			bodies = append(bodies, b.Body)
		}
	}
	if fmt.Sprint(bodies) != "[one two three]" {
		t.Errorf("broadcasts in the room's history: %v", bodies)
	}
}

// Room hands out the room as the engine's own last command left it, as a
// copy with the stream sequence of its last message, and nothing for a room
// the engine has not cached.
func TestRoomIsTheStateAfterTheEnginesLastCommand(t *testing.T) {
	log := estest.Open(t, nil)
	e := newEngine(t, log, nil)
	key := domain.RoomKey(app, "r1")
	if _, _, ok := e.Room(key); ok {
		t.Fatal("a room no command touched is reported as cached")
	}
	exec(t, e, login("s1", "u1", "r1"))
	res := exec(t, e, login("s2", "u2", "r1"))
	r, cursor, ok := e.Room(key)
	if !ok {
		t.Fatal("the room a command just joined is not cached")
	}
	if r.Members["u1"] == nil || r.Members["u2"] == nil {
		t.Fatalf("members after two joins: %v", r.Members)
	}
	var roomSeq, streamSeq uint64
	for _, a := range res.Appended {
		if a.Key == key {
			roomSeq, streamSeq = a.Events[len(a.Events)-1].Seq, a.Seq
		}
	}
	if r.Seq != roomSeq || cursor != streamSeq {
		t.Fatalf("room at seq %d and stream sequence %d, the join appended up to %d at %d", r.Seq, cursor, roomSeq, streamSeq)
	}
	delete(r.Members, "u1")
	again, _, _ := e.Room(key)
	if again.Members["u1"] == nil {
		t.Fatal("changing the returned room changed the engine's cache")
	}
	if _, _, ok := e.Room(domain.SessionKey(app, "s1")); ok {
		t.Fatal("a session key is answered as a room")
	}
}

// Many writers on one room across two engines: every command lands once, the
// room's sequence has no gap, and no writer's cache goes wrong.
func TestConcurrentWritersOnOneRoom(t *testing.T) {
	embedded, external := estest.Shared(t)
	engines := []*engine.Engine{newEngine(t, embedded, nil), newEngine(t, external, nil)}
	const writers, each = 8, 20
	for w := range writers {
		exec(t, engines[w%2], login(domain.SessionID(fmt.Sprint("s", w)), domain.UserID(fmt.Sprint("u", w)), "r1"))
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := engines[w%2]
			for i := range each {
				_, err := e.Execute(context.Background(), domain.Meta{App: app},
					domain.SendBroadcast{Session: domain.SessionID(fmt.Sprint("s", w)), Room: "r1", Body: fmt.Sprint(w, "/", i)})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	events := history(t, embedded, domain.RoomKey(app, "r1"))
	n := 0
	seen := map[string]bool{}
	for _, ev := range events {
		if b, ok := ev.Data.(*domain.BroadcastSentData); ok {
			if seen[b.Body] {
				t.Errorf("broadcast %q stored twice", b.Body)
			}
			seen[b.Body] = true
			n++
		}
	}
	if n != writers*each {
		t.Errorf("%d broadcasts stored, want %d", n, writers*each)
	}
}

// One engine appends to a room every 2 ms (50 times ZEGO's broadcast limit
// for a room) while the other logs sessions into it. The joins conflict
// with those appends; each conflict catches the room up with one batched
// direct get and decides again at once. Every join gets in; when a catch-up
// created a consumer (several round trips), none did.
func TestJoinsGetIntoARoomAnotherEngineKeepsWritingTo(t *testing.T) {
	embedded, external := estest.Shared(t)
	busy, joiner := newEngine(t, embedded, nil), newEngine(t, external, nil)
	exec(t, busy, login("s0", "u0", "r1"))
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			if _, err := busy.Execute(context.Background(), domain.Meta{App: app},
				domain.SendBroadcast{Session: "s0", Room: "r1", Body: fmt.Sprint(n)}); err != nil {
				t.Error(err)
			}
			n++
			time.Sleep(2 * time.Millisecond)
		}
	}()
	const joins = 20
	for i := 1; i <= joins; i++ {
		if _, err := joiner.Execute(estest.Ctx(t), domain.Meta{App: app},
			login(domain.SessionID(fmt.Sprint("s", i)), domain.UserID(fmt.Sprint("u", i)), "r1")); err != nil {
			t.Errorf("join %d: %v", i, err)
		}
	}
	close(stop)
	broadcasts := <-done
	stats := joiner.Stats()
	t.Logf("%d joins among %d broadcasts; the joining engine met %d conflicts", joins, broadcasts, stats.Conflicts)
	joined := 0
	for _, ev := range history(t, embedded, domain.RoomKey(app, "r1")) {
		if _, ok := ev.Data.(*domain.MemberJoinedData); ok {
			joined++
		}
	}
	if joined != joins+1 {
		t.Errorf("%d members joined, want %d", joined, joins+1)
	}
}

// Fresh skips the log lookup of a just-minted aggregate; if the log held
// messages for it after all, the first append conflicts and the engine
// catches up, so nothing is lost or decided on a wrong state.
func TestFreshAggregatesSkipTheLookupAndStillCatchUp(t *testing.T) {
	embedded, external := estest.Shared(t)
	e := newEngine(t, embedded, nil)
	e.Fresh(domain.SessionKey(app, "s1"))
	exec(t, e, login("s1", "u1", "r1"))
	if got := len(history(t, embedded, domain.SessionKey(app, "s1"))); got == 0 {
		t.Fatal("the fresh session's first command stored nothing")
	}

	// Another engine wrote s2 first; this one is wrongly told it is new.
	other := newEngine(t, external, nil)
	exec(t, other, login("s2", "u2", "r2"))
	before := e.Stats().Conflicts
	e.Fresh(domain.SessionKey(app, "s2"))
	exec(t, e, login("s2", "u2", "r3"))
	if e.Stats().Conflicts == before {
		t.Error("a wrongly fresh aggregate appended without a conflict")
	}
	var rooms []domain.RoomID
	for _, ev := range history(t, embedded, domain.SessionKey(app, "s2")) {
		if c, ok := ev.Data.(*domain.RoomClaimedData); ok {
			rooms = append(rooms, c.Room)
		}
	}
	if fmt.Sprint(rooms) != "[r2 r3]" {
		t.Errorf("s2 claimed %v, want [r2 r3]", rooms)
	}
}

func TestRefusalsAndFailuresAreCoded(t *testing.T) {
	log := estest.Open(t, nil)
	e := newEngine(t, log, nil)
	_, err := e.Execute(estest.Ctx(t), domain.Meta{App: app}, domain.SendBroadcast{Session: "s9", Room: "r1", Body: "x"})
	if !errors.Is(err, domain.ErrNotLoggedIn) {
		t.Errorf("a non-member's broadcast: %v, want not_logged_in", err)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Execute(done, domain.Meta{App: app}, login("s1", "u1", "r1")); !errors.Is(err, domain.ErrUnavailable) {
		t.Errorf("a cancelled login: %v, want unavailable", err)
	}
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	if _, err := e.Execute(expired, domain.Meta{App: app}, login("s1", "u1", "r1")); !errors.Is(err, domain.ErrTimeout) {
		t.Errorf("a login past its deadline: %v, want timeout (1002053)", err)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel3 := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel3()
	_, err = e.Execute(ctx, domain.Meta{App: app}, login("s2", "u2", "r2"))
	if code, _ := domain.CodeOf(err); code != domain.ErrUnavailable.Code && code != domain.ErrTimeout.Code {
		t.Errorf("a login with the log gone: %v, want unavailable or timeout", err)
	}
}

// Nothing an engine appends breaks a room's hash chain. A message no engine
// wrote is handled two ways: bytes that are not events are passed over (the
// next event chains from the last one before them, and the room goes on); a
// forged event whose prev does not chain stops every append to the room,
// from a warm engine and a cold one alike.
func TestAppendsAlwaysChainToTheLastGoodEvent(t *testing.T) {
	log := estest.Open(t, nil)
	warm := newEngine(t, log, nil)
	exec(t, warm, login("s1", "u1", "r1"))
	subject := log.Subject(string(app), "room", "r1")
	raw := func(id string, body []byte) uint64 {
		t.Helper()
		last, _, err := log.Last(estest.Ctx(t), subject)
		if err != nil {
			t.Fatal(err)
		}
		ack, err := log.Append(estest.Ctx(t), eventstore.Message{Subject: subject, MsgID: id, Expected: last.Seq, Data: body})
		if err != nil {
			t.Fatal(err)
		}
		return ack.Seq
	}
	raw("junk", []byte("not events"))
	exec(t, warm, domain.SendBroadcast{Session: "s1", Room: "r1", Body: "after the junk"})
	exec(t, newEngine(t, log, nil), domain.SendBroadcast{Session: "s1", Room: "r1", Body: "from a cold engine"})
	events := chain(t, log, subject)
	if len(events) != 4 {
		t.Fatalf("%d events on the room, want 4: created, joined, two broadcasts", len(events))
	}

	// A forged event, decodable, that does not chain.
	forged := []domain.Event{{ID: warm.NewID(time.Now()), Type: domain.RoomBroadcastSent, App: app,
		Aggregate: domain.KindRoom, AggregateID: "r1", Seq: events[len(events)-1].Seq + 1, Time: time.Now(),
		Data: &domain.BroadcastSentData{From: "u1", Session: "s1", Body: "forged"}}}
	body, _, err := domain.EncodeEvents("not the previous hash", forged)
	if err != nil {
		t.Fatal(err)
	}
	at := raw("forged", body)
	for name, e := range map[string]*engine.Engine{"warm": warm, "cold": newEngine(t, log, nil)} {
		_, err := e.Execute(estest.Ctx(t), domain.Meta{App: app}, domain.SendBroadcast{Session: "s1", Room: "r1", Body: "x"})
		if !errors.Is(err, domain.ErrInternal) {
			t.Errorf("%s engine after a forged event: %v, want an internal error", name, err)
		}
	}
	if last, _, err := log.Last(estest.Ctx(t), subject); err != nil || last.Seq != at {
		t.Fatalf("something was appended after the forged event: last %d, forged at %d (%v)", last.Seq, at, err)
	}
}

// chain returns the events on subject, checking that each chains to the last
// good event before it and follows its sequence, passing over messages that
// are not events.
func chain(t *testing.T, log *eventstore.Log, subject string) []domain.Event {
	t.Helper()
	prev := ""
	var events []domain.Event
	_, err := log.Read(estest.Ctx(t), []string{subject}, 1, func(r eventstore.Record) error {
		head, evs, err := domain.VerifyEvents(prev, r.Data)
		switch {
		case errors.Is(err, domain.ErrBrokenChain):
			return fmt.Errorf("stream sequence %d: %w", r.Seq, err)
		case err != nil:
			return nil // not events: passed over
		}
		for _, e := range evs {
			if e.Seq != uint64(len(events))+1 {
				return fmt.Errorf("stream sequence %d: seq %d after %d", r.Seq, e.Seq, len(events))
			}
			events = append(events, e)
		}
		prev = head
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// holdLeave logs s1 and s2 into r1, then has s1 log out and holds the
// logout once its room step is stored, before its session step, as a
// stalled log would hold it. let lets it finish and returns its outcome.
func holdLeave(t *testing.T, e *engine.Engine) (let func() error) {
	t.Helper()
	exec(t, e, login("s1", "u1", "r1"))
	exec(t, e, login("s2", "u2", "r1"))
	room := domain.RoomKey(app, "r1")
	roomStored, proceed := make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	e.SetStepStored(func(k domain.Key) {
		if k != room || !held.CompareAndSwap(false, true) {
			return
		}
		close(roomStored)
		select { // the leave's session step waits here
		case <-proceed:
		case <-time.After(time.Minute):
		}
	})
	left := make(chan error, 1)
	go func() {
		_, err := e.Execute(context.Background(), domain.Meta{App: app},
			domain.LeaveRoom{Session: "s1", Room: "r1", Reason: domain.ReasonLogout})
		left <- err
	}()
	<-roomStored
	var once sync.Once
	return func() error {
		once.Do(func() { close(proceed) })
		return <-left
	}
}

// broadcastGetsIn has s2 broadcast to r1 and fails the test unless the
// broadcast is stored while the held logout still waits.
func broadcastGetsIn(t *testing.T, e *engine.Engine, let func() error, why string) {
	t.Helper()
	sent := make(chan error, 1)
	go func() {
		_, err := e.Execute(context.Background(), domain.Meta{App: app},
			domain.SendBroadcast{Session: "s2", Room: "r1", Body: "while s1's release is stored"})
		sent <- err
	}()
	select {
	case err := <-sent:
		if err != nil {
			t.Fatalf("broadcast while the logout finished: %v", err)
		}
	case <-time.After(10 * time.Second):
		let()
		t.Fatal(why)
	}
}

// A command lets each aggregate go once its last step is stored. A logout
// stores the room's step, then the session's release: while that second
// append is under way, the room takes the next command, rather than every
// command on the room queuing behind one slow append.
func TestARoomIsFreeOnceALeavesRoomStepIsStored(t *testing.T) {
	log := estest.Open(t, nil)
	e := newEngine(t, log, nil)
	let := holdLeave(t, e)
	broadcastGetsIn(t, e, let, "a broadcast to the room waited for the leave's session step, which no longer touches the room")
	if err := let(); err != nil {
		t.Fatalf("leave: %v", err)
	}
	var types []domain.EventType
	for _, ev := range history(t, log, domain.RoomKey(app, "r1")) {
		types = append(types, ev.Type)
	}
	if n := len(types); n < 2 || types[n-2] != domain.RoomMemberLeft || types[n-1] != domain.RoomBroadcastSent {
		t.Errorf("room history ends %v, want the member's leave then the broadcast", types)
	}
}

// Commands take a room's lock after the sessions' and stream IDs'. The
// logout's follow-up (freeing s1's claim) waits for s1 while the logout
// still stores s1's release; it must not hold the room meanwhile, or the
// room's other members wait for s1 too.
func TestACommandWaitingForASessionHoldsNoRoom(t *testing.T) {
	log := estest.Open(t, nil)
	e := newEngine(t, log, nil)
	let := holdLeave(t, e)
	followUp := make(chan error, 1)
	go func() {
		_, err := e.Execute(context.Background(), domain.Meta{App: app},
			domain.ReleaseRoomClaim{Session: "s1", Room: "r1", Reason: domain.ReasonLogout})
		followUp <- err
	}()
	s1 := domain.SessionKey(app, "s1")
	for deadline := time.Now().Add(10 * time.Second); e.Users(s1) < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			let()
			t.Fatal("the follow-up never came to wait for s1")
		}
	}
	broadcastGetsIn(t, e, let, "a broadcast to the room waited for a follow-up that held the room while it waited for s1")
	if err := let(); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if err := <-followUp; err != nil {
		t.Fatalf("follow-up: %v", err)
	}
}
