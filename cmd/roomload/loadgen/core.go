// Package loadgen measures roomlog against raw baselines in the same run: the
// engine's command rate against raw JetStream appends with the same headers,
// and a projection rebuild against a raw read of the same stream. roomload
// and the Go benchmarks both use it, so docs/benchmarks.md and `go test
// -bench` report the same thing.
package loadgen

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
)

// App is the app every generated aggregate belongs to.
const App = domain.AppID("load")

// Policy is the policy of load runs: the default limits, except that the
// per-room message rate limits are lifted (they would cap a 1,000-room run at
// 10,000 broadcasts/s by design, which is not what is being measured).
func Policy() domain.Policy {
	p := domain.DefaultPolicy()
	p.MultiRoom = true
	p.Limits.BroadcastPerSecond = 1 << 30
	p.Limits.ExtraInfoPerSecond = 1 << 30
	return p
}

// Result is one measured rate.
type Result struct {
	Name     string
	Ops      int64
	Elapsed  time.Duration
	Failures int64
}

// Rate returns operations per second.
func (r Result) Rate() float64 { return float64(r.Ops) / r.Elapsed.Seconds() }

func (r Result) String() string {
	return fmt.Sprintf("%s: %d ops in %v = %.0f/s (%d failures)", r.Name, r.Ops, r.Elapsed.Round(time.Millisecond), r.Rate(), r.Failures)
}

// RawAppends appends for d across rooms subjects with AppendAsync, one append
// in flight per subject, each with the expected last subject sequence and a
// Msg-Id: what the engine sends, without deciding anything. The payload is a
// broadcast event of the size the engine writes.
func RawAppends(ctx context.Context, log *eventstore.Log, rooms int, d time.Duration) (Result, error) {
	body, _, err := domain.EncodeEvents("", []domain.Event{sampleBroadcast()})
	if err != nil {
		return Result{}, err
	}
	subjects := make([]string, rooms)
	expected := make([]uint64, rooms)
	for i := range subjects {
		subjects[i] = log.Subject(string(App), "rawroom", fmt.Sprint("room-", i))
		last, ok, err := log.Last(ctx, subjects[i])
		if err != nil {
			return Result{}, err
		}
		if ok {
			expected[i] = last.Seq
		}
	}
	var ops, fails atomic.Int64
	stop := time.Now().Add(d)
	start := time.Now()
	// One goroutine per subject would measure the scheduler; instead a few
	// pumps each keep their share of the subjects one-in-flight.
	pumps := min(rooms, 16)
	var wg sync.WaitGroup
	errs := make(chan error, pumps)
	for p := range pumps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []int
			for i := p; i < rooms; i += pumps {
				mine = append(mine, i)
			}
			pending := make([]*eventstore.PendingAck, len(mine))
			for time.Now().Before(stop) && ctx.Err() == nil {
				for j, i := range mine {
					pa, err := log.AppendAsync(eventstore.Message{Subject: subjects[i], MsgID: ulid.Make().String(),
						Expected: expected[i], Data: body})
					if err != nil {
						errs <- err
						return
					}
					pending[j] = pa
				}
				for j, i := range mine {
					ack, err := pending[j].Wait(ctx)
					if err != nil {
						fails.Add(1)
						continue
					}
					expected[i] = ack.Seq
					ops.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return Result{}, err
	}
	return Result{Name: "raw JetStream appends", Ops: ops.Load(), Elapsed: time.Since(start), Failures: fails.Load()}, nil
}

// RawAppendsPerRoom is RawAppends with one goroutine per subject, each
// waiting for its append's acknowledgement before the next: the concurrency
// structure of the engine (one command in flight per room, each on its own
// goroutine), minus the deciding.
func RawAppendsPerRoom(ctx context.Context, log *eventstore.Log, rooms int, d time.Duration) (Result, error) {
	body, _, err := domain.EncodeEvents("", []domain.Event{sampleBroadcast()})
	if err != nil {
		return Result{}, err
	}
	var ops, fails atomic.Int64
	stop := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range rooms {
		subject := log.Subject(string(App), "rawroom", fmt.Sprint("per-room-", i))
		last, _, err := log.Last(ctx, subject)
		if err != nil {
			return Result{}, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			expected := last.Seq
			for time.Now().Before(stop) && ctx.Err() == nil {
				pa, err := log.AppendAsync(eventstore.Message{Subject: subject, MsgID: ulid.Make().String(),
					Expected: expected, Data: body})
				if err == nil {
					var ack eventstore.Ack
					if ack, err = pa.Wait(ctx); err == nil {
						expected = ack.Seq
						ops.Add(1)
						continue
					}
				}
				fails.Add(1)
			}
		}()
	}
	wg.Wait()
	return Result{Name: "raw JetStream appends, a goroutine per room", Ops: ops.Load(), Elapsed: time.Since(start),
		Failures: fails.Load()}, nil
}

func sampleBroadcast() domain.Event {
	return domain.Event{ID: ulid.Make(), Type: domain.RoomBroadcastSent, App: App, Aggregate: domain.KindRoom,
		AggregateID: "room-0", Seq: 1, Time: time.Now().UTC(), Correlation: ulid.Make().String(),
		Causation: ulid.Make().String(), Prev: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Data: &domain.BroadcastSentData{From: "user-0", FromName: "User 0", Session: "sess-0", Body: "hello room, this is a broadcast"}}
}

// Setup logs one member into each of rooms rooms and returns their sessions.
func Setup(ctx context.Context, e *engine.Engine, rooms int) ([]domain.SessionID, error) {
	sessions := make([]domain.SessionID, rooms)
	for i := range rooms {
		u := domain.UserID(fmt.Sprint("user-", i))
		s := domain.SessionID(fmt.Sprint("sess-", i))
		_, err := e.Execute(ctx, domain.Meta{App: App}, domain.JoinRoom{Session: s, User: domain.User{ID: u, Name: string(u)},
			Mode: domain.MultiRoom, Room: domain.RoomID(fmt.Sprint("room-", i)), Role: domain.Anchor,
			Grant: domain.Grant{User: u, AllRooms: true, CanPublish: true}, Create: domain.CreateIfMissing, Via: domain.ViaLogin})
		if err != nil {
			return nil, err
		}
		sessions[i] = s
	}
	return sessions, nil
}

// EngineCommands executes broadcasts for d, one command in flight per room,
// across the rooms Setup joined. Each command is decided on the cached room
// and session and appended with the same headers RawAppends sends.
func EngineCommands(ctx context.Context, e *engine.Engine, sessions []domain.SessionID, d time.Duration) Result {
	var ops, fails atomic.Int64
	stop := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := domain.SendBroadcast{Session: s, Room: domain.RoomID(fmt.Sprint("room-", i)), Body: "hello room, this is a broadcast"}
			for time.Now().Before(stop) && ctx.Err() == nil {
				if _, err := e.Execute(ctx, domain.Meta{App: App}, cmd); err != nil {
					fails.Add(1)
					continue
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	return Result{Name: "engine commands", Ops: ops.Load(), Elapsed: time.Since(start), Failures: fails.Load()}
}
