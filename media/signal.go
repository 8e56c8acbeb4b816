// Package media is roomlog's media plane: a selective forwarding unit (SFU)
// on Pion WebRTC that moves audio and video between the sessions the room log
// says may exchange them.
//
// One peer connection carries one published or one played stream (ZEGO's
// per-stream API). Forwarding is keyed by stream, not by room: a player in
// one room may play a stream published in another (cross-room co-hosting).
// The SFU never decides who may send or receive: the live projection does.
// Only the session that published stream S in the log may send S; only a
// session whose play of S is in the fold may receive it; when the fold stops
// saying so (stop_publish, stop_play, a logout, a leave, a switch, a kick, a
// heartbeat timeout, a destroyed room) the media closes.
//
// Signalling (offers, answers, ICE candidates) never enters the log: it
// travels on the client's WebSocket and, between nodes, over core NATS
// request/reply.
package media

import (
	"github.com/roomlog/roomlog/domain"
)

// Kind tells a publisher's peer connection from a player's.
type Kind string

// Kinds.
const (
	Publish Kind = "publish"
	Play    Kind = "play"
)

// SignalOp is what a signalling request asks.
type SignalOp string

// Signalling operations.
const (
	// OpOffer answers an SDP offer. A second offer for the same stream and
	// kind renegotiates the existing peer connection (an ICE restart).
	OpOffer SignalOp = "offer"
	// OpRestart is an ICE-restart offer: like OpOffer, but only for an
	// existing peer connection.
	OpRestart SignalOp = "restart"
	// OpCandidate adds a trickled ICE candidate of the client.
	OpCandidate SignalOp = "candidate"
	// OpClose closes the peer connection.
	OpClose SignalOp = "close"
	// OpCheck asks for the peer connection's state: a session that resumed
	// missed the state events sent while its connection was down.
	OpCheck SignalOp = "check"
)

// Signal is one signalling request of a session, as a gateway hands it to
// the media node that hosts the stream.
type Signal struct {
	App     domain.AppID     `json:"app"`
	Session domain.SessionID `json:"session"`
	Stream  domain.StreamID  `json:"stream"`
	Kind    Kind             `json:"kind"`
	Op      SignalOp         `json:"op"`
	SDP     string           `json:"sdp,omitempty"`
	// Candidate is one ICE candidate line ("candidate:..."), with its media
	// section.
	Candidate     string  `json:"candidate,omitempty"`
	SDPMid        *string `json:"sdp_mid,omitempty"`
	SDPMLineIndex *uint16 `json:"sdp_mline_index,omitempty"`
	// After is a log position the node's projection must have folded
	// before the request is authorized: the session's own commands (its
	// publish or play) are visible to it.
	After uint64 `json:"after,omitempty"`
	// Node is the media node that answered the connection's offer, where
	// the gateway knows one. The operations on an open connection (OpCheck,
	// OpClose, OpCandidate, OpRestart) go there rather than to the stream's
	// host (a player waiting for its stream to come back holds its peer on
	// the node it played from, wherever the stream was or will be). So does
	// a later OpOffer while the stream has no host (a second offer of the
	// same peer connection renegotiates it, as an ICE restart does; one of
	// a new connection replaces the peer there): once the stream is hosted
	// elsewhere, the peer is being moved there, and the offer goes to the
	// host.
	Node string `json:"node,omitempty"`
}

// Answer is a media node's answer to a signal.
type Answer struct {
	// SDP is the answer to an offer, with every candidate of the node
	// (the node gathers before it answers: it never trickles).
	SDP string `json:"sdp,omitempty"`
	// Node is the media node that answered.
	Node string `json:"node,omitempty"`
	// Peer is the identity of the peer connection that answered (OpOffer,
	// OpRestart, OpCheck): see StateEvent.Peer. An offer that renegotiates
	// a peer answers with its identity; one that opens a new peer (a first
	// offer, or one from a new connection, which replaces the old peer)
	// with a new one.
	Peer string `json:"peer,omitempty"`
	// State is the peer connection's state (OpCheck).
	State State `json:"state,omitempty"`
	// Error is set when the signal was refused.
	Error *WireError `json:"error,omitempty"`
}

// WireError is a coded error as it crosses the bus.
type WireError struct {
	Code    domain.Code `json:"code"`
	Name    string      `json:"name"`
	Message string      `json:"message"`
	Detail  string      `json:"detail,omitempty"`
}

// Err returns the error the wire form carries.
func (w *WireError) Err() error {
	if w == nil {
		return nil
	}
	return &domain.Error{Code: w.Code, Name: w.Name, Message: w.Message, Detail: w.Detail}
}

// wireError is err's wire form.
func wireError(err error) *WireError {
	if err == nil {
		return nil
	}
	code, name := domain.CodeOf(err)
	w := &WireError{Code: code, Name: name, Message: err.Error()}
	if de, ok := err.(*domain.Error); ok {
		w.Message, w.Detail = de.Message, de.Detail
	}
	return w
}

// State is a publisher's or player's state (ZEGO ZegoPublisherState and
// ZegoPlayerState, as the Web SDK spells them).
type State string

// States.
const (
	NoPublish         State = "NO_PUBLISH"
	PublishRequesting State = "PUBLISH_REQUESTING"
	Publishing        State = "PUBLISHING"
	NoPlay            State = "NO_PLAY"
	PlayRequesting    State = "PLAY_REQUESTING"
	Playing           State = "PLAYING"
)

// StateEvent tells a session that the media of one of its streams or plays
// changed state (onPublisherStateUpdate / onPlayerStateUpdate).
type StateEvent struct {
	App     domain.AppID     `json:"app"`
	Session domain.SessionID `json:"session"`
	Stream  domain.StreamID  `json:"stream"`
	Kind    Kind             `json:"kind"`
	State   State            `json:"state"`
	// Code is 0, or why the media ended or failed (10030xx, 10040xx).
	Code domain.Code `json:"code,omitempty"`
	// Reason says why a media connection closed: "closed" (the client
	// closed it), "ended" (the log no longer lets it flow: the stream or
	// the play ended), "failed", "node_lost", "moved", "shutdown".
	Reason string `json:"reason,omitempty"`
	// Node is the media node the connection was on.
	Node string `json:"node,omitempty"`
	// Peer identifies the peer connection the event is about, among the
	// peers of Node: the node mints it when it opens the peer, and names it
	// in the answer to the offer (Answer.Peer) and in every state event of
	// that peer. A session's later offer may replace the peer with a new
	// one (another identity) before an event of the old one reaches the
	// gateway: state events travel on the bus, answers by request/reply,
	// and nothing orders the two. The gateway tells the session only of
	// the peer its connection has now, by this identity. Empty from a node
	// that mints none (an older version, or the node that tells of a dead
	// node's streams, which knows no peers of it).
	Peer string `json:"peer,omitempty"`
}
