package media

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/projections"
)

// StateSubject is the bus subject media nodes publish state events on;
// every gateway listens and tells its own sessions.
const StateSubject = "media.state"

// nodeSubject is the bus subject a media node serves signalling on.
func nodeSubject(node string) string { return "media.node." + eventstore.Token(node) }

// Bus is the ephemeral channel between nodes (an *eventstore.Bus): core NATS,
// never stored.
type Bus interface {
	Publish(subject string, data []byte) error
	Serve(subject string, fn func(ctx context.Context, data []byte) []byte) (func() error, error)
	Request(ctx context.Context, subject string, data []byte) ([]byte, error)
}

var _ Bus = (*eventstore.Bus)(nil)

// RouterConfig configures a Router.
type RouterConfig struct {
	// Live is the node's projection: it says which node hosts a stream.
	Live *projections.Live
	// Local is this node's SFU, or nil on a node without one.
	Local *SFU
	// Bus reaches the other media nodes. Nil: only Local serves.
	Bus Bus
	// Nodes lists the live media nodes: where a node without a local SFU
	// hosts new streams.
	Nodes *Nodes
}

// Router sends each signalling request to the media node that hosts its
// stream: the node recorded with the stream's publish; for a stream not
// published yet, this node's SFU (or a live one). A request on an open
// connection goes to the node that answered its offer, when the signal names
// it (Signal.Node); so does a later offer while the stream has no host. It
// is what a gateway uses.
type Router struct{ cfg RouterConfig }

// NewRouter returns a router.
func NewRouter(cfg RouterConfig) (*Router, error) {
	if cfg.Live == nil || (cfg.Local == nil && (cfg.Nodes == nil || cfg.Bus == nil)) {
		return nil, errors.New("media: a router needs Live, and a local SFU or the media nodes and a bus")
	}
	return &Router{cfg: cfg}, nil
}

// Host names the media node a new publish of stream is recorded with: this
// node's SFU, else a live media node ("" when none is).
func (r *Router) Host(app domain.AppID, stream domain.StreamID) string {
	if r.cfg.Local != nil {
		return r.cfg.Local.Node()
	}
	return r.cfg.Nodes.Pick(string(app) + "/" + string(stream))
}

// reaches reports whether node is this node's SFU or, as far as this node
// knows, a live media node.
func (r *Router) reaches(node string) bool {
	if r.cfg.Local != nil && node == r.cfg.Local.Node() {
		return true
	}
	if r.cfg.Bus == nil {
		return false
	}
	return r.cfg.Nodes == nil || slices.Contains(r.cfg.Nodes.Alive(), node)
}

// Signal serves sig on the node that hosts its stream.
func (r *Router) Signal(ctx context.Context, sig Signal) (Answer, error) {
	if err := r.cfg.Live.WaitFor(ctx, sig.After); err != nil {
		return Answer{}, domain.ErrTimeout.With("the log did not catch up in time")
	}
	node, _ := HostOf(r.cfg.Live, sig.App, sig.Stream)
	switch {
	case sig.Node == "":
	case sig.Op != OpOffer:
		node = sig.Node // where the connection was opened, wherever the stream is now
	case node == "" && r.reaches(sig.Node):
		// A later offer of the connection, while the stream has no host:
		// the node holding the connection renegotiates it (the same peer
		// connection: an ICE restart) or replaces it (a new one). Once the
		// stream is hosted elsewhere, the peer there is being moved to the
		// host, and the offer goes to the host; so it does when the node
		// holding it is gone.
		node = sig.Node
	}
	if node == "" {
		node = r.Host(sig.App, sig.Stream)
	}
	if node == "" {
		return Answer{}, ErrMediaUnavailable
	}
	if r.cfg.Local != nil && node == r.cfg.Local.Node() {
		return r.cfg.Local.Handle(ctx, sig)
	}
	if r.cfg.Bus == nil {
		return Answer{}, ErrNodeUnreachable.With("media node %s is not this one", node)
	}
	req, err := json.Marshal(sig)
	if err != nil {
		return Answer{}, domain.ErrInternal.With("%v", err)
	}
	raw, err := r.cfg.Bus.Request(ctx, nodeSubject(node), req)
	if err != nil {
		return Answer{}, ErrNodeUnreachable.With("media node %s: %v", node, err)
	}
	var a Answer
	if err := json.Unmarshal(raw, &a); err != nil {
		return Answer{}, ErrNodeUnreachable.With("media node %s answered %d unreadable bytes", node, len(raw))
	}
	if a.Error != nil {
		return Answer{}, a.Error.Err()
	}
	return a, nil
}

// serve answers signalling forwarded from other nodes.
func (s *SFU) serve(ctx context.Context, data []byte) []byte {
	var sig Signal
	var a Answer
	var err error
	if err = json.Unmarshal(data, &sig); err != nil {
		err = ErrBadSignal.With("%v", err)
	} else {
		a, err = s.Handle(ctx, sig)
	}
	a.Error = wireError(err)
	out, _ := json.Marshal(a)
	return out
}
