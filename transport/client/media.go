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

// MediaPublisher is the peer connection that sends one published stream.
type MediaPublisher struct {
	c      *Client
	stream string
	pc     *webrtc.PeerConnection
	node   string // the media node that answered its offer
}

// PublishMedia sends tracks (audio and/or video) as stream's media. Publish
// the stream first (StartPublishingStream). State changes arrive at
// Handlers.OnPublisherStateUpdate.
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
	node, err := c.mediaOffer(ctx, protocol.OpMediaOffer, pc, stream, protocol.MediaPublish, nil)
	if err != nil {
		pc.Close()
		return nil, err
	}
	p := &MediaPublisher{c: c, stream: stream, pc: pc, node: node}
	c.mediaMu.Lock()
	if c.publishers == nil {
		c.publishers = map[string]*MediaPublisher{}
	}
	c.publishers[stream] = p
	c.mediaMu.Unlock()
	return p, nil
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
// a network change).
func (p *MediaPublisher) RestartICE(ctx context.Context) error {
	_, err := p.c.mediaOffer(ctx, protocol.OpMediaICERestart, p.pc, p.stream, protocol.MediaPublish,
		&webrtc.OfferOptions{ICERestart: true})
	return err
}

// Close closes the peer connection, telling the server first.
func (p *MediaPublisher) Close(ctx context.Context) error {
	p.c.mediaMu.Lock()
	if p.c.publishers[p.stream] == p {
		delete(p.c.publishers, p.stream)
	}
	p.c.mediaMu.Unlock()
	_, err := p.c.do(ctx, protocol.OpMediaClose, protocol.MediaCloseRequest{Stream: p.stream,
		Kind: protocol.MediaPublish}, nil)
	return errors.Join(err, p.pc.Close())
}

// MediaPlayer is the peer connection that receives one played stream.
type MediaPlayer struct {
	c       *Client
	stream  string
	opts    MediaOptions
	onTrack func(*webrtc.TrackRemote, *webrtc.RTPReceiver)

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
func (c *Client) PlayMedia(ctx context.Context, stream string, onTrack func(*webrtc.TrackRemote, *webrtc.RTPReceiver),
	opts MediaOptions) (*MediaPlayer, error) {
	p := &MediaPlayer{c: c, stream: stream, opts: opts, onTrack: onTrack}
	if err := p.connect(ctx); err != nil {
		return nil, err
	}
	c.mediaMu.Lock()
	if c.players == nil {
		c.players = map[string]*MediaPlayer{}
	}
	c.players[stream] = p
	c.mediaMu.Unlock()
	return p, nil
}

func (p *MediaPlayer) connect(ctx context.Context) error {
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
	p.mu.Lock()
	old := p.pc
	p.pc = pc
	p.mu.Unlock()
	if old != nil {
		old.Close()
	}
	node, err := p.c.mediaOffer(ctx, protocol.OpMediaOffer, pc, p.stream, protocol.MediaPlay, nil)
	if err != nil {
		pc.Close()
		return err
	}
	p.mu.Lock()
	p.node = node
	p.mu.Unlock()
	return nil
}

// PeerConnection returns the player's current peer connection.
func (p *MediaPlayer) PeerConnection() *webrtc.PeerConnection {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pc
}

// RestartICE renegotiates the connection with fresh ICE credentials.
func (p *MediaPlayer) RestartICE(ctx context.Context) error {
	_, err := p.c.mediaOffer(ctx, protocol.OpMediaICERestart, p.PeerConnection(), p.stream, protocol.MediaPlay,
		&webrtc.OfferOptions{ICERestart: true})
	return err
}

// Close closes the peer connection, telling the server first.
func (p *MediaPlayer) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	pc := p.pc
	p.mu.Unlock()
	p.c.mediaMu.Lock()
	if p.c.players[p.stream] == p {
		delete(p.c.players, p.stream)
	}
	p.c.mediaMu.Unlock()
	_, err := p.c.do(ctx, protocol.OpMediaClose, protocol.MediaCloseRequest{Stream: p.stream, Kind: protocol.MediaPlay}, nil)
	return errors.Join(err, pc.Close())
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
	err := p.connect(ctx)
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
	if h := &p.c.opts.Handlers; mine && h.OnPlayerStateUpdate != nil {
		p.c.disp.push(func() { h.OnPlayerStateUpdate(p.stream, NoPlay, de.Code, "ended") })
	}
}

// forgetMedia stops following the publisher or player of stream whose
// media the server ended: a resume has nothing of it to check.
func (c *Client) forgetMedia(stream, kind string) {
	c.mediaMu.Lock()
	defer c.mediaMu.Unlock()
	if kind == protocol.MediaPublish {
		delete(c.publishers, stream)
	} else {
		delete(c.players, stream)
	}
}

// endMedia ends every publisher and player of a session that is gone (its
// heartbeat timed out while the connection was down): the server ended
// their media with the session, and told that session, not this one. The
// app is told here, as it would have been (NO_PUBLISH / NO_PLAY).
func (c *Client) endMedia(code domain.Code, reason string) {
	c.mediaMu.Lock()
	publishers, players := c.publishers, c.players
	c.publishers, c.players = nil, nil
	c.mediaMu.Unlock()
	h := &c.opts.Handlers
	var pcs []*webrtc.PeerConnection
	for _, stream := range slices.Sorted(maps.Keys(publishers)) {
		p := publishers[stream]
		pcs = append(pcs, p.pc)
		if h.OnPublisherStateUpdate != nil {
			c.disp.push(func() { h.OnPublisherStateUpdate(stream, NoPublish, code, reason) })
		}
	}
	for _, stream := range slices.Sorted(maps.Keys(players)) {
		p := players[stream]
		p.mu.Lock()
		p.closed = true // no reconnecting it
		pcs = append(pcs, p.pc)
		p.mu.Unlock()
		if h.OnPlayerStateUpdate != nil {
			c.disp.push(func() { h.OnPlayerStateUpdate(stream, NoPlay, code, reason) })
		}
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
// code. It runs once the connection is installed, each check apart, so that
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
			if c.peerGone(p.stream, protocol.MediaPlay, node) != nil {
				p.moved()
			}
		}()
	}
	h := &c.opts.Handlers
	for _, p := range publishers {
		go func() {
			why := c.peerGone(p.stream, protocol.MediaPublish, p.node)
			if why == nil {
				return
			}
			c.mediaMu.Lock()
			mine := c.publishers[p.stream] == p
			if mine {
				delete(c.publishers, p.stream)
			}
			c.mediaMu.Unlock()
			if mine && h.OnPublisherStateUpdate != nil {
				c.disp.push(func() { h.OnPublisherStateUpdate(p.stream, NoPublish, why.Code, "gone") })
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
// and applies the server's answer.
// It returns the media node that answered.
func (c *Client) mediaOffer(ctx context.Context, op protocol.Op, pc *webrtc.PeerConnection, stream, kind string,
	o *webrtc.OfferOptions) (string, error) {
	offer, err := pc.CreateOffer(o)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return "", err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	data, err := c.do(ctx, op, protocol.MediaOfferRequest{Stream: stream, Kind: kind, SDP: pc.LocalDescription().SDP}, nil)
	if err != nil {
		return "", err
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
	if f.Event == protocol.EvPublisherStateUpdate {
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
