package engine_test

import (
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// The reactor runs ReleaseRoomClaim after every member_left (leave, logout,
// switch, kick, timeout) and ReleaseStreamClaim after every stream_stopped;
// the command that caused the event has nearly always released the claim
// already, so the follow-up decides "nothing to do". The engine confirms
// such decisions against the log, unless the state they read settles them
// (it has seen the claim released): then a follow-up makes no request.
func TestASettledFollowUpDoesNotReadTheLog(t *testing.T) {
	log := estest.Open(t, nil)
	e := estest.Engine(t, log, nil, nil)
	estest.Exec(t, e, estest.Login("s1", "u1", "r1"))
	estest.Exec(t, e, estest.Login("s2", "u2", "r1"))
	res := estest.Exec(t, e, domain.LeaveRoom{Session: "s1", Room: "r1"})
	var claim uint64
	for _, a := range res.Appended {
		for _, ev := range a.Events {
			if d, ok := ev.Data.(*domain.MemberLeftData); ok {
				claim = d.Claim
			}
		}
	}
	if claim == 0 {
		t.Fatal("no member_left")
	}
	follow := domain.ReleaseRoomClaim{Session: "s1", Room: "r1", Claim: claim, Reason: domain.ReasonLogout}
	estest.Exec(t, e, follow) // warm
	v0, _ := log.Server().Varz(nil)
	const n = 200
	start := time.Now()
	for range n {
		res := estest.Exec(t, e, follow)
		if len(res.Appended) != 0 {
			t.Fatal("the follow-up appended")
		}
	}
	took := time.Since(start)
	v1, _ := log.Server().Varz(nil)
	perOp := float64(v1.InMsgs-v0.InMsgs) / n
	t.Logf("%d no-op ReleaseRoomClaim follow-ups: %v each, %.1f server messages in each", n, took/n, perOp)
	if perOp >= 1 {
		t.Errorf("a no-op follow-up whose claim the session state shows released costs %.1f log requests; "+
			"it is settled by the state it read and needs none", perOp)
	}
}
