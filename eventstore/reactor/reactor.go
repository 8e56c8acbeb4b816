// Package reactor runs the follow-ups that room events call for
// (domain.FollowUps): freeing the claims of members and streams a room
// removed, and taking a session kicked by a duplicate login out of its other
// rooms. It reads the room events through a durable JetStream consumer
// (watermill-nats) shared by every node, so each event is handled by one
// node, and a follow-up that a crashed node did not finish is redelivered to
// another.
package reactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmjs "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
)

// Executor executes commands (an *engine.Engine).
type Executor interface {
	Execute(ctx context.Context, m domain.Meta, cmd domain.Command) (engine.Result, error)
}

var _ Executor = (*engine.Engine)(nil)

// Config configures a Reactor.
type Config struct {
	// Engine runs the follow-up commands. Required.
	Engine Executor
	// Log is where the room events are read from. Required.
	Log *eventstore.Log
	// Consumer is the durable consumer's name, versioned: a reactor whose
	// behaviour changes gets a new name (and starts from the beginning of
	// the log, which is harmless: follow-ups are idempotent). Every roomd
	// node uses the same name, so each event is handled by one of them.
	// Default "reactor-followups-v1".
	Consumer string
	// Timeout bounds one follow-up command. Default 10 s.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Reactor runs follow-ups from a durable consumer of the room events.
type Reactor struct {
	cfg    Config
	router *message.Router
	sub    *wmjs.Subscriber
	nc     *nats.Conn // the subscriber's own connection
	gate   *deliveryGate
	// retries counts deliveries whose follow-ups failed (redelivered later).
	retries atomic.Uint64
	// malformed counts the messages passed over because they could not be
	// decoded.
	malformed atomic.Uint64
}

// Malformed returns how many log messages the reactor passed over because
// they could not be decoded.
func (r *Reactor) Malformed() uint64 { return r.malformed.Load() }

// New validates cfg and prepares the reactor.
func New(cfg Config) (*Reactor, error) {
	var errs []error
	if cfg.Engine == nil {
		errs = append(errs, errors.New("reactor: Engine is required"))
	}
	if cfg.Log == nil {
		errs = append(errs, errors.New("reactor: Log is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Consumer == "" {
		cfg.Consumer = "reactor-followups-v1"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// Watermill logs every message at info: keep that at debug.
	wlog := watermill.NewSlogLoggerWithLevelMapping(cfg.Logger, map[slog.Level]slog.Level{
		slog.LevelInfo: slog.LevelDebug,
	})
	// The subscriber drains the connection it is given when it closes, so
	// it gets its own.
	nc, err := cfg.Log.NewConn("roomlog-reactor")
	if err != nil {
		return nil, fmt.Errorf("reactor: %w", err)
	}
	gate := newDeliveryGate()
	stream := cfg.Log.StreamName()
	filter := cfg.Log.KindFilter(string(domain.KindRoom))
	sub, err := wmjs.NewSubscriber(wmjs.SubscriberConfig{
		Conn:           nc,
		Logger:         wlog,
		AckWaitTimeout: cfg.Timeout + 5*time.Second,
		NakDelay:       wmjs.NewStaticDelay(time.Second),
		Unmarshaler:    recordUnmarshaler{gate: gate},
		ResourceInitializer: func(ctx context.Context, js jetstream.JetStream, _ string) (jetstream.Consumer,
			func(context.Context, watermill.LoggerAdapter), error) {
			// A durable consumer: it survives restarts and is shared by
			// every node (watermill's own grouped consumer is not durable).
			c, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
				Durable:        cfg.Consumer,
				FilterSubjects: []string{filter},
				AckPolicy:      jetstream.AckExplicitPolicy,
				AckWait:        cfg.Timeout + 5*time.Second,
				DeliverPolicy:  jetstream.DeliverAllPolicy,
				MaxAckPending:  256,
			})
			return c, nil, err
		},
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("reactor: %w", err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: cfg.Timeout}, wlog)
	if err != nil {
		sub.Close()
		return nil, fmt.Errorf("reactor: %w", err)
	}
	r := &Reactor{cfg: cfg, router: router, sub: sub, nc: nc, gate: gate}
	router.AddConsumerHandler("followups", cfg.Consumer, sub, r.handle)
	return r, nil
}

// Run handles events until ctx is done, then stops and returns nil.
//
// The stop is ordered, to work around watermill-nats (v2.1.3): it closes
// its output channel when the subscriber closes, while a delivery may be
// about to send on it, and the send panics ("send on closed channel") and
// takes the node down; nats.go even runs deliveries already buffered after
// the connection closed. So: the connection is drained (no new message
// comes), the gate stops new deliveries at their first step (unmarshaling)
// and the ones past it finish with the router still running, then the
// subscriber is closed, and only then are the held deliveries let go: they
// find the subscriber closed and discard their message, which stays
// unacknowledged for the next reactor.
func (r *Reactor) Run(ctx context.Context) error {
	routerCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.router.Run(routerCtx) }()
	select {
	case err := <-done: // the router failed on its own
		r.sub.Close()
		return err
	case <-ctx.Done():
	}
	if err := r.drain(); err != nil {
		r.cfg.Logger.Warn("reactor: draining its connection", "err", err)
	}
	if !r.gate.stop(r.cfg.Timeout + 5*time.Second) {
		r.cfg.Logger.Warn("reactor: deliveries still under way at shutdown")
	}
	r.sub.Close() // its connection is closed already: nothing left to drain
	r.gate.release()
	cancel()
	<-done
	return nil
}

// drain drains the subscriber's connection and waits until it is closed.
func (r *Reactor) drain() error {
	closed := make(chan struct{})
	r.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := r.nc.Drain(); err != nil {
		if r.nc.IsClosed() {
			return nil
		}
		return err
	}
	select {
	case <-closed:
		return nil
	case <-time.After(r.cfg.Timeout + 5*time.Second):
		r.nc.Close()
		return errors.New("drain did not finish in time")
	}
}

// Running is closed once the reactor is consuming.
func (r *Reactor) Running() chan struct{} { return r.router.Running() }

// handle runs the follow-ups of one log message. A follow-up that the domain
// refuses is done (it found nothing to do or a newer state); a log that cannot
// be reached makes the message come back later.
func (r *Reactor) handle(msg *message.Message) error {
	err := r.handleOnce(msg)
	if err != nil {
		r.retries.Add(1)
	}
	return err
}

// Retries counts the log messages whose follow-ups failed and that will be
// delivered again.
func (r *Reactor) Retries() uint64 { return r.retries.Load() }

func (r *Reactor) handleOnce(msg *message.Message) error {
	// The delivery ends when watermill-nats ends the message's context,
	// after the message is acknowledged (or not).
	context.AfterFunc(msg.Context(), r.gate.leave)
	events, err := domain.DecodeEvents(msg.Payload)
	if err != nil {
		// Not written by an engine: nothing follows from it. Left
		// unacknowledged it would come back for ever and hold up every
		// message behind it, so it is reported, counted and passed over
		// (roomctl verify flags it).
		r.malformed.Add(1)
		r.cfg.Logger.Error("reactor skipped a log message it cannot read", "seq", msg.Metadata.Get("seq"),
			"subject", msg.Metadata.Get("subject"), "err", err)
		return nil
	}
	for i := range events {
		for _, f := range domain.FollowUps(&events[i]) {
			ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
			_, err := r.cfg.Engine.Execute(ctx, domain.Meta{App: f.Cause.App, Causation: f.Cause.ID.String(),
				Correlation: f.Cause.Correlation}, f.Command)
			cancel()
			var de *domain.Error
			if err != nil && (!errors.As(err, &de) || engine.IsInternal(err)) {
				return fmt.Errorf("follow-up %s of %s: %w", f.Command.CommandName(), f.Cause.Type, err)
			}
			if err != nil {
				r.cfg.Logger.Debug("follow-up refused", "command", f.Command.CommandName(), "err", err)
			}
		}
	}
	return nil
}

// recordUnmarshaler keeps the stream sequence with each message. It is the
// first step of each delivery, so it is where the gate stands.
type recordUnmarshaler struct{ gate *deliveryGate }

func (u recordUnmarshaler) Unmarshal(m jetstream.Msg) (*message.Message, error) {
	u.gate.enter()
	md, err := m.Metadata()
	if err != nil {
		return nil, err
	}
	wm := message.NewMessage(strconv.FormatUint(md.Sequence.Stream, 10), m.Data())
	wm.Metadata.Set("seq", strconv.FormatUint(md.Sequence.Stream, 10))
	wm.Metadata.Set("subject", m.Subject())
	return wm, nil
}

// deliveryGate counts the deliveries under way and, once stopped, holds new
// ones at their first step until released.
type deliveryGate struct {
	mu       sync.Mutex
	stopping bool
	inflight int
	idle     *sync.Cond
	released chan struct{}
}

func newDeliveryGate() *deliveryGate {
	g := &deliveryGate{released: make(chan struct{})}
	g.idle = sync.NewCond(&g.mu)
	return g
}

// enter starts a delivery, or holds it until release once the gate stopped
// (such a delivery is not counted: it reaches no handler, so never leaves).
func (g *deliveryGate) enter() {
	g.mu.Lock()
	if g.stopping {
		g.mu.Unlock()
		<-g.released
		return
	}
	g.inflight++
	g.mu.Unlock()
}

// leave ends a counted delivery.
func (g *deliveryGate) leave() {
	g.mu.Lock()
	g.inflight--
	if g.inflight == 0 {
		g.idle.Broadcast()
	}
	g.mu.Unlock()
}

// stop holds new deliveries and waits up to d for those under way to end;
// false if some had not.
func (g *deliveryGate) stop(d time.Duration) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stopping = true
	expired := false
	t := time.AfterFunc(d, func() {
		g.mu.Lock()
		expired = true
		g.idle.Broadcast()
		g.mu.Unlock()
	})
	defer t.Stop()
	for g.inflight > 0 && !expired {
		g.idle.Wait()
	}
	return g.inflight == 0
}

// release lets the held deliveries go.
func (g *deliveryGate) release() { close(g.released) }
