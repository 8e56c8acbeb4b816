package media

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/projections"
)

// peer is one peer connection: a publisher's (it sends one stream) or a
// player's (it receives one).
type peer struct {
	key peerKey
	// id is the peer's identity among this node's (StateEvent.Peer).
	id     string
	sfu    *SFU
	pc     *webrtc.PeerConnection
	router *router
	// downs are a player's tracks, one per kind it offered to receive.
	downs map[webrtc.RTPCodecType]*downTrack

	// opMu serializes the signalling of this peer (offers, candidates).
	opMu sync.Mutex
	// remote is the client's ICE candidates taken so far (under opMu).
	remote remoteICE

	mu        sync.Mutex
	state     State
	closed    bool
	connected bool
	watchdog  *time.Timer
	// draining is set once the peer's goroutines are being waited for:
	// none may start after it.
	draining bool
	wg       sync.WaitGroup
	// done is closed when the connection is closed and every goroutine of
	// the peer has returned.
	done chan struct{}
}

func (p *peer) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// spawn runs f on a goroutine of the peer, unless the peer is draining.
func (p *peer) spawn(f func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.draining {
		return false
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
	return true
}

// router joins a stream's publisher to its players. Its tracks are the
// current publisher's; a player gets them as they come and keeps its peer
// connection when the publisher changes.
type router struct {
	key routeKey
	// refs counts the registered peers of the stream (under SFU.mu): the
	// router is dropped with the last.
	refs    int
	mu      sync.Mutex
	pub     *peer
	ups     map[webrtc.RTPCodecType]*upTrack
	players map[*peer]bool
}

// setPublisher makes p the stream's publisher, unless p is closed already.
// The check is under the router's lock, and close marks the peer closed
// before it takes that lock to remove it: either the publisher is removed
// by its close, or it is never set (an offer answered while the fold ended
// the peer must not leave it here).
func (r *router) setPublisher(p *peer) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.isClosed() {
		return false
	}
	if r.pub != nil && r.pub != p {
		r.detachUpsLocked()
		r.waitLocked()
	}
	r.pub = p
	return true
}

// waitLocked puts the players back to PLAY_REQUESTING: the stream has lost
// its publisher, and they wait, connected, for the next one's media, which
// makes them PLAYING again.
func (r *router) waitLocked() {
	for pl := range r.players {
		for _, d := range pl.downs {
			d.rearm()
		}
		pl.setState(PlayRequesting, 0, "")
	}
}

// playerConnected lets media through to player p, whose connection is up,
// and asks for a keyframe it can now receive (those asked for before were
// dropped unencrypted).
func (r *router) playerConnected(p *peer) {
	r.mu.Lock()
	for _, d := range p.downs {
		d.live.Store(true)
	}
	r.mu.Unlock()
	r.keyframe()
}

func (r *router) detachUpsLocked() {
	for kind, u := range r.ups {
		for pl := range r.players {
			if d := pl.downs[kind]; d != nil {
				u.detach(d)
			}
		}
	}
	r.ups = nil
}

// addUp makes u the stream's track of its kind, if p still publishes it.
func (r *router) addUp(p *peer, u *upTrack) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pub != p {
		return false
	}
	if old := r.ups[u.kind]; old != nil {
		for pl := range r.players {
			if d := pl.downs[u.kind]; d != nil {
				old.detach(d)
			}
		}
	}
	if r.ups == nil {
		r.ups = map[webrtc.RTPCodecType]*upTrack{}
	}
	r.ups[u.kind] = u
	for pl := range r.players {
		if d := pl.downs[u.kind]; d != nil {
			u.attach(d)
		}
	}
	return true
}

func (r *router) removePublisher(p *peer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pub == p {
		r.detachUpsLocked()
		r.waitLocked()
		r.pub = nil
	}
}

// addPlayer adds p, with its tracks downs, to the stream's players, unless
// p is closed already (see setPublisher). p.downs is written here, under
// the lock its readers hold.
func (r *router) addPlayer(p *peer, downs map[webrtc.RTPCodecType]*downTrack) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.isClosed() {
		return false
	}
	p.downs = downs
	if r.players == nil {
		r.players = map[*peer]bool{}
	}
	r.players[p] = true
	for kind, u := range r.ups {
		if d := p.downs[kind]; d != nil {
			u.attach(d)
		}
	}
	return true
}

// downsOf returns a copy of player p's tracks.
func (r *router) downsOf(p *peer) map[webrtc.RTPCodecType]*downTrack {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(p.downs)
}

// addDowns adds tracks of new kinds to player p (a renegotiation), fed by
// the stream's tracks of those kinds. They carry media at once if the
// player is connected already.
func (r *router) addDowns(p *peer, downs map[webrtc.RTPCodecType]*downTrack) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.players[p] {
		return // closed meanwhile
	}
	all := maps.Clone(p.downs)
	if all == nil {
		all = map[webrtc.RTPCodecType]*downTrack{}
	}
	p.mu.Lock()
	connected := p.connected
	p.mu.Unlock()
	for kind, d := range downs {
		all[kind] = d
		d.live.Store(connected)
		if u := r.ups[kind]; u != nil {
			u.attach(d)
		}
	}
	p.downs = all
}

func (r *router) removePlayer(p *peer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.players, p)
	for kind, u := range r.ups {
		if d := p.downs[kind]; d != nil {
			u.detach(d)
		}
	}
}

// keyframe asks the publisher for a keyframe of its video.
func (r *router) keyframe() {
	r.mu.Lock()
	u := r.ups[webrtc.RTPCodecTypeVideo]
	r.mu.Unlock()
	if u != nil {
		u.keyframe()
	}
}

// Handle serves one signalling request.
func (s *SFU) Handle(ctx context.Context, sig Signal) (Answer, error) {
	if err := validate(sig); err != nil {
		return Answer{}, err
	}
	k := peerKey{app: sig.App, session: sig.Session, stream: sig.Stream, kind: sig.Kind}
	switch sig.Op {
	case OpClose:
		if p := s.peer(k); p != nil {
			p.close(nil, "closed")
		}
		return Answer{Node: s.cfg.Node}, nil
	case OpCheck:
		p := s.peer(k)
		if p == nil {
			return Answer{}, ErrNoPeer
		}
		p.mu.Lock()
		st := p.state
		p.mu.Unlock()
		if st == "" {
			// Its offer is still being answered: requesting, as its first
			// state event will say.
			st = map[Kind]State{Publish: PublishRequesting, Play: PlayRequesting}[k.kind]
		}
		return Answer{Node: s.cfg.Node, Peer: p.id, State: st}, nil
	case OpCandidate:
		p := s.peer(k)
		if p == nil {
			return Answer{}, ErrNoPeer
		}
		if sig.Candidate == "" {
			return Answer{Node: s.cfg.Node}, nil // end of candidates: nothing to add
		}
		p.opMu.Lock()
		defer p.opMu.Unlock()
		if otherUfrag(sig.Candidate, p.remote.ufrag) {
			return Answer{Node: s.cfg.Node}, nil
		}
		taken, fresh := p.remote.with(p.remote.ufrag, []string{sig.Candidate})
		undo, err := s.spend(k, fresh)
		if err != nil {
			return Answer{}, ErrBadSignal.With("%v", err)
		}
		if err := p.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: sig.Candidate, SDPMid: sig.SDPMid,
			SDPMLineIndex: sig.SDPMLineIndex}); err != nil {
			undo()
			return Answer{}, ErrBadSignal.With("candidate: %v", err)
		}
		p.remote = taken
		return Answer{Node: s.cfg.Node}, nil
	}
	if err := checkOffer(sig.Kind, sig.SDP); err != nil {
		return Answer{}, badOffer(sig.Kind).With("%v", err)
	}
	if err := s.cfg.Live.WaitFor(ctx, sig.After); err != nil {
		return Answer{}, domain.ErrTimeout.With("the media node's view of the log did not catch up in time")
	}
	var replaced *peer
	if p := s.peer(k); p != nil {
		if sig.Op == OpRestart || !p.otherConnection(sig.SDP) {
			return p.renegotiate(ctx, sig.SDP)
		}
		// An offer from a new peer connection of the client (its old one
		// failed on its side, or was closed, before this node's ICE noticed):
		// it replaces the old one, which no renegotiation could turn into it.
		// The session is told the old one ended only if the new one fails.
		p.close(nil, "replaced")
		replaced = p
	}
	if sig.Op == OpRestart {
		return Answer{}, ErrNoPeer
	}
	ans, err := s.open(ctx, k, sig.SDP)
	if err != nil && replaced != nil {
		replaced.ended("replaced")
	}
	return ans, err
}

func validate(sig Signal) error {
	if err := domain.ValidateStreamID(sig.Stream); err != nil {
		return ErrBadSignal.With("%v", err)
	}
	if sig.App == "" || sig.Session == "" {
		return ErrBadSignal.With("no app or session")
	}
	if sig.Kind != Publish && sig.Kind != Play {
		return ErrBadSignal.With("kind must be %q or %q", Publish, Play)
	}
	switch sig.Op {
	case OpOffer, OpRestart:
		if sig.SDP == "" {
			return ErrBadSignal.With("an offer needs its sdp")
		}
	case OpCandidate, OpClose, OpCheck:
	default:
		return ErrBadSignal.With("unknown op %q", sig.Op)
	}
	return nil
}

func (s *SFU) peer(k peerKey) *peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peers[k]
}

// ended is the error of an offer whose peer was ended (by the fold, or a
// media_close) while it was being answered.
func ended(k Kind) *domain.Error {
	if k == Publish {
		return ErrNotPublishing
	}
	return ErrNotPlaying
}

func badOffer(k Kind) *domain.Error {
	if k == Publish {
		return ErrPublishBadOffer
	}
	return ErrPlayBadOffer
}

// open creates the peer connection of a first offer. The peer is registered
// before the fold is read, so that a record ending it, folded at any time
// after, finds it.
func (s *SFU) open(ctx context.Context, k peerKey, sdp string) (Answer, error) {
	pc, err := s.api.NewPeerConnection(webrtc.Configuration{ICEServers: s.cfg.ICEServers,
		BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		return Answer{}, domain.ErrInternal.With("peer connection: %v", err)
	}
	p := &peer{key: k, sfu: s, pc: pc, done: make(chan struct{})}
	sk := sessionKey{k.app, k.session}
	s.mu.Lock()
	var refused error
	switch {
	case s.closed:
		refused = ErrMediaUnavailable.With("the media node is shutting down")
	case s.peers[k] != nil:
		refused = ErrBadSignal.With("an offer for this stream is already being answered")
	case s.sessions[sk] >= s.cfg.MaxPeersPerSession:
		refused = ErrTooManyPeers.With("at most %d", s.cfg.MaxPeersPerSession)
	}
	if refused != nil {
		s.mu.Unlock()
		pc.Close()
		return Answer{}, refused
	}
	p.id = s.mintPeerLocked()
	s.peers[k] = p
	s.all[p] = struct{}{}
	s.sessions[sk]++
	rk := routeKey{k.app, k.stream}
	r := s.routers[rk]
	if r == nil {
		r = &router{key: rk}
		s.routers[rk] = r
	}
	r.refs++
	p.router = r
	s.mu.Unlock()

	var authErr error
	s.cfg.Live.Read(func(m *projections.Model) { authErr = s.allowed(m, k) })
	if authErr != nil {
		p.close(nil, "refused")
		return Answer{}, authErr
	}
	p.opMu.Lock()
	defer p.opMu.Unlock()
	if s.beforeRoute != nil {
		s.beforeRoute(p)
	}
	taken, fresh := p.remote.with(offerICE(sdp))
	// An offer refused below gives its candidates back; one ended by the
	// fold or a close meanwhile does not: its answer may be under way, the
	// ICE agent running.
	undo, err := s.spend(k, fresh)
	if err != nil {
		p.close(nil, "refused")
		return Answer{}, badOffer(k.kind).With("%v", err)
	}
	p.remote = taken
	pc.OnConnectionStateChange(p.onState)
	if k.kind == Publish {
		// Before the answer: its tracks may arrive as soon as it connects.
		if !r.setPublisher(p) {
			return Answer{}, ended(k.kind) // the fold ended it meanwhile
		}
		pc.OnTrack(p.onTrack)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		if p.isClosed() {
			return Answer{}, ended(k.kind) // not the offer's fault
		}
		p.close(nil, "refused")
		undo()
		return Answer{}, badOffer(k.kind).With("%v", err)
	}
	if k.kind == Play {
		downs, err := p.addDownTracks(nil)
		if err == nil && len(downs) == 0 {
			err = ErrPlayBadOffer.With("the offer receives neither audio nor video")
		}
		if err != nil {
			if p.isClosed() {
				return Answer{}, ended(k.kind)
			}
			p.close(nil, "refused")
			undo()
			return Answer{}, err
		}
		if !r.addPlayer(p, downs) {
			return Answer{}, ended(k.kind) // the fold ended it meanwhile
		}
	}
	ans, err := p.answer(ctx)
	if err != nil {
		if p.isClosed() {
			return Answer{}, ended(k.kind)
		}
		p.close(nil, "refused")
		undo()
		return Answer{}, err
	}
	p.mu.Lock()
	closed := p.closed
	if !closed {
		p.watchdog = time.AfterFunc(s.cfg.ConnectTimeout, func() { p.failIfUnconnected() })
	}
	p.mu.Unlock()
	if closed {
		return Answer{}, ended(k.kind) // the fold ended it while it was being answered
	}
	if k.kind == Publish {
		p.setState(PublishRequesting, 0, "")
	} else {
		p.setState(PlayRequesting, 0, "")
	}
	return ans, nil
}

// addDownTracks gives a player one track per kind its offer receives that
// it has not (have), and reads what the player sends back on each.
func (p *peer) addDownTracks(have map[webrtc.RTPCodecType]*downTrack) (map[webrtc.RTPCodecType]*downTrack, error) {
	downs := map[webrtc.RTPCodecType]*downTrack{}
	for _, tr := range p.pc.GetTransceivers() {
		kind := tr.Kind()
		if downs[kind] != nil || have[kind] != nil || (kind != webrtc.RTPCodecTypeAudio && kind != webrtc.RTPCodecTypeVideo) {
			continue
		}
		d := newDownTrack(kind, string(p.key.stream), p.firstPacket)
		sender, err := p.pc.AddTrack(d)
		if err != nil {
			return nil, ErrPlayBadOffer.With("%s: %v", kind, err)
		}
		downs[kind] = d
		p.spawn(func() { p.readRTCP(sender) })
	}
	return downs, nil
}

// readRTCP reads a player's RTCP (so that the NACK responder and the
// reports see it) and passes keyframe requests on to the publisher.
func (p *peer) readRTCP(sender *webrtc.RTPSender) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			if isKeyframeRequest(pkt) {
				p.router.keyframe()
			}
		}
	}
}

func (p *peer) answer(ctx context.Context) (Answer, error) {
	ans, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return Answer{}, badOffer(p.key.kind).With("%v", err)
	}
	if !carriesMedia(ans.SDP) {
		return Answer{}, badOffer(p.key.kind).With("no audio or video in a codec this node forwards (Opus, VP8, H.264)")
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(ans); err != nil {
		return Answer{}, badOffer(p.key.kind).With("%v", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return Answer{}, domain.ErrTimeout.With("ICE gathering did not complete in time")
	}
	return Answer{SDP: p.pc.LocalDescription().SDP, Node: p.sfu.cfg.Node, Peer: p.id}, nil
}

// otherConnection reports whether offer comes from another peer connection
// than the one p was negotiated with: its DTLS fingerprints differ.
func (p *peer) otherConnection(offer string) bool {
	p.opMu.Lock()
	rd := p.pc.RemoteDescription()
	p.opMu.Unlock()
	if rd == nil {
		return false
	}
	now := fingerprints(offer)
	return len(now) > 0 && !slices.Equal(now, fingerprints(rd.SDP))
}

// checkOffer refuses an offer with more than one audio or video section (a
// stream has at most one track of each kind, a second would replace the
// first, and each costs the node a forwarding goroutine), and one none of
// whose audio or video sections goes the way its kind needs: a publisher's
// must send, a player's must receive.
func checkOffer(kind Kind, offer string) error {
	var audio, video int
	var sends, receives bool
	media, dir := false, "sendrecv"
	end := func() { // of a section: its direction is known
		if media {
			sends = sends || dir == "sendrecv" || dir == "sendonly"
			receives = receives || dir == "sendrecv" || dir == "recvonly"
		}
	}
	for line := range strings.Lines(offer) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "m="):
			end()
			kind, used := section(line)
			media, dir = used, "sendrecv"
			switch kind {
			case "audio":
				audio++
			case "video":
				video++
			}
		case line == "a=sendrecv" || line == "a=sendonly" || line == "a=recvonly" || line == "a=inactive":
			dir = line[2:]
		case strings.HasPrefix(line, "a=simulcast:"):
			// Each layer would arrive as a track of its own, and replace
			// the one before as the stream's video: players would get
			// whichever came last, and the node read the others for nothing.
			return errors.New("simulcast is not supported: offer one encoding of each kind")
		}
	}
	end()
	switch {
	case audio > 1 || video > 1:
		return fmt.Errorf("%d audio and %d video sections: a stream has at most one of each", audio, video)
	case kind == Publish && (audio > 0 || video > 0) && !sends:
		return errors.New("the offer sends neither audio nor video")
	case kind == Play && (audio > 0 || video > 0) && !receives:
		return errors.New("the offer receives neither audio nor video")
	}
	return nil
}

// carriesMedia reports whether an answer accepts an audio or video section:
// one it rejects (port 0) has no codec in common with the offer.
func carriesMedia(answer string) bool {
	for line := range strings.Lines(answer) {
		if _, used := section(strings.TrimSpace(line)); used {
			return true
		}
	}
	return false
}

// section reads an SDP media line: its kind ("audio" or "video"; "" for any
// other), and whether it is an audio or video section in use (a port other
// than 0; a rejected or disabled section has port 0).
func section(mline string) (kind string, used bool) {
	for _, k := range []string{"audio", "video"} {
		if rest, ok := strings.CutPrefix(mline, "m="+k+" "); ok {
			return k, !strings.HasPrefix(rest, "0 ")
		}
	}
	return "", false
}

// fingerprints returns the DTLS certificate fingerprints an SDP names, sorted.
func fingerprints(sdp string) []string {
	var out []string
	for line := range strings.Lines(sdp) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "a=fingerprint:"); ok {
			out = append(out, strings.ToLower(strings.TrimSpace(v)))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// renegotiate answers a later offer on the same peer connection: an ICE
// restart, or a change of tracks.
func (p *peer) renegotiate(ctx context.Context, sdp string) (Answer, error) {
	var authErr error
	p.sfu.cfg.Live.Read(func(m *projections.Model) { authErr = p.sfu.allowed(m, p.key) })
	if authErr != nil {
		return Answer{}, authErr
	}
	p.opMu.Lock()
	defer p.opMu.Unlock()
	taken, fresh := p.remote.with(offerICE(sdp))
	undo, err := p.sfu.spend(p.key, fresh)
	if err != nil {
		return Answer{}, badOffer(p.key.kind).With("%v", err)
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		undo()
		return Answer{}, badOffer(p.key.kind).With("%v", err)
	}
	p.remote = taken
	if p.key.kind == Play {
		// A player that now receives a kind it did not (audio, then
		// video too) gets a track of it.
		downs, err := p.addDownTracks(p.router.downsOf(p))
		if err != nil {
			return Answer{}, err
		}
		if len(downs) > 0 {
			defer p.router.keyframe() // once the answer is out
			p.router.addDowns(p, downs)
		}
	}
	return p.answer(ctx)
}

// onTrack starts forwarding one of a publisher's tracks.
func (p *peer) onTrack(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	u := newUpTrack(remote, p.sfu.cfg.ShardSize, keyframeRequester(p.pc, remote.SSRC(), p.sfu.cfg.KeyframeInterval))
	if !p.router.addUp(p, u) {
		return
	}
	if !p.spawn(u.run) {
		u.stop() // the peer is closing: its workers must not outlive it
	}
}

func (p *peer) onState(st webrtc.PeerConnectionState) {
	switch st {
	case webrtc.PeerConnectionStateConnected:
		p.mu.Lock()
		p.connected = true
		if p.watchdog != nil {
			p.watchdog.Stop()
		}
		p.mu.Unlock()
		if p.key.kind == Publish {
			p.setState(Publishing, 0, "")
		} else {
			p.router.playerConnected(p)
		}
	case webrtc.PeerConnectionStateFailed:
		p.fail()
	case webrtc.PeerConnectionStateClosed:
		p.close(nil, "closed")
	}
}

// firstPacket marks a player Playing once media reaches it.
func (p *peer) firstPacket() { p.setState(Playing, 0, "") }

func (p *peer) failIfUnconnected() {
	p.mu.Lock()
	c := p.connected
	p.mu.Unlock()
	if !c {
		p.fail()
	}
}

func (p *peer) fail() {
	if p.key.kind == Publish {
		p.close(ErrPublishConnectionFailed, "failed")
	} else {
		p.close(ErrPlayConnectionFailed, "failed")
	}
}

// close ends the peer: its forwarding stops, its connection closes, and its
// session is told (NO_PUBLISH or NO_PLAY, with why).
func (p *peer) close(why *domain.Error, reason string) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	if p.watchdog != nil {
		p.watchdog.Stop()
	}
	p.mu.Unlock()
	s := p.sfu
	if p.key.kind == Publish {
		p.router.removePublisher(p)
	} else {
		p.router.removePlayer(p)
	}
	s.unregister(p)
	// Close waits for Pion's goroutines; it may be called from one of the
	// connection's own callbacks, so it runs apart. The signalling of the
	// peer (an offer being answered) finishes first.
	go func() {
		p.opMu.Lock()
		_ = p.pc.Close()
		p.opMu.Unlock()
		p.mu.Lock()
		p.draining = true
		p.mu.Unlock()
		p.wg.Wait()
		close(p.done)
		s.mu.Lock()
		delete(s.all, p)
		s.mu.Unlock()
	}()
	if reason == "refused" || reason == "replaced" {
		return // the offer's reply says why, or the new connection goes on
	}
	var code domain.Code
	if why != nil {
		code = why.Code
	}
	p.setState(p.endState(), code, reason)
}

// endState is the state of p's media once it ended.
func (p *peer) endState() State {
	if p.key.kind == Play {
		return NoPlay
	}
	return NoPublish
}

// ended tells p's session, after all, that p's media ended (a replacement
// that failed).
func (p *peer) ended(reason string) { p.setState(p.endState(), 0, reason) }

// unregister removes p from the SFU's maps (and its router when idle).
func (s *SFU) unregister(p *peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.peers[p.key] != p {
		return
	}
	delete(s.peers, p.key)
	sk := sessionKey{p.key.app, p.key.session}
	if s.sessions[sk]--; s.sessions[sk] <= 0 {
		delete(s.sessions, sk)
	}
	if r := p.router; r != nil {
		if r.refs--; r.refs == 0 && s.routers[r.key] == r {
			delete(s.routers, r.key)
		}
	}
}

// setState tells the session of a state change, once per change.
func (p *peer) setState(st State, code domain.Code, reason string) {
	p.mu.Lock()
	if p.state == st || (p.closed && st != NoPublish && st != NoPlay) {
		p.mu.Unlock()
		return
	}
	p.state = st
	p.mu.Unlock()
	p.sfu.notes.push(StateEvent{App: p.key.app, Session: p.key.session, Stream: p.key.stream, Kind: p.key.kind,
		State: st, Code: code, Reason: reason, Node: p.sfu.cfg.Node, Peer: p.id})
}

// notifier delivers state events in order from one goroutine.
type notifier struct {
	fn    func(StateEvent)
	mu    sync.Mutex
	queue []StateEvent
	wake  chan struct{}
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

func newNotifier(fn func(StateEvent)) *notifier {
	n := &notifier{fn: fn, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go n.run()
	return n
}

func (n *notifier) push(e StateEvent) {
	if n.fn == nil {
		return
	}
	n.mu.Lock()
	n.queue = append(n.queue, e)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *notifier) run() {
	defer close(n.done)
	for {
		n.mu.Lock()
		q := n.queue
		n.queue = nil
		n.mu.Unlock()
		for _, e := range q {
			n.fn(e)
		}
		if len(q) > 0 {
			continue
		}
		select {
		case <-n.wake:
		case <-n.stop:
			n.mu.Lock()
			q := n.queue
			n.queue = nil
			n.mu.Unlock()
			for _, e := range q {
				n.fn(e)
			}
			return
		}
	}
}

func (n *notifier) close() {
	n.once.Do(func() { close(n.stop) })
	<-n.done
}
