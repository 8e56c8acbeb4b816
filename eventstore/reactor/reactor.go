// Package reactor runs the follow-ups that room events call for
// (domain.FollowUps): freeing the claims of members and streams a room
// removed, and taking a session kicked by a duplicate login out of its other
// rooms. It reads the room events through a durable JetStream consumer
// (watermill-nats) shared by every node, so each event is handled by one
// node, and a follow-up that a crashed node did not finish is redelivered to
// another. A consumer removed on the server while the reactor runs is
// recreated, from just after the last acknowledgement floor the reactor saw.
package reactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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
	// RecreateFor bounds how long the reactor tries to recreate its
	// durable consumer once it is gone from the server (an operator
	// removed it, or the whole stream went): Run then returns an error,
	// which makes the node unready. Default 1 min.
	RecreateFor time.Duration
	Logger      *slog.Logger
}

// Reactor runs follow-ups from a durable consumer of the room events.
type Reactor struct {
	cfg  Config
	wlog watermill.LoggerAdapter
	// first is the subscriber New prepares; Run builds another each time
	// the consumer has to be recreated.
	first   *generation
	running chan struct{}
	// floor is the highest acknowledgement floor (a stream sequence) seen
	// on the shared consumer: every room event up to it had its follow-ups
	// done, by one node or another.
	floor atomic.Uint64
	// recreated counts the subscribers built after the consumer was gone.
	recreated atomic.Uint64
	// retries counts deliveries whose follow-ups failed (redelivered later).
	retries atomic.Uint64
	// malformed counts the messages passed over because they could not be
	// decoded.
	malformed atomic.Uint64
}

// generation is one subscriber, on a connection of its own, and the router
// that runs the follow-ups of what it receives.
type generation struct {
	nc       *nats.Conn
	sub      *wmjs.Subscriber
	router   *message.Router
	gate     *deliveryGate
	consumer atomic.Pointer[jetstream.Consumer] // set when the router subscribes
	created  time.Time                          // when the server created it
	bindErr  error                              // or why it could not
	// lost hears that nats.go stopped pulling for good (the consumer was
	// deleted on the server); check, that a pull went unanswered (is the
	// consumer still there?).
	lost  chan error
	check chan error

	started time.Time
	cancel  context.CancelFunc // the router's context
	done    chan struct{}      // closed when the router's Run returned err
	err     error
}

// How the reactor watches and recreates its consumer.
const (
	// checkEvery is how often the consumer's information is read: its
	// acknowledgement floor (where a recreated consumer starts), and that
	// it is still there (should the deletion notice have been missed).
	checkEvery = 5 * time.Second
	// The wait before recreating the consumer grows from minBackoff to
	// maxBackoff while attempts fail or recreated consumers soon go again,
	// and is back to minBackoff after one that lasted stableAfter. Even the
	// first waits: the server tells pulls of a removal, and frees the
	// name, before it removes the consumer's folder, which a consumer of
	// the same name created meanwhile shares (nats-server 2.15: it loses
	// its files, and a later update of it fails).
	minBackoff  = 100 * time.Millisecond
	maxBackoff  = 5 * time.Second
	stableAfter = time.Minute
)

// Malformed returns how many log messages the reactor passed over because
// they could not be decoded.
func (r *Reactor) Malformed() uint64 { return r.malformed.Load() }

// Recreated returns how many times the reactor subscribed again after its
// durable consumer was gone from the server, recreating it (or binding the
// one another node recreated).
func (r *Reactor) Recreated() uint64 { return r.recreated.Load() }

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
	if cfg.RecreateFor == 0 {
		cfg.RecreateFor = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Reactor{cfg: cfg, running: make(chan struct{})}
	// Watermill logs every message at info: keep that at debug.
	r.wlog = watermill.NewSlogLoggerWithLevelMapping(cfg.Logger, map[slog.Level]slog.Level{
		slog.LevelInfo: slog.LevelDebug,
	})
	var err error
	nc, err := cfg.Log.NewConn("roomlog-reactor")
	if err != nil {
		return nil, fmt.Errorf("reactor: %w", err)
	}
	if r.first, err = r.newGeneration(nc, nil); err != nil {
		return nil, err
	}
	return r, nil
}

// newGeneration prepares a subscriber on nc, a connection of its own (the
// subscriber drains the connection it is given when it closes; it is closed
// if this fails), and its router. bound, if not nil, is the consumer already
// bound (a recreation binds first: a router whose subscription fails leaves
// a goroutine of watermill's waiting for ever); else the subscription binds
// it.
func (r *Reactor) newGeneration(nc *nats.Conn, bound jetstream.Consumer) (*generation, error) {
	var err error
	g := &generation{nc: nc, gate: newDeliveryGate(), lost: make(chan error, 1), check: make(chan error, 1)}
	// A pull that nats.go gives up on ends delivery for good, while
	// watermill's channel stays open: Run is told, instead of waiting for
	// ever. A pull request to a consumer that is not there (removed while
	// this connection was down, or while the request was on its way) is
	// answered "no responders", and nats.go pulls again only once it
	// misses heartbeats (30 s): Run looks whether the consumer is there.
	onPullError := func(_ jetstream.ConsumeContext, err error) {
		switch {
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound),
			errors.Is(err, jetstream.ErrBadRequest), errors.Is(err, jetstream.ErrConnectionClosed):
			select {
			case g.lost <- err:
			default:
			}
		case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoHeartbeat):
			select {
			case g.check <- err:
			default:
			}
		}
	}
	sub, err := wmjs.NewSubscriber(wmjs.SubscriberConfig{
		Conn:           nc,
		Logger:         r.wlog,
		AckWaitTimeout: r.cfg.Timeout + 5*time.Second,
		NakDelay:       wmjs.NewStaticDelay(time.Second),
		Unmarshaler:    recordUnmarshaler{gate: g.gate},
		ResourceInitializer: func(ctx context.Context, js jetstream.JetStream, _ string) (jetstream.Consumer,
			func(context.Context, watermill.LoggerAdapter), error) {
			c, err := bound, error(nil)
			if c == nil {
				c, err = r.bind(ctx, js)
			}
			if err != nil {
				g.bindErr = fmt.Errorf("binding consumer %s: %w", r.cfg.Consumer, err)
				return nil, nil, err
			}
			g.created = c.CachedInfo().Created
			g.consumer.Store(&c)
			return c, nil, nil
		},
		ConsumeOptions: []jetstream.PullConsumeOpt{jetstream.ConsumeErrHandler(onPullError)},
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("reactor: %w", err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: r.cfg.Timeout}, r.wlog)
	if err != nil {
		sub.Close()
		return nil, fmt.Errorf("reactor: %w", err)
	}
	router.AddConsumerHandler("followups", r.cfg.Consumer, sub, func(msg *message.Message) error {
		return r.handle(g.gate, msg)
	})
	g.sub, g.router = sub, router
	return g, nil
}

// bind returns the shared durable consumer (watermill's own grouped
// consumer is not durable), creating it if the server has none: from the
// start of the log the first time, and once it was removed, from just after
// the highest acknowledgement floor the reactor saw (everything up to it was
// done; in doubt, from the start again: follow-ups are idempotent). One
// that is there keeps where it started, which the server cannot change
// (another node may have recreated it from what it saw), and is updated to
// this version's other settings if they differ.
func (r *Reactor) bind(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	stream := r.cfg.Log.StreamName()
	want := jetstream.ConsumerConfig{
		Durable:        r.cfg.Consumer,
		FilterSubjects: []string{r.cfg.Log.KindFilter(string(domain.KindRoom))},
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        r.cfg.Timeout + 5*time.Second,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		MaxAckPending:  256,
	}
	for range 3 {
		c, err := js.Consumer(ctx, stream, r.cfg.Consumer)
		switch {
		case err == nil:
			have, cfg := c.CachedInfo().Config, want
			cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = have.DeliverPolicy, have.OptStartSeq, have.OptStartTime
			if !sameSettings(have, cfg) {
				c, err = js.CreateOrUpdateConsumer(ctx, stream, cfg)
			}
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			cfg := want
			if f := r.floor.Load(); f > 0 {
				cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, f+1
			}
			c, err = js.CreateConsumer(ctx, stream, cfg)
			if errors.Is(err, jetstream.ErrConsumerExists) {
				continue // another node created it first: that one is used
			}
		}
		if err != nil {
			return nil, err
		}
		r.noteFloor(c.CachedInfo())
		return c, nil
	}
	return nil, fmt.Errorf("reactor: consumer %s kept changing while it was bound", r.cfg.Consumer)
}

// sameSettings reports whether a consumer's configuration on the server
// has the settings bind sets. Updating one that has is not only useless: a
// consumer recreated while the server was removing the one before may have
// lost its folder, and its update fails.
func sameSettings(have, want jetstream.ConsumerConfig) bool {
	filters := have.FilterSubjects
	if have.FilterSubject != "" {
		filters = append([]string{have.FilterSubject}, filters...)
	}
	return slices.Equal(filters, want.FilterSubjects) && have.AckPolicy == want.AckPolicy &&
		have.AckWait == want.AckWait && have.MaxAckPending == want.MaxAckPending
}

// noteFloor keeps the consumer's acknowledgement floor, if higher.
func (r *Reactor) noteFloor(info *jetstream.ConsumerInfo) {
	if info == nil {
		return
	}
	for {
		old := r.floor.Load()
		if info.AckFloor.Stream <= old || r.floor.CompareAndSwap(old, info.AckFloor.Stream) {
			return
		}
	}
}

// Run handles events until ctx is done, then stops and returns nil. If the
// consumer is gone from the server, Run recreates it and goes on, and
// returns an error if that fails for Config.RecreateFor.
//
// Each subscriber, the first and any Run builds to recreate the consumer,
// is stopped in order, to work around watermill-nats (v2.1.3): it closes
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
	g := r.first
	g.start()
	delay := minBackoff
	for err := r.waitRunning(ctx, g); err != nil; err = r.waitRunning(ctx, g) {
		// Binding the consumer failed. A cluster restarting elects its
		// consumers' leaders after its streams': wait for it as the log
		// waits for its stream, saying so, rather than stop (the node would
		// never be up).
		for {
			if ctx.Err() != nil {
				return nil
			}
			if !eventstore.Transient(err) {
				return err
			}
			r.cfg.Logger.Warn("waiting for JetStream", "op", "bind consumer "+r.cfg.Consumer, "retry_in", delay, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(delay):
			}
			delay = min(2*delay, maxBackoff)
			if g, err = r.rebind(ctx); err == nil {
				break
			}
		}
		g.start()
	}
	close(r.running)
	delay = minBackoff
	for {
		gone, err := r.follow(ctx, g)
		if gone == nil {
			return err
		}
		if time.Since(g.started) >= stableAfter {
			delay = minBackoff
		}
		if g, err = r.recreate(ctx, gone, &delay); g == nil {
			return err
		}
	}
}

// start runs g's router.
func (g *generation) start() {
	ctx, cancel := context.WithCancel(context.Background())
	g.started, g.cancel, g.done = time.Now(), cancel, make(chan struct{})
	go func() {
		g.err = g.router.Run(ctx)
		if g.err == nil && ctx.Err() == nil {
			g.err = errors.New("reactor: the router stopped on its own")
		}
		close(g.done)
	}()
}

// waitRunning waits until g's router runs, and returns nil then; if it
// fails (the consumer could not be bound), or ctx ends, g is stopped.
func (r *Reactor) waitRunning(ctx context.Context, g *generation) error {
	select {
	case <-g.router.Running():
		return nil
	case <-g.done:
		g.sub.Close()
		g.nc.Close()
		if g.bindErr != nil {
			return g.bindErr // without watermill's stack trace
		}
		return g.err
	case <-ctx.Done():
		r.stop(g)
		return ctx.Err()
	}
}

// follow watches g while it runs. It returns nil, nil when ctx is done,
// and an error if the router failed; when the consumer is gone from the
// server, or g's pull waits for nothing, it returns why. g is stopped in
// every case.
func (r *Reactor) follow(ctx context.Context, g *generation) (gone, err error) {
	tick := time.NewTicker(checkEvery)
	defer tick.Stop()
	for {
		var pullErr error
		select {
		case <-ctx.Done():
			r.stop(g)
			return nil, nil
		case <-g.done: // the router failed on its own
			g.sub.Close()
			return nil, g.err
		case gone := <-g.lost:
			r.stop(g)
			return gone, nil
		case <-tick.C:
		case pullErr = <-g.check:
		}
		ictx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		info, err := (*g.consumer.Load()).Info(ictx)
		cancel()
		switch {
		case err == nil && !info.Created.Equal(g.created):
			// Removed and recreated (by another node, say) since g bound
			// it: g's pull may wait on the one removed, with no word of it
			// (the server sends "consumer deleted" only to the pull
			// requests it holds at that moment), until nats.go misses
			// heartbeats (30 s).
			r.stop(g)
			return errReplaced, nil
		case err == nil && errors.Is(pullErr, nats.ErrNoResponders):
			// There again: g's pull, unanswered, waits for heartbeats.
			r.stop(g)
			return errUnanswered, nil
		case err == nil:
			r.noteFloor(info)
		case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
			r.stop(g)
			return err, nil
		}
		// Otherwise the server does not answer now: the next check tells.
	}
}

// Why follow stops a subscriber whose consumer is there.
var (
	errReplaced   = errors.New("the consumer was removed and recreated on the server (by another node?)")
	errUnanswered = errors.New("a pull request went unanswered while the consumer was missing for a moment")
)

// recreate builds a subscriber whose consumer is recreated (or bound, if
// another node recreated it), trying again with a growing delay, up to
// Config.RecreateFor. It returns nil and no error if ctx ends first.
func (r *Reactor) recreate(ctx context.Context, gone error, delay *time.Duration) (*generation, error) {
	lostAt := time.Now()
	from := "the start of the log"
	if f := r.floor.Load(); f > 0 {
		from = "stream sequence " + strconv.FormatUint(f+1, 10)
	}
	if errors.Is(gone, errReplaced) || errors.Is(gone, errUnanswered) {
		r.cfg.Logger.Warn("reactor: its pull may wait on a durable consumer that is gone; subscribing again",
			"consumer", r.cfg.Consumer, "err", gone)
	} else {
		r.cfg.Logger.Warn("reactor: its durable consumer is gone from the server (removed?); recreating it: "+
			"follow-ups wait until then", "consumer", r.cfg.Consumer, "err", gone, "from", from)
	}
	for attempt := 1; ; attempt++ {
		t := time.NewTimer(*delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil
		case <-t.C:
		}
		*delay = min(2**delay, maxBackoff)
		g, err := r.rebind(ctx)
		if err == nil {
			g.start()
			err = r.waitRunning(ctx, g)
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		if err == nil {
			r.recreated.Add(1)
			cfg := (*g.consumer.Load()).CachedInfo().Config
			start := "the start of the log"
			if cfg.DeliverPolicy == jetstream.DeliverByStartSequencePolicy {
				start = "stream sequence " + strconv.FormatUint(cfg.OptStartSeq, 10)
			}
			r.cfg.Logger.Warn("reactor: its durable consumer is back; follow-ups go on", "consumer", r.cfg.Consumer,
				"from", start, "after", time.Since(lostAt).Round(time.Millisecond), "attempts", attempt)
			return g, nil
		}
		if time.Since(lostAt) >= r.cfg.RecreateFor {
			return nil, fmt.Errorf("reactor: its durable consumer %s is gone from the server and could not be "+
				"recreated for %v (%d attempts; no follow-up runs on this node until it restarts): %w",
				r.cfg.Consumer, r.cfg.RecreateFor, attempt, err)
		}
		r.cfg.Logger.Warn("reactor: recreating its durable consumer failed; trying again", "consumer", r.cfg.Consumer,
			"attempt", attempt, "in", *delay, "err", err)
	}
}

// rebind binds the consumer (recreating it if it is gone) on a new
// connection, and prepares a generation on it.
func (r *Reactor) rebind(ctx context.Context) (*generation, error) {
	nc, err := r.cfg.Log.NewConn("roomlog-reactor")
	if err != nil {
		return nil, fmt.Errorf("reactor: %w", err)
	}
	js, err := jetstream.New(nc)
	if err == nil {
		var c jetstream.Consumer
		if c, err = r.bind(ctx, js); err == nil {
			return r.newGeneration(nc, c)
		}
	}
	nc.Close()
	return nil, fmt.Errorf("binding consumer %s: %w", r.cfg.Consumer, err)
}

// stop stops g in the order Run's comment explains.
func (r *Reactor) stop(g *generation) {
	if err := r.drain(g.nc); err != nil {
		r.cfg.Logger.Warn("reactor: draining its connection", "err", err)
	}
	if !g.gate.stop(r.cfg.Timeout + 5*time.Second) {
		r.cfg.Logger.Warn("reactor: deliveries still under way at shutdown")
	}
	g.sub.Close() // its connection is closed already: nothing left to drain
	g.gate.release()
	g.cancel()
	<-g.done
}

// drain drains a subscriber's connection and waits until it is closed.
func (r *Reactor) drain(nc *nats.Conn) error {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		if nc.IsClosed() {
			return nil
		}
		return err
	}
	select {
	case <-closed:
		return nil
	case <-time.After(r.cfg.Timeout + 5*time.Second):
		nc.Close()
		return errors.New("drain did not finish in time")
	}
}

// Running is closed once the reactor is consuming.
func (r *Reactor) Running() chan struct{} { return r.running }

// handle runs the follow-ups of one log message. A follow-up that the domain
// refuses is done (it found nothing to do or a newer state); a log that cannot
// be reached makes the message come back later.
func (r *Reactor) handle(gate *deliveryGate, msg *message.Message) error {
	err := r.handleOnce(gate, msg)
	if err != nil {
		r.retries.Add(1)
	}
	return err
}

// Retries counts the log messages whose follow-ups failed and that will be
// delivered again.
func (r *Reactor) Retries() uint64 { return r.retries.Load() }

func (r *Reactor) handleOnce(gate *deliveryGate, msg *message.Message) error {
	// The delivery ends when watermill-nats ends the message's context,
	// after the message is acknowledged (or not).
	context.AfterFunc(msg.Context(), gate.leave)
	if why := msg.Metadata.Get(metaUnreadable); why != "" {
		r.malformed.Add(1)
		r.cfg.Logger.Error("reactor skipped a message that is not a delivery of the log", "subject",
			msg.Metadata.Get("subject"), "err", why)
		return nil
	}
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

// metaUnreadable marks a message whose JetStream metadata could not be read.
const metaUnreadable = "unreadable"

// recordUnmarshaler keeps the stream sequence with each message. It is the
// first step of each delivery, so it is where the gate stands.
type recordUnmarshaler struct{ gate *deliveryGate }

func (u recordUnmarshaler) Unmarshal(m jetstream.Msg) (*message.Message, error) {
	u.gate.enter()
	md, err := m.Metadata()
	if err != nil {
		// Not a delivery of the stream (no JetStream reply subject). An
		// error here would take the process down: watermill-nats logs it
		// and uses the nil message. It goes on, marked, and handle passes
		// it over (and so the gate counts it out).
		wm := message.NewMessage(watermill.NewUUID(), m.Data())
		wm.Metadata.Set(metaUnreadable, err.Error())
		wm.Metadata.Set("subject", m.Subject())
		return wm, nil
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
