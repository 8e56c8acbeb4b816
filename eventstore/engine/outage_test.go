package engine_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/netcut"
)

// The log stops answering (every byte to and from it held, as when its
// stream has no leader that can reach a quorum). Commands ride that out
// until it has lasted longer than an election takes; past that, new
// commands are refused at once as unavailable, instead of each waiting out
// its own deadline, except one that keeps trying, so that the log's first
// answer ends the outage: then every command waiting is stored once, and
// new commands are accepted again.
func TestALogSilentLongerThanAnElectionRefusesCommandsAtOnce(t *testing.T) {
	embedded := estest.Open(t, func(c *eventstore.Config) { c.Listen, c.Password = "127.0.0.1:-1", estest.Password })
	cfg := embedded.ClientConfig()
	proxy := netcut.Start(t, strings.TrimPrefix(cfg.URL, "nats://"))
	cfg.URL, cfg.Logger = "nats://"+proxy.Addr(), estest.Logger(t)
	log := estest.Must(t, cfg)
	e := newEngine(t, log, nil)
	var mu sync.Mutex
	now := time.Now()
	e.SetOutageClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	for i := range 6 {
		exec(t, e, login(domain.SessionID(fmt.Sprint("s", i)), domain.UserID(fmt.Sprint("u", i)), domain.RoomID(fmt.Sprint("r", i))))
	}
	broadcast := func(i int) error {
		_, err := e.Execute(estest.Ctx(t), domain.Meta{App: app},
			domain.SendBroadcast{Session: domain.SessionID(fmt.Sprint("s", i)), Room: domain.RoomID(fmt.Sprint("r", i)), Body: "hello"})
		return err
	}

	proxy.Freeze()
	// The first command finds the log silent and keeps resending.
	first := make(chan error, 1)
	go func() { first <- broadcast(0) }()
	estest.Eventually(t, "the first broadcast resent", func() bool { return e.Stats().Resends > 0 })

	// Within an election's time, a new command waits too.
	mu.Lock()
	now = now.Add(engine.DefaultOutage / 2)
	mu.Unlock()
	waiting := make(chan error, 1)
	go func() { waiting <- broadcast(1) }()
	estest.Eventually(t, "the second broadcast resent", func() bool { return e.Stats().Resends > 1 })

	// Past it, new commands are refused at once, all but one, which
	// tries for real.
	mu.Lock()
	now = now.Add(engine.DefaultOutage)
	mu.Unlock()
	results := make(chan error, 3)
	for i := 2; i < 5; i++ {
		go func() { results <- broadcast(i) }()
	}
	for range 2 {
		if err := <-results; !errors.Is(err, domain.ErrUnavailable) || !strings.Contains(err.Error(), "has not answered") {
			t.Fatalf("a new command while the log is silent: %v, want unavailable at once", err)
		}
	}
	if got := e.Stats().Refused; got != 2 {
		t.Fatalf("%d commands refused at once, want 2 (all but the one probing the log)", got)
	}
	select {
	case err := <-first:
		t.Fatalf("the first command ended while the log was silent: %v", err)
	case err := <-waiting:
		t.Fatalf("a command admitted within an election's time ended while the log was silent: %v", err)
	case err := <-results:
		t.Fatalf("the probing command ended while the log was silent: %v", err)
	default:
	}

	// The log answers again: the commands still trying are stored, the
	// probe ends the outage, and new commands are accepted.
	proxy.Thaw()
	for _, ch := range []chan error{first, waiting, results} {
		if err := <-ch; err != nil {
			t.Fatalf("a command that went on trying: %v", err)
		}
	}
	if err := broadcast(5); err != nil {
		t.Fatalf("a command once the log answers again: %v", err)
	}
	count := func(i int) (n int) {
		for _, ev := range history(t, embedded, domain.RoomKey(app, domain.RoomID(fmt.Sprint("r", i)))) {
			if _, ok := ev.Data.(*domain.BroadcastSentData); ok {
				n++
			}
		}
		return n
	}
	for _, i := range []int{0, 1, 5} {
		if got := count(i); got != 1 {
			t.Fatalf("room r%d holds %d broadcasts, want 1", i, got)
		}
	}
	if got := count(2) + count(3) + count(4); got != 1 {
		t.Fatalf("the three rooms written to during the outage hold %d broadcasts, want 1 (the probe's)", got)
	}
}
