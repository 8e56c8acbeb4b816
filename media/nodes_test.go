package media

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections"
	"github.com/roomlog/roomlog/tests/netcut"
)

// A media node whose log is silent when it starts (every byte to and from
// NATS held) goes on beating: once the log answers, its record is there and
// it is alive to the others. Before, a failed first beat stopped the node's
// watcher for good, and its /readyz answered 503 until a restart.
func TestAMediaNodeWhoseFirstBeatFailsBeatsOnceTheLogAnswers(t *testing.T) {
	embedded := estest.Open(t, func(c *eventstore.Config) { c.Listen, c.Password = "127.0.0.1:-1", estest.Password })
	cfg := embedded.ClientConfig()
	proxy := netcut.Start(t, strings.TrimPrefix(cfg.URL, "nats://"))
	cfg.URL, cfg.Logger = "nats://"+proxy.Addr(), estest.Logger(t)
	log := estest.Must(t, cfg)
	records, err := log.OpenRecords(estest.Ctx(t), eventstore.RecordsConfig{Bucket: NodesBucket})
	if err != nil {
		t.Fatal(err)
	}
	watched, err := embedded.OpenRecords(estest.Ctx(t), eventstore.RecordsConfig{Bucket: NodesBucket})
	if err != nil {
		t.Fatal(err)
	}
	logger, lines := estest.Capture(t)
	nodes, err := NewNodes(NodesConfig{Records: records, Engine: estest.Engine(t, embedded, nil, nil),
		Live: projections.NewLive(projections.NewModel()), Self: "m1", Beat: 200 * time.Millisecond, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}

	proxy.Freeze()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- nodes.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("Run: %v", err)
		}
	})
	estest.Eventually(t, "a failed beat said", func() bool {
		select {
		case err := <-done:
			t.Fatalf("the node watcher stopped at its first beat: %v", err)
		default:
		}
		_, ok := lines.Find("media: node beat failed")
		return ok
	})
	proxy.Thaw()
	estest.Eventually(t, "m1's beat stored", func() bool {
		_, ok, err := watched.Get(estest.Ctx(t), nodeKey("m1"))
		return err == nil && ok
	})
	select {
	case err := <-done:
		t.Fatalf("the node watcher stopped: %v", err)
	default:
	}
}

// deadNodeWatcher runs a media node watcher on log's bucket that counts its
// Lost calls for m-dead in lost; wrap, if set, wraps its bucket. Its own
// timer never fires (an hour): which watcher finds m-dead dead, and when,
// is the test's choice (lost). stop ends it, once every Lost call it
// started has returned.
func deadNodeWatcher(t *testing.T, log *eventstore.Log, lost *atomic.Int32, wrap func(Records) Records) (
	nodes *Nodes, stop func()) {
	t.Helper()
	var records Records
	records, err := log.OpenRecords(estest.Ctx(t), eventstore.RecordsConfig{Bucket: NodesBucket})
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		records = wrap(records)
	}
	nodes, err = NewNodes(NodesConfig{Records: records, Engine: estest.Engine(t, log, nil, nil),
		Live: projections.NewLive(projections.NewModel()), Timeout: time.Hour, Logger: estest.Logger(t),
		Lost: func(node string) {
			if node == "m-dead" {
				lost.Add(1)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- nodes.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done // Run waits for the Lost calls it started
		})
	}
	t.Cleanup(stop)
	return nodes, stop
}

// beatOnce stores m-dead's one and only beat and waits until every watcher
// sees it; it returns the beat's revision.
func beatOnce(t *testing.T, log *eventstore.Log, watchers ...*Nodes) uint64 {
	t.Helper()
	records, err := log.OpenRecords(estest.Ctx(t), eventstore.RecordsConfig{Bucket: NodesBucket})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(nodeRecord{Node: "m-dead", At: time.Now()})
	rev, err := records.Put(estest.Ctx(t), nodeKey("m-dead"), b)
	if err != nil {
		t.Fatal(err)
	}
	estest.Eventually(t, "every watcher seeing m-dead's beat", func() bool {
		for _, w := range watchers {
			if !slices.Contains(w.Alive(), "m-dead") {
				return false
			}
		}
		return true
	})
	return rev
}

// forgotten waits until every watcher has heard m-dead's record was
// deleted: the Lost calls that word starts are then under way, and a
// watcher's stop waits for them.
func forgotten(t *testing.T, watchers ...*Nodes) {
	t.Helper()
	estest.Eventually(t, "every watcher forgetting m-dead", func() bool {
		for _, w := range watchers {
			if slices.Contains(w.Alive(), "m-dead") {
				return false
			}
		}
		return true
	})
}

// A media node dies. Every node that watches ends its own sessions'
// connections there (NodesConfig.Lost), once: the one that finds it dead
// first, which stops the dead node's streams and deletes its record, and
// the others, which learn of the death from that delete before their own
// timer fires. Before, the delete stopped their timers and they never
// called Lost: their waiting players stayed on the dead node.
func TestEveryWatcherEndsItsConnectionsOnADeadNode(t *testing.T) {
	log := estest.Open(t, nil)
	var first, other atomic.Int32
	finder, stopFinder := deadNodeWatcher(t, log, &first, nil)
	watcher, stopWatcher := deadNodeWatcher(t, log, &other, nil)
	rev := beatOnce(t, log, finder, watcher)
	finder.lost("m-dead", rev) // its timer fired
	forgotten(t, finder, watcher)
	stopFinder()
	stopWatcher()
	if first.Load() != 1 || other.Load() != 1 {
		t.Errorf("Lost calls: finder %d, other %d; want once each", first.Load(), other.Load())
	}
}

// slowDelete returns from Delete a while after the delete is stored, as a
// busy scheduler may: the watch's word of the delete comes first.
type slowDelete struct{ Records }

func (s slowDelete) Delete(ctx context.Context, key string, rev uint64) error {
	err := s.Records.Delete(ctx, key, rev)
	time.Sleep(300 * time.Millisecond)
	return err
}

// The node that found m-dead dead hears of its own delete before the
// delete returns; or two nodes find it dead together, and the second one's
// delete finds nothing. Either way each ends its connections there once
// (the second reader found both calling Lost again).
func TestAWatcherThatFoundANodeDeadEndsItsConnectionsOnce(t *testing.T) {
	t.Run("its own delete heard first", func(t *testing.T) {
		log := estest.Open(t, nil)
		var n atomic.Int32
		finder, stop := deadNodeWatcher(t, log, &n, func(r Records) Records { return slowDelete{r} })
		finder.lost("m-dead", beatOnce(t, log, finder))
		forgotten(t, finder)
		stop()
		if n.Load() != 1 {
			t.Errorf("the finder called Lost %d times, want once", n.Load())
		}
	})
	t.Run("two finders", func(t *testing.T) {
		log := estest.Open(t, nil)
		var a, b atomic.Int32
		na, stopA := deadNodeWatcher(t, log, &a, nil)
		nb, stopB := deadNodeWatcher(t, log, &b, nil)
		rev := beatOnce(t, log, na, nb)
		na.lost("m-dead", rev)
		nb.lost("m-dead", rev) // its own timer, about the same time
		forgotten(t, na, nb)
		stopA()
		stopB()
		if a.Load() != 1 || b.Load() != 1 {
			t.Errorf("Lost calls: %d and %d, want once each", a.Load(), b.Load())
		}
	})
}
