package gateway

import (
	"context"
	"encoding/json"
	"maps"

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
	s.mu.Lock()
	sig.App, sig.Session = s.app, s.id
	if sig.Op != media.OpOffer && sig.Node == "" {
		// Its offer's node: a player waiting for its stream to come back
		// holds its peer there, wherever the stream is hosted next.
		sig.Node = s.mediaAt[mc]
	}
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
	a, err := s.srv.cfg.Media.Signal(ctx, sig)
	if err != nil {
		return nil, true, err
	}
	s.noteMedia(mc, sig.Op, a.Node)
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

// noteMedia remembers which node answered the offer of a media connection
// (or, after a resume through another node, a media_check that found it),
// and forgets it when the connection is closed.
func (s *session) noteMedia(mc mediaConn, op media.SignalOp, node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case op == media.OpClose:
		delete(s.mediaAt, mc)
	case (op == media.OpOffer || op == media.OpRestart || op == media.OpCheck) && node != "":
		if s.mediaAt == nil {
			s.mediaAt = map[mediaConn]string{}
		}
		s.mediaAt[mc] = node
	}
}

// keepMedia carries over where the media connections of old, the session
// as this node held it before a resume, were answered.
func (s *session) keepMedia(old *session) {
	old.mu.Lock()
	at := maps.Clone(old.mediaAt)
	old.mu.Unlock()
	s.mu.Lock()
	s.mediaAt = at
	s.mu.Unlock()
}

// forgetMedia forgets a media connection that its node ended, unless a
// later offer opened it on another node.
func (s *session) forgetMedia(mc mediaConn, node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mediaAt[mc] == node {
		delete(s.mediaAt, mc)
	}
}

// onMediaState delivers a media node's state change to the session, if it
// is on this node.
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
	if e.State == media.NoPublish || e.State == media.NoPlay {
		sess.forgetMedia(mediaConn{e.Stream, e.Kind}, e.Node)
	}
	name := protocol.EvPublisherStateUpdate
	if e.Kind == media.Play {
		name = protocol.EvPlayerStateUpdate
	}
	sess.send(eventFrame(name, "", protocol.MediaStateUpdate{Stream: string(e.Stream), State: string(e.State),
		Code: int(e.Code), Reason: e.Reason}), false)
}
