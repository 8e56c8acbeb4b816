package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/protocol"
)

// MediaState is a publisher's or a player's state (ZEGO
// ZegoPublisherState / ZegoPlayerState).
type MediaState string

// Media states.
const (
	NoPublish         MediaState = "NO_PUBLISH"
	PublishRequesting MediaState = "PUBLISH_REQUESTING"
	Publishing        MediaState = "PUBLISHING"
	NoPlay            MediaState = "NO_PLAY"
	PlayRequesting    MediaState = "PLAY_REQUESTING"
	Playing           MediaState = "PLAYING"
)

// MediaOptions tunes PublishMedia and PlayMedia.
type MediaOptions struct {
	// API builds the peer connection. Default: Opus, VP8 and H.264 with
	// Pion's default interceptors (NACK, RTCP reports, TWCC).
	API *webrtc.API
	// Configuration is the peer connection's (ICE servers, ...).
	Configuration webrtc.Configuration
}

func (o MediaOptions) api() (*webrtc.API, error) {
	if o.API != nil {
		return o.API, nil
	}
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, reg); err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg)), nil
}

// mediaKey names the publisher (kind protocol.MediaPublish) or player
// (protocol.MediaPlay) of a stream.
type mediaKey struct{ stream, kind string }

// markGoneLocked records that the client told the app itself of the end of
// stream's kind connection, found gone (see Client.goneTold); c.mediaMu is
// held.
func (c *Client) markGoneLocked(stream, kind string) {
	if c.goneTold == nil {
		c.goneTold = map[mediaKey]bool{}
	}
	c.goneTold[mediaKey{stream, kind}] = true
}

// MediaPublisher is the peer connection that sends one published stream.
type MediaPublisher struct {
	c      *Client
	stream string
	pc     *webrtc.PeerConnection
	node   string // the media node that answered its offer
	ice    *iceWatch
}

// PublishMedia sends tracks (audio and/or video) as stream's media. Publish
// the stream first (StartPublishingStream). State changes arrive at
// Handlers.OnPublisherStateUpdate.
//
// When the connection's ICE fails, or stays disconnected for
// Options.ICEDisconnectedGrace, the publisher restarts ICE by itself (see
// RestartICE). If the server answers that the connection is gone (1907003
// media_peer_not_found, 1907002 media_node_unreachable), its media has
// ended: OnPublisherStateUpdate gets NO_PUBLISH with that code and reason
// "gone", as after a resume that finds the connection gone.
//
// If the session ends while the offer is in flight (the client had to log
// in again on a new session), the call fails with code 1002053, as
// OnPublisherStateUpdate reports the media that ended with it; once Close
// was called it fails with ErrClosed. Either way its peer connection is
// closed.
func (c *Client) PublishMedia(ctx context.Context, stream string, tracks []webrtc.TrackLocal, opts MediaOptions) (*MediaPublisher, error) {
	api, err := opts.api()
	if err != nil {
		return nil, err
	}
	pc, err := api.NewPeerConnection(opts.Configuration)
	if err != nil {
		return nil, err
	}
	for _, t := range tracks {
		sender, err := pc.AddTrack(t)
		if err != nil {
			pc.Close()
			return nil, err
		}
		go drainRTCP(sender)
	}
	p := &MediaPublisher{c: c, stream: stream, pc: pc}
	p.ice = &iceWatch{c: c, stream: stream, kind: protocol.MediaPublish, current: p.current, gone: p.gone}
	p.ice.watch(pc)
	call, ctx := c.beginMedia(ctx, stream, protocol.MediaPublish)
	node, err := c.mediaOffer(ctx, protocol.OpMediaOffer, pc, stream, protocol.MediaPublish, nil, call)
	p.node = node
	_, forgotten, err := c.finishMedia(call, err, func() {
		if c.publishers == nil {
			c.publishers = map[string]*MediaPublisher{}
		}
		c.publishers[stream] = p
		// An earlier connection found gone since this one's answer: the
		// endings from here on are this one's.
		delete(c.goneTold, mediaKey{stream, protocol.MediaPublish})
	})
	if err != nil {
		pc.Close()
		return nil, err
	}
	if forgotten {
		p.ice.stop()
		pc.Close() // its media ended as it was answered: the app was told
		return p, nil
	}
	// A state it reached before it was registered went unheeded.
	p.ice.changed(pc, pc.ICEConnectionState())
	return p, nil
}

// current returns the publisher's peer connection while it is the
// client's publisher of its stream, else nil.
func (p *MediaPublisher) current() *webrtc.PeerConnection {
	p.c.mediaMu.Lock()
	defer p.c.mediaMu.Unlock()
	if p.c.publishers[p.stream] != p {
		return nil
	}
	return p.pc
}

// gone ends the publisher whose connection the media node no longer has
// (why: media_peer_not_found or media_node_unreachable), telling the app,
// unless it was ended or replaced meanwhile.
func (p *MediaPublisher) gone(why *domain.Error) {
	c := p.c
	c.mediaMu.Lock()
	mine := c.publishers[p.stream] == p
	if mine {
		delete(c.publishers, p.stream)
		c.markGoneLocked(p.stream, protocol.MediaPublish)
	}
	c.mediaMu.Unlock()
	if !mine {
		return
	}
	closeMedia(map[string]*MediaPublisher{p.stream: p}, nil)
	if h := &c.opts.Handlers; h.OnPublisherStateUpdate != nil {
		c.disp.push(func() { h.OnPublisherStateUpdate(p.stream, NoPublish, why.Code, "gone") })
	}
}

// drainRTCP reads a sender's RTCP, so that its interceptors (NACK
// retransmission, reports) see it.
func drainRTCP(s *webrtc.RTPSender) {
	for {
		if _, _, err := s.ReadRTCP(); err != nil {
			return
		}
	}
}

// PeerConnection returns the publisher's peer connection.
func (p *MediaPublisher) PeerConnection() *webrtc.PeerConnection { return p.pc }

// RestartICE renegotiates the connection with fresh ICE credentials (after
// a network change). The publisher does so by itself when its ICE fails or
// stays disconnected; an app that learns of a network change sooner may
// call it. It waits for an offer of the publisher that is out (a restart
// the publisher is making).
func (p *MediaPublisher) RestartICE(ctx context.Context) error {
	return p.ice.restartByHand(ctx, func() *webrtc.PeerConnection { return p.pc })
}

// Close closes the peer connection, telling the server first, unless a
// newer PublishMedia of the stream replaced it (the server's connection for
// the stream is the newer one's then) or the server ended its media.
func (p *MediaPublisher) Close(ctx context.Context) error {
	p.c.mediaMu.Lock()
	mine := p.c.publishers[p.stream] == p
	if mine {
		delete(p.c.publishers, p.stream)
	}
	p.c.mediaMu.Unlock()
	p.ice.stop()
	var err error
	if mine {
		_, err = p.c.do(ctx, protocol.OpMediaClose, protocol.MediaCloseRequest{Stream: p.stream,
			Kind: protocol.MediaPublish}, nil)
	}
	return errors.Join(err, p.pc.Close())
}

// MediaPlayer is the peer connection that receives one played stream.
type MediaPlayer struct {
	c       *Client
	stream  string
	opts    MediaOptions
	onTrack func(*webrtc.TrackRemote, *webrtc.RTPReceiver)
	ice     *iceWatch

	mu     sync.Mutex
	pc     *webrtc.PeerConnection
	node   string // the media node that answered its current offer
	closed bool
}

// PlayMedia receives stream's audio and video: onTrack is called with each
// track as it arrives (read it until it ends). Play the stream first
// (StartPlayingStream). State changes arrive at Handlers.OnPlayerStateUpdate.
// When the server says the stream moved to another media node
// (play_media_moved, 1004005), the player connects again by itself.
// When the connection's ICE fails, or stays disconnected for
// Options.ICEDisconnectedGrace, it restarts ICE by itself (see RestartICE);
// if the server answers that the connection is gone (1907003
// media_peer_not_found, 1907002 media_node_unreachable), it connects again
// too, as after a resume that finds the connection gone. The media node's
// own ending of the connection found gone (NO_PLAY, "failed" say), which may
// still be on its way, is not told, and does not end the player.
//
// As with PublishMedia, a call in flight when the session ends fails with
// code 1002053, one in flight when Close is called with ErrClosed, and its
// peer connection is closed.
func (c *Client) PlayMedia(ctx context.Context, stream string, onTrack func(*webrtc.TrackRemote, *webrtc.RTPReceiver),
	opts MediaOptions) (*MediaPlayer, error) {
	p := &MediaPlayer{c: c, stream: stream, opts: opts, onTrack: onTrack}
	p.ice = &iceWatch{c: c, stream: stream, kind: protocol.MediaPlay, current: p.current, gone: p.gone}
	call, ctx := c.beginMedia(ctx, stream, protocol.MediaPlay)
	moved, forgotten, err := c.finishMedia(call, p.connect(ctx, call), func() {
		if c.players == nil {
			c.players = map[string]*MediaPlayer{}
		}
		c.players[stream] = p
		delete(c.goneTold, mediaKey{stream, protocol.MediaPlay}) // as a publisher's
	})
	if err != nil {
		if pc := p.PeerConnection(); pc != nil {
			pc.Close()
		}
		return nil, err
	}
	if forgotten {
		// Its media ended as it was answered (the app was told).
		closeMedia(nil, map[string]*MediaPlayer{stream: p})
		return p, nil
	}
	if moved {
		// The stream moved while the answer was on its way: follow it, as
		// mediaEvent does for a registered player.
		go p.moved()
		return p, nil
	}
	// A state it reached before it was registered went unheeded.
	if pc := p.current(); pc != nil {
		p.ice.changed(pc, pc.ICEConnectionState())
	}
	return p, nil
}

// current returns the player's peer connection while it is the client's
// player of its stream and not closed, else nil.
func (p *MediaPlayer) current() *webrtc.PeerConnection {
	p.c.mediaMu.Lock()
	mine := p.c.players[p.stream] == p
	p.c.mediaMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !mine || p.closed {
		return nil
	}
	return p.pc
}

// errPlayerClosed fails the connection of a player closed meanwhile (by the
// app, or with its session).
var errPlayerClosed = errors.New("roomlog: the player was closed")

// connect makes a new peer connection for the player and has it answered;
// call is the PlayMedia in flight (nil when a registered player connects
// again). No ICE restart crosses its offer.
func (p *MediaPlayer) connect(ctx context.Context, call *mediaCall) error {
	p.ice.offerMu.Lock()
	defer p.ice.offerMu.Unlock()
	api, err := p.opts.api()
	if err != nil {
		return err
	}
	pc, err := api.NewPeerConnection(p.opts.Configuration)
	if err != nil {
		return err
	}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{
			Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			pc.Close()
			return err
		}
	}
	if p.onTrack != nil {
		pc.OnTrack(p.onTrack)
	}
	p.ice.watch(pc)
	// A player closed meanwhile (Close, or endMedia while moved was on its
	// way here) closed the connection it saw: a new one would be left open.
	p.mu.Lock()
	closed, old := p.closed, p.pc
	if !closed {
		p.pc = pc
	}
	p.mu.Unlock()
	if closed {
		pc.Close()
		return errPlayerClosed
	}
	if old != nil {
		old.Close()
	}
	node, err := p.c.mediaOffer(ctx, protocol.OpMediaOffer, pc, p.stream, protocol.MediaPlay, nil, call)
	if err != nil {
		pc.Close()
		return err
	}
	p.mu.Lock()
	closed = p.closed
	if !closed {
		p.node = node
	}
	p.mu.Unlock()
	if closed {
		// Closed while the offer was answered: whoever closed it may have
		// seen the old connection or this one; closing again is harmless.
		pc.Close()
		return errPlayerClosed
	}
	return nil
}

// PeerConnection returns the player's current peer connection.
func (p *MediaPlayer) PeerConnection() *webrtc.PeerConnection {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pc
}

// RestartICE renegotiates the connection with fresh ICE credentials (after
// a network change). The player does so by itself when its ICE fails or
// stays disconnected; an app that learns of a network change sooner may
// call it. It waits for an offer of the player that is out (a restart the
// player is making, or its connecting again).
func (p *MediaPlayer) RestartICE(ctx context.Context) error {
	return p.ice.restartByHand(ctx, p.PeerConnection)
}

// Close closes the peer connection, telling the server first, unless a
// newer PlayMedia of the stream replaced it or the server ended its media.
func (p *MediaPlayer) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	pc := p.pc
	p.mu.Unlock()
	p.c.mediaMu.Lock()
	mine := p.c.players[p.stream] == p
	if mine {
		delete(p.c.players, p.stream)
	}
	p.c.mediaMu.Unlock()
	p.ice.stop()
	var err error
	if mine {
		_, err = p.c.do(ctx, protocol.OpMediaClose, protocol.MediaCloseRequest{Stream: p.stream,
			Kind: protocol.MediaPlay}, nil)
	}
	return errors.Join(err, pc.Close())
}

// gone connects the player again, as the media node no longer has its
// connection (why: media_peer_not_found or media_node_unreachable; an ICE
// restart refused, a check after a resume), unless it was closed or
// replaced meanwhile. The media node's own ending of the old connection,
// which may still be on its way, neither ends the player nor is told
// (goneTold).
func (p *MediaPlayer) gone(*domain.Error) {
	c := p.c
	c.mediaMu.Lock()
	mine := c.players[p.stream] == p
	if mine {
		c.markGoneLocked(p.stream, protocol.MediaPlay)
	}
	c.mediaMu.Unlock()
	if mine {
		p.moved()
	}
}

// moved connects the player again: its stream is on another media node now.
func (p *MediaPlayer) moved() {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.c.opts.RequestTimeout)
	defer cancel()
	err := p.connect(ctx, nil)
	if err == nil {
		return
	}
	p.c.log.Warn("roomlog: the player could not connect again", "stream", p.stream, "err", err)
	// Refused (the play ended while the connection was down, say): the app
	// is told, as the server would have.
	var de *domain.Error
	if !errors.As(err, &de) {
		return
	}
	p.c.mediaMu.Lock()
	mine := p.c.players[p.stream] == p
	if mine {
		delete(p.c.players, p.stream)
	}
	p.c.mediaMu.Unlock()
	if mine {
		closeMedia(nil, map[string]*MediaPlayer{p.stream: p})
	}
	if h := &p.c.opts.Handlers; mine && h.OnPlayerStateUpdate != nil {
		p.c.disp.push(func() { h.OnPlayerStateUpdate(p.stream, NoPlay, de.Code, "ended") })
	}
}

// forgetMedia stops following the publisher or player of stream whose
// media the server ended, and closes its peer connection: a resume has
// nothing of it to check. A call whose answer came before the ending (a
// logout racing the offer) is not registered either: the app is told of
// the ending as for the others.
func (c *Client) forgetMedia(stream, kind string) {
	var publishers map[string]*MediaPublisher
	var players map[string]*MediaPlayer
	c.mediaMu.Lock()
	if kind == protocol.MediaPublish {
		if p := c.publishers[stream]; p != nil {
			publishers = map[string]*MediaPublisher{stream: p}
			delete(c.publishers, stream)
		}
	} else if p := c.players[stream]; p != nil {
		players = map[string]*MediaPlayer{stream: p}
		delete(c.players, stream)
	}
	if m := c.answeredLocked(stream, kind); m != nil {
		m.forgotten = true
	}
	c.mediaMu.Unlock()
	closeMedia(publishers, players)
}

// mediaCall is a PublishMedia or PlayMedia in flight: its peer connection
// exists and its offer is being made, but its media is not registered yet,
// so endMedia and the media events cannot find it among the publishers and
// players. They find it among c.offers (Close through the client's
// context) and leave their mark on it, which finishMedia reads as it
// decides, under c.mediaMu, whether the media is registered: so that no
// call registers media that ended meanwhile, or leaves an open peer
// connection nobody closes.
type mediaCall struct {
	stream, kind string
	// cancel ends the call's context, so that a call waiting for its
	// answer (or for a connection to send its offer on) returns at once.
	cancel context.CancelCauseFunc
	// unhook stops watching the client's context (Close).
	unhook func() bool

	// Under c.mediaMu.
	// answered: the answer arrived, on the reader goroutine, so that the
	// media events that follow it on the connection (which the server sent
	// after answering) apply to this call.
	answered bool
	// ended: the call fails with this (its session ended, or the client
	// was closed).
	ended error
	// forgotten: the server ended the media after answering (NO_PUBLISH,
	// NO_PLAY); the app was told by the callback.
	forgotten bool
	// moved: the server said the played stream moved after answering.
	moved bool
}

// beginMedia registers a PublishMedia or PlayMedia about to make its offer,
// and returns the context to make it with.
func (c *Client) beginMedia(ctx context.Context, stream, kind string) (*mediaCall, context.Context) {
	ctx, cancel := context.WithCancelCause(ctx)
	m := &mediaCall{stream: stream, kind: kind, cancel: cancel}
	c.mediaMu.Lock()
	if c.offers == nil {
		c.offers = map[*mediaCall]struct{}{}
	}
	c.offers[m] = struct{}{}
	c.mediaMu.Unlock()
	// Close fails the requests waiting for a reply, but not an offer still
	// gathering its candidates, nor one whose answer already came.
	m.unhook = context.AfterFunc(c.ctx, func() {
		c.mediaMu.Lock()
		if m.ended == nil {
			m.ended = ErrClosed
		}
		c.mediaMu.Unlock()
		cancel(ErrClosed)
	})
	return m, ctx
}

// finishMedia ends a call begun by beginMedia whose offer returned err: it
// registers the media (register runs under c.mediaMu) unless the call
// failed, was ended meanwhile or the client was closed, and returns the
// call's error then; the caller closes the peer connection. moved says the
// played stream moved while the answer was on its way; forgotten, that its
// media ended once answered (the app was told): not registered, no error,
// and the caller closes the peer connection too.
func (c *Client) finishMedia(m *mediaCall, err error, register func()) (moved, forgotten bool, _ error) {
	m.unhook()
	c.mediaMu.Lock()
	delete(c.offers, m)
	switch {
	case m.ended != nil:
		// Whatever the offer returned (an answer from the session that is
		// gone, a lost reply, a cancelled context), the media ended.
		err = m.ended
	case err == nil && c.ctx.Err() != nil:
		err = ErrClosed // closed before the AfterFunc ran
	case err == nil && !m.forgotten:
		register()
		moved = m.moved
	case err == nil:
		forgotten = true
	}
	c.mediaMu.Unlock()
	m.cancel(nil)
	return moved, forgotten, err
}

// answeredLocked returns the answered call in flight for stream and kind,
// if any; c.mediaMu is held.
func (c *Client) answeredLocked(stream, kind string) *mediaCall {
	for m := range c.offers {
		if m.answered && m.stream == stream && m.kind == kind {
			return m
		}
	}
	return nil
}

// errMediaEnded is the error of a call in flight when its session ended.
func errMediaEnded(why *domain.Error, kind string) *Error {
	return localError(protocol.OpMediaOffer, why,
		"the session ended while the %s offer was in flight, and its media with it; %s the stream again", kind, kind)
}

// endMedia ends every publisher and player of a session that is gone (its
// heartbeat timed out while the connection was down): the server ended
// their media with the session, and told that session, not this one. The
// app is told here, as it would have been (NO_PUBLISH / NO_PLAY). A
// PublishMedia or PlayMedia in flight fails instead (its caller has no
// publisher or player yet), even if its answer came: that answer was the
// old session's.
func (c *Client) endMedia(why *domain.Error, reason string) {
	code := why.Code
	c.mediaMu.Lock()
	publishers, players, offers := c.publishers, c.players, c.offers
	c.publishers, c.players, c.offers = nil, nil, nil
	c.goneTold = nil // no ending of the old session's connections comes to the new one
	for m := range offers {
		if m.ended == nil {
			m.ended = errMediaEnded(why, m.kind)
		}
	}
	c.mediaMu.Unlock()
	for m := range offers {
		m.cancel(m.ended)
	}
	h := &c.opts.Handlers
	for _, stream := range slices.Sorted(maps.Keys(publishers)) {
		if h.OnPublisherStateUpdate != nil {
			c.disp.push(func() { h.OnPublisherStateUpdate(stream, NoPublish, code, reason) })
		}
	}
	for _, stream := range slices.Sorted(maps.Keys(players)) {
		if h.OnPlayerStateUpdate != nil {
			c.disp.push(func() { h.OnPlayerStateUpdate(stream, NoPlay, code, reason) })
		}
	}
	closeMedia(publishers, players)
}

// dropMedia forgets the client's publishers and players and closes their
// peer connections, telling no one (the client is closing).
func (c *Client) dropMedia() {
	c.mediaMu.Lock()
	publishers, players := c.publishers, c.players
	c.publishers, c.players = nil, nil
	c.mediaMu.Unlock()
	closeMedia(publishers, players)
}

// closeMedia closes the peer connections of publishers and players, the
// players for good (none connects again when its stream moves).
func closeMedia(publishers map[string]*MediaPublisher, players map[string]*MediaPlayer) {
	var pcs []*webrtc.PeerConnection
	for _, p := range publishers {
		p.ice.stop()
		pcs = append(pcs, p.pc)
	}
	for _, p := range players {
		p.ice.stop()
		p.mu.Lock()
		p.closed = true
		pcs = append(pcs, p.pc)
		p.mu.Unlock()
	}
	if len(pcs) > 0 {
		go func() {
			for _, pc := range pcs {
				if pc != nil {
					pc.Close()
				}
			}
		}()
	}
}

// checkMedia asks, after a resume, whether the media nodes still have each
// of the client's peer connections: the state events they sent while the
// connection was down are lost. A player whose connection is gone (its
// stream moved to another media node meanwhile, or its node died) connects
// again; a publisher whose connection is gone gets NO_PUBLISH with the
// code. A connection still there whose ICE is down restarts ICE at once:
// the network change that broke the WebSocket may have broken it too. It
// runs once the connection is installed, each check apart, so that
// a media node that does not answer holds up nothing else.
func (c *Client) checkMedia() {
	c.mediaMu.Lock()
	players := slices.Collect(maps.Values(c.players))
	publishers := slices.Collect(maps.Values(c.publishers))
	c.mediaMu.Unlock()
	for _, p := range players {
		p.mu.Lock()
		node := p.node
		p.mu.Unlock()
		go func() {
			if why := c.peerGone(p.stream, protocol.MediaPlay, node); why != nil {
				p.gone(why)
			} else {
				p.ice.kick()
			}
		}()
	}
	for _, p := range publishers {
		go func() {
			if why := c.peerGone(p.stream, protocol.MediaPublish, p.node); why != nil {
				p.gone(why)
			} else {
				p.ice.kick()
			}
		}()
	}
}

// peerGone asks the media node that answered the offer of the session's
// connection for stream and kind whether it still has it; it returns why
// not (media_peer_not_found, or media_node_unreachable: the node is gone),
// nil if it does or the answer says nothing.
func (c *Client) peerGone(stream, kind, node string) *domain.Error {
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.RequestTimeout)
	defer cancel()
	_, err := c.do(ctx, protocol.OpMediaCheck, protocol.MediaCheckRequest{Stream: stream, Kind: kind, Node: node}, nil)
	for _, gone := range []*domain.Error{domain.ErrMediaPeerNotFound, domain.ErrMediaNodeUnreachable} {
		if errors.Is(err, gone) {
			return gone
		}
	}
	if err != nil {
		c.log.Warn("roomlog: cannot check a media connection after a resume", "stream", stream, "kind", kind, "err", err)
	}
	return nil
}

// mediaOffer makes pc's offer (waiting for its ICE candidates), sends it
// and applies the server's answer; call, if not nil, is the PublishMedia or
// PlayMedia the offer is for (it is marked answered when the answer comes).
// It returns the media node that answered. An ICE restart that fails once
// its offer is set rolls it back, so that the connection can offer again.
func (c *Client) mediaOffer(ctx context.Context, op protocol.Op, pc *webrtc.PeerConnection, stream, kind string,
	o *webrtc.OfferOptions, call *mediaCall) (_ string, err error) {
	offer, err := pc.CreateOffer(o)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return "", err
	}
	if op == protocol.OpMediaICERestart {
		defer func() {
			if err != nil && pc.SignalingState() == webrtc.SignalingStateHaveLocalOffer {
				_ = pc.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback})
			}
		}()
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	var answered func([]byte) error
	if op == protocol.OpMediaOffer {
		// On the reader goroutine, before the frames that follow the answer
		// (a NO_PUBLISH the server sent after it) are handled.
		answered = func([]byte) error {
			c.mediaMu.Lock()
			if call != nil {
				call.answered = true
			}
			// A new connection's: the endings from here on are its own;
			// those before (of one found gone, on their way) were told
			// already.
			delete(c.goneTold, mediaKey{stream, kind})
			c.mediaMu.Unlock()
			return nil
		}
	}
	data, err := c.do(ctx, op, protocol.MediaOfferRequest{Stream: stream, Kind: kind, SDP: pc.LocalDescription().SDP}, answered)
	if err != nil {
		return "", err
	}
	if h := c.testHookAnswered; h != nil && call != nil {
		h(stream, kind)
	}
	var a protocol.MediaAnswer
	if err := json.Unmarshal(data, &a); err != nil {
		return "", fmt.Errorf("roomlog: %s: the answer cannot be read: %w", op, err)
	}
	return a.Node, pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: a.SDP})
}

// mediaEvent handles the media events; it reports whether f was one.
func (c *Client) mediaEvent(f *protocol.Frame) bool {
	if f.Event != protocol.EvPublisherStateUpdate && f.Event != protocol.EvPlayerStateUpdate {
		return false
	}
	var d protocol.MediaStateUpdate
	if !c.decode(f, &d) {
		return true
	}
	h := &c.opts.Handlers
	st, code := MediaState(d.State), domain.Code(d.Code)
	kind := protocol.MediaPlay
	if f.Event == protocol.EvPublisherStateUpdate {
		kind = protocol.MediaPublish
	}
	// The ending of a connection the client found gone, and told the app of
	// (a publisher it ended, a player it connects again), arriving before
	// the stream's next offer was answered: the app heard of it once, and a
	// publisher published again right after, or the player connecting
	// again, goes on. Before the other guards, as the browser SDK's.
	if st == NoPublish || st == NoPlay {
		k := mediaKey{d.Stream, kind}
		c.mediaMu.Lock()
		told := c.goneTold[k]
		delete(c.goneTold, k)
		c.mediaMu.Unlock()
		if told {
			c.log.Debug("roomlog: the ending of a media connection found gone", "stream", d.Stream, "kind", kind,
				"reason", d.Reason)
			return true
		}
	}
	if kind == protocol.MediaPublish {
		if st == NoPublish {
			c.forgetMedia(d.Stream, protocol.MediaPublish)
		}
		if h.OnPublisherStateUpdate != nil {
			c.disp.push(func() { h.OnPublisherStateUpdate(d.Stream, st, code, d.Reason) })
		}
		return true
	}
	if code == domain.ErrMediaPlayMoved.Code {
		c.mediaMu.Lock()
		p := c.players[d.Stream]
		if m := c.answeredLocked(d.Stream, protocol.MediaPlay); p == nil && m != nil {
			m.moved = true // PlayMedia follows it once registered
		}
		c.mediaMu.Unlock()
		if p != nil {
			go p.moved()
		}
	} else if st == NoPlay {
		c.forgetMedia(d.Stream, protocol.MediaPlay)
	}
	if h.OnPlayerStateUpdate != nil {
		c.disp.push(func() { h.OnPlayerStateUpdate(d.Stream, st, code, d.Reason) })
	}
	return true
}
