package consume_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections/consume"
	"github.com/roomlog/roomlog/projections/cursor"
	"github.com/roomlog/roomlog/tests/netcut"
)

// exactlyOnce checks that the room events of log were each handed over
// once, in log order.
func exactlyOnce(t *testing.T, log *eventstore.Log, got []cursor.Cursor) {
	t.Helper()
	var want []cursor.Cursor
	if _, err := cursor.Read(estest.Ctx(t), log, []string{log.KindFilter("room")}, cursor.Cursor{},
		func(e cursor.Event) error { want = append(want, e.Cursor); return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range max(len(want), len(got)) {
		if i >= len(want) || i >= len(got) || want[i] != got[i] {
			var w, g any = "nothing", "nothing"
			if i < len(want) {
				w = want[i]
			}
			if i < len(got) {
				g = got[i]
			}
			t.Fatalf("the log holds %d room events, %d were handed over; the %dth handed over is %v, the log's is %v",
				len(want), len(got), i+1, g, w)
		}
	}
}

// consumerInfo is the durable consumer name's state on the server (nil if
// there is none).
func consumerInfo(js jetstream.JetStream, stream, name string) *jetstream.ConsumerInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := js.Consumer(ctx, stream, name)
	if err != nil {
		return nil
	}
	i, err := cons.Info(ctx)
	if err != nil {
		return nil
	}
	return i
}

// A consumer follows the log live over TCP. What the server sends it is
// lost for a moment (a network blip), then the connection breaks and
// nats.go reconnects by itself. The server counts the lost messages as
// delivered and sends them again only after AckWait; meanwhile the new pull
// gets the messages written after the reconnect. Before, those were handed
// over first and the lost ones, redelivered later, were skipped as already
// past the cursor: "log holds 30 room events; the consumer handed over 20".
// A delivery that did not arrive now shows as a gap in the consumer's
// sequence, and what it held is read from the log before the next message.
func TestMessagesLostInAReconnectAreReadFromTheLog(t *testing.T) {
	server := estest.Open(t, func(c *eventstore.Config) { c.Listen, c.Password = "127.0.0.1:-1", estest.Password })
	proxy := netcut.Start(t, strings.TrimPrefix(server.ClientURL(), "nats://"))
	client := estest.Must(t, eventstore.Config{URL: "nats://" + proxy.Addr(), Password: estest.Password, BindStream: true,
		Logger: estest.Logger(t)})
	js := estest.JetStream(t, server)
	info := func() *jetstream.ConsumerInfo { return consumerInfo(js, server.StreamName(), "blip") }

	// AckWait is long enough that no lost message is redelivered before the
	// test has seen every message handed over.
	app := &recorder{}
	stop := start(t, app.consumer(t, client, "blip", cursor.Cursor{}, 5*time.Minute))
	waitFor(t, "the durable consumer", func() bool { return info() != nil })
	before, _ := estest.WriteRooms(t, server, estest.RoomsConfig{App: "before", Rooms: 2, Events: 10, Seed: 31})
	waitFor(t, "the first events", func() bool { return len(app.handed()) >= before })

	proxy.MuteServer()
	lost, _ := estest.WriteRooms(t, server, estest.RoomsConfig{App: "lost", Rooms: 2, Events: 10, Seed: 32})
	lostEnd, err := server.LastSeq(estest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the server sending the messages (into the void)", func() bool {
		i := info()
		return i != nil && i.Delivered.Stream >= lostEnd
	})
	proxy.Cut()
	waitFor(t, "the client reconnected", client.Connected)
	after, _ := estest.WriteRooms(t, server, estest.RoomsConfig{App: "after", Rooms: 2, Events: 10, Seed: 33})
	waitWithin(t, "every event handed over", 60*time.Second, func() bool { return len(app.handed()) >= before+lost+after })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	exactlyOnce(t, server, app.handed())
}

// The durable consumer is removed on the server while Run follows the log
// (an operator's "nats consumer rm", or a second consumer of the same name
// replacing it). nats.go stops pulling for good; before, Run went on
// delivering nothing and saying nothing, for ever. It now saves what it
// handled and returns ErrConsumerGone, and started again from its saved
// cursor it hands over the rest, each event once.
func TestRunFailsWhenItsConsumerIsDeleted(t *testing.T) {
	log := estest.Open(t, nil)
	js := estest.JetStream(t, log)
	app := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- app.consumer(t, log, "gone", cursor.Cursor{}, time.Minute).Run(ctx) }()
	waitFor(t, "the durable consumer", func() bool { return consumerInfo(js, log.StreamName(), "gone") != nil })
	first, _ := estest.WriteRooms(t, log, estest.RoomsConfig{App: "a", Rooms: 1, Events: 5, Seed: 41})
	waitFor(t, "the first events", func() bool { return len(app.handed()) >= first })

	if err := js.DeleteConsumer(estest.Ctx(t), log.StreamName(), "gone"); err != nil {
		t.Fatal(err)
	}
	more, _ := estest.WriteRooms(t, log, estest.RoomsConfig{App: "b", Rooms: 1, Events: 5, Seed: 42})
	select {
	case err := <-done:
		if !errors.Is(err, consume.ErrConsumerGone) {
			t.Fatalf("Run after its consumer was deleted: %v, want ErrConsumerGone", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("60 s after its durable consumer was deleted, Run neither returned nor delivered (%d of %d events)",
			len(app.handed()), first+more)
	}
	_, saved, _ := app.last()
	stop := start(t, app.consumer(t, log, "gone", saved, time.Minute))
	waitFor(t, "the rest after a restart", func() bool { return len(app.handed()) >= first+more })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	exactlyOnce(t, log, app.handed())
}

// appendUnknownType appends to log a room message as roomd writes it (a
// copy of its first), whose event's type no version knows: as a newer
// roomd would write one.
func appendUnknownType(t *testing.T, log *eventstore.Log) (eventstore.Ack, error) {
	t.Helper()
	var known eventstore.Record
	errFound := errors.New("found")
	if _, err := log.Read(estest.Ctx(t), []string{log.KindFilter("room")}, 1, func(rec eventstore.Record) error {
		known = rec
		return errFound
	}); !errors.Is(err, errFound) {
		t.Fatalf("reading a room message: %v", err)
	}
	var events []map[string]any
	if err := json.Unmarshal(known.Data, &events); err != nil {
		t.Fatal(err)
	}
	events[0]["type"] = "room.teleported"
	future, _ := json.Marshal(events[:1])
	return log.Append(estest.Ctx(t), eventstore.Message{Subject: log.Subject("future", "room", "r"),
		MsgID: ulid.Make().String(), Data: future})
}

// A newer roomd writes an event of a type this consumer does not know.
// Skipping it would fold a different state than the log's; before, it was
// tried, then parked and skipped, and lost for good to the application even
// once upgraded. Run now stops before it, saying why, with nothing parked
// and the saved cursor before it, so that an upgraded consumer folds it.
func TestAnEventOfAnUnknownTypeStopsTheConsumerBeforeIt(t *testing.T) {
	log := estest.Open(t, nil)
	before, _ := estest.WriteRooms(t, log, estest.RoomsConfig{Rooms: 1, Events: 5, Seed: 61})
	ack, err := appendUnknownType(t, log)
	if err != nil {
		t.Fatal(err)
	}
	estest.WriteRooms(t, log, estest.RoomsConfig{App: "after", Rooms: 1, Events: 5, Seed: 62})

	app := &recorder{}
	err = app.consumer(t, log, "old", cursor.Cursor{}, time.Minute).Run(estest.Ctx(t))
	if !errors.Is(err, domain.ErrUnknownEventType) {
		t.Fatalf("Run over an event of an unknown type: %v, want domain.ErrUnknownEventType", err)
	}
	if got := len(app.handed()); got != before {
		t.Errorf("handed over %d events, want the %d before the unknown one", got, before)
	}
	if _, saved, _ := app.last(); !saved.Less(cursor.Cursor{Seq: ack.Seq}) {
		t.Errorf("saved cursor %s is at or past the unknown event's message (stream sequence %d)", saved, ack.Seq)
	}
	parked, err := consume.ParkedRecords(estest.Ctx(t), log, "old")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := parked.Get(estest.Ctx(t), strconv.FormatUint(ack.Seq, 10)); ok {
		t.Error("the unknown event's message was parked")
	}
}

// The same loss, noticed on a redelivery. Handle is slow on X past the ack
// wait; Y is sent and lost; after the reconnect the server sends X again,
// then Z, then (its own ack wait over) Y again. The skipped consumer
// sequence shows on X's second delivery, which is at the cursor: before,
// the gap was forgotten there, Z moved the cursor past Y, and Y's own
// redelivery was skipped as handled ("the log holds 6 room events, 4 were
// handed over"). The gap now stays open until a message past the cursor.
func TestALossNoticedOnARedeliveryIsStillReadFromTheLog(t *testing.T) {
	const ackWait = 4 * time.Second
	server := estest.Open(t, func(c *eventstore.Config) { c.Listen, c.Password = "127.0.0.1:-1", estest.Password })
	proxy := netcut.Start(t, strings.TrimPrefix(server.ClientURL(), "nats://"))
	client := estest.Must(t, eventstore.Config{URL: "nats://" + proxy.Addr(), Password: estest.Password, BindStream: true,
		Logger: estest.Logger(t)})
	js := estest.JetStream(t, server)
	info := func() *jetstream.ConsumerInfo { return consumerInfo(js, server.StreamName(), "mixed") }

	app := &recorder{block: make(chan struct{})}
	stop := start(t, app.consumer(t, client, "mixed", cursor.Cursor{}, ackWait))
	waitFor(t, "the durable consumer", func() bool { return info() != nil })
	estest.WriteRooms(t, server, estest.RoomsConfig{App: "x", Rooms: 1, Events: 1, Seed: 1}) // X: Handle holds it
	waitFor(t, "X in Handle", func() bool { return len(app.handed()) >= 1 })
	// Not a wait for behaviour: it spaces X's and Y's ack waits, so that X
	// comes again, and Z after it, well before Y comes again. On a machine
	// too slow for that the order changes, and the test checks a plainer
	// case; it cannot fail for it.
	time.Sleep(ackWait / 2)

	proxy.MuteServer()
	estest.WriteRooms(t, server, estest.RoomsConfig{App: "y", Rooms: 1, Events: 1, Seed: 2}) // Y: lost
	ySeq, err := server.LastSeq(estest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Y sent into the void", func() bool { i := info(); return i != nil && i.Delivered.Stream >= ySeq })
	proxy.Cut()
	waitFor(t, "the client reconnected", client.Connected)
	waitFor(t, "X sent again", func() bool { i := info(); return i != nil && i.Delivered.Consumer >= 3 })
	estest.WriteRooms(t, server, estest.RoomsConfig{App: "z", Rooms: 1, Events: 1, Seed: 3}) // Z
	zSeq, err := server.LastSeq(estest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	close(app.block)
	waitWithin(t, "everything acknowledged", 60*time.Second, func() bool {
		i := info()
		return i != nil && i.AckFloor.Stream >= zSeq && i.NumAckPending == 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	exactlyOnce(t, server, app.handed())
}

// behindProxy is a consumer's Run (its recorder app, its outcome done) on
// a log it reaches through a proxy the test can cut, once it has handed
// over the first events written.
type behindProxy struct {
	server, client *eventstore.Log
	proxy          *netcut.Proxy
	js             jetstream.JetStream
	info           func() *jetstream.ConsumerInfo
	app            *recorder
	done           chan error
	first          int
}

// runBehindProxy starts consumer name behind a proxy and writes its first
// events.
func runBehindProxy(t *testing.T, name string) behindProxy {
	t.Helper()
	r := behindProxy{app: &recorder{}, done: make(chan error, 1)}
	r.server = estest.Open(t, func(c *eventstore.Config) { c.Listen, c.Password = "127.0.0.1:-1", estest.Password })
	r.proxy = netcut.Start(t, strings.TrimPrefix(r.server.ClientURL(), "nats://"))
	r.client = estest.Must(t, eventstore.Config{URL: "nats://" + r.proxy.Addr(), Password: estest.Password, BindStream: true,
		Logger: estest.Logger(t)})
	r.js = estest.JetStream(t, r.server)
	r.info = func() *jetstream.ConsumerInfo { return consumerInfo(r.js, r.server.StreamName(), name) }
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { r.done <- r.app.consumer(t, r.client, name, cursor.Cursor{}, time.Minute).Run(ctx) }()
	waitFor(t, "the durable consumer", func() bool { return r.info() != nil })
	r.first, _ = estest.WriteRooms(t, r.server, estest.RoomsConfig{App: "a", Rooms: 1, Events: 5, Seed: 41})
	waitFor(t, "the first events", func() bool { return len(r.app.handed()) >= r.first })
	return r
}

// The durable consumer is removed on the server while the consumer's
// connection is down (the server's "409 Consumer Deleted" to the pending
// pull never reaches it). nats.go reconnects by itself and pulls again from
// a consumer that is not there, saying only that no one responds. Run
// returns ErrConsumerGone, as when it hears of the removal: before, it
// waited for good, delivering nothing.
func TestRunFailsWhenItsConsumerIsDeletedWhileDisconnected(t *testing.T) {
	r := runBehindProxy(t, "gone2")
	server, proxy, client, js, info, app, done, first := r.server, r.proxy, r.client, r.js, r.info, r.app, r.done, r.first

	proxy.MuteServer()
	if err := js.DeleteConsumer(estest.Ctx(t), server.StreamName(), "gone2"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the 409 is sent into the void
	proxy.Cut()
	waitFor(t, "the client reconnected", client.Connected)
	more, _ := estest.WriteRooms(t, server, estest.RoomsConfig{App: "b", Rooms: 1, Events: 5, Seed: 42})
	select {
	case err := <-done:
		if !errors.Is(err, consume.ErrConsumerGone) {
			t.Fatalf("Run after its consumer was deleted: %v, want ErrConsumerGone", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("60 s after its durable consumer was deleted (while disconnected), Run neither returned ErrConsumerGone "+
			"nor delivered the new events (%d of %d handed over; consumer on server: %v)",
			len(app.handed()), first+more, info() != nil)
	}
}

// A second consumer with the same name replaces the first one's durable
// while the first one's connection is down. Reconnected, the first one
// pulled from the second one's durable without a word: the two split the
// messages, each handing over only part of the log. Now the first returns
// ErrConsumerGone (its consumer is not the one it created), and the second
// reads from the log what the first took, even with nothing delivered
// after it.
func TestRunFailsWhenItsConsumerIsReplacedWhileDisconnected(t *testing.T) {
	r := runBehindProxy(t, "twin")
	server, proxy, client, a, done, first := r.server, r.proxy, r.client, r.app, r.done, r.first

	proxy.MuteServer()
	b := &recorder{}
	stopB := start(t, b.consumer(t, server, "twin", cursor.Cursor{}, time.Minute)) // replaces A's durable
	waitFor(t, "B's catch-up", func() bool { return len(b.handed()) >= first })
	proxy.Cut()
	waitFor(t, "A reconnected", client.Connected)
	time.Sleep(2 * time.Second) // A's new pull reaches the server
	more, _ := estest.WriteRooms(t, server, estest.RoomsConfig{App: "b", Rooms: 4, Events: 200, Seed: 42})
	select {
	case err := <-done:
		if !errors.Is(err, consume.ErrConsumerGone) {
			t.Fatalf("A after its durable was replaced: %v, want ErrConsumerGone", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("A's durable was replaced by B while A was disconnected: 30 s on, A still runs, without an error, and handed "+
			"over %d of the %d events; B handed over %d", len(a.handed()), first+more, len(b.handed()))
	}
	waitFor(t, "B handing over every event", func() bool { return len(b.handed()) == first+more })
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	exactlyOnce(t, server, b.handed())
}

// A Handle that panics on one event (a poison message that trips a bug in
// the application's fold) is one that fails: the message is tried again,
// then parked after MaxAttempts, and the rest handed over. Before, the
// panic left Run (on the caller's goroutine: roomstats' main): the process
// died, started again at the saved cursor, met the same message and died
// again, and the message was never parked.
func TestAPanickingHandleIsTriedAgainThenParked(t *testing.T) {
	log := estest.Open(t, nil)
	estest.WriteRooms(t, log, estest.RoomsConfig{Rooms: 1, Events: 10, Seed: 71})
	var mu sync.Mutex
	var parked []consume.Parked
	n := 0
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := consume.New(consume.Config{Log: log, Name: "panicky", MaxAttempts: 2, Logger: estest.Logger(t),
		Handle: func(_ context.Context, e cursor.Event) error {
			mu.Lock()
			n++
			k := n
			mu.Unlock()
			if e.Cursor.Seq == 3 {
				panic(fmt.Sprintf("the application's fold has a bug (event %s, call %d)", e.Cursor, k))
			}
			return nil
		},
		Save: func(context.Context, cursor.Cursor) error { return nil },
		Parked: func(p consume.Parked) {
			mu.Lock()
			parked = append(parked, p)
			mu.Unlock()
			cancel() // Run then saves and returns nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		err      error
		panicked any
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- result{panicked: p}
			}
		}()
		done <- result{err: c.Run(ctx)}
	}()
	r := <-done
	mu.Lock()
	defer mu.Unlock()
	if r.panicked != nil || len(parked) != 1 {
		t.Fatalf("a Handle panicking on stream sequence 3: Run panicked with %v (returned %v); parked %v, want the message parked "+
			"after 2 attempts and the rest handed over", r.panicked, r.err, parked)
	}
}

// Config.Save "is called every SaveEvery events, every SaveInterval, and
// when Run ends", and a consumer stopped by an event of an unknown type
// "resumes there" once upgraded. Run stopped at the unknown event having
// handed over the events before it, and returned without saving them: the
// next run handed them over again.
func TestRunEndingWithAnErrorSavesWhatItHandled(t *testing.T) {
	log := estest.Open(t, nil)
	before, _ := estest.WriteRooms(t, log, estest.RoomsConfig{Rooms: 1, Events: 5, Seed: 61})
	if _, err := appendUnknownType(t, log); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var handed int
	var saves []cursor.Cursor
	c, err := consume.New(consume.Config{Log: log, Name: "old", Logger: estest.Logger(t),
		Handle: func(context.Context, cursor.Event) error { mu.Lock(); handed++; mu.Unlock(); return nil },
		Save: func(_ context.Context, c cursor.Cursor) error {
			mu.Lock()
			saves = append(saves, c)
			mu.Unlock()
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Run(estest.Ctx(t))
	if !errors.Is(err, domain.ErrUnknownEventType) {
		t.Fatalf("Run: %v, want domain.ErrUnknownEventType", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if handed != before || len(saves) == 0 {
		t.Fatalf("Run ended (%v) after handing over %d events (%d before the unknown one); Save was called %d times %v, "+
			"want once, at the end", err, handed, before, len(saves), saves)
	}
}

// The application's own store is down for a second: Handle fails on every
// event meanwhile. Once it is back, the consumer hands over every event,
// those written during the outage included, exactly once and in log order,
// parking nothing (the events were fine; the store was not). Before, a
// message was parked after 5 tries in 200 ms: 7 of these 120 events were
// lost to the application.
func TestAnOutageOfTheApplicationsStoreLosesNoEvent(t *testing.T) {
	log := estest.Open(t, nil)
	var down atomic.Bool
	var failures atomic.Int64
	var s sink
	stop := start(t, s.consumer(t, log, consume.Config{Name: "outage"}, func(cursor.Event) error {
		if down.Load() {
			failures.Add(1)
			return errors.New("the application's store is down")
		}
		return nil
	}))
	before, _ := estest.WriteRooms(t, log, estest.RoomsConfig{App: "a1", Rooms: 3, Events: 40, Seed: 1})
	waitFor(t, "the events before the outage", func() bool { return s.count() >= before })

	down.Store(true)
	during, _ := estest.WriteRooms(t, log, estest.RoomsConfig{App: "a2", Rooms: 3, Events: 40, Seed: 2})
	time.Sleep(time.Second)
	down.Store(false)
	after, _ := estest.WriteRooms(t, log, estest.RoomsConfig{App: "a3", Rooms: 3, Events: 40, Seed: 3})
	total := before + during + after

	waitFor(t, "every event", func() bool { return s.count() >= total })
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if failures.Load() == 0 {
		t.Fatal("Handle never failed: the outage tested nothing")
	}
	s.inOrder(t)
	if len(s.parked) > 0 {
		t.Errorf("%d messages parked during a 1 s outage of the application's store (first: stream seq %d after %d tries: %s); "+
			"their events are never handed over", len(s.parked), s.parked[0].Seq, s.parked[0].Tries, s.parked[0].Error)
	}
	if n := s.count(); n != total {
		t.Errorf("handed over %d events of %d: %d lost", n, total, total-n)
	}
}

// A Handle that keeps failing is still given up on: its message is parked
// once RetryFor has passed, after at least MaxAttempts tries, and the
// events after it are handed over.
func TestAHandleThatKeepsFailingIsParkedAfterRetryFor(t *testing.T) {
	log := estest.Open(t, nil)
	var s sink
	stop := start(t, s.consumer(t, log, consume.Config{Name: "failing", MaxAttempts: 3, RetryFor: 300 * time.Millisecond},
		func(e cursor.Event) error {
			if e.Cursor.Seq == 2 {
				return errors.New("no place for this one")
			}
			return nil
		}))
	_, messages := estest.WriteRooms(t, log, estest.RoomsConfig{App: "a1", Rooms: 1, Events: 5, Seed: 1})
	waitFor(t, "the events after the failing one", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.parked) == 1 && len(s.seen) > 0 && s.seen[len(s.seen)-1].Seq == uint64(messages)
	})
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if p := s.parked[0]; p.Seq != 2 || p.Tries < 3 || !strings.Contains(p.Error, "no place for this one") {
		t.Errorf("parked %+v, want stream sequence 2 after at least 3 tries, with Handle's error", p)
	}
}

// A message on the consumer's pull inbox that is not a delivery of the log
// (no JetStream reply subject, so no metadata) is passed over: the events
// before and after it are handed over, in order, and Run goes on. Before,
// watermill-nats used the nil message the unmarshaler returned with its
// error: the process panicked.
func TestAMessageThatIsNotADeliveryIsPassedOver(t *testing.T) {
	if !estest.InChild(t) {
		return
	}
	log := estest.Open(t, nil)
	var s sink
	stop := start(t, s.consumer(t, log, consume.Config{Name: "intruded"}, nil))
	before, _ := estest.WriteRooms(t, log, estest.RoomsConfig{App: "a1", Rooms: 2, Events: 20, Seed: 1})
	waitFor(t, "the events before", func() bool { return s.count() >= before })
	estest.SendToPullInbox(t, log, "consume-intruded", []byte("not a JetStream delivery"))
	after, _ := estest.WriteRooms(t, log, estest.RoomsConfig{App: "a2", Rooms: 2, Events: 20, Seed: 2})
	waitFor(t, "the events after", func() bool { return s.count() >= before+after })
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if n := s.count(); n != before+after {
		t.Errorf("handed over %d events, want %d", n, before+after)
	}
	s.inOrder(t)
}
