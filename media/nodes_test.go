package media

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
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

// A media node dies. Every node that watches ends its own sessions'
// connections there (NodesConfig.Lost): the one that finds it dead first,
// which stops the dead node's streams and deletes its record, and the
// others, which learn of the death from that delete before their own timer
// fires, each once. Before, the delete stopped their timers and they never
// called Lost: their waiting players stayed on the dead node.
func TestEveryWatcherEndsItsConnectionsOnADeadNode(t *testing.T) {
	log := estest.Open(t, nil)
	watch := func(lost *atomic.Int32) *Nodes {
		records, err := log.OpenRecords(estest.Ctx(t), eventstore.RecordsConfig{Bucket: NodesBucket})
		if err != nil {
			t.Fatal(err)
		}
		// Timers of an hour: which node finds m-dead dead first is the
		// test's choice.
		nodes, err := NewNodes(NodesConfig{Records: records, Engine: estest.Engine(t, log, nil, nil),
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
		t.Cleanup(func() {
			cancel()
			<-done
		})
		return nodes
	}
	var first, other atomic.Int32
	finder, watcher := watch(&first), watch(&other)
	records, err := log.OpenRecords(estest.Ctx(t), eventstore.RecordsConfig{Bucket: NodesBucket})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(nodeRecord{Node: "m-dead", At: time.Now()})
	rev, err := records.Put(estest.Ctx(t), nodeKey("m-dead"), b)
	if err != nil {
		t.Fatal(err)
	}
	estest.Eventually(t, "both watchers seeing m-dead's beat", func() bool {
		return slices.Contains(finder.Alive(), "m-dead") && slices.Contains(watcher.Alive(), "m-dead")
	})
	finder.lost("m-dead", rev) // its timer fired
	estest.Eventually(t, "both watchers ending their connections on m-dead", func() bool {
		return first.Load() >= 1 && other.Load() >= 1
	})
	if slices.Contains(watcher.Alive(), "m-dead") || slices.Contains(finder.Alive(), "m-dead") {
		t.Error("a watcher still lists m-dead alive")
	}
	// The finder's own delete, coming back through its watch, is no news:
	// it does not end its connections there again.
	time.Sleep(200 * time.Millisecond)
	if n := first.Load(); n != 1 {
		t.Errorf("the finder called Lost %d times, want once", n)
	}
}
