// Package clienttest is the harness of tests that drive the Go SDK against a
// real node: it starts nodes (embedded JetStream, gateway, admin API on
// loopback), mints tokens, dials clients and records their callbacks so a
// test can wait for what a user of the SDK would see.
//
// A Recorder never calls testing.T from a callback (a callback may run after
// the test ended): problems (a gap, an unexpected Reconnecting, a full
// buffer) are collected and reported when the test ends.
package clienttest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/gateway"
)

// Secret is the signing secret of the nodes started here.
var Secret = []byte("0123456789abcdef0123456789abcdef")

// App is the app the tokens minted here are for.
const App = "dev"

// Heartbeat is the heartbeat interval of the nodes started here: long
// enough never to matter on a loaded machine (a client gives a connection up
// after two intervals without a frame). Tests of heartbeats and silence run
// the client on a clock they move by hand (ClientClock).
const Heartbeat = 30 * time.Second

// Wait bounds every wait for a callback: generous, for a loaded machine
// (it costs nothing when the callback comes).
const Wait = 30 * time.Second

// NodeOptions tunes StartNode.
type NodeOptions struct {
	Gateway gateway.Config
	// Clock is the node's time (nil: the system's).
	Clock *estest.Clock
	// Policy is the apps' policy (nil: the default with multi-room allowed).
	Policy *domain.Policy
	// Apps are per-app policies.
	Apps map[domain.AppID]domain.Policy
	// NATSListen makes the embedded NATS server listen on this loopback
	// address ("127.0.0.1:0": a free port), so that other nodes can join it.
	NATSListen string
	// Join is a node (started with NATSListen) whose NATS server this node
	// uses instead of embedding its own: two nodes, one log.
	Join *node.Node
	// Logger receives the node's log (nil: warnings and errors into the
	// test's output).
	Logger *slog.Logger
	// Edit, if set, changes the node's configuration before it starts
	// (roles, media settings).
	Edit func(*node.Config)
}

// StartNode starts a real node on a free loopback port and stops it when the
// test ends.
func StartNode(t testing.TB, o NodeOptions) *node.Node {
	t.Helper()
	p := domain.DefaultPolicy()
	p.MultiRoom = true
	if o.Policy != nil {
		p = *o.Policy
	}
	gc := o.Gateway
	if gc.HeartbeatInterval == 0 {
		gc.HeartbeatInterval = Heartbeat
	}
	if gc.OnlineCountEvery == 0 {
		gc.OnlineCountEvery = 50 * time.Millisecond
	}
	var clock engine.Clock
	if o.Clock != nil {
		clock = o.Clock
	}
	logger := o.Logger
	if logger == nil {
		logger = estest.Logger(t)
	}
	lc := eventstore.Config{DataDir: t.TempDir(), Listen: o.NATSListen}
	if o.NATSListen != "" {
		lc.Password = estest.Password
	}
	if o.Join != nil {
		lc = o.Join.Log.ClientConfig()
		lc.Logger = nil
	}
	cfg := node.Config{Log: lc,
		Policy: domain.Config{Default: p, Apps: o.Apps}, Secret: Secret, HTTPListen: "127.0.0.1:0", Gateway: gc,
		Clock: clock, Logger: logger}
	if o.Edit != nil {
		o.Edit(&cfg)
	}
	n, err := node.Start(estest.Ctx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// URL is the WebSocket URL of a node or proxy listening on addr.
func URL(addr string) string { return "ws://" + addr + "/ws" }

// Metrics returns node n's /metrics as text.
func Metrics(t testing.TB, n *node.Node) string {
	t.Helper()
	res, err := http.Get("http://" + n.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Token mints a client token for user, valid for an hour in every room of
// App, with the right to publish.
func Token(t testing.TB, n *node.Node, user string) string {
	t.Helper()
	return Mint(t, n, auth.Claims{App: App, User: user, AllRooms: true, Publish: true,
		ExpiresAt: time.Now().Add(time.Hour)})
}

// Mint mints a client token with the given claims.
func Mint(t testing.TB, n *node.Node, c auth.Claims) string {
	t.Helper()
	tok, err := n.Signer.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Ctx is a context that ends with the test.
func Ctx(t testing.TB) context.Context { return estest.Ctx(t) }

// Dial connects a client whose callbacks go to r; edit may change the
// options. The client is closed when the test ends.
func Dial(t testing.TB, url string, r *Recorder, edit func(*client.Options)) *client.Client {
	t.Helper()
	opts := client.Options{Logger: Logger(t), Handlers: r.Handlers()}
	if edit != nil {
		edit(&opts)
	}
	c, err := client.Dial(Ctx(t), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Login logs c into room as user (named after the ID, capitalised) and waits
// for Logined.
func Login(t testing.TB, n *node.Node, c *client.Client, r *Recorder, room, user string) *client.RoomSnapshot {
	t.Helper()
	snap, err := c.LoginRoom(Ctx(t), room, User(user), client.LoginOptions{Token: Token(t, n, user)})
	if err != nil {
		t.Fatalf("%s logs into %s: %v", user, room, err)
	}
	r.WaitState(room, client.StateLogined)
	return snap
}

// User is the user Login logs in as: id, named after it.
func User(id string) client.User { return client.User{ID: id, Name: strings.ToUpper(id[:1]) + id[1:]} }

// Logger writes to the test's output until the test ends (a client's
// goroutines may log a moment after Close).
func Logger(t testing.TB) *slog.Logger {
	w := &guarded{w: t.Output()}
	t.Cleanup(func() { w.mu.Lock(); w.w = io.Discard; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type guarded struct {
	mu sync.Mutex
	w  io.Writer
}

func (g *guarded) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.w.Write(p)
}

// Event is one callback as a Recorder saw it.
type Event struct {
	// Kind is state, user, joined, left, stream, stream_extra, broadcast,
	// barrage, command, extra_info, attrs, attrs_batch, member_attrs,
	// online, token or closing.
	Kind    string
	Room    string
	State   client.RoomState
	Code    domain.Code
	Info    client.StateInfo
	Type    client.UpdateType
	Users   []client.User
	Streams []client.Stream
	Msgs    []client.Message
	Cmd     client.CustomCommand
	Items   []client.ExtraInfo
	Set     map[string]string
	Deleted []string
	// Members are the changes of a member_attrs callback.
	Members []client.MemberAttributesChange
	Count   int
	Name    string
	Message string
	// Sequence is the callback's position among the client's callbacks.
	Sequence int
}

func (e Event) String() string {
	switch e.Kind {
	case "state":
		return fmt.Sprintf("state %s %s %d %+v", e.Room, e.State, e.Code, e.Info)
	case "user", "joined", "left":
		return fmt.Sprintf("%s %s %s %v", e.Kind, e.Room, e.Type, e.Users)
	case "stream":
		return fmt.Sprintf("stream %s %s %v", e.Room, e.Type, e.Streams)
	}
	return fmt.Sprintf("%s %s", e.Kind, e.Room)
}

// Recorder records a client's callbacks, in order.
type Recorder struct {
	t          testing.TB
	name       string
	ch         chan Event
	seq        atomic.Int64
	reconnects atomic.Bool

	mu       sync.Mutex
	problems []string
}

// NewRecorder returns a recorder for the client called name (in messages).
func NewRecorder(t testing.TB, name string) *Recorder {
	r := &Recorder{t: t, name: name, ch: make(chan Event, 1<<14)}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, p := range r.problems {
			t.Errorf("%s: %s", name, p)
		}
	})
	return r
}

// Name is the name the recorder was given.
func (r *Recorder) Name() string { return r.name }

// AllowReconnects lets Reconnecting happen (a test that breaks the
// connection calls it); otherwise a Reconnecting fails the test.
func (r *Recorder) AllowReconnects() { r.reconnects.Store(true) }

func (r *Recorder) problem(format string, args ...any) {
	r.mu.Lock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *Recorder) put(e Event) {
	e.Sequence = int(r.seq.Add(1))
	select {
	case r.ch <- e:
	default:
		r.problem("callback buffer full; dropped %v", e)
	}
}

// Handlers returns handlers that record every callback. A gap (OnGap) is a
// problem reported when the test ends.
func (r *Recorder) Handlers() client.Handlers {
	return client.Handlers{
		OnRoomStateChanged: func(room string, st client.RoomState, code domain.Code, info client.StateInfo) {
			if st == client.StateReconnecting && !r.reconnects.Load() {
				r.problem("unexpected Reconnecting in %s", room)
			}
			r.put(Event{Kind: "state", Room: room, State: st, Code: code, Info: info})
		},
		OnRoomUserUpdate: func(room string, typ client.UpdateType, users []client.User) {
			r.put(Event{Kind: "user", Room: room, Type: typ, Users: users})
		},
		OnRoomMemberJoined: func(room string, users []client.User) {
			r.put(Event{Kind: "joined", Room: room, Users: users})
		},
		OnRoomMemberLeft: func(room string, users []client.User) {
			r.put(Event{Kind: "left", Room: room, Users: users})
		},
		OnRoomStreamUpdate: func(room string, typ client.UpdateType, streams []client.Stream) {
			r.put(Event{Kind: "stream", Room: room, Type: typ, Streams: streams})
		},
		OnRoomStreamExtraInfoUpdate: func(room string, streams []client.Stream) {
			r.put(Event{Kind: "stream_extra", Room: room, Streams: streams})
		},
		OnIMRecvBroadcastMessage: func(room string, msgs []client.Message) {
			r.put(Event{Kind: "broadcast", Room: room, Msgs: msgs})
		},
		OnIMRecvBarrageMessage: func(room string, msgs []client.Message) {
			r.put(Event{Kind: "barrage", Room: room, Msgs: msgs})
		},
		OnIMRecvCustomCommand: func(room string, cmd client.CustomCommand) {
			r.put(Event{Kind: "command", Room: room, Cmd: cmd})
		},
		OnRoomExtraInfoUpdate: func(room string, items []client.ExtraInfo) {
			r.put(Event{Kind: "extra_info", Room: room, Items: items})
		},
		OnRoomAttributesUpdated: func(room string, set map[string]string, deleted []string) {
			r.put(Event{Kind: "attrs", Room: room, Set: set, Deleted: deleted})
		},
		OnRoomAttributesBatchUpdated: func(room string, set map[string]string, deleted []string) {
			r.put(Event{Kind: "attrs_batch", Room: room, Set: set, Deleted: deleted})
		},
		OnRoomMemberAttributesUpdated: func(room string, changes []client.MemberAttributesChange, by client.User) {
			r.put(Event{Kind: "member_attrs", Room: room, Members: changes, Users: []client.User{by}})
		},
		OnRoomOnlineUserCountUpdate: func(room string, count int) {
			r.put(Event{Kind: "online", Room: room, Count: count})
		},
		OnRoomTokenWillExpire: func(remain int) { r.put(Event{Kind: "token", Count: remain}) },
		OnSessionClosing: func(code domain.Code, name, message string) {
			r.put(Event{Kind: "closing", Code: code, Name: name, Message: message})
		},
		OnGap: func(room string, expected, got uint64) {
			r.problem("gap in %s: expected prev %d, got %d", room, expected, got)
		},
	}
}

// Next returns the next callback, failing the test if none comes in time.
func (r *Recorder) Next() Event {
	r.t.Helper()
	select {
	case e := <-r.ch:
		return e
	case <-time.After(Wait):
		r.t.Fatalf("%s: no callback within %v", r.name, Wait)
		return Event{}
	}
}

// TryNext returns the next callback if one comes within d.
func (r *Recorder) TryNext(d time.Duration) (Event, bool) {
	select {
	case e := <-r.ch:
		return e, true
	case <-time.After(d):
		return Event{}, false
	}
}

// PumpUntil moves a client's clock on in small steps (the backoff between
// reconnection attempts runs on it) until a callback matches, skipping
// others, and returns it.
func (r *Recorder) PumpUntil(clock *estest.Clock, what string, match func(Event) bool) Event {
	r.t.Helper()
	for deadline := time.Now().Add(Wait); time.Now().Before(deadline); {
		clock.Advance(50 * time.Millisecond)
		if e, ok := r.TryNext(20 * time.Millisecond); ok && match(e) {
			return e
		}
	}
	r.t.Fatalf("%s: no %s within %v", r.name, what, Wait)
	return Event{}
}

// WaitFor skips callbacks until one matches, failing the test (and listing
// what it skipped) if none comes in time.
func (r *Recorder) WaitFor(what string, match func(Event) bool) Event {
	r.t.Helper()
	deadline := time.After(Wait)
	var seen []string
	for {
		select {
		case e := <-r.ch:
			if match(e) {
				return e
			}
			seen = append(seen, e.String())
		case <-deadline:
			r.t.Fatalf("%s: no %s within %v; saw %s", r.name, what, Wait, strings.Join(seen, "; "))
			return Event{}
		}
	}
}

// WaitState waits for the state st in room.
func (r *Recorder) WaitState(room string, st client.RoomState) Event {
	r.t.Helper()
	return r.WaitFor(fmt.Sprintf("%s in %s", st, room), func(e Event) bool {
		return e.Kind == "state" && e.Room == room && e.State == st
	})
}

// WaitKind waits for a callback of kind in room.
func (r *Recorder) WaitKind(kind, room string) Event {
	r.t.Helper()
	return r.WaitFor(kind+" in "+room, func(e Event) bool { return e.Kind == kind && e.Room == room })
}

// WaitUsers waits for a user update of typ naming user.
func (r *Recorder) WaitUsers(room string, typ client.UpdateType, user string) Event {
	r.t.Helper()
	return r.WaitFor(fmt.Sprintf("user %s %s in %s", typ, user, room), func(e Event) bool {
		return e.Kind == "user" && e.Room == room && e.Type == typ && HasUser(e.Users, user)
	})
}

// WaitStreams waits for a stream update of typ naming stream.
func (r *Recorder) WaitStreams(room string, typ client.UpdateType, stream string) Event {
	r.t.Helper()
	return r.WaitFor(fmt.Sprintf("stream %s %s in %s", typ, stream, room), func(e Event) bool {
		return e.Kind == "stream" && e.Room == room && e.Type == typ &&
			slices.ContainsFunc(e.Streams, func(s client.Stream) bool { return s.Stream == stream })
	})
}

// HasUser reports whether us names the user id.
func HasUser(us []client.User, id string) bool {
	return slices.ContainsFunc(us, func(u client.User) bool { return u.ID == id })
}

// ClientClock lets a client run on a fake clock: its heartbeats, watchdog,
// request timeouts, backoff and reconnect window move only with Advance.
func ClientClock(c *estest.Clock) client.Clock { return clientClock{c} }

type clientClock struct{ c *estest.Clock }

func (k clientClock) Now() time.Time { return k.c.Now() }

func (k clientClock) AfterFunc(d time.Duration, f func()) client.Timer { return k.c.AfterFunc(d, f) }
