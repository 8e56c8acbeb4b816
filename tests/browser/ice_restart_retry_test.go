package browser

import (
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/protocol"
)

// An ICE restart the server refuses for a reason other than the connection
// being gone (a transient error: unavailable, internal_error, a timeout, or
// the reply lost with the WebSocket) must leave the connection able to
// offer again, and be tried again while ICE is still down. The SDK used to
// leave the RTCPeerConnection in have-local-offer (no rollback), so that
// _restartIce, which waits for 'stable', never tried again, and the media
// stayed dead for good.
//
// As in ice_refused_test.go, the page's engine speaks to a scripted gateway
// whose media node is a Pion peer connection of the test, on loopback; the
// test closes that peer, and Chrome's ICE goes disconnected.

// A player whose ICE restart is refused with 1906098 (unavailable) rolls
// the restart's offer back and restarts again, after a backoff; that
// restart, answered, brings the same connection back (ICE connected), and
// the app is told nothing.
func TestSDKATransientlyRefusedICERestartIsTriedAgain(t *testing.T) {
	p, c, s, offer, restart, mark := playingThenCut(t)
	refused := time.Now()
	c.Refuse(restart.ID, domain.ErrUnavailable)
	again := mediaReq(c, protocol.OpMediaICERestart) // the SDK before never sent it
	// Spaced like reconnections: the first backoff is at least half of
	// backoffMin (the harness's engines: 50 ms), counted from when the
	// refusal reached the page.
	var least int
	p.Eval(`T.engines.a._opts.backoffMin`, &least)
	if d := time.Since(refused); d < time.Duration(least)*time.Millisecond/2 {
		t.Errorf("the restart was tried again %s after the refusal, sooner than the backoff (backoffMin %d ms)", d, least)
	}
	if clienttest.OfferUfrag(t, again) == clienttest.OfferUfrag(t, offer) || clienttest.OfferUfrag(t, again) == clienttest.OfferUfrag(t, restart) {
		t.Error("the second ICE restart's offer reuses earlier credentials")
	}
	s.Answer(c, again, true)
	p.iceUp("_players", false)
	var same bool
	p.Eval(`T.engines.a._players.get('cam').pc === T.first`, &same)
	if !same {
		t.Error("the player made a new connection rather than restart ICE")
	}
	if got := p.lastThing(c, "playerStateUpdate", mark); len(got) != 0 {
		t.Errorf("the app was told %+v", got)
	}
	if st := p.entryState("a", "player", "cam"); st == "untracked" || st == "NO_PLAY" {
		t.Errorf("a's player of cam is %s", st)
	}
}
