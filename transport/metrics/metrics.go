// Package metrics serves a node's Prometheus metrics (/metrics on the HTTP
// listener the admin API shares): what the engine executes and appends, what
// the projection folds and how far behind the log it is, what is live, the
// queues between them, and the Go runtime.
//
// The components do not import Prometheus: the engine tells an
// engine.Observer, the projection calls a fold observer, and everything else
// (sizes, queue depths, counters the components keep) is read when
// Prometheus scrapes.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/projections"
)

// Config names what the metrics read at scrape time. Every field but Live
// is optional.
type Config struct {
	Live *projections.Live
	// LastSeq returns the log's last stream sequence, for the projection's
	// lag.
	LastSeq func(context.Context) (uint64, error)
	// Gateway returns the gateway's figures.
	Gateway func() GatewayStats
	// Reactor returns the reactor's counters.
	Reactor func() ReactorStats
}

// ReactorStats is what the reactor counts (its Retries, Recreated and
// Malformed, copied so that this package does not import the reactor).
type ReactorStats struct {
	// Retries: log messages whose follow-ups failed and are delivered
	// again.
	Retries uint64
	// Recreated: times its durable consumer was gone from the server and
	// the reactor subscribed again (recreating it or binding the one
	// another node recreated).
	Recreated uint64
	// Malformed: log messages passed over because they could not be
	// decoded (no engine wrote them: run roomctl verify).
	Malformed uint64
}

// GatewayStats is what the gateway reports (gateway.Stats, copied so that
// this package does not import the gateway).
type GatewayStats struct {
	Connections, Sessions, QueuedFrames int
	SlowConsumers, DroppedBarrage       uint64
}

// Metrics holds a node's collectors. It implements engine.Observer; Fold is
// the projection's fold observer.
type Metrics struct {
	cfg Config
	reg *prometheus.Registry

	commands  *prometheus.CounterVec
	conflicts *prometheus.CounterVec
	commandDur,
	appendDur,
	foldDur prometheus.Histogram
	events   *prometheus.CounterVec
	requests *prometheus.HistogramVec
}

var _ engine.Observer = (*Metrics)(nil)

// New registers every collector on a registry of its own.
func New(cfg Config) (*Metrics, error) {
	if cfg.Live == nil {
		return nil, errors.New("metrics: Live is required")
	}
	// Latencies from 50 µs to 6.5 s.
	buckets := prometheus.ExponentialBuckets(50e-6, 2, 18)
	m := &Metrics{cfg: cfg, reg: prometheus.NewRegistry(),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomlog_commands_total",
			Help: "Commands executed, by command and outcome (ok, refused, failed)."}, []string{"command", "outcome"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomlog_conflicts_total",
			Help: "Appends refused because another writer moved the aggregate first, by command (the command is decided again)."},
			[]string{"command"}),
		commandDur: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "roomlog_command_duration_seconds",
			Help: "Time to execute a command: load, decide, append, retries.", Buckets: buckets}),
		appendDur: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "roomlog_append_duration_seconds",
			Help: "Time from a conditional append to its acknowledgement.", Buckets: buckets}),
		foldDur: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "roomlog_fold_duration_seconds",
			Help: "Time to fold one log message into the live projection.", Buckets: buckets}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "roomlog_events_folded_total",
			Help: "Events folded into the live projection, by type."}, []string{"type"}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "roomlog_gateway_request_duration_seconds",
			Help: "Time a connection's worker spends on a client request, by op, up to its reply queued.", Buckets: buckets},
			[]string{"op"}),
	}
	for _, t := range domain.EventTypes() {
		m.events.WithLabelValues(string(t)) // every type shows, at 0
	}
	size := func(f func(projections.Size) int) func() float64 {
		return func() float64 { return float64(f(cfg.Live.Size())) }
	}
	cs := []prometheus.Collector{m.commands, m.conflicts, m.commandDur, m.appendDur, m.foldDur, m.events, m.requests,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "roomlog_live_sessions",
			Help: "Sessions the live projection holds: those in at least one room."}, size(func(s projections.Size) int { return s.Sessions })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "roomlog_live_rooms",
			Help: "Rooms that exist."}, size(func(s projections.Size) int { return s.Rooms })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "roomlog_live_connections",
			Help: "Logined (session, room) connections."}, size(func(s projections.Size) int { return s.Connections })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "roomlog_projection_skipped_total",
			Help: "Log messages the projection passed over because they could not be decoded."},
			func() float64 { return float64(cfg.Live.Skipped().Count) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "roomlog_projection_cursor",
			Help: "Stream sequence of the last message folded."}, func() float64 { return float64(cfg.Live.Cursor()) }),
		&subscribers{cfg: cfg, depth: prometheus.NewDesc("roomlog_subscriber_queue_depth",
			"Folded messages a projection subscriber has not been told of yet.", []string{"subscriber"}, nil),
			overflows: prometheus.NewDesc("roomlog_subscriber_overflows_total",
				"Times a projection subscriber's queue was full, so it caught up from the log.", []string{"subscriber"}, nil)},
	}
	if cfg.LastSeq != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "roomlog_projection_lag_messages",
			Help: "Messages in the log the live projection has not folded yet."}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			last, err := cfg.LastSeq(ctx)
			if err != nil {
				return -1
			}
			return float64(last) - float64(cfg.Live.Cursor())
		}))
	}
	if cfg.Gateway != nil {
		g := func(f func(GatewayStats) float64) func() float64 { return func() float64 { return f(cfg.Gateway()) } }
		cs = append(cs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "roomlog_gateway_connections",
				Help: "Open WebSocket connections."}, g(func(s GatewayStats) float64 { return float64(s.Connections) })),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "roomlog_gateway_sessions",
				Help: "Sessions attached to this node's connections."}, g(func(s GatewayStats) float64 { return float64(s.Sessions) })),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "roomlog_gateway_queued_frames",
				Help: "Frames waiting in all connections' outgoing queues."}, g(func(s GatewayStats) float64 { return float64(s.QueuedFrames) })),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "roomlog_gateway_slow_consumer_disconnects_total",
				Help: "Clients disconnected for not reading (slow_consumer)."}, g(func(s GatewayStats) float64 { return float64(s.SlowConsumers) })),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "roomlog_gateway_dropped_barrage_total",
				Help: "Barrage messages not sent to a client whose queue was half full."}, g(func(s GatewayStats) float64 { return float64(s.DroppedBarrage) })),
		)
	}
	if cfg.Reactor != nil {
		r := func(f func(ReactorStats) uint64) func() float64 {
			return func() float64 { return float64(f(cfg.Reactor())) }
		}
		cs = append(cs,
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "roomlog_reactor_retries_total",
				Help: "Log messages whose follow-ups failed and are delivered again."}, r(func(s ReactorStats) uint64 { return s.Retries })),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "roomlog_reactor_consumer_recreated_total",
				Help: "Times the reactor's durable consumer was gone from the server and the reactor subscribed again."},
				r(func(s ReactorStats) uint64 { return s.Recreated })),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "roomlog_reactor_malformed_total",
				Help: "Log messages the reactor passed over because they could not be decoded (run roomctl verify)."},
				r(func(s ReactorStats) uint64 { return s.Malformed })),
		)
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Executed implements engine.Observer.
func (m *Metrics) Executed(command string, err error, took time.Duration) {
	outcome := "ok"
	var de *domain.Error
	switch {
	case err == nil:
	case engine.IsInternal(err) || !errors.As(err, &de):
		outcome = "failed"
	default:
		outcome = "refused"
	}
	m.commands.WithLabelValues(command, outcome).Inc()
	m.commandDur.Observe(took.Seconds())
}

// Conflicted implements engine.Observer.
func (m *Metrics) Conflicted(command string) { m.conflicts.WithLabelValues(command).Inc() }

// Appended implements engine.Observer.
func (m *Metrics) Appended(took time.Duration) { m.appendDur.Observe(took.Seconds()) }

// Fold is the projection's fold observer (projections.Live.Observe).
func (m *Metrics) Fold(rec projections.Record, took time.Duration) {
	m.foldDur.Observe(took.Seconds())
	for i := range rec.Events {
		m.events.WithLabelValues(string(rec.Events[i].Type)).Inc()
	}
}

// Request is the gateway's request observer (gateway.Config.ObserveRequest).
func (m *Metrics) Request(op string, took time.Duration) {
	m.requests.WithLabelValues(op).Observe(took.Seconds())
}

// subscribers reports each projection subscriber's queue.
type subscribers struct {
	cfg              Config
	depth, overflows *prometheus.Desc
}

func (s *subscribers) Describe(ch chan<- *prometheus.Desc) { ch <- s.depth; ch <- s.overflows }

func (s *subscribers) Collect(ch chan<- prometheus.Metric) {
	for _, st := range s.cfg.Live.Subscribers() {
		ch <- prometheus.MustNewConstMetric(s.depth, prometheus.GaugeValue, float64(st.Behind), st.Name)
		ch <- prometheus.MustNewConstMetric(s.overflows, prometheus.CounterValue, float64(st.Overflows), st.Name)
	}
}
