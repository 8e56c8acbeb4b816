package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
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

var secret = []byte("0123456789abcdef0123456789abcdef")

// testHeartbeat is the heartbeat interval of the test nodes: short, so that
// every test also checks that heartbeats keep an idle connection alive (the
// recorder fails a test that sees an unexpected Reconnecting).
const testHeartbeat = 250 * time.Millisecond

// wait bounds every wait for a callback.
const wait = 10 * time.Second

// startNode starts a real node (embedded JetStream, gateway, admin API) on a
// free port, with multi-room mode allowed.
func startNode(t *testing.T, gc gateway.Config) *node.Node {
	t.Helper()
	return startNodeClocked(t, gc, nil)
}

// startNodeClocked starts a node whose time is clock (nil: the system's).
func startNodeClocked(t *testing.T, gc gateway.Config, clock *estest.Clock) *node.Node {
	t.Helper()
	var c engine.Clock
	if clock != nil {
		c = clock
	}
	p := domain.DefaultPolicy()
	p.MultiRoom = true
	if gc.HeartbeatInterval == 0 {
		gc.HeartbeatInterval = testHeartbeat
	}
	if gc.OnlineCountEvery == 0 {
		gc.OnlineCountEvery = 50 * time.Millisecond
	}
	n, err := node.Start(estest.Ctx(t), node.Config{Log: eventstore.Config{DataDir: t.TempDir()},
		Policy: domain.Config{Default: p}, Secret: secret, HTTPListen: "127.0.0.1:0", Gateway: gc, Clock: c,
		Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func wsURL(n *node.Node) string { return "ws://" + n.HTTPAddr() + "/ws" }

// token mints a client token for user, valid for every room of app "dev".
func token(t *testing.T, n *node.Node, user string) string {
	t.Helper()
	return tokenFor(t, n, user, time.Hour)
}

func tokenFor(t *testing.T, n *node.Node, user string, ttl time.Duration) string {
	t.Helper()
	tok, err := n.Signer.Mint(auth.Claims{App: "dev", User: user, AllRooms: true, Publish: true,
		ExpiresAt: time.Now().Add(ttl)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func ctx(t *testing.T) context.Context { return estest.Ctx(t) }

// ---- callbacks ----

// ev is one callback as the recorder saw it.
type ev struct {
	kind     string // state, user, joined, left, stream, stream_extra, broadcast, barrage, command, extra_info, attrs, online, token, closing
	room     string
	state    client.RoomState
	code     domain.Code
	info     client.StateInfo
	typ      client.UpdateType
	users    []client.User
	streams  []client.Stream
	msgs     []client.Message
	cmd      client.CustomCommand
	items    []client.ExtraInfo
	set      map[string]string
	deleted  []string
	count    int
	name     string
	message  string
	sequence int // position among the client's callbacks
}

func (e ev) String() string {
	switch e.kind {
	case "state":
		return fmt.Sprintf("state %s %s %d %+v", e.room, e.state, e.code, e.info)
	case "user", "joined", "left":
		return fmt.Sprintf("%s %s %s %v", e.kind, e.room, e.typ, e.users)
	}
	return fmt.Sprintf("%s %s", e.kind, e.room)
}

// rec records a client's callbacks. It never calls t from a callback (a
// callback may run after the test ended); problems are collected and
// reported when the test ends.
type rec struct {
	t    *testing.T
	name string
	ch   chan ev
	seq  atomic.Int64
	// reconnects allows Reconnecting callbacks (a test that cuts the
	// connection sets it).
	reconnects atomic.Bool

	mu       sync.Mutex
	problems []string
}

func newRec(t *testing.T, name string) *rec {
	r := &rec{t: t, name: name, ch: make(chan ev, 4096)}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, p := range r.problems {
			t.Errorf("%s: %s", name, p)
		}
	})
	return r
}

func (r *rec) problem(format string, args ...any) {
	r.mu.Lock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *rec) put(e ev) {
	e.sequence = int(r.seq.Add(1))
	select {
	case r.ch <- e:
	default:
		r.problem("callback buffer full; dropped %v", e)
	}
}

func (r *rec) handlers() client.Handlers {
	return client.Handlers{
		OnRoomStateChanged: func(room string, st client.RoomState, code domain.Code, info client.StateInfo) {
			if st == client.StateReconnecting && !r.reconnects.Load() {
				r.problem("unexpected Reconnecting in %s", room)
			}
			r.put(ev{kind: "state", room: room, state: st, code: code, info: info})
		},
		OnRoomUserUpdate: func(room string, typ client.UpdateType, users []client.User) {
			r.put(ev{kind: "user", room: room, typ: typ, users: users})
		},
		OnRoomMemberJoined: func(room string, users []client.User) {
			r.put(ev{kind: "joined", room: room, users: users})
		},
		OnRoomMemberLeft: func(room string, users []client.User) { r.put(ev{kind: "left", room: room, users: users}) },
		OnRoomStreamUpdate: func(room string, typ client.UpdateType, streams []client.Stream) {
			r.put(ev{kind: "stream", room: room, typ: typ, streams: streams})
		},
		OnRoomStreamExtraInfoUpdate: func(room string, streams []client.Stream) {
			r.put(ev{kind: "stream_extra", room: room, streams: streams})
		},
		OnIMRecvBroadcastMessage: func(room string, msgs []client.Message) {
			r.put(ev{kind: "broadcast", room: room, msgs: msgs})
		},
		OnIMRecvBarrageMessage: func(room string, msgs []client.Message) {
			r.put(ev{kind: "barrage", room: room, msgs: msgs})
		},
		OnIMRecvCustomCommand: func(room string, cmd client.CustomCommand) {
			r.put(ev{kind: "command", room: room, cmd: cmd})
		},
		OnRoomExtraInfoUpdate: func(room string, items []client.ExtraInfo) {
			r.put(ev{kind: "extra_info", room: room, items: items})
		},
		OnRoomAttributesUpdated: func(room string, set map[string]string, deleted []string) {
			r.put(ev{kind: "attrs", room: room, set: set, deleted: deleted})
		},
		OnRoomOnlineUserCountUpdate: func(room string, count int) { r.put(ev{kind: "online", room: room, count: count}) },
		OnRoomTokenWillExpire:       func(remain int) { r.put(ev{kind: "token", count: remain}) },
		OnSessionClosing: func(code domain.Code, name, message string) {
			r.put(ev{kind: "closing", code: code, name: name, message: message})
		},
		OnGap: func(room string, expected, got uint64) {
			r.problem("gap in %s: expected prev %d, got %d", room, expected, got)
		},
	}
}

// next returns the next callback, failing the test if none comes in time.
func (r *rec) next() ev {
	r.t.Helper()
	select {
	case e := <-r.ch:
		return e
	case <-time.After(wait):
		r.t.Fatalf("%s: no callback within %v", r.name, wait)
		return ev{}
	}
}

// waitFor skips callbacks until one matches.
func (r *rec) waitFor(what string, match func(ev) bool) ev {
	r.t.Helper()
	deadline := time.After(wait)
	var seen []string
	for {
		select {
		case e := <-r.ch:
			if match(e) {
				return e
			}
			seen = append(seen, e.String())
		case <-deadline:
			r.t.Fatalf("%s: no %s within %v; saw %s", r.name, what, wait, strings.Join(seen, "; "))
			return ev{}
		}
	}
}

func (r *rec) waitState(room string, st client.RoomState) ev {
	r.t.Helper()
	return r.waitFor(fmt.Sprintf("%s in %s", st, room), func(e ev) bool {
		return e.kind == "state" && e.room == room && e.state == st
	})
}

func (r *rec) waitKind(kind, room string) ev {
	r.t.Helper()
	return r.waitFor(kind+" in "+room, func(e ev) bool { return e.kind == kind && e.room == room })
}

// waitUsers waits for a user update of typ naming user.
func (r *rec) waitUsers(room string, typ client.UpdateType, user string) ev {
	r.t.Helper()
	return r.waitFor(fmt.Sprintf("user %s %s in %s", typ, user, room), func(e ev) bool {
		return e.kind == "user" && e.room == room && e.typ == typ && hasUser(e.users, user)
	})
}

func hasUser(us []client.User, id string) bool {
	return slices.ContainsFunc(us, func(u client.User) bool { return u.ID == id })
}

// ---- clients ----

// dial connects a client whose callbacks go to r.
func dial(t *testing.T, url string, r *rec, edit func(*client.Options)) *client.Client {
	t.Helper()
	opts := client.Options{Logger: testLogger(t), Handlers: r.handlers()}
	if edit != nil {
		edit(&opts)
	}
	c, err := client.Dial(ctx(t), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// login logs c into room as user and waits for Logined.
func login(t *testing.T, n *node.Node, c *client.Client, r *rec, room, user string) *client.RoomSnapshot {
	t.Helper()
	snap, err := c.LoginRoom(ctx(t), room, client.User{ID: user, Name: strings.ToUpper(user[:1]) + user[1:]},
		client.LoginOptions{Token: token(t, n, user)})
	if err != nil {
		t.Fatalf("%s logs into %s: %v", user, room, err)
	}
	r.waitState(room, client.StateLogined)
	return snap
}

// testLogger writes to the test's output until the test ends (a client's
// goroutines may log a moment after Close).
func testLogger(t *testing.T) *slog.Logger {
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

// ---- network faults ----

// proxy is a TCP proxy in front of a node, to break connections the way a
// network does: cut them, freeze them (bytes vanish, nothing is closed), or
// refuse new ones.
type proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	pipes  map[*pipe]bool
	refuse bool
	// refused signals each refused connection.
	refused chan struct{}
}

type pipe struct {
	a, b   net.Conn // a: the client's end, b: the server's
	frozen atomic.Bool
	// mute drops what the server sends, not what the client sends.
	mute atomic.Bool
	once sync.Once
}

func (p *pipe) close() { p.once.Do(func() { p.a.Close(); p.b.Close() }) }

func newProxy(t *testing.T, n *node.Node) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: n.HTTPAddr(), pipes: map[*pipe]bool{}, refused: make(chan struct{}, 1024)}
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	return p
}

func (p *proxy) url() string { return "ws://" + p.ln.Addr().String() + "/ws" }

func (p *proxy) accept() {
	for {
		a, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.refuse {
			p.mu.Unlock()
			a.Close()
			select {
			case p.refused <- struct{}{}:
			default:
			}
			continue
		}
		b, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			a.Close()
			continue
		}
		pp := &pipe{a: a, b: b}
		p.pipes[pp] = true
		p.mu.Unlock()
		go pp.copy(a, b)
		go pp.copy(b, a)
	}
}

func (pp *pipe) copy(dst, src net.Conn) {
	defer pp.close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if pp.frozen.Load() || (dst == pp.a && pp.mute.Load()) {
			continue // the network ate it
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// cut closes every current connection (both ends see it).
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pp := range p.pipes {
		pp.close()
	}
	clear(p.pipes)
}

// freeze makes every current connection silent in both directions without
// closing it; new connections work.
func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pp := range p.pipes {
		pp.frozen.Store(true)
	}
}

// muteDown makes every current connection drop what the server sends: the
// server hears the client, the client hears nothing.
func (p *proxy) muteDown() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pp := range p.pipes {
		pp.mute.Store(true)
	}
}

// setRefuse makes the proxy close new connections at once (or stop doing so).
func (p *proxy) setRefuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

// waitRefused waits until the proxy refused a connection.
func (p *proxy) waitRefused(t *testing.T) {
	t.Helper()
	select {
	case <-p.refused:
	case <-time.After(wait):
		t.Fatal("no connection attempt reached the proxy")
	}
}
