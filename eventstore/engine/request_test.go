package engine_test

import (
	"fmt"
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
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
