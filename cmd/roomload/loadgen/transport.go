package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/oklog/ulid/v2"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/transport/protocol"
)

// Latencies summarises a latency sample.
type Latencies struct {
	N             int
	P50, P99, Max time.Duration
}

func summarise(d []time.Duration) Latencies {
	if len(d) == 0 {
		return Latencies{}
	}
	slices.Sort(d)
	return Latencies{N: len(d), P50: d[len(d)/2], P99: d[len(d)*99/100], Max: d[len(d)-1]}
}

func (l Latencies) String() string {
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", l.N, l.P50.Round(time.Microsecond), l.P99.Round(time.Microsecond),
		l.Max.Round(time.Microsecond))
}

// client is a minimal protocol client: the load tool measures the server,
// not an SDK.
type client struct {
	ws      *websocket.Conn
	mu      sync.Mutex
	waiters map[string]chan protocol.Frame
	onEvent func(protocol.Frame, time.Time)
	nextID  atomic.Int64
}

func dial(ctx context.Context, addr string, onEvent func(protocol.Frame, time.Time)) (*client, error) {
	ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{Subprotocols: []string{protocol.Subprotocol}})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(4 << 20)
	c := &client{ws: ws, waiters: map[string]chan protocol.Frame{}, onEvent: onEvent}
	go c.read()
	return c, nil
}

func (c *client) read() {
	for {
		_, b, err := c.ws.Read(context.Background())
		now := time.Now()
		if err != nil {
			c.mu.Lock()
			for id, w := range c.waiters {
				close(w)
				delete(c.waiters, id)
			}
			c.mu.Unlock()
			return
		}
		var f protocol.Frame
		if json.Unmarshal(b, &f) != nil {
			continue
		}
		if f.Type == protocol.TypeReply {
			c.mu.Lock()
			w := c.waiters[f.ID]
			delete(c.waiters, f.ID)
			c.mu.Unlock()
			if w != nil {
				w <- f
			}
			continue
		}
		if c.onEvent != nil {
			c.onEvent(f, now)
		}
	}
}

// do sends a request and waits for its reply.
func (c *client) do(ctx context.Context, op protocol.Op, data any) (protocol.Frame, error) {
	id := strconv.FormatInt(c.nextID.Add(1), 10)
	raw, _ := json.Marshal(data)
	b, _ := json.Marshal(protocol.Request{ID: id, Op: op, Data: raw})
	w := make(chan protocol.Frame, 1)
	c.mu.Lock()
	c.waiters[id] = w
	c.mu.Unlock()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		return protocol.Frame{}, err
	}
	select {
	case f, ok := <-w:
		if !ok {
			return f, fmt.Errorf("connection closed")
		}
		if f.Code != 0 {
			return f, fmt.Errorf("%s: %d %s %s", op, f.Code, f.Error, f.Message)
		}
		return f, nil
	case <-ctx.Done():
		return protocol.Frame{}, ctx.Err()
	}
}

func (c *client) close() { c.ws.Close(websocket.StatusNormalClosure, "") }

// Logins is the result of a login measurement: all logins, and apart the
// first login of each session (on a new connection: the token checked, the
// session opened) and the later ones (the session back into its room).
type Logins struct {
	All, First, Later Latencies
}

// LoginLatency connects sessions clients to the gateway at addr, then has
// them log in and out for d at about rate logins per second in all (each
// session paced on its own, so the load does not depend on the latency), ten
// sessions to a room. It measures each login from the request to the
// Logined state change.
func LoginLatency(ctx context.Context, addr string, token func(user string) string, sessions int, rate float64,
	d time.Duration) (Logins, error) {
	type logined struct {
		mu sync.Mutex
		ch chan time.Time
	}
	clients := make([]*client, sessions)
	waits := make([]*logined, sessions)
	for i := range clients {
		w := &logined{ch: make(chan time.Time, 4)}
		waits[i] = w
		c, err := dial(ctx, addr, func(f protocol.Frame, at time.Time) {
			if f.Event == protocol.EvRoomStateChanged && strings.Contains(string(f.Data), `"Logined"`) {
				select {
				case w.ch <- at:
				default:
				}
			}
		})
		if err != nil {
			return Logins{}, err
		}
		defer c.close()
		clients[i] = c
	}
	// The tokens are the app's backend's work, not the login's: minted
	// before the clock starts, or minting 750 of them on the clients' one
	// core stalls the first logins by tens of milliseconds.
	toks := make([]string, sessions)
	for i := range toks {
		toks[i] = token(fmt.Sprint("user-", i))
	}
	period := time.Duration(float64(sessions) / rate * float64(time.Second))
	var mu sync.Mutex
	var all, firsts, later []time.Duration
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	// Every session's goroutine is started, and parked, before the first
	// login is due.
	t0 := time.Now().Add(100 * time.Millisecond)
	stop := t0.Add(d)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprint("user-", i)
			room := fmt.Sprint("room-", i/10)
			tok := toks[i]
			// Spread the sessions' first logins over one period.
			next := t0.Add(time.Duration(i) * period / time.Duration(sessions))
			for first := true; time.Now().Before(stop); first = false {
				time.Sleep(time.Until(next))
				next = next.Add(period)
				start := time.Now()
				req := protocol.LoginRequest{Room: room, User: protocol.User{ID: user, Name: user}}
				if first {
					req.Token = tok
				}
				if _, err := c.do(ctx, protocol.OpLogin, req); err != nil {
					errs <- err
					return
				}
				var at time.Time
				select {
				case at = <-waits[i].ch:
				case <-time.After(10 * time.Second):
					errs <- fmt.Errorf("no Logined for %s", user)
					return
				}
				mu.Lock()
				all = append(all, at.Sub(start))
				if first {
					firsts = append(firsts, at.Sub(start))
				} else {
					later = append(later, at.Sub(start))
				}
				mu.Unlock()
				if _, err := c.do(ctx, protocol.OpLogout, protocol.LogoutRequest{Room: room}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return Logins{}, err
	}
	return Logins{All: summarise(all), First: summarise(firsts), Later: summarise(later)}, nil
}

// PublishLatency publishes to JetStream for d at about rate appends per
// second, one at a time per subject across subjects subjects, with the
// expected sequence and a Msg-Id, and measures each append's latency: the
// floor under any command's latency.
func PublishLatency(ctx context.Context, log *eventstore.Log, subjects int, rate float64, d time.Duration) (Latencies, error) {
	body, _, err := domain.EncodeEvents("", []domain.Event{sampleBroadcast()})
	if err != nil {
		return Latencies{}, err
	}
	period := time.Duration(float64(subjects) / rate * float64(time.Second))
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	errs := make(chan error, subjects)
	stop := time.Now().Add(d)
	for i := range subjects {
		wg.Add(1)
		go func() {
			defer wg.Done()
			subject := log.Subject(string(App), "latency", fmt.Sprint("subject-", i))
			last, _, err := log.Last(ctx, subject)
			if err != nil {
				errs <- err
				return
			}
			expected := last.Seq
			next := time.Now().Add(time.Duration(i) * period / time.Duration(subjects))
			for time.Now().Before(stop) {
				time.Sleep(time.Until(next))
				next = next.Add(period)
				start := time.Now()
				ack, err := log.Append(ctx, eventstore.Message{Subject: subject, MsgID: ulid.Make().String(), Expected: expected, Data: body})
				if err != nil {
					errs <- err
					return
				}
				expected = ack.Seq
				mu.Lock()
				lat = append(lat, time.Since(start))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return Latencies{}, err
	}
	return summarise(lat), nil
}

// FanOut is the result of a fan-out measurement.
type FanOut struct {
	Latency    Latencies // from send to each delivery
	Deliveries int64
	Elapsed    time.Duration
}

// Rate returns deliveries per second.
func (f FanOut) Rate() float64 { return float64(f.Deliveries) / f.Elapsed.Seconds() }

// fanOutClients connects members clients and counts, for every message
// "<n>" they receive, the latency since sent[n].
type fanOutMeter struct {
	mu         sync.Mutex
	sent       map[int]time.Time
	lat        []time.Duration
	deliveries atomic.Int64
}

func (m *fanOutMeter) observe(body string, at time.Time) {
	n, err := strconv.Atoi(strings.TrimPrefix(body, "m"))
	if err != nil {
		return
	}
	m.mu.Lock()
	if s, ok := m.sent[n]; ok {
		m.lat = append(m.lat, at.Sub(s))
	}
	m.mu.Unlock()
	m.deliveries.Add(1)
}

func (m *fanOutMeter) send(n int) {
	m.mu.Lock()
	m.sent[n] = time.Now()
	m.mu.Unlock()
}

// RoomFanOut logs members sessions into one room of the gateway at addr and
// has one of them broadcast messages for d, keeping at most window in
// flight and, if rate is not 0, sending rate messages per second at most,
// measuring every delivery to the other members.
func RoomFanOut(ctx context.Context, addr string, token func(string) string, members, window int, rate float64,
	d time.Duration) (FanOut, error) {
	m := &fanOutMeter{sent: map[int]time.Time{}}
	onEvent := func(f protocol.Frame, at time.Time) {
		if f.Event != protocol.EvBroadcastMessage {
			return
		}
		var msg protocol.Message
		if json.Unmarshal(f.Data, &msg) == nil {
			m.observe(msg.Message, at)
		}
	}
	clients := make([]*client, members)
	for i := range clients {
		c, err := dial(ctx, addr, onEvent)
		if err != nil {
			return FanOut{}, err
		}
		defer c.close()
		clients[i] = c
		user := fmt.Sprint("member-", i)
		if _, err := c.do(ctx, protocol.OpLogin, protocol.LoginRequest{Room: "stage", User: protocol.User{ID: user},
			Token: token(user)}); err != nil {
			return FanOut{}, err
		}
	}
	sender := clients[0]
	start := time.Now()
	stop := start.Add(d)
	sem := make(chan struct{}, window)
	var wg sync.WaitGroup
	var sendErr atomic.Value
	sentN := 0
	next := time.Now()
	for n := 0; time.Now().Before(stop); n++ {
		if rate > 0 {
			time.Sleep(time.Until(next))
			next = next.Add(time.Duration(float64(time.Second) / rate))
		}
		sem <- struct{}{}
		m.send(n)
		sentN++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := sender.do(ctx, protocol.OpBroadcast, protocol.MessageRequest{Room: "stage", Message: fmt.Sprint("m", n)}); err != nil {
				sendErr.Store(err)
			}
		}()
	}
	wg.Wait()
	if err, _ := sendErr.Load().(error); err != nil {
		return FanOut{}, err
	}
	want := int64(sentN) * int64(members-1)
	for deadline := time.Now().Add(30 * time.Second); m.deliveries.Load() < want && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	el := time.Since(start)
	m.mu.Lock()
	defer m.mu.Unlock()
	return FanOut{Latency: summarise(m.lat), Deliveries: m.deliveries.Load(), Elapsed: el}, nil
}

// RawBroadcastServer is the baseline: a WebSocket server that sends every
// message it receives to every other connection, through the same shape of
// per-connection bounded queue and writer as the gateway, and nothing else.
type RawBroadcastServer struct {
	mu    sync.Mutex
	conns map[*rawConn]struct{}
}

type rawConn struct {
	ws  *websocket.Conn
	out chan []byte
}

// NewRawBroadcastServer returns the baseline server.
func NewRawBroadcastServer() *RawBroadcastServer {
	return &RawBroadcastServer{conns: map[*rawConn]struct{}{}}
}

// ServeHTTP accepts a connection.
func (s *RawBroadcastServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{protocol.Subprotocol}})
	if err != nil {
		return
	}
	c := &rawConn{ws: ws, out: make(chan []byte, 1024)}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			select {
			case b := <-c.out:
				if ws.Write(ctx, websocket.MessageText, b) != nil {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			break
		}
		var req protocol.Request
		if json.Unmarshal(b, &req) != nil {
			continue
		}
		reply, _ := json.Marshal(protocol.Reply{Type: protocol.TypeReply, ID: req.ID})
		if req.Op == protocol.OpBroadcast {
			var m protocol.MessageRequest
			json.Unmarshal(req.Data, &m)
			frame, _ := json.Marshal(protocol.Event{Type: protocol.TypeEvent, Event: protocol.EvBroadcastMessage,
				Room: m.Room, Data: protocol.Message{MessageID: ulid.Make().String(), Message: m.Message,
					SendTime: time.Now().UnixMilli()}})
			s.mu.Lock()
			for o := range s.conns {
				if o != c {
					select {
					case o.out <- frame:
					default:
					}
				}
			}
			s.mu.Unlock()
		}
		c.out <- reply
	}
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}
