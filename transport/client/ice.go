package client

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/protocol"
)

// iceWatch restarts the ICE of a publisher's or player's peer connection by
// itself when its path breaks (a network change), as the browser SDK does
// (roomlog.js _iceChanged): at once when ICE fails, after
// Options.ICEDisconnectedGrace when it stays disconnected. One offer of the
// media is out at a time (offerMu: the restarts, the app's RestartICE, a
// player's new connection); a restart that did not bring the connection
// back is followed by the next one only after a backoff (Options.BackoffMin
// doubling to BackoffMax, as reconnections), until the connection is up
// again. A restart the server refuses because the connection is gone
// (media_peer_not_found, media_node_unreachable) hands over to gone: a
// player connects again, a publisher's media has ended.
type iceWatch struct {
	c            *Client
	stream, kind string
	// current returns the media's peer connection while the media is the
	// app's (registered, not closed nor replaced), else nil.
	current func() *webrtc.PeerConnection
	// gone handles a restart refused because the connection is gone.
	gone func(why *domain.Error)

	// offerMu is held while an offer of the media is out.
	offerMu sync.Mutex

	mu      sync.Mutex
	timer   Timer // the restart scheduled, if any
	tries   int   // restarts since the connection was last up
	stopped bool
}

// watch has w follow pc's ICE connection state.
func (w *iceWatch) watch(pc *webrtc.PeerConnection) {
	pc.OnICEConnectionStateChange(func(st webrtc.ICEConnectionState) { w.changed(pc, st) })
}

// changed handles pc's ICE connection state st.
func (w *iceWatch) changed(pc *webrtc.PeerConnection, st webrtc.ICEConnectionState) {
	if w.current() != pc {
		return // not (or no longer) the media's connection
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	switch st {
	case webrtc.ICEConnectionStateConnected, webrtc.ICEConnectionStateCompleted:
		w.cancelLocked()
		w.tries = 0
	case webrtc.ICEConnectionStateFailed:
		w.cancelLocked()
		if w.tries == 0 {
			go w.restart(pc)
		} else {
			w.scheduleLocked(pc, w.c.backoff(w.tries))
		}
	case webrtc.ICEConnectionStateDisconnected:
		w.cancelLocked()
		w.scheduleLocked(pc, w.c.opts.ICEDisconnectedGrace)
	case webrtc.ICEConnectionStateClosed:
		w.cancelLocked()
	}
}

// kick restarts the media's ICE at once if its connection is not up (after
// a resume: the network change that broke the WebSocket may have broken the
// media's path too).
func (w *iceWatch) kick() {
	pc := w.current()
	if pc == nil || !down(pc) {
		return
	}
	w.mu.Lock()
	if !w.stopped {
		w.cancelLocked()
		go w.restart(pc)
	}
	w.mu.Unlock()
}

// stop cancels the restart scheduled, and any later: the media is closed.
func (w *iceWatch) stop() {
	w.mu.Lock()
	w.stopped = true
	w.cancelLocked()
	w.mu.Unlock()
}

func (w *iceWatch) cancelLocked() {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
}

func (w *iceWatch) scheduleLocked(pc *webrtc.PeerConnection, d time.Duration) {
	var t Timer
	t = w.c.clock.AfterFunc(d, func() {
		w.mu.Lock()
		mine := w.timer == t
		if mine {
			w.timer = nil
		}
		w.mu.Unlock()
		if mine {
			go w.restart(pc) // a test's clock may call it as it moves
		}
	})
	w.timer = t
}

// down reports whether pc's ICE lost its path.
func down(pc *webrtc.PeerConnection) bool {
	st := pc.ICEConnectionState()
	return st == webrtc.ICEConnectionStateFailed || st == webrtc.ICEConnectionStateDisconnected
}

// restart makes an ICE restart of pc, unless pc is no longer the media's
// connection or came back meanwhile, or the client was closed. While an
// offer of the media is out (its answer sets the path up; a second offer
// crossing it would leave the two sides with different credentials), it
// only tries again later.
func (w *iceWatch) restart(pc *webrtc.PeerConnection) {
	if !w.offerMu.TryLock() {
		// Its answer may bring the path back; if it does not, try again.
		w.mu.Lock()
		if !w.stopped && w.timer == nil && down(pc) {
			w.scheduleLocked(pc, w.c.backoff(max(w.tries, 1)))
		}
		w.mu.Unlock()
		return
	}
	w.mu.Lock()
	ok := !w.stopped && w.c.ctx.Err() == nil && w.current() == pc && down(pc) &&
		pc.SignalingState() == webrtc.SignalingStateStable
	if ok {
		w.tries++
	}
	w.mu.Unlock()
	if !ok {
		w.offerMu.Unlock()
		return
	}
	w.c.log.Info("roomlog: restarting ICE", "stream", w.stream, "kind", w.kind, "ice", pc.ICEConnectionState().String())
	ctx, cancel := context.WithCancel(w.c.ctx)
	t := w.c.clock.AfterFunc(w.c.opts.RequestTimeout, cancel)
	_, err := w.c.mediaOffer(ctx, protocol.OpMediaICERestart, pc, w.stream, w.kind, &webrtc.OfferOptions{ICERestart: true}, nil)
	t.Stop()
	cancel()
	w.offerMu.Unlock()
	if err == nil {
		return // ICE checks the new path; its next state decides
	}
	if w.current() != pc {
		return // closed, ended or replaced meanwhile
	}
	for _, gone := range []*domain.Error{domain.ErrMediaPeerNotFound, domain.ErrMediaNodeUnreachable} {
		if errors.Is(err, gone) {
			w.c.log.Info("roomlog: the media connection is gone", "stream", w.stream, "kind", w.kind, "err", err)
			w.gone(gone)
			return
		}
	}
	w.c.log.Warn("roomlog: ICE restart failed", "stream", w.stream, "kind", w.kind, "err", err)
	// Its state says nothing more while it stays down: try again later.
	w.mu.Lock()
	if !w.stopped && down(pc) {
		w.cancelLocked()
		w.scheduleLocked(pc, w.c.backoff(w.tries))
	}
	w.mu.Unlock()
}

// restartByHand is the app's RestartICE of pc: it waits for an offer of the
// media that is out.
func (w *iceWatch) restartByHand(ctx context.Context, pc func() *webrtc.PeerConnection) error {
	w.offerMu.Lock()
	defer w.offerMu.Unlock()
	_, err := w.c.mediaOffer(ctx, protocol.OpMediaICERestart, pc(), w.stream, w.kind,
		&webrtc.OfferOptions{ICERestart: true}, nil)
	return err
}
