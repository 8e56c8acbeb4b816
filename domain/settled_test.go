package domain

import "testing"

// A claim release whose work is done says whether the state it read proves
// it (Settled: the engine acknowledges it without looking at the log) or
// may merely be stale (the engine looks first).
func TestAReleaseIsSettledOnlyByAStateThatSawTheClaim(t *testing.T) {
	w := newWorld(t, DefaultPolicy())
	w.must(login("s1", "u1", "r1"), PublishStream{Session: "s1", Stream: "st1"})
	claim := w.session("s1").Claims["r1"].Seq
	stream := w.streamEntry("st1").Claim
	w.must(LeaveRoom{Session: "s1", Room: "r1"}) // releases both itself

	d, err := w.try(ReleaseRoomClaim{Session: "s1", Room: "r1", Claim: claim, Reason: ReasonLogout})
	if err != nil || len(d.Steps) != 0 || !d.Settled {
		t.Errorf("releasing a room claim the session state saw released: %+v, %v; want settled, nothing to do", d, err)
	}
	d, err = w.try(ReleaseStreamClaim{Stream: "st1", Claim: stream, Reason: ReasonLogout})
	if err != nil || len(d.Steps) != 0 || !d.Settled {
		t.Errorf("releasing a stream claim the stream state saw released: %+v, %v; want settled, nothing to do", d, err)
	}
	// A claim the states have not seen (they are older than it): nothing
	// to do as far as they know, but not settled.
	d, err = w.try(ReleaseRoomClaim{Session: "s1", Room: "r1", Claim: w.session("s1").Seq + 1, Reason: ReasonLogout})
	if err != nil || len(d.Steps) != 0 || d.Settled {
		t.Errorf("releasing a room claim newer than the session state: %+v, %v; want nothing to do, not settled", d, err)
	}
	d, err = w.try(ReleaseStreamClaim{Stream: "st1", Claim: w.streamEntry("st1").Seq + 1, Reason: ReasonLogout})
	if err != nil || len(d.Steps) != 0 || d.Settled {
		t.Errorf("releasing a stream claim newer than the stream state: %+v, %v; want nothing to do, not settled", d, err)
	}
}
