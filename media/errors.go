package media

import "github.com/roomlog/roomlog/domain"

// Publisher errors (10030xx), player errors (10040xx) and media-plane
// transport errors (19070xx). A reply to a signalling request carries them,
// and so do publisher_state_update and player_state_update events when the
// media of a stream or a play ends for a reason the app must know.
var (
	ErrNotPublishing = &domain.Error{Code: 1003001, Name: "publish_media_not_publishing",
		Message: "the session does not publish this stream: publish it first"}
	ErrPublishBadOffer = &domain.Error{Code: 1003002, Name: "publish_media_bad_offer",
		Message: "the publisher's offer cannot be used"}
	ErrPublishConnectionFailed = &domain.Error{Code: 1003003, Name: "publish_media_connection_failed",
		Message: "the publisher's media connection failed or did not connect in time"}
	ErrPublishNodeLost = &domain.Error{Code: 1003004, Name: "publish_media_node_lost",
		Message: "the media node hosting the stream went away; the stream was stopped"}

	ErrNotPlaying = &domain.Error{Code: 1004001, Name: "play_media_not_playing",
		Message: "the session does not play this stream: play it first"}
	ErrPlayBadOffer = &domain.Error{Code: 1004002, Name: "play_media_bad_offer",
		Message: "the player's offer cannot be used"}
	ErrPlayConnectionFailed = &domain.Error{Code: 1004003, Name: "play_media_connection_failed",
		Message: "the player's media connection failed or did not connect in time"}
	ErrPlayNodeLost = &domain.Error{Code: 1004004, Name: "play_media_node_lost",
		Message: "the media node serving the play went away"}
	ErrPlayMoved = &domain.Error{Code: 1004005, Name: "play_media_moved",
		Message: "the stream is now hosted on another media node: offer again"}

	ErrMediaUnavailable = &domain.Error{Code: 1907001, Name: "media_unavailable",
		Message: "no media node is available"}
	ErrNodeUnreachable = &domain.Error{Code: 1907002, Name: "media_node_unreachable",
		Message: "the media node hosting the stream did not answer"}
	ErrNoPeer = &domain.Error{Code: 1907003, Name: "media_peer_not_found",
		Message: "no media connection for this stream: offer first"}
	ErrTooManyPeers = &domain.Error{Code: 1907004, Name: "media_too_many_peers",
		Message: "the session holds the most media connections allowed"}
	ErrBadSignal = &domain.Error{Code: 1907005, Name: "media_bad_signal",
		Message: "the signalling request is malformed"}
)

// Errors lists the media plane's errors.
func Errors() []*domain.Error {
	return []*domain.Error{ErrNotPublishing, ErrPublishBadOffer, ErrPublishConnectionFailed, ErrPublishNodeLost,
		ErrNotPlaying, ErrPlayBadOffer, ErrPlayConnectionFailed, ErrPlayNodeLost, ErrPlayMoved,
		ErrMediaUnavailable, ErrNodeUnreachable, ErrNoPeer, ErrTooManyPeers, ErrBadSignal}
}
