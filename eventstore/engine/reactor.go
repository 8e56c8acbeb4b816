package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmjs "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// ReactorConfig configures a Reactor.
type ReactorConfig struct {
	Engine *Engine
	Log    *eventstore.Log
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

// Reactor runs the follow-ups that room events call for (domain.FollowUps):
// freeing the claims of members and streams a room removed, and taking a
// session kicked by a duplicate login out of its other rooms. It reads the
// room events through a durable JetStream consumer shared by every node, so
// a follow-up that a crashed node did not finish is redelivered to another.
type Reactor struct {
	cfg    ReactorConfig
	router *message.Router
	sub    *wmjs.Subscriber
}

// NewReactor validates cfg and prepares the reactor.
func NewReactor(cfg ReactorConfig) (*Reactor, error) {
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
	stream := cfg.Log.Stream()
	filter := cfg.Log.KindFilter(string(domain.KindRoom))
	sub, err := wmjs.NewSubscriber(wmjs.SubscriberConfig{
		Conn:           nc,
		Logger:         wlog,
		AckWaitTimeout: cfg.Timeout + 5*time.Second,
		NakDelay:       wmjs.NewStaticDelay(time.Second),
		Unmarshaler:    recordUnmarshaler{},
		ResourceInitializer: func(ctx context.Context, _ jetstream.JetStream, _ string) (jetstream.Consumer,
			func(context.Context, watermill.LoggerAdapter), error) {
			// A durable consumer: it survives restarts and is shared by
			// every node (watermill's own grouped consumer is not durable).
			c, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
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
	r := &Reactor{cfg: cfg, router: router, sub: sub}
	router.AddConsumerHandler("followups", cfg.Consumer, sub, r.handle)
	return r, nil
}

// Run handles events until ctx is done, then stops and returns nil.
func (r *Reactor) Run(ctx context.Context) error {
	err := r.router.Run(ctx)
	r.sub.Close()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Running is closed once the reactor is consuming.
func (r *Reactor) Running() chan struct{} { return r.router.Running() }

// handle runs the follow-ups of one log message. A follow-up that the domain
// refuses is done (it found nothing to do or a newer state); a log that cannot
// be reached makes the message come back later.
func (r *Reactor) handle(msg *message.Message) error {
	events, err := domain.DecodeEvents(msg.Payload)
	if err != nil {
		// Never skip a message that cannot be read: it stays unacknowledged
		// and the operator sees why.
		r.cfg.Logger.Error("reactor cannot read a log message", "seq", msg.Metadata.Get("seq"), "err", err)
		return err
	}
	for i := range events {
		for _, f := range domain.FollowUps(&events[i]) {
			ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
			_, err := r.cfg.Engine.Execute(ctx, domain.Meta{App: f.Cause.App, Causation: f.Cause.ID.String(),
				Correlation: f.Cause.Correlation}, f.Command)
			cancel()
			var de *domain.Error
			if err != nil && (!errors.As(err, &de) || isInternal(err)) {
				return fmt.Errorf("follow-up %s of %s: %w", f.Command.CommandName(), f.Cause.Type, err)
			}
			if err != nil {
				r.cfg.Logger.Debug("follow-up refused", "command", f.Command.CommandName(), "err", err)
			}
		}
	}
	return nil
}

// recordUnmarshaler keeps the stream sequence with each message.
type recordUnmarshaler struct{}

func (recordUnmarshaler) Unmarshal(m jetstream.Msg) (*message.Message, error) {
	md, err := m.Metadata()
	if err != nil {
		return nil, err
	}
	wm := message.NewMessage(strconv.FormatUint(md.Sequence.Stream, 10), m.Data())
	wm.Metadata.Set("seq", strconv.FormatUint(md.Sequence.Stream, 10))
	wm.Metadata.Set("subject", m.Subject())
	return wm, nil
}
