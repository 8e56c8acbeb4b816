package estest

import (
	"context"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/projections"
)

// App is the app the helpers below execute commands in.
const App = domain.AppID("app")

// Policy is a permissive policy: multi-room sessions, no broadcast limit to
// speak of.
func Policy() domain.Policy {
	p := domain.DefaultPolicy()
	p.MultiRoom = true
	p.Limits.BroadcastPerSecond = 1_000_000
	return p
}

// Engine returns an engine on log with Policy. src (may be nil) supplies
// cold loads; clock (may be nil) is its clock.
func Engine(tb testing.TB, log *eventstore.Log, src engine.Source, clock engine.Clock) *engine.Engine {
	tb.Helper()
	d, err := domain.NewDecider(domain.Config{Default: Policy()})
	if err != nil {
		tb.Fatal(err)
	}
	cfg := engine.Config{Log: log, Decider: d, Source: src, Logger: Logger(tb)}
	if clock != nil {
		cfg.Clock = clock.Now
	}
	e, err := engine.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// Live runs a projection of the whole log until the test ends.
func Live(tb testing.TB, log *eventstore.Log) *projections.Live {
	tb.Helper()
	l := projections.NewLive(projections.NewModel())
	RunLive(tb, log, l)
	return l
}

// RunLive runs l over the whole log until the test ends. Subscribe to l
// before.
func RunLive(tb testing.TB, log *eventstore.Log, l *projections.Live) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, log, []string{log.Prefix() + ".>"}) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("projection: %v", err)
		}
	})
}

// Sync waits until l has folded everything in log.
func Sync(tb testing.TB, log *eventstore.Log, l *projections.Live) {
	tb.Helper()
	last, err := log.LastSeq(Ctx(tb))
	if err != nil {
		tb.Fatal(err)
	}
	if err := l.WaitFor(Ctx(tb), last); err != nil {
		tb.Fatal(err)
	}
}

// Login is a multi-room login of session s as user u into room r,
// creating it if needed.
func Login(s domain.SessionID, u domain.UserID, r domain.RoomID) domain.JoinRoom {
	return domain.JoinRoom{Session: s, User: domain.User{ID: u, Name: string(u)}, Mode: domain.MultiRoom, Room: r,
		Role: domain.Anchor, Grant: domain.Grant{User: u, AllRooms: true, CanPublish: true},
		Create: domain.CreateIfMissing, Via: domain.ViaLogin}
}

// Exec executes c in App and fails the test if it is refused.
func Exec(tb testing.TB, e *engine.Engine, c domain.Command) engine.Result {
	tb.Helper()
	res, err := e.Execute(Ctx(tb), domain.Meta{App: App}, c)
	if err != nil {
		tb.Fatalf("%s: %v", c.CommandName(), err)
	}
	return res
}

// Eventually polls cond until it holds, failing the test after 30 s.
func Eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second) // generous: a loaded machine
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within 30 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Room returns a copy of room id of App as l holds it (an empty room if
// none).
func Room(l *projections.Live, id domain.RoomID) (r *domain.Room) {
	l.Read(func(m *projections.Model) {
		if a := m.App(App); a != nil && a.Rooms[id] != nil {
			r = a.Rooms[id].Clone()
		}
	})
	if r == nil {
		r = &domain.Room{}
	}
	return r
}

// Session returns a copy of session id of App as l holds it (an empty
// session if none).
func Session(l *projections.Live, id domain.SessionID) (s *domain.Session) {
	l.Read(func(m *projections.Model) {
		if a := m.App(App); a != nil && a.Sessions[id] != nil {
			s = a.Sessions[id].Clone()
		}
	})
	if s == nil {
		s = &domain.Session{}
	}
	return s
}
