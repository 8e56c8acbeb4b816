package gateway

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"sync"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/media"
	"github.com/roomlog/roomlog/transport/protocol"
)

// Media is the media plane as a gateway uses it (a *media.Router): where a
// new stream's media is hosted, and the signalling of the session's peer
// connections, served by the node that hosts each stream.
type Media interface {
	// Host names the media node to record with a new publish of stream
	// ("" where no media node runs).
	Host(app domain.AppID, stream domain.StreamID) string
	// Signal serves one signalling request.
	Signal(ctx context.Context, sig media.Signal) (media.Answer, error)
}

// maxNodeBytes bounds a media node's name a client sends back (media_check).
const maxNodeBytes = 128

// mediaHost is the node a publish records, if the gateway has a media plane.
func (s *session) mediaHost(stream string) string {
	if s.srv.cfg.Media == nil {
		return ""
	}
	s.mu.Lock()
	app := s.app
	s.mu.Unlock()
	return s.srv.cfg.Media.Host(app, domain.StreamID(stream))
}

// media serves the media signalling operations; ok is false for any other.
func (s *session) media(ctx context.Context, req protocol.Request) (data any, ok bool, err error) {
	var sig media.Signal
	switch req.Op {
	case protocol.OpMediaOffer, protocol.OpMediaICERestart:
		var r protocol.MediaOfferRequest
		if err := decode(req, &r); err != nil {
			return nil, true, err
		}
		sig = media.Signal{Stream: domain.StreamID(r.Stream), Kind: media.Kind(r.Kind), Op: media.OpOffer, SDP: r.SDP}
		if req.Op == protocol.OpMediaICERestart {
			sig.Op = media.OpRestart
		}
	case protocol.OpMediaCandidate:
		var r protocol.MediaCandidateRequest
		if err := decode(req, &r); err != nil {
			return nil, true, err
		}
		sig = media.Signal{Stream: domain.StreamID(r.Stream), Kind: media.Kind(r.Kind), Op: media.OpCandidate,
			Candidate: r.Candidate, SDPMid: r.SDPMid, SDPMLineIndex: r.SDPMLineIndex}
	case protocol.OpMediaClose:
		var r protocol.MediaCloseRequest
		if err := decode(req, &r); err != nil {
			return nil, true, err
		}
		sig = media.Signal{Stream: domain.StreamID(r.Stream), Kind: media.Kind(r.Kind), Op: media.OpClose}
	case protocol.OpMediaCheck:
		var r protocol.MediaCheckRequest
		if err := decode(req, &r); err != nil {
			return nil, true, err
		}
		if len(r.Node) > maxNodeBytes {
			return nil, true, domain.ErrInvalidArgument.With("node longer than %d bytes", maxNodeBytes)
		}
		sig = media.Signal{Stream: domain.StreamID(r.Stream), Kind: media.Kind(r.Kind), Op: media.OpCheck, Node: r.Node}
	default:
		return nil, false, nil
	}
	if s.srv.cfg.Media == nil {
		return nil, true, domain.ErrMediaUnavailable.With("this server runs no media plane")
	}
	mc := mediaConn{sig.Stream, sig.Kind}
	if sig.Node == "" {
		// Its offer's node: a player waiting for its stream to come back
		// holds its peer there, wherever the stream is hosted next; a later
		// offer renegotiates or replaces it there while the stream has no
		// host (the router decides).
		sig.Node = s.mediaConns.node(mc)
	}
	s.mu.Lock()
	sig.App, sig.Session = s.app, s.id
	rooms := make([]domain.RoomID, 0, len(s.rooms))
	for r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	if sig.App == "" {
		return nil, true, domain.ErrNotLoggedIn.With("log in first")
	}
	// The media node authorizes from its projection: it must have folded
	// what this node's engine appended for the session's rooms (its
	// publish or play), so that a client's offer right after its publish
	// is not refused.
	for _, r := range rooms {
		sig.After = max(sig.After, s.srv.cfg.Engine.Cursor(domain.RoomKey(sig.App, r)))
	}
	ctx, cancel := context.WithTimeout(ctx, s.srv.cfg.CommandTimeout)
	defer cancel()
	if sig.Op == media.OpOffer {
		s.mediaConns.offering(mc)
	}
	a, err := s.srv.cfg.Media.Signal(ctx, sig)
	if sig.Op == media.OpOffer {
		// The connection's state events held while its offer was answered
		// (and those that come until its reply is sent) follow the reply:
		// a client learns of its connection from the answer first, and
		// one that heard of its ending before would lose it.
		afterReply(ctx, func() { s.noteMedia(mc, sig.Op, a, err) })
	} else {
		s.noteMedia(mc, sig.Op, a, err)
	}
	if err != nil {
		return nil, true, err
	}
	switch sig.Op {
	case media.OpOffer, media.OpRestart:
		return protocol.MediaAnswer{SDP: a.SDP, Node: a.Node}, true, nil
	case media.OpCheck:
		return protocol.MediaCheckReply{State: string(a.State), Node: a.Node}, true, nil
	}
	return nil, true, nil
}

// mediaConn names one of a session's media connections.
type mediaConn struct {
	stream domain.StreamID
	kind   media.Kind
}

// mediaPeer is the peer that serves a media connection: the media node that
// answered its offer (or, after a resume through another node, a
// media_check that found it), and the peer's identity there
// (media.StateEvent.Peer; "" from a node that mints none).
type mediaPeer struct {
	node string
	peer string
}

// maxHeldMediaEvents bounds the state events held back for one connection
// while its offer is answered.
const maxHeldMediaEvents = 32

// mediaBook is what a gateway knows of a session's media connections. A
// connection's later requests go to the node of its peer; its state events
// reach the session only while they are about that peer. A media node's
// state events travel on the bus and its answers by request/reply, and
// nothing orders the two: an event of a peer that an offer replaced may
// come after the answer that names the new one, and the new peer's first
// events may come before it. So an event about another peer than the
// connection's is dropped, and one that comes while an offer of its
// connection is being answered is held back until the answer says which
// peer the connection has.
type mediaBook struct {
	// mu guards the book, and orders the state events sent to the
	// session: it is held while they are queued. session.mu is taken under
	// it (to queue them), never the other way round.
	mu sync.Mutex
	at map[mediaConn]mediaPeer
	// held has an entry for each connection whose offer is being
	// answered: the state events that wait for its answer.
	held map[mediaConn][]media.StateEvent
	// lost holds, per connection ended because its media node died
	// (MediaNodeLost), the peer it had there: the node that stops the dead
	// node's streams may tell of it too, later, and events of that node
	// about that peer (or about no peer) are not told again. It goes when
	// the connection is closed or answered elsewhere.
	lost map[mediaConn]mediaPeer
}

// node is the media node of connection mc ("" if not known).
func (b *mediaBook) node(mc mediaConn) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.at[mc].node
}

// offering notes that an offer of mc is being answered.
func (b *mediaBook) offering(mc mediaConn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held == nil {
		b.held = map[mediaConn][]media.StateEvent{}
	}
	if _, ok := b.held[mc]; !ok {
		b.held[mc] = nil
	}
}

// deliverLocked reports whether the session is told of state event e, and
// forgets the connection that e ends, under b.mu.
func (b *mediaBook) deliverLocked(e media.StateEvent) bool {
	mc := mediaConn{e.Stream, e.Kind}
	if m, ok := b.lost[mc]; ok && m.node == e.Node &&
		(m.peer != "" && e.Peer == m.peer || e.Peer == "" && e.Reason == reasonNodeLost) {
		return false // ended already when its node was found dead
	}
	cur, known := b.at[mc]
	ending := e.State == media.NoPublish || e.State == media.NoPlay
	switch {
	case e.Peer == "" || (known && cur.peer == ""):
		// No identity to go by (a node that mints none, or the node that
		// tells of a dead node's streams): the node alone decides.
		if !known {
			return true
		}
		if cur.node != e.Node {
			return false // about a peer on another node, which an offer replaced
		}
		if ending {
			b.endLocked(mc, cur, e)
		}
		return true
	case known && cur == mediaPeer{e.Node, e.Peer}:
		if ending {
			b.endLocked(mc, cur, e)
		}
		return true
	}
	if held, ok := b.held[mc]; ok {
		// The offer being answered may open the peer e is about, or
		// replace it: its answer decides.
		if len(held) < maxHeldMediaEvents {
			b.held[mc] = append(held, e)
		}
		return false
	}
	// About a peer the connection no longer has (an offer replaced it), or,
	// with nothing known of the connection (it was closed; or the session
	// was resumed through this node and has not checked it yet), told.
	return !known
}

// noteMedia records what a signal's answer a (or its error) says of media
// connection mc: the node and peer that answered its offer, ICE restart or
// media_check; a close forgets it. The state events held back while an
// offer was answered are told now (after its reply), if they are about the
// peer it has.
func (s *session) noteMedia(mc mediaConn, op media.SignalOp, a media.Answer, err error) {
	b := &s.mediaConns
	b.mu.Lock()
	defer b.mu.Unlock()
	var held []media.StateEvent
	if op == media.OpOffer {
		held = b.held[mc]
		delete(b.held, mc)
	}
	if err == nil {
		switch {
		case op == media.OpClose:
			delete(b.at, mc)
			delete(b.lost, mc)
		case (op == media.OpOffer || op == media.OpRestart || op == media.OpCheck) && a.Node != "":
			if b.at == nil {
				b.at = map[mediaConn]mediaPeer{}
			}
			b.at[mc] = mediaPeer{a.Node, a.Peer}
			if m := b.lost[mc]; m.node != a.Node || a.Peer == "" || a.Peer == m.peer {
				// Answered elsewhere, or by a node that mints no peers, or
				// the connection lives on (its node was wrongly found
				// dead): the mark would swallow what it says next.
				delete(b.lost, mc)
			}
		}
	}
	for _, e := range held {
		if b.deliverLocked(e) {
			s.send(mediaStateFrame(e), false)
		}
	}
}

// mediaCarry is what a session's next connection on this node takes over
// of its book: where its connections are answered, and the peers of those
// that ended because their node died (mediaBook.lost).
type mediaCarry struct {
	at, lost map[mediaConn]mediaPeer
}

func (c mediaCarry) empty() bool { return len(c.at) == 0 && len(c.lost) == 0 }

// carry returns a copy of what the session's next connection on this node
// takes over (takeOver).
func (b *mediaBook) carry() mediaCarry {
	b.mu.Lock()
	defer b.mu.Unlock()
	return mediaCarry{at: maps.Clone(b.at), lost: maps.Clone(b.lost)}
}

// takeOver sets the book to what a connection of the session had.
func (b *mediaBook) takeOver(c mediaCarry) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.at, b.lost = c.at, c.lost
}

// onMediaState delivers a media node's state change to the session, if it
// is on this node and the change is about the peer its connection has.
func (s *Server) onMediaState(_ string, data []byte) {
	var e media.StateEvent
	if err := json.Unmarshal(data, &e); err != nil {
		s.cfg.Logger.Warn("a media state event cannot be read", "err", err)
		return
	}
	s.mu.Lock()
	sess := s.sessions[e.Session]
	s.mu.Unlock()
	if sess == nil {
		return
	}
	sess.mu.Lock()
	app := sess.app
	sess.mu.Unlock()
	if app != e.App {
		return
	}
	b := &sess.mediaConns
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.deliverLocked(e) {
		sess.send(mediaStateFrame(e), false)
	}
}

// MediaNodeLost ends the media connections of this node's sessions that
// media node `node`, now dead, answered: NO_PUBLISH 1003004 / NO_PLAY
// 1004004, reason node_lost, as the node that stops the dead node's streams
// tells their publishers and players (media.Nodes), whichever comes first,
// once. Only this gateway knows of some of them: a player waiting there for
// its stream to be published again, whose stream the log places nowhere.
func (s *Server) MediaNodeLost(node string) {
	s.mu.Lock()
	sessions := slices.Collect(maps.Values(s.sessions))
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.mu.Lock()
		app := sess.app
		sess.mu.Unlock()
		b := &sess.mediaConns
		b.mu.Lock()
		for mc, at := range b.at {
			if at.node != node {
				continue
			}
			e := media.StateEvent{App: app, Session: sess.id, Stream: mc.stream, Kind: mc.kind, State: media.NoPlay,
				Code: media.ErrPlayNodeLost.Code, Reason: reasonNodeLost, Node: at.node, Peer: at.peer}
			if mc.kind == media.Publish {
				e.State, e.Code = media.NoPublish, media.ErrPublishNodeLost.Code
			}
			if b.deliverLocked(e) { // marks it: see endLocked
				sess.send(mediaStateFrame(e), false)
			}
		}
		b.mu.Unlock()
	}
}

// endLocked forgets connection mc, which had peer cur, as ending e says. An
// ending because its node died (node_lost) is marked: the gateway and the
// node that stops the dead node's streams both tell of it, and whichever
// comes second is not told.
func (b *mediaBook) endLocked(mc mediaConn, cur mediaPeer, e media.StateEvent) {
	delete(b.at, mc)
	if e.Reason != reasonNodeLost {
		return
	}
	if b.lost == nil {
		b.lost = map[mediaConn]mediaPeer{}
	}
	b.lost[mc] = cur
}

// reasonNodeLost is the reason of the endings of a dead node's connections.
const reasonNodeLost = "node_lost"

// mediaStateFrame is the event that tells a client of e.
func mediaStateFrame(e media.StateEvent) []byte {
	name := protocol.EvPublisherStateUpdate
	if e.Kind == media.Play {
		name = protocol.EvPlayerStateUpdate
	}
	return eventFrame(name, "", protocol.MediaStateUpdate{Stream: string(e.Stream), State: string(e.State),
		Code: int(e.Code), Reason: e.Reason})
}
