package engine_test

import (
	"fmt"
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections"
)

func execAs(t *testing.T, e *engine.Engine, request string, c domain.Command) engine.Result {
	t.Helper()
	res, err := e.Execute(estest.Ctx(t), domain.Meta{App: app, Request: request}, c)
	if err != nil {
		t.Fatalf("%s: %v", c.CommandName(), err)
	}
	return res
}

func broadcasts(t *testing.T, e []domain.Event) []string {
	t.Helper()
	var bodies []string
	for _, ev := range e {
		if b, ok := ev.Data.(*domain.BroadcastSentData); ok {
			bodies = append(bodies, b.Body)
		}
	}
	return bodies
}

// A client request runs on one node, which dies before it replies; the
// client sends it again, through another node, whose engine has never seen
// it (a warm one with the room cached from before, and a cold one). The log
// holds the broadcast once and every try answers with the stored event.
// Without Meta.Request both tries would be stored.
func TestATriedAgainRequestIsStoredOnceWhateverEngineTriesIt(t *testing.T) {
	log := estest.Open(t, nil)
	first, warm := newEngine(t, log, nil), newEngine(t, log, nil)
	exec(t, first, login("s1", "u1", "r1"))
	exec(t, warm, login("s2", "u2", "r1")) // warm has r1 cached, before what follows

	send := domain.SendBroadcast{Session: "s1", Room: "r1", Body: "once"}
	orig := execAs(t, first, "s1 broadcast 1 k1", send)
	exec(t, first, domain.SendBroadcast{Session: "s2", Room: "r1", Body: "after"})

	cold := newEngine(t, log, nil)
	for name, e := range map[string]*engine.Engine{"the engine that ran it": first, "a warm engine": warm, "a cold engine": cold} {
		again := execAs(t, e, "s1 broadcast 1 k1", send)
		if len(again.Appended) != 1 || again.Appended[0].Seq != orig.Appended[0].Seq ||
			again.Appended[0].Events[0].ID != orig.Appended[0].Events[0].ID {
			t.Errorf("%s answered %+v, the request stored %+v", name, again.Appended, orig.Appended)
		}
		if e.Stats().Adopted == 0 {
			t.Errorf("%s did not count the step it found stored", name)
		}
	}
	// Another request with the same body is a new message.
	execAs(t, cold, "s1 broadcast 1 k2", send)

	got := broadcasts(t, history(t, log, domain.RoomKey(app, "r1")))
	if got, want := fmt.Sprint(got), "[once after once]"; got != want {
		t.Errorf("broadcasts stored: %s, want %s", got, want)
	}
	// Each engine's cache still chains: one more command from each lands.
	for _, e := range []*engine.Engine{first, warm, cold} {
		exec(t, e, domain.SendBroadcast{Session: "s2", Room: "r1", Body: "more"})
	}
	if n := len(broadcasts(t, history(t, log, domain.RoomKey(app, "r1")))); n != 6 {
		t.Errorf("%d broadcasts after three more, want 6", n)
	}
}

// A logout from every room whose first try got as far as leaving r1 before
// its node died (played here by a first try that leaves r1 only), tried
// again elsewhere: the retry's steps on r2 and r3 are new, not taken for the
// stored step on r1 (a request's steps are named by the aggregate they
// write, not by their place in the decision), and each room has one leave.
func TestATriedAgainLogoutFinishesWhatTheFirstTryStarted(t *testing.T) {
	log := estest.Open(t, nil)
	first := newEngine(t, log, nil)
	for _, r := range []domain.RoomID{"r1", "r2", "r3"} {
		exec(t, first, login("s1", "u1", r))
	}
	// The first try leaves r1 only, as if it died right after.
	execAs(t, first, "s1 logout 1 k", domain.LeaveRoom{Session: "s1", Room: "r1", Reason: domain.ReasonLogout})

	other := newEngine(t, log, nil)
	execAs(t, other, "s1 logout 1 k", domain.LeaveRoom{Session: "s1", Reason: domain.ReasonLogout})

	for _, r := range []domain.RoomID{"r1", "r2", "r3"} {
		leaves := 0
		for _, ev := range history(t, log, domain.RoomKey(app, r)) {
			if ev.Type == domain.RoomMemberLeft {
				leaves++
			}
		}
		if leaves != 1 {
			t.Errorf("room %s has %d leaves, want 1", r, leaves)
		}
	}
}

// A session that logged in through one engine goes on through another that
// had cached its room from before the login (its first node died; a load
// balancer sent it elsewhere). The other engine's cache says the session is
// not in the room; the engine checks that refusal against the log and
// carries the command out.
func TestARefusalFromAStaleCacheIsCheckedAgainstTheLog(t *testing.T) {
	log := estest.Open(t, nil)
	first, other := newEngine(t, log, nil), newEngine(t, log, nil)
	exec(t, other, login("s2", "u2", "r1")) // other caches r1 with u2 only
	exec(t, first, login("s1", "u1", "r1"))
	exec(t, first, domain.PublishStream{Session: "s1", Room: "r1", Stream: "cam"})

	exec(t, other, domain.SendBroadcast{Session: "s1", Room: "r1", Body: "through the survivor"})
	exec(t, other, domain.StopPublishing{Session: "s1", Stream: "cam"})
	if got := broadcasts(t, history(t, log, domain.RoomKey(app, "r1"))); fmt.Sprint(got) != "[through the survivor]" {
		t.Errorf("broadcasts stored: %v", got)
	}
}

// A keyed login whose room is destroyed between its two steps (the
// session's claim stored, the room's join conflicting) is refused, and the
// release of its claim, decided after the conflict, is stored: it is a step
// of its own, not the claim stored by the first attempt under the same
// request and aggregate.
func TestAKeyedLoginRefusedAfterAConflictGivesItsClaimBack(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	refusedKeyedLogin(t, log)
	estest.Sync(t, log, l)
	if cl, ok := estest.Session(l, "s1").Claims["r1"]; ok {
		t.Fatalf("the refused login left s1 claiming r1 (claim %d), a room it is not in", cl.Seq)
	}
}

// refusedKeyedLogin runs login "s1 login 1 k1" of s1 into r1 (not to be
// created), with r1 destroyed by another engine right after the login's
// first step, the session's claim, is stored. It returns the login's command.
func refusedKeyedLogin(t *testing.T, log *eventstore.Log) domain.JoinRoom {
	t.Helper()
	a, b := newEngine(t, log, nil), newEngine(t, log, nil)
	exec(t, a, login("s2", "u2", "r1"))
	destroyed := false
	a.SetStepStored(func(k domain.Key) {
		if k == domain.SessionKey(app, "s1") && !destroyed {
			destroyed = true
			exec(t, b, domain.DestroyRoom{Room: "r1"})
		}
	})
	join := login("s1", "u1", "r1")
	join.Create = domain.CreateNever
	_, err := a.Execute(estest.Ctx(t), domain.Meta{App: app, Request: "s1 login 1 k1"}, join)
	if !destroyed || err == nil {
		t.Fatalf("the room destroyed between the steps (%v): the join answered %v", destroyed, err)
	}
	return join
}

// A keyed login whose fresh claim a heartbeat timeout voids between its two
// steps takes a new claim and joins with it: the new claim is stored (not
// taken for the voided one, stored under the same request), so the member
// the room records holds the claim its session holds.
func TestAKeyedLoginRetakingAVoidedClaimStoresTheNewClaim(t *testing.T) {
	for _, request := range []string{"", "s1 login 1 k1"} {
		t.Run("request="+request, func(t *testing.T) {
			log := estest.Open(t, nil)
			l := estest.Live(t, log)
			a, b := newEngine(t, log, nil), newEngine(t, log, nil)
			exec(t, a, login("s2", "u2", "r1"))
			timedOut := false
			a.SetStepStored(func(k domain.Key) {
				if k == domain.SessionKey(app, "s1") && !timedOut {
					timedOut = true
					exec(t, b, domain.TimeoutSession{Session: "s1", LastSeen: b.Now()})
				}
			})
			if _, err := a.Execute(estest.Ctx(t), domain.Meta{App: app, Request: request}, login("s1", "u1", "r1")); err != nil {
				t.Logf("the login: %v", err)
			}
			if !timedOut {
				t.Fatal("the session step was never stored")
			}
			estest.Sync(t, log, l)
			membersHoldTheirClaims(t, l, "s1", "u1", "r1")
		})
	}
}

// A keyed login refused after its first attempt stored a claim and gave it
// back, tried again once the room exists again: the claim and release
// stored under the request are not taken for the retry's new claim, which is
// stored, and the join names it.
func TestAKeyedLoginTriedAgainAfterItsClaimWasGivenBackClaimsAnew(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	join := refusedKeyedLogin(t, log)
	b := newEngine(t, log, nil)
	exec(t, b, login("s2", "u2", "r1")) // r1 again
	cold := newEngine(t, log, nil)
	if _, err := cold.Execute(estest.Ctx(t), domain.Meta{App: app, Request: "s1 login 1 k1"}, join); err != nil {
		t.Fatalf("the login tried again: %v", err)
	}
	estest.Sync(t, log, l)
	membersHoldTheirClaims(t, l, "s1", "u1", "r1")
	if _, ok := estest.Room(l, "r1").MemberBySession("u1", "s1"); !ok {
		t.Fatal("the login tried again did not join r1")
	}
}

// membersHoldTheirClaims checks that session s, if it is a member of room r
// as user u, holds the claim the room records for it.
func membersHoldTheirClaims(t *testing.T, l *projections.Live, s domain.SessionID, u domain.UserID, r domain.RoomID) {
	t.Helper()
	m, member := estest.Room(l, r).MemberBySession(u, s)
	if !member {
		return
	}
	if cl, ok := estest.Session(l, s).Claims[r]; !ok || cl.Seq != m.Claim {
		t.Fatalf("%s is a member of %s with claim %d, but its session holds %+v (claims %v)", s, r, m.Claim, cl,
			estest.Session(l, s).Claims)
	}
}

// A keyed login whose first try (engine a) stored a claim, saw it voided by
// a heartbeat timeout, stored a second claim and is about to store the join,
// is tried again on engine c, whose cache of the session is from before the
// first claim but whose cache of the room is current. c's claim is a
// duplicate of the first claim, stored where c put it; the session went on
// after it, so c decides again rather than join naming a claim the room
// voided. On a cluster only can this happen: a standalone server checks the
// expected sequence before the Msg-Id (c's stale append conflicts), a
// clustered stream the Msg-Id first (nats-server 2.15), so c gets a
// duplicate although it expected a stale head.
func TestAKeyedLoginTriedAgainOnAStaleEngineJoinsWithTheClaimItHolds(t *testing.T) {
	for _, clustered := range []bool{false, true} {
		t.Run(fmt.Sprint("clustered=", clustered), func(t *testing.T) { triedAgainOnAStaleEngine(t, clustered) })
	}
}

func triedAgainOnAStaleEngine(t *testing.T, clustered bool) {
	log := estest.Open(t, nil)
	if clustered {
		c := estest.StartCluster(t, 3)
		log = estest.Must(t, eventstore.Config{URL: c.URL(), Replicas: 3, Logger: estest.Logger(t)})
	}
	l := estest.Live(t, log)
	a, b, c := newEngine(t, log, nil), newEngine(t, log, nil), newEngine(t, log, nil)
	exec(t, a, login("s2", "u2", "r1"))
	// c caches s1 empty (a request of s1 it refused) and r1.
	if _, err := c.Execute(estest.Ctx(t), domain.Meta{App: app}, domain.LeaveRoom{Session: "s1", Room: "r1"}); err == nil {
		t.Fatal("leave before login accepted")
	}
	stores := 0
	paused, resume := make(chan struct{}), make(chan struct{})
	a.SetStepStored(func(k domain.Key) {
		if k != domain.SessionKey(app, "s1") {
			return
		}
		stores++
		switch stores {
		case 1:
			exec(t, b, domain.TimeoutSession{Session: "s1", LastSeen: b.Now()})
		case 2: // claim1 stored; the join not yet
			close(paused)
			<-resume
		}
	})
	req := domain.Meta{App: app, Request: "s1 login 1 k1"}
	done := make(chan error, 1)
	go func() {
		_, err := a.Execute(estest.Ctx(t), req, login("s1", "u1", "r1"))
		done <- err
	}()
	<-paused
	// c brings r1 up to date (another member's request through c).
	exec(t, c, domain.SendBroadcast{Session: "s2", Room: "r1", Body: "hi"})
	res, err := c.Execute(estest.Ctx(t), req, login("s1", "u1", "r1"))
	t.Logf("retry on c: err=%v appended=%d", err, len(res.Appended))
	for _, ap := range res.Appended {
		t.Logf("  %s seq %d %v", ap.Key, ap.Seq, ap.Events[0].Type)
	}
	close(resume)
	if err := <-done; err != nil {
		t.Logf("first try on a: %v", err)
	}
	estest.Sync(t, log, l)
	membersHoldTheirClaims(t, l, "s1", "u1", "r1")
}
