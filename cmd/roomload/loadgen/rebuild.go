package loadgen

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/projections"
)

// Fill writes at least events events through the engine, across rooms rooms,
// with a mix of what rooms mostly do: broadcasts, custom commands, extra
// info, streams published and stopped, members coming and going. It returns
// how many events and messages it wrote.
func Fill(ctx context.Context, e *engine.Engine, rooms, events int) (nEvents, nMessages int64, err error) {
	sessions, err := Setup(ctx, e, rooms)
	if err != nil {
		return 0, 0, err
	}
	var written, msgs atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, rooms)
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			room := domain.RoomID(fmt.Sprint("room-", i))
			guest := domain.SessionID(fmt.Sprint("guest-", i))
			gu := domain.UserID(fmt.Sprint("guest-", i))
			stream := domain.StreamID(fmt.Sprint("cam-", i))
			for n := 0; written.Load() < int64(events); n++ {
				var c domain.Command
				switch n % 20 {
				case 0:
					c = domain.JoinRoom{Session: guest, User: domain.User{ID: gu, Name: string(gu)}, Mode: domain.MultiRoom,
						Room: room, Role: domain.Audience, Grant: domain.Grant{User: gu, AllRooms: true},
						Create: domain.CreateIfMissing, Via: domain.ViaLogin}
				case 1:
					c = domain.PublishStream{Session: s, Stream: stream, Room: room, ExtraInfo: "720p"}
				case 2, 3:
					c = domain.SendCustomCommand{Session: s, Room: room, To: []domain.UserID{gu}, Body: `{"op":"mute","on":true}`}
				case 4, 5:
					c = domain.SetRoomExtraInfo{Session: s, Room: room, Key: "topic", Value: fmt.Sprint("slide ", n)}
				case 6:
					c = domain.PlayStream{Session: guest, Stream: stream, Room: room}
				case 17:
					c = domain.StopPublishing{Session: s, Stream: stream}
				case 18:
					c = domain.LeaveRoom{Session: guest, Room: room, Reason: domain.ReasonLogout}
				default:
					c = domain.SendBroadcast{Session: s, Room: room, Body: fmt.Sprint("message ", n, " to the room")}
				}
				res, err := e.Execute(ctx, domain.Meta{App: App}, c)
				if err != nil {
					errs <- fmt.Errorf("%s: %w", c.CommandName(), err)
					return
				}
				for _, a := range res.Appended {
					written.Add(int64(len(a.Events)))
					msgs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, 0, err
	}
	return written.Load(), msgs.Load(), nil
}

// RawRead reads every message of the log once and counts them: the floor
// any replay stands on.
func RawRead(ctx context.Context, log *eventstore.Log) (Result, error) {
	start := time.Now()
	var n int64
	_, err := log.Read(ctx, []string{log.Prefix() + ".>"}, 1, func(eventstore.Record) error {
		n++
		return nil
	})
	return Result{Name: "raw ordered-consumer read", Ops: n, Elapsed: time.Since(start)}, err
}

// Rebuild folds the whole log into a fresh projection: read, decode, fold.
// It returns the messages folded (Ops) and the model's hash.
func Rebuild(ctx context.Context, log *eventstore.Log) (Result, string, error) {
	m := projections.NewModel()
	start := time.Now()
	if err := projections.Rebuild(ctx, log, []string{log.Prefix() + ".>"}, m); err != nil {
		return Result{}, "", err
	}
	el := time.Since(start)
	h, err := m.Hash()
	n, _ := log.LastSeq(ctx)
	return Result{Name: "projection rebuild", Ops: int64(n), Elapsed: el}, h, err
}
