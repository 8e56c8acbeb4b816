package protocol

import "github.com/roomlog/roomlog/domain"

var (
	errNotPlayingExample = domain.ErrMediaNotPlaying
	errNoPeerExample     = domain.ErrMediaPeerNotFound
)

// Media signalling (docs/protocol.md, "Media"). One WebRTC peer connection
// carries one published or one played stream. The client offers, the
// server answers with every candidate of its media node (it never
// trickles); the client may trickle its own candidates. None of it is
// written to the log.
const (
	OpMediaOffer      Op = "media_offer"       // SDP offer of a publisher or player peer connection; answered with SDP
	OpMediaCandidate  Op = "media_candidate"   // one trickled ICE candidate of the client
	OpMediaICERestart Op = "media_ice_restart" // an ICE-restart offer on an existing peer connection
	OpMediaClose      Op = "media_close"       // close the peer connection
	OpMediaCheck      Op = "media_check"       // is the peer connection still there, and in what state (after a resume)
)

// Media events: ZEGO onPublisherStateUpdate and onPlayerStateUpdate.
const (
	EvPublisherStateUpdate EventName = "publisher_state_update"
	EvPlayerStateUpdate    EventName = "player_state_update"
)

// MediaOps lists the media operations.
func MediaOps() []Op {
	return []Op{OpMediaOffer, OpMediaCandidate, OpMediaICERestart, OpMediaClose, OpMediaCheck}
}

// MediaEventNames lists the media events.
func MediaEventNames() []EventName {
	return []EventName{EvPublisherStateUpdate, EvPlayerStateUpdate}
}

// Media kinds: which side of a stream a peer connection is.
const (
	MediaPublish = "publish"
	MediaPlay    = "play"
)

// MediaOfferRequest is media_offer and media_ice_restart: the client's SDP
// offer for the peer connection that publishes (kind "publish") or plays
// (kind "play") stream. A publisher must have published the stream
// (publish) and a player must be playing it (play) first.
type MediaOfferRequest struct {
	Stream string `json:"stream"`
	Kind   string `json:"kind"`
	SDP    string `json:"sdp"`
}

// MediaAnswer is the reply to media_offer: the server's SDP answer, and the
// media node that serves the peer connection.
type MediaAnswer struct {
	SDP  string `json:"sdp"`
	Node string `json:"node,omitempty"`
}

// MediaCandidateRequest is one trickled ICE candidate of the client
// (RTCIceCandidateInit), for a peer connection already offered.
type MediaCandidateRequest struct {
	Stream        string  `json:"stream"`
	Kind          string  `json:"kind"`
	Candidate     string  `json:"candidate"`
	SDPMid        *string `json:"sdp_mid,omitempty"`
	SDPMLineIndex *uint16 `json:"sdp_mline_index,omitempty"`
}

// MediaCloseRequest closes a peer connection.
type MediaCloseRequest struct {
	Stream string `json:"stream"`
	Kind   string `json:"kind"`
}

// MediaCheckRequest asks whether the server still has a peer connection of
// the session: a client that resumed its session asks it of each of its own,
// since the state events sent while its connection was down are lost (one
// that says "moved" among them). It fails with media_peer_not_found
// (1907003) when the server has none: a player offers again, a publisher's
// media has ended.
type MediaCheckRequest struct {
	Stream string `json:"stream"`
	Kind   string `json:"kind"`
	// Node is the media node that answered the connection's offer (the
	// offer reply's node): the check goes there. Without it, the check goes
	// to the node that hosts the stream now, which for a stream not
	// published yet may not be the one holding the connection.
	Node string `json:"node,omitempty"`
}

// MediaCheckReply is the reply to media_check: the peer connection's state
// (PUBLISH_REQUESTING, PUBLISHING, PLAY_REQUESTING, PLAYING) and the media
// node that serves it.
type MediaCheckReply struct {
	State string `json:"state"`
	Node  string `json:"node,omitempty"`
}

// MediaStateUpdate is publisher_state_update (states NO_PUBLISH,
// PUBLISH_REQUESTING, PUBLISHING) and player_state_update (NO_PLAY,
// PLAY_REQUESTING, PLAYING).
type MediaStateUpdate struct {
	Stream string `json:"stream"`
	State  string `json:"state"`
	// Code is 0 or why the media failed (1003xxx, 1004xxx).
	Code int `json:"code"`
	// Reason says why the peer connection closed: closed (by the client),
	// ended (the log ended the stream or the play), failed, node_lost,
	// moved (offer again: the stream moved to another media node), shutdown.
	// The SDKs report "gone" themselves when media_check finds no peer
	// connection after a resume.
	Reason string `json:"reason,omitempty"`
}

// NewMediaPayload is NewPayload for the media operations.
func NewMediaPayload(op Op) any {
	switch op {
	case OpMediaOffer, OpMediaICERestart:
		return &MediaOfferRequest{}
	case OpMediaCandidate:
		return &MediaCandidateRequest{}
	case OpMediaClose:
		return &MediaCloseRequest{}
	case OpMediaCheck:
		return &MediaCheckRequest{}
	}
	return nil
}

// mediaExamples are the media frames docs/protocol.md shows.
func mediaExamples() []Example {
	offer := "v=0\r\no=- 4215 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n..."
	mid, line := "0", uint16(0)
	return []Example{
		{"media_offer (a publisher's peer connection; publish the stream first)", req("40", OpMediaOffer,
			MediaOfferRequest{Stream: "alice-cam", Kind: MediaPublish, SDP: offer})},
		{"media_offer: reply (the answer, with every candidate of the media node)", ok("40",
			MediaAnswer{SDP: "v=0\r\no=- 8812 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n...", Node: "01KAK3J7Q8ZX5V2B8T9W0N3E4N"})},
		{"media_offer (a player's peer connection; play the stream first)", req("41", OpMediaOffer,
			MediaOfferRequest{Stream: "bob-cam", Kind: MediaPlay, SDP: offer})},
		{"media_offer: refused (the session does not play the stream)", ReplyTo("41", nil, errNotPlayingExample)},
		{"media_candidate (trickle ICE: optional)", req("42", OpMediaCandidate, MediaCandidateRequest{Stream: "alice-cam",
			Kind: MediaPublish, Candidate: "candidate:1 1 udp 2130706431 192.0.2.7 50000 typ host", SDPMid: &mid,
			SDPMLineIndex: &line})},
		{"media_ice_restart (an offer made with iceRestart)", req("43", OpMediaICERestart,
			MediaOfferRequest{Stream: "bob-cam", Kind: MediaPlay, SDP: offer})},
		{"media_close", req("44", OpMediaClose, MediaCloseRequest{Stream: "bob-cam", Kind: MediaPlay})},
		{"media_check (after a resume)", req("45", OpMediaCheck, MediaCheckRequest{Stream: "bob-cam", Kind: MediaPlay,
			Node: "01KAK3J7Q8ZX5V2B8T9W0N3E4N"})},
		{"media_check: reply", ok("45", MediaCheckReply{State: "PLAYING", Node: "01KAK3J7Q8ZX5V2B8T9W0N3E4N"})},
		{"media_check: refused (no such peer connection: offer again)", ReplyTo("45", nil, errNoPeerExample)},
		{"publisher_state_update", ev(EvPublisherStateUpdate, "", 0, 0, 0,
			MediaStateUpdate{Stream: "alice-cam", State: "PUBLISHING"})},
		{"publisher_state_update: the stream was stopped in the log", ev(EvPublisherStateUpdate, "", 0, 0, 0,
			MediaStateUpdate{Stream: "alice-cam", State: "NO_PUBLISH", Reason: "ended"})},
		{"publisher_state_update: the media node died (the stream is stopped)", ev(EvPublisherStateUpdate, "", 0, 0, 0,
			MediaStateUpdate{Stream: "alice-cam", State: "NO_PUBLISH", Code: 1003004, Reason: "node_lost"})},
		{"player_state_update", ev(EvPlayerStateUpdate, "", 0, 0, 0,
			MediaStateUpdate{Stream: "bob-cam", State: "PLAYING"})},
		{"player_state_update: the stream moved to another media node (offer again)", ev(EvPlayerStateUpdate, "", 0, 0, 0,
			MediaStateUpdate{Stream: "bob-cam", State: "NO_PLAY", Code: 1004005, Reason: "moved"})},
	}
}
