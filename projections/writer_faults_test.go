package projections_test

import (
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections"
)

// docs/architecture.md: an undecodable record is passed over by the
// projection, "the gateway's resume reads and the engine". ReadState (what
// the gateway's resume reads for a session that left the model, or came back
// to it) and ReadConnection failed instead, for good, on a subject holding
// one: such a session could not resume ("malformed event message").
func TestReadStatePassesOverAnUndecodableRecord(t *testing.T) {
	w := newWriter(t, multiPolicy())
	w.must(loginMulti("s1", "u1", "r1"), domain.LeaveRoom{Session: "s1", Room: "r1", Reason: domain.ReasonLogout})
	if _, err := w.log.Append(estest.Ctx(t), eventstore.Message{Subject: w.log.Subject(string(app), "session", "s1"),
		MsgID: "junk-1", Expected: sessionLast(t, w), Data: []byte("\x00garbage")}); err != nil {
		t.Fatal(err)
	}
	state, ok, err := projections.ReadState(estest.Ctx(t), w.log, domain.SessionKey(app, "s1"))
	if err != nil || !ok {
		t.Fatalf("ReadState of a session whose subject holds one undecodable record: ok %v, err %v", ok, err)
	}
	if s := state.(*domain.Session); len(s.Claims) != 0 || s.User != "u1" {
		t.Fatalf("ReadState: %+v", s)
	}
	_, ok, err = projections.ReadConnection(estest.Ctx(t), w.log, app, "s1", "r1")
	if err != nil || !ok {
		t.Fatalf("ReadConnection: ok %v, err %v", ok, err)
	}
}

// sessionLast is the stream sequence of session s1's last message.
func sessionLast(t *testing.T, w *rig) uint64 {
	t.Helper()
	var last uint64
	_, err := w.log.Read(estest.Ctx(t), []string{w.log.Subject(string(app), "session", "s1")}, 1, func(raw eventstore.Record) error {
		last = raw.Seq
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return last
}

// A logout's room step lands, and its session step (the claim's release)
// meets another writer on the session's subject (here an undecodable
// record; another node appending for the session does the same). The
// command is decided again on the new state, where the member is gone:
// it used to refuse with not_in_room (LogoutFailed) a logout that had taken
// effect. The engine now tells the decision which aggregates its earlier
// attempt stored to (Meta.Stored), and the leave releases the claim.
func TestALogoutWhoseClaimReleaseMeetsAnotherWriterSucceeds(t *testing.T) {
	for _, withLive := range []bool{false, true} {
		var w *rig
		if withLive {
			w = newRig(t, multiPolicy())
		} else {
			w = newWriter(t, multiPolicy())
		}
		w.must(loginMulti("s1", "u1", "r1"))
		if _, err := w.log.Append(estest.Ctx(t), eventstore.Message{Subject: w.log.Subject(string(app), "session", "s1"),
			MsgID: "junk-1", Expected: sessionLast(t, w), Data: []byte("\x00garbage")}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.exec(domain.LeaveRoom{Session: "s1", Room: "r1", Reason: domain.ReasonLogout}); err != nil {
			room, _, _ := projections.ReadState(estest.Ctx(t), w.log, domain.RoomKey(app, "r1"))
			_, stillIn := room.(*domain.Room).MemberBySession("u1", "s1")
			t.Errorf("with live projection %v: logout after a junk record on the session's subject: %v (s1 still a member of r1 in the log: %v)", withLive, err, stillIn)
			continue
		}
		state, _, err := projections.ReadState(estest.Ctx(t), w.log, domain.SessionKey(app, "s1"))
		if err != nil {
			t.Fatal(err)
		}
		if claims := state.(*domain.Session).Claims; len(claims) != 0 {
			t.Errorf("with live projection %v: the logout succeeded but the session still holds %v", withLive, claims)
		}
	}
}
