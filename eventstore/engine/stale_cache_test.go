package engine_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// Two nodes: A logged s1 into r1; the backend kicks u1 through node B. The
// client, still connected to A, logs into r1 again. A's cache still holds
// s1 as a member, so the join decides "already in the room": unless the
// engine looks at the log before acknowledging a decision with nothing to
// do, the client is told it is in r1 while the log (and every other member)
// says it is not.
func TestALoginAfterAKickThroughAnotherNodeIsStored(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	a := estest.Engine(t, log, nil, nil)
	b := estest.Engine(t, log, nil, nil)
	estest.Exec(t, a, estest.Login("s1", "u1", "r1"))
	estest.Exec(t, a, estest.Login("s2", "u2", "r1")) // keeps r1 alive
	estest.Exec(t, b, domain.KickUser{Room: "r1", User: "u1"})

	res, err := a.Execute(estest.Ctx(t), domain.Meta{App: estest.App}, estest.Login("s1", "u1", "r1"))
	estest.Sync(t, log, l)
	_, in := estest.Room(l, "r1").MemberBySession("u1", "s1")
	if err == nil && !in {
		t.Fatalf("login acknowledged (%d messages appended) but the log has s1 out of r1", len(res.Appended))
	}
	if err != nil {
		t.Logf("login refused: %v", err)
	}
}

// Node B once served s1 (logged it into r1 and out again); s1 then moved to
// node A (a resume) and logged into r2 there. When s1 goes silent and B
// records its heartbeat timeout, B decides on its cached session, which has
// no claims: unless the engine looks at the log first, the timeout is
// "done" with nothing appended, and s1 stays a member of r2 for ever
// (presence forgets the record after a success).
func TestATimeoutDecidedOnAStaleSessionStillRemovesIt(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	a := estest.Engine(t, log, nil, nil)
	b := estest.Engine(t, log, nil, nil)
	estest.Exec(t, b, estest.Login("s1", "u1", "r1"))
	estest.Exec(t, b, domain.LeaveRoom{Session: "s1", Room: "r1"})
	estest.Exec(t, a, estest.Login("s1", "u1", "r2"))
	estest.Exec(t, a, estest.Login("s2", "u2", "r2"))

	res, err := b.Execute(estest.Ctx(t), domain.Meta{App: estest.App}, domain.TimeoutSession{Session: "s1", LastSeen: b.Now()})
	if err != nil {
		t.Fatalf("timeout: %v", err)
	}
	estest.Sync(t, log, l)
	if _, in := estest.Room(l, "r2").MemberBySession("u1", "s1"); in {
		t.Fatalf("timeout acknowledged (%d messages appended) but s1 is still in r2", len(res.Appended))
	}
}

// The same through logout: the client logs out of all rooms through node B
// whose cache of its session predates its login on node A. It must leave
// r2, not be acknowledged as having nothing to leave.
func TestLogoutOfAllRoomsOnAStaleSessionLeavesThem(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	a := estest.Engine(t, log, nil, nil)
	b := estest.Engine(t, log, nil, nil)
	estest.Exec(t, b, estest.Login("s1", "u1", "r1"))
	estest.Exec(t, b, domain.LeaveRoom{Session: "s1", Room: "r1"})
	estest.Exec(t, a, estest.Login("s1", "u1", "r2"))
	estest.Exec(t, a, estest.Login("s2", "u2", "r2"))

	res, err := b.Execute(estest.Ctx(t), domain.Meta{App: estest.App}, domain.LeaveRoom{Session: "s1"})
	estest.Sync(t, log, l)
	_, in := estest.Room(l, "r2").MemberBySession("u1", "s1")
	if err == nil && in {
		t.Fatalf("logout of all rooms acknowledged (rooms left %v, %d messages) but s1 is still in r2", res.Rooms, len(res.Appended))
	}
}

// A joinRoom (ZIM: the room must exist) whose session claim is stored, and
// whose room step then conflicts with the room's destruction, is refused
// RoomNotExist on retry, and gives back the claim its first attempt stored,
// as a full room does. Nothing else would repair it: the reactor only
// follows room events, and the room never saw the session.
func TestAJoinRefusedAfterAConflictGivesItsClaimBack(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	a := estest.Engine(t, log, nil, nil)
	b := estest.Engine(t, log, nil, nil)
	estest.Exec(t, a, estest.Login("s2", "u2", "r1"))
	destroyed := false
	a.SetStepStored(func(k domain.Key) {
		if k.Kind == domain.KindSession && k.ID == "s1" && !destroyed {
			destroyed = true
			estest.Exec(t, b, domain.DestroyRoom{Room: "r1"})
		}
	})
	join := estest.Login("s1", "u1", "r1")
	join.Create = domain.CreateNever
	_, err := a.Execute(estest.Ctx(t), domain.Meta{App: estest.App}, join)
	if !destroyed {
		t.Fatal("the session step was never stored")
	}
	if err == nil {
		t.Fatal("join into a destroyed room succeeded")
	}
	t.Logf("join: %v", err)
	estest.Sync(t, log, l)
	if cl, ok := estest.Session(l, "s1").Claims["r1"]; ok {
		t.Fatalf("refused join left session s1 claiming r1 (claim %d), a room it is not in", cl.Seq)
	}
}

// Limits on what a room or member holds are decided from state other nodes
// change: a refusal from a cache that missed a change that freed room must
// be confirmed against the log, or it repeats for as long as nothing else
// refreshes that cache (a refusal appends nothing). Before, each of these
// writes was refused, with a limit code, on every try.

// u2, on node B, leaves r1: the keys it owned with deleteAfterOwnerLeft go,
// and the room has room for more attributes. u1, on node A, whose cache
// still has the room full, sets one key.
func TestAnAttributeLimitIsRecheckedOnAStaleCache(t *testing.T) {
	log := estest.Open(t, nil)
	a := estest.Engine(t, log, nil, nil)
	b := estest.Engine(t, log, nil, nil)
	estest.Exec(t, a, estest.Login("s1", "u1", "r1"))
	estest.Exec(t, b, estest.Login("s2", "u2", "r1"))
	mine, theirs := map[string]string{}, map[string]string{}
	for i := range 5 {
		theirs[fmt.Sprint("b", i)] = "v"
	}
	for i := range 15 {
		mine[fmt.Sprint("a", i)] = "v"
	}
	estest.Exec(t, b, domain.SetRoomAttributes{Session: "s2", Room: "r1", Set: theirs, DeleteAfterOwnerLeft: true})
	estest.Exec(t, a, domain.SetRoomAttributes{Session: "s1", Room: "r1", Set: mine}) // A: 20 keys, fresh
	estest.Exec(t, b, domain.LeaveRoom{Session: "s2", Room: "r1"})                    // 15 keys left in the log
	// Tried three times: a refusal changes nothing, so nothing refreshes
	// node A's view of the room.
	for try := 1; try <= 3; try++ {
		_, err := a.Execute(estest.Ctx(t), domain.Meta{App: estest.App},
			domain.SetRoomAttributes{Session: "s1", Room: "r1", Set: map[string]string{"new": "v"}})
		if err != nil {
			t.Errorf("try %d: the room holds 15 attributes of 20, yet a 16th is refused: %v", try, err)
		}
	}
}

// A media node dies; a surviving node stops its streams. The publisher,
// still on node A, publishes a new stream on another media node.
func TestAStreamLimitIsRecheckedOnAStaleCache(t *testing.T) {
	log := estest.Open(t, nil)
	a := estest.Engine(t, log, nil, nil)
	b := estest.Engine(t, log, nil, nil)
	estest.Exec(t, a, estest.Login("s1", "u1", "r1"))
	most := domain.DefaultLimits().StreamsPerMember
	for i := range most {
		estest.Exec(t, a, domain.PublishStream{Session: "s1", Room: "r1", Stream: domain.StreamID(fmt.Sprint("st", i)), Node: "m1"})
	}
	estest.Exec(t, b, domain.StopNodeStreams{Room: "r1", Node: "m1"})
	_, err := a.Execute(estest.Ctx(t), domain.Meta{App: estest.App},
		domain.PublishStream{Session: "s1", Room: "r1", Stream: "fresh", Node: "m2"})
	if err != nil {
		t.Fatalf("the member publishes nothing, yet a new stream is refused: %v", err)
	}
}

// u2, on node B, deletes one of u3's member attributes; u1, on node A,
// whose cache still has u3 at the limit, sets one more.
func TestAMemberAttributeLimitIsRecheckedOnAStaleCache(t *testing.T) {
	log := estest.Open(t, nil)
	a := estest.Engine(t, log, nil, nil)
	b := estest.Engine(t, log, nil, nil)
	estest.Exec(t, a, estest.Login("s1", "u1", "r1"))
	estest.Exec(t, b, estest.Login("s2", "u2", "r1"))
	estest.Exec(t, a, estest.Login("s3", "u3", "r1"))
	set := map[string]string{}
	for i := range domain.DefaultLimits().MemberAttributeKeys {
		set[fmt.Sprint("k", i)] = "v"
	}
	estest.Exec(t, a, domain.SetMemberAttributes{Session: "s1", Room: "r1", Users: []domain.UserID{"u3"}, Set: set})
	estest.Exec(t, b, domain.SetMemberAttributes{Session: "s2", Room: "r1", Users: []domain.UserID{"u3"}, Delete: []string{"k0"}})
	_, err := a.Execute(estest.Ctx(t), domain.Meta{App: estest.App},
		domain.SetMemberAttributes{Session: "s1", Room: "r1", Users: []domain.UserID{"u3"}, Set: map[string]string{"new": "v"}})
	if err != nil {
		t.Fatalf("u3 has 29 attributes of 30, yet a 30th is refused: %v", err)
	}
}

// The limit codes are also decided from the arguments alone (a key too
// long). Rechecking those against the log, as the first version of the
// limits' recheck did, cost a leader round trip per refusal while the
// room's lock was held: a client sending a bad key over and over slowed
// every write to the room. They are marked as the arguments' and answered
// at once.
func TestAnArgumentRefusalDoesNotLookAtTheLog(t *testing.T) {
	log := estest.Open(t, nil)
	a := estest.Engine(t, log, nil, nil)
	estest.Exec(t, a, estest.Login("s1", "u1", "r1"))
	estest.Exec(t, a, domain.SetRoomAttributes{Session: "s1", Room: "r1", Set: map[string]string{"k": "v"}}) // cache warm
	requests := func() int64 {
		// Every message a client sent counts (the server's own, such as
		// the advisories it sends after earlier requests, would not be a
		// refusal's: counted, they made the test fail on a loaded box).
		cz, err := log.Server().Connz(&server.ConnzOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, c := range cz.Conns {
			n += c.InMsgs
		}
		return n
	}
	// The server adds a read's messages to its client's count after it has
	// handled them, acknowledgements sent: a count read right after a
	// command may miss that command's message. Read it once it holds still.
	settled := func() int64 {
		n := requests()
		for {
			time.Sleep(50 * time.Millisecond)
			m := requests()
			if m == n {
				return n
			}
			n = m
		}
	}
	before := settled()
	const tries = 50
	bad := strings.Repeat("k", 4096)
	for range tries {
		_, err := a.Execute(estest.Ctx(t), domain.Meta{App: estest.App},
			domain.SetRoomAttributes{Session: "s1", Room: "r1", Set: map[string]string{bad: "v"}})
		if !errors.Is(err, domain.ErrAttributesInvalid) {
			t.Fatalf("a key of %d bytes: %v", len(bad), err)
		}
	}
	after := settled()
	if n := after - before; n > 0 {
		t.Errorf("%d refusals of a key too long (the argument alone) sent %d requests to the NATS server", tries, n)
	}
	// The count sees what a command that reaches the log sends.
	estest.Exec(t, a, domain.SetRoomAttributes{Session: "s1", Room: "r1", Set: map[string]string{"k": "w"}})
	estest.Eventually(t, "the count seeing a command that wrote to the log", func() bool { return requests() > after })
}

// The reactor follows a command's first step before the command's own
// later step lands: a stop_publish's room step (stream_stopped) lands, the
// reactor's follow-up releases the stream ID first, and the command's own
// release conflicts. Decided again, the command found the stream gone and
// refused with stream_not_found a stop that had taken effect (seen 1 run in
// 5 of TestAWaitingPlayersRequestsGoToTheNodeThatHoldsItAfterAResume). A
// backend kick met the same with the session's claim: user_not_in_room for
// a kick that was done. Both now see their own earlier step
// (domain.Meta.Stored) and succeed.
func TestACommandWhoseLaterStepTheReactorDidFirstSucceeds(t *testing.T) {
	cases := map[string]struct {
		cmd func() domain.Command
		// followUp is what the reactor runs once the room step is stored.
		followUp domain.Command
	}{
		"stop_publish": {
			cmd:      func() domain.Command { return domain.StopPublishing{Session: "s1", Stream: "cam"} },
			followUp: domain.ReleaseStreamClaim{Stream: "cam", Claim: 1, Reason: domain.ReasonStopped},
		},
		"kick": {
			cmd:      func() domain.Command { return domain.KickUser{Room: "r1", User: "u1"} },
			followUp: domain.ReleaseRoomClaim{Session: "s1", Room: "r1", Claim: 2, Reason: domain.ReasonKickedByBackend},
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			log := estest.Open(t, nil)
			a := estest.Engine(t, log, nil, nil)
			reactor := estest.Engine(t, log, nil, nil)
			estest.Exec(t, a, estest.Login("s1", "u1", "r1"))
			estest.Exec(t, a, estest.Login("s2", "u2", "r1")) // keeps r1 alive
			estest.Exec(t, a, domain.PublishStream{Session: "s1", Room: "r1", Stream: "cam"})
			var once sync.Once
			a.SetStepStored(func(k domain.Key) {
				if k.Kind == domain.KindRoom {
					once.Do(func() { estest.Exec(t, reactor, c.followUp) })
				}
			})
			if _, err := a.Execute(estest.Ctx(t), domain.Meta{App: estest.App}, c.cmd()); err != nil {
				t.Fatalf("%s, whose later step the reactor did first: %v", name, err)
			}
		})
	}
}

// A heartbeat timeout is rooms → session (session.timed_out) → streams.
// Its room step lands; the reactor follows member_left(heartbeat_timeout)
// with ReleaseRoomClaim and releases s1's only claim before the timeout's
// own session step, which conflicts. Decided again, the timeout found no
// claims and returned nil having appended no session.timed_out: the gateway
// (Server.onTimedOut) never closed the session's socket, whose own
// departure frame is unsent by design, and presence forgot the record
// after the "success". It now records the timeout.
func TestATimeoutWhoseReleaseTheReactorDidFirstStillRecordsTheTimeout(t *testing.T) {
	log := estest.Open(t, nil)
	a := estest.Engine(t, log, nil, nil)
	reactor := estest.Engine(t, log, nil, nil)
	estest.Exec(t, a, estest.Login("s1", "u1", "r1"))
	estest.Exec(t, a, estest.Login("s2", "u2", "r1")) // keeps r1 alive
	var once sync.Once
	a.SetStepStored(func(k domain.Key) {
		if k.Kind == domain.KindRoom {
			once.Do(func() {
				estest.Exec(t, reactor, domain.ReleaseRoomClaim{Session: "s1", Room: "r1", Claim: 2,
					Reason: domain.ReasonHeartbeatTimeout})
			})
		}
	})
	res, err := a.Execute(estest.Ctx(t), domain.Meta{App: estest.App}, domain.TimeoutSession{Session: "s1", LastSeen: a.Now()})
	if err != nil {
		t.Fatalf("timeout: %v", err)
	}
	for _, ap := range res.Appended {
		for _, e := range ap.Events {
			if _, ok := e.Data.(*domain.SessionTimedOutData); ok {
				return
			}
		}
	}
	var got []string
	for _, ap := range res.Appended {
		for _, e := range ap.Events {
			got = append(got, ap.Key.String()+":"+string(e.Type))
		}
	}
	t.Fatalf("timeout succeeded but appended no session.timed_out (appended %v)", got)
}

// stop_publish's room step lands; the reactor releases "cam" and another
// member (s2) publishes the same stream ID before the stop's own release.
// Decided again, the stop found cam claimed by s2 and refused with
// not_stream_publisher a stop that took effect (the first version of the
// fix looked at stream_not_found only).
func TestAStopWhoseStreamIDAnotherMemberTookMeanwhileSucceeds(t *testing.T) {
	log := estest.Open(t, nil)
	a := estest.Engine(t, log, nil, nil)
	reactor := estest.Engine(t, log, nil, nil)
	estest.Exec(t, a, estest.Login("s1", "u1", "r1"))
	estest.Exec(t, a, estest.Login("s2", "u2", "r1"))
	estest.Exec(t, a, domain.PublishStream{Session: "s1", Room: "r1", Stream: "cam"})
	var once sync.Once
	a.SetStepStored(func(k domain.Key) {
		if k.Kind == domain.KindRoom {
			once.Do(func() {
				estest.Exec(t, reactor, domain.ReleaseStreamClaim{Stream: "cam", Claim: 1, Reason: domain.ReasonStopped})
				estest.Exec(t, reactor, domain.PublishStream{Session: "s2", Room: "r1", Stream: "cam"})
			})
		}
	})
	_, err := a.Execute(estest.Ctx(t), domain.Meta{App: estest.App}, domain.StopPublishing{Session: "s1", Stream: "cam"})
	if err != nil {
		t.Fatalf("stop_publish whose room step landed: %v (is not_stream_publisher: %v)", err,
			errors.Is(err, domain.ErrNotStreamPublisher))
	}
}

// A backend kick's room step lands; the reactor releases s1's claim and u1
// logs in again (a new session, s3) before the kick's own release. Decided
// again, the kick found u1 a member (s3) and kicked that login too: one
// admin kick removed two logins, the second made after the kick took
// effect.
func TestAKickDecidedAgainDoesNotKickALaterLogin(t *testing.T) {
	log := estest.Open(t, nil)
	l := estest.Live(t, log)
	a := estest.Engine(t, log, nil, nil)
	reactor := estest.Engine(t, log, nil, nil)
	estest.Exec(t, a, estest.Login("s1", "u1", "r1"))
	estest.Exec(t, a, estest.Login("s2", "u2", "r1"))
	var once sync.Once
	a.SetStepStored(func(k domain.Key) {
		if k.Kind == domain.KindRoom {
			once.Do(func() {
				estest.Exec(t, reactor, domain.ReleaseRoomClaim{Session: "s1", Room: "r1", Claim: 2,
					Reason: domain.ReasonKickedByBackend})
				estest.Exec(t, reactor, estest.Login("s3", "u1", "r1"))
			})
		}
	})
	if _, err := a.Execute(estest.Ctx(t), domain.Meta{App: estest.App}, domain.KickUser{Room: "r1", User: "u1"}); err != nil {
		t.Fatalf("kick: %v", err)
	}
	estest.Sync(t, log, l)
	if _, in := estest.Room(l, "r1").MemberBySession("u1", "s3"); !in {
		t.Fatalf("u1's login s3, made after the kick had removed s1, was kicked by the same kick")
	}
}
