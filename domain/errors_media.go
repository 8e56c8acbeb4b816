package domain

// The media plane's codes: publisher errors (10030xx), player errors
// (10040xx) and media-plane transport errors (19070xx). A reply to a media
// signalling request carries them, and so do publisher_state_update and
// player_state_update events when the media of a stream or a play ends for
// a reason the app must know. They live here, beside the other codes, so
// that every code has one home; the media package uses them.
var (
	ErrMediaNotPublishing = &Error{Code: 1003001, Name: "publish_media_not_publishing",
		Message: "the session does not publish this stream: publish it first"}
	ErrMediaPublishBadOffer = &Error{Code: 1003002, Name: "publish_media_bad_offer",
		Message: "the publisher's offer cannot be used"}
	ErrMediaPublishConnectionFailed = &Error{Code: 1003003, Name: "publish_media_connection_failed",
		Message: "the publisher's media connection failed or did not connect in time"}
	ErrMediaPublishNodeLost = &Error{Code: 1003004, Name: "publish_media_node_lost",
		Message: "the media node hosting the stream went away; the stream was stopped"}

	ErrMediaNotPlaying = &Error{Code: 1004001, Name: "play_media_not_playing",
		Message: "the session does not play this stream: play it first"}
	ErrMediaPlayBadOffer = &Error{Code: 1004002, Name: "play_media_bad_offer",
		Message: "the player's offer cannot be used"}
	ErrMediaPlayConnectionFailed = &Error{Code: 1004003, Name: "play_media_connection_failed",
		Message: "the player's media connection failed or did not connect in time"}
	ErrMediaPlayNodeLost = &Error{Code: 1004004, Name: "play_media_node_lost",
		Message: "the media node serving the play went away"}
	ErrMediaPlayMoved = &Error{Code: 1004005, Name: "play_media_moved",
		Message: "the stream is now hosted on another media node: offer again"}

	ErrMediaUnavailable = &Error{Code: 1907001, Name: "media_unavailable",
		Message: "no media node is available"}
	ErrMediaNodeUnreachable = &Error{Code: 1907002, Name: "media_node_unreachable",
		Message: "the media node hosting the stream did not answer"}
	ErrMediaPeerNotFound = &Error{Code: 1907003, Name: "media_peer_not_found",
		Message: "no media connection for this stream: offer first"}
	ErrMediaTooManyPeers = &Error{Code: 1907004, Name: "media_too_many_peers",
		Message: "the session holds the most media connections allowed"}
	ErrMediaBadSignal = &Error{Code: 1907005, Name: "media_bad_signal",
		Message: "the signalling request is malformed"}
)

// MediaErrors lists the media plane's errors.
func MediaErrors() []*Error {
	return []*Error{ErrMediaNotPublishing, ErrMediaPublishBadOffer, ErrMediaPublishConnectionFailed,
		ErrMediaPublishNodeLost, ErrMediaNotPlaying, ErrMediaPlayBadOffer, ErrMediaPlayConnectionFailed,
		ErrMediaPlayNodeLost, ErrMediaPlayMoved, ErrMediaUnavailable, ErrMediaNodeUnreachable, ErrMediaPeerNotFound,
		ErrMediaTooManyPeers, ErrMediaBadSignal}
}
