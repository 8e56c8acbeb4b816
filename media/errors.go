package media

import "github.com/roomlog/roomlog/domain"

// The media plane's errors, under short names (defined in domain, with
// every other code).
var (
	ErrNotPublishing           = domain.ErrMediaNotPublishing
	ErrPublishBadOffer         = domain.ErrMediaPublishBadOffer
	ErrPublishConnectionFailed = domain.ErrMediaPublishConnectionFailed
	ErrPublishNodeLost         = domain.ErrMediaPublishNodeLost
	ErrNotPlaying              = domain.ErrMediaNotPlaying
	ErrPlayBadOffer            = domain.ErrMediaPlayBadOffer
	ErrPlayConnectionFailed    = domain.ErrMediaPlayConnectionFailed
	ErrPlayNodeLost            = domain.ErrMediaPlayNodeLost
	ErrPlayMoved               = domain.ErrMediaPlayMoved
	ErrMediaUnavailable        = domain.ErrMediaUnavailable
	ErrNodeUnreachable         = domain.ErrMediaNodeUnreachable
	ErrNoPeer                  = domain.ErrMediaPeerNotFound
	ErrTooManyPeers            = domain.ErrMediaTooManyPeers
	ErrBadSignal               = domain.ErrMediaBadSignal
)

// Errors lists the media plane's errors.
func Errors() []*domain.Error { return domain.MediaErrors() }
