package tests

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/domain/domaintest"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// Two engines on one JetStream, as two roomd processes would be (one embeds
// the server, the other reaches it over TCP), take commands for the same
// users and sessions at the same time. The cross-aggregate invariants must
// hold: checked on every race's outcome, and on every prefix of the log by
// the auditor.
func TestTwoEnginesRaceOnOneJetStream(t *testing.T) {
	embedded, external := estest.Shared(t)
	p := domain.DefaultPolicy()
	p.MultiRoom = true
	p.MaxRooms = 2
	p.Limits.BroadcastPerSecond = 1 << 20
	// One publisher publishes a stream a round: the race is for the stream
	// ID, not the member's stream limit.
	p.Limits.StreamsPerMember, p.Limits.PlaysPerMember = 1<<20, 1<<20
	a := newEngine(t, embedded, p, time.Now, nil)
	b := newEngine(t, external, p, time.Now, nil)
	rounds := 60
	if testing.Short() {
		rounds = 15
	}

	// race runs one command on each engine at the same instant.
	race := func(ca, cb domain.Command) (errA, errB error) {
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Add(2)
		go func() { defer wg.Done(); <-start; _, errA = execute(t, a, "app", ca) }()
		go func() { defer wg.Done(); <-start; _, errB = execute(t, b, "app", cb) }()
		close(start)
		wg.Wait()
		return errA, errB
	}
	oneOf := func(t *testing.T, round int, errA, errB error, want *domain.Error) {
		t.Helper()
		switch {
		case errA == nil && errB == nil:
			t.Fatalf("round %d: both won", round)
		case errA != nil && errB != nil:
			t.Fatalf("round %d: both lost: %v / %v", round, errA, errB)
		}
		if lost := errors.Join(errA, errB); !errors.Is(lost, want) {
			t.Fatalf("round %d: the loser got %v, want %s", round, lost, want.Name)
		}
	}
	login := func(s domain.SessionID, u domain.UserID, r domain.RoomID) domain.JoinRoom {
		return domain.JoinRoom{Session: s, User: domain.User{ID: u, Name: string(u)}, Mode: domain.MultiRoom, Room: r,
			Role: domain.Anchor, Grant: domain.Grant{User: u, AllRooms: true, CanPublish: true},
			Create: domain.CreateIfMissing, Via: domain.ViaLogin}
	}

	t.Run("one session per user and room: the later login kicks the earlier", func(t *testing.T) {
		for i := range rounds {
			room := domain.RoomID(fmt.Sprint("dup-", i%3))
			sa, sb := domain.SessionID(fmt.Sprint("dup-a-", i)), domain.SessionID(fmt.Sprint("dup-b-", i))
			if errA, errB := race(login(sa, "dup-user", room), login(sb, "dup-user", room)); errA != nil || errB != nil {
				t.Fatalf("round %d: %v / %v", i, errA, errB)
			}
		}
	})

	t.Run("a session never exceeds its room limit, whichever engine it talks to", func(t *testing.T) {
		for i := range rounds {
			s := domain.SessionID(fmt.Sprint("lim-", i))
			if _, err := execute(t, a, "app", login(s, domain.UserID(s), "lim-home")); err != nil {
				t.Fatal(err)
			}
			errA, errB := race(login(s, domain.UserID(s), domain.RoomID(fmt.Sprint("lim-x-", i))),
				login(s, domain.UserID(s), domain.RoomID(fmt.Sprint("lim-y-", i))))
			oneOf(t, i, errA, errB, domain.ErrTooManyRooms)
		}
	})

	t.Run("a stream ID is published by one publisher at a time", func(t *testing.T) {
		for _, s := range []domain.SessionID{"pub-a", "pub-b"} {
			for _, r := range []domain.RoomID{"pub-1", "pub-2"} {
				if _, err := execute(t, a, "app", login(s, domain.UserID(s), r)); err != nil {
					t.Fatal(err)
				}
			}
		}
		for i := range rounds {
			st := domain.StreamID(fmt.Sprint("cam-", i))
			errA, errB := race(domain.PublishStream{Session: "pub-a", Stream: st, Room: "pub-1"},
				domain.PublishStream{Session: "pub-b", Stream: st, Room: "pub-2"})
			oneOf(t, i, errA, errB, domain.ErrStreamIDInUse)
		}
	})

	t.Run("a session has one identity", func(t *testing.T) {
		for i := range rounds {
			s := domain.SessionID(fmt.Sprint("id-", i))
			errA, errB := race(login(s, "id-alice", "id-room"), login(s, "id-bob", "id-room"))
			oneOf(t, i, errA, errB, domain.ErrUserMismatch)
		}
	})

	t.Run("random commands on shared sessions from both engines", func(t *testing.T) {
		const workers = 6
		per := 300
		if testing.Short() {
			per = 80
		}
		var wg sync.WaitGroup
		var gaveUp atomic.Int64
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e := []*engine.Engine{a, b}[w%2]
				// Every worker draws from the same users, sessions, rooms and
				// stream IDs: the same session is driven from both engines.
				gen := domaintest.New(domaintest.Config{Users: 6, SessionsPerUser: 2, Rooms: 6, Streams: 4,
					MultiRoom: true, Weird: true}, uint64(w+100))
				for range per {
					events, err := executeContended(t, e, "app", gen.Next())
					if errors.Is(err, domain.ErrUnavailable) {
						gaveUp.Add(1)
					}
					gen.Observe(events)
				}
			}()
		}
		wg.Wait()
		// Far more contended than any real room: an engine may give up on a
		// command after its retries (the caller then retries), but rarely.
		if n := gaveUp.Load(); n > int64(workers*per/20) {
			t.Errorf("%d of %d commands gave up under contention", n, workers*per)
		}
	})

	sa, sb := a.Stats(), b.Stats()
	t.Logf("engine A: %+v; engine B: %+v", sa, sb)
	if sa.Conflicts+sb.Conflicts == 0 {
		t.Error("no append ever conflicted: the engines did not race")
	}
	au := auditLog(t, embedded, p)
	t.Logf("audited %d events in %d messages", au.Events, au.Messages)
}
