package media

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/projections"
)

// NodesBucket is the records bucket media nodes beat in.
const NodesBucket = "roomlog-media-nodes"

// Records is a bucket of records (an *eventstore.Records).
type Records interface {
	Put(ctx context.Context, key string, value []byte) (uint64, error)
	Delete(ctx context.Context, key string, rev uint64) error
	Watch(ctx context.Context, ready func(), fn func(eventstore.Entry)) error
}

// Executor executes commands (an *engine.Engine).
type Executor interface {
	Execute(ctx context.Context, m domain.Meta, cmd domain.Command) (engine.Result, error)
}

var (
	_ Records  = (*eventstore.Records)(nil)
	_ Executor = (*engine.Engine)(nil)
)

// NodesConfig configures Nodes.
type NodesConfig struct {
	// Records is the bucket of media node records (NodesBucket). Required.
	Records Records
	// Engine records the streams of a dead node as stopped. Required.
	Engine Executor
	// Live finds a dead node's streams. Required.
	Live *projections.Live
	// Notify tells a dead node's publishers and players (nil: dropped).
	Notify func(StateEvent)
	// Lost, if set, is called with each node found dead, on every node
	// that watches (by its own timer, or when another deletes the node's
	// record): the media connections a node's gateway knows to be on it
	// end there, those no stream's stop tells of too (a player waiting
	// there for its stream).
	Lost func(node string)
	// Self is this node's media node name: it beats while Run runs. Empty
	// on a node without an SFU, which only watches.
	Self string
	// Beat is how often Self's record is written (default 2 s); a node
	// not heard from for Timeout (default 10 s) is dead.
	Beat, Timeout time.Duration
	Logger        *slog.Logger
}

// Nodes knows which media nodes are alive, the way presence knows sessions:
// each media node beats in a records bucket beside the log, every node
// watches it, and a node silent for the timeout is dead. Whichever node
// notices first stops the dead node's streams in the log (reason
// media_node_lost); the log's conditional appends make each stop happen
// once, however many nodes notice.
type Nodes struct {
	cfg NodesConfig

	mu     sync.Mutex
	alive  map[string]uint64 // node → revision of its last beat
	timers map[string]*time.Timer
	// told holds the nodes this node found dead itself (lost ran, Lost
	// called): the deletion of their record, whoever's, is no news.
	told map[string]bool
	ctx  context.Context
	wg   sync.WaitGroup
}

type nodeRecord struct {
	Node string    `json:"node"`
	At   time.Time `json:"at"`
}

// NewNodes returns a node watcher.
func NewNodes(cfg NodesConfig) (*Nodes, error) {
	if cfg.Records == nil || cfg.Engine == nil || cfg.Live == nil {
		return nil, errors.New("media: Nodes needs Records, Engine and Live")
	}
	if cfg.Beat <= 0 {
		cfg.Beat = 2 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Nodes{cfg: cfg, alive: map[string]uint64{}, timers: map[string]*time.Timer{}, told: map[string]bool{}}, nil
}

func nodeKey(node string) string { return eventstore.Token(node) }

// Run beats (for Self) and watches until ctx ends.
func (n *Nodes) Run(ctx context.Context) error {
	n.mu.Lock()
	n.ctx = ctx
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		for _, t := range n.timers {
			t.Stop()
		}
		n.mu.Unlock()
		n.wg.Wait()
	}()
	if n.cfg.Self != "" {
		// A beat that fails, the first included (a log silent right after
		// start), is tried again at the next: the node is not dead to the
		// others until Timeout has passed without one.
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			t := time.NewTicker(n.cfg.Beat)
			defer t.Stop()
			for {
				if err := n.beat(ctx); err != nil && ctx.Err() == nil {
					n.cfg.Logger.Warn("media: node beat failed; trying again", "err", err, "in", n.cfg.Beat)
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	return n.cfg.Records.Watch(ctx, nil, n.observe)
}

func (n *Nodes) beat(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Beat)
	defer cancel()
	b, _ := json.Marshal(nodeRecord{Node: n.cfg.Self, At: time.Now()})
	_, err := n.cfg.Records.Put(ctx, nodeKey(n.cfg.Self), b)
	return err
}

func (n *Nodes) observe(e eventstore.Entry) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if e.Deleted {
		// Only a node that found it dead deletes a node's record (lost):
		// this node's connections there end too, if its own timer has
		// not said so yet.
		gone := n.forgetLocked(e.Key)
		if n.told[gone] {
			delete(n.told, gone)
			return
		}
		if gone != "" && n.cfg.Lost != nil && gone != n.cfg.Self {
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				n.cfg.Lost(gone)
			}()
		}
		return
	}
	var r nodeRecord
	if json.Unmarshal(e.Value, &r) != nil || r.Node == "" {
		return
	}
	if n.alive[r.Node] == e.Revision && n.timers[r.Node] != nil {
		return // the same beat again (the watch was set up anew): its timer runs on
	}
	n.alive[r.Node] = e.Revision
	delete(n.told, r.Node) // alive again
	if t := n.timers[r.Node]; t != nil {
		t.Stop()
	}
	if r.Node == n.cfg.Self {
		return // a node never declares itself dead
	}
	rev := e.Revision
	n.timers[r.Node] = time.AfterFunc(n.cfg.Timeout, func() { n.lost(r.Node, rev) })
}

// forgetLocked forgets the node whose record key names, and returns it ("":
// none was alive here).
func (n *Nodes) forgetLocked(key string) (gone string) {
	for node := range n.alive {
		if nodeKey(node) == key {
			delete(n.alive, node)
			if t := n.timers[node]; t != nil {
				t.Stop()
				delete(n.timers, node)
			}
			gone = node
		}
	}
	return gone
}

// Alive lists the live media nodes, sorted.
func (n *Nodes) Alive() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.alive))
	for node := range n.alive {
		out = append(out, node)
	}
	slices.Sort(out)
	return out
}

// Pick chooses a live media node for key (a stream), spreading streams over
// the nodes; "" when none is alive.
func (n *Nodes) Pick(key string) string {
	alive := n.Alive()
	if len(alive) == 0 {
		return ""
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return alive[int(h.Sum32()%uint32(len(alive)))]
}

// lost stops a dead node's streams, tells their publishers and players,
// and removes the node's record.
func (n *Nodes) lost(node string, rev uint64) {
	n.mu.Lock()
	ctx := n.ctx
	if n.alive[node] != rev || ctx == nil || ctx.Err() != nil {
		n.mu.Unlock()
		return // it beat again meanwhile, or we are stopping
	}
	n.wg.Add(1)
	first := !n.told[node]
	n.told[node] = true
	n.mu.Unlock()
	defer n.wg.Done()
	type place struct {
		app  domain.AppID
		room domain.RoomID
	}
	var rooms []place
	n.cfg.Live.Read(func(m *projections.Model) {
		for app, a := range m.Apps {
			for id, r := range a.Rooms {
				for _, st := range r.Streams {
					if st.Node == node {
						rooms = append(rooms, place{app, id})
						break
					}
				}
			}
		}
	})
	n.cfg.Logger.Warn("media: a media node is lost; stopping its streams", "node", node, "rooms", len(rooms))
	if n.cfg.Lost != nil && first {
		n.cfg.Lost(node)
	}
	done := true
	for _, p := range rooms {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := n.cfg.Engine.Execute(cctx, domain.Meta{App: p.app}, domain.StopNodeStreams{Room: p.room, Node: node})
		cancel()
		if err != nil {
			done = false
			n.cfg.Logger.Error("media: cannot stop a lost node's streams", "node", node, "room", p.room, "err", err)
			continue
		}
		n.tell(p.app, node, res)
	}
	if done {
		_ = n.cfg.Records.Delete(ctx, nodeKey(node), rev)
	} else {
		n.mu.Lock()
		if n.alive[node] == rev {
			n.timers[node] = time.AfterFunc(time.Second, func() { n.lost(node, rev) })
		}
		n.mu.Unlock()
	}
}

// tell sends NO_PUBLISH / NO_PLAY (node_lost) for the streams this node's
// command stopped: only the command that stopped a stream tells of it.
func (n *Nodes) tell(app domain.AppID, node string, res engine.Result) {
	if n.cfg.Notify == nil {
		return
	}
	for _, a := range res.Appended {
		for _, e := range a.Events {
			d, ok := e.Data.(*domain.StreamStoppedData)
			if !ok {
				continue
			}
			n.cfg.Notify(StateEvent{App: app, Session: d.Session, Stream: d.Stream, Kind: Publish, State: NoPublish,
				Code: ErrPublishNodeLost.Code, Reason: "node_lost", Node: node})
			for _, sid := range players(n.cfg.Live, app, d.Stream) {
				n.cfg.Notify(StateEvent{App: app, Session: sid, Stream: d.Stream, Kind: Play, State: NoPlay,
					Code: ErrPlayNodeLost.Code, Reason: "node_lost", Node: node})
			}
		}
	}
}

// players lists the sessions that play stream in the fold.
func players(live *projections.Live, app domain.AppID, stream domain.StreamID) []domain.SessionID {
	var out []domain.SessionID
	live.Read(func(m *projections.Model) {
		a := m.App(app)
		if a == nil {
			return
		}
		for _, r := range a.Rooms {
			for _, mem := range r.Members {
				if mem.Playing[stream] {
					out = append(out, mem.Session)
				}
			}
		}
	})
	return out
}
