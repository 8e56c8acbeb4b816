package eventstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Bus is the ephemeral channel between the nodes that share a log: core NATS
// subjects beside the log's, "<prefix>-ephemeral.<subject>", for what must
// reach every node now and must never be stored (barrage, a session taken
// over by another node, media signalling). Nothing on the bus is kept: a
// node that is not subscribed when a message goes by never sees it.
//
// A Bus has its own connection, so a slow handler delays no append. It is
// safe for concurrent use.
type Bus struct {
	nc     *nats.Conn
	prefix string
}

// ErrNoResponders is returned by Bus.Request when no node serves the subject.
var ErrNoResponders = errors.New("eventstore: no node serves that subject")

// OpenBus opens a bus on its own connection, named name for server-side
// monitoring. Close it when done.
func (l *Log) OpenBus(name string) (*Bus, error) {
	nc, err := l.connect(name)
	if err != nil {
		return nil, err
	}
	return &Bus{nc: nc, prefix: l.prefix + "-ephemeral."}, nil
}

// Publish sends data to every subscriber of subject. Tokens of subject that
// carry IDs must be encoded with Token.
func (b *Bus) Publish(subject string, data []byte) error {
	if err := b.nc.Publish(b.prefix+subject, data); err != nil {
		return classify("bus publish", err)
	}
	return nil
}

// Subscribe calls fn for each message on subject (which may end in a "*" or
// ">" wildcard), one at a time, with the subject relative to the bus. The
// returned function unsubscribes.
func (b *Bus) Subscribe(subject string, fn func(subject string, data []byte)) (func() error, error) {
	sub, err := b.nc.Subscribe(b.prefix+subject, func(m *nats.Msg) {
		fn(strings.TrimPrefix(m.Subject, b.prefix), m.Data)
	})
	if err != nil {
		return nil, classify("bus subscribe", err)
	}
	return sub.Unsubscribe, nil
}

// Serve answers requests on subject with what fn returns, until the returned
// function is called. Nodes serving one subject share its requests: each
// request reaches one of them (a queue group named after the subject).
//
// Requests are served side by side, up to maxServing at once, so that one
// slow request does not hold up the others. Each fn gets a context that ends
// when the requester stops waiting (its deadline travels with the request),
// after serveTimeout at most, or when the returned function is called; that
// function waits for the requests being served.
func (b *Bus) Serve(subject string, fn func(ctx context.Context, data []byte) []byte) (func() error, error) {
	base, stopAll := context.WithCancel(context.Background())
	var (
		mu      sync.Mutex
		stopped bool
		serving sync.WaitGroup
		slots   = make(chan struct{}, maxServing)
	)
	sub, err := b.nc.QueueSubscribe(b.prefix+subject, subject, func(m *nats.Msg) {
		slots <- struct{}{} // all taken: the next requests wait here, in NATS's queue
		mu.Lock()
		if stopped {
			mu.Unlock()
			<-slots
			return
		}
		serving.Add(1)
		mu.Unlock()
		go func() {
			defer func() { <-slots; serving.Done() }()
			ctx, cancel := context.WithTimeout(base, requesterWait(m))
			defer cancel()
			_ = m.Respond(fn(ctx, m.Data)) // a requester that gave up is not this node's problem
		}()
	})
	if err != nil {
		stopAll()
		return nil, classify("bus serve", err)
	}
	return func() error {
		mu.Lock()
		stopped = true
		mu.Unlock()
		err := sub.Unsubscribe()
		stopAll()
		serving.Wait()
		return err
	}, nil
}

const (
	// maxServing bounds the requests one Serve handles at once.
	maxServing = 64
	// serveTimeout bounds the serving of one request.
	serveTimeout = 30 * time.Second
	// waitHeader carries how long the requester waits for the answer, in
	// milliseconds (a duration, not a time: the nodes' clocks may differ).
	waitHeader = "Roomlog-Wait-Ms"
)

// requesterWait is how long the requester of m waits: what it said, at most
// serveTimeout.
func requesterWait(m *nats.Msg) time.Duration {
	ms, err := strconv.ParseInt(m.Header.Get(waitHeader), 10, 64)
	if err != nil || ms <= 0 || ms > serveTimeout.Milliseconds() {
		return serveTimeout
	}
	return time.Duration(ms) * time.Millisecond
}

// Request sends data to one node serving subject and returns its answer. It
// fails with ErrNoResponders when none does, and with ErrUnavailable (or the
// context's error) when the answer does not come in time. The server is told
// how long the answer is waited for.
func (b *Bus) Request(ctx context.Context, subject string, data []byte) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, requestTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	msg := &nats.Msg{Subject: b.prefix + subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(waitHeader, strconv.FormatInt(max(time.Until(deadline).Milliseconds(), 1), 10))
	m, err := b.nc.RequestMsgWithContext(ctx, msg)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, fmt.Errorf("%w: %s", ErrNoResponders, subject)
	}
	if err != nil {
		return nil, classify("bus request "+subject, err)
	}
	return m.Data, nil
}

// Flush waits until the server has processed everything sent so far, so a
// subscription made before it is in place on the server.
func (b *Bus) Flush(ctx context.Context) error {
	return classify("bus flush", b.nc.FlushWithContext(ctx))
}

// Close closes the bus's connection; its subscriptions end with it.
func (b *Bus) Close() { b.nc.Close() }
