package media

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/projections"
)

// Config configures an SFU.
type Config struct {
	// Live is the node's live projection: it authorizes every peer and
	// tears down what the log ends. Required.
	Live *projections.Live
	// Node names this media node (recorded with the streams it hosts).
	// Required.
	Node string
	// Notify receives publisher and player state changes, in order, from
	// one goroutine. Nil: they are published on the Bus (StateSubject), or
	// dropped without one.
	Notify func(StateEvent)
	// Bus, if set, carries signalling forwarded from other nodes (this
	// node serves its own subject) and state events to every gateway.
	Bus    Bus
	Logger *slog.Logger

	// ICEServers are given to every peer connection (STUN/TURN). Default
	// none: host candidates only.
	ICEServers []webrtc.ICEServer
	// IPs are the local addresses offered as host candidates. Default
	// 127.0.0.1 and ::1 only (a node on one host); "0.0.0.0" offers every
	// interface's addresses.
	IPs []string
	// NAT1To1IPs are public addresses to offer instead of the host's (a
	// node behind a 1:1 NAT, as on most clouds).
	NAT1To1IPs []string
	// UDPPort, if set, carries every peer connection's media on this one
	// UDP port (ICE UDP mux): one port to open in a firewall.
	UDPPort int
	// PortMin and PortMax bound the ephemeral UDP ports used without
	// UDPPort (default: any).
	PortMin, PortMax uint16

	// ShardSize is how many players one goroutine writes a track's
	// packets to; a track with more players spreads them over more cores
	// (default 32).
	ShardSize int
	// KeyframeInterval is the least time between two keyframe requests to
	// one publisher's track (default 500 ms).
	KeyframeInterval time.Duration
	// ConnectTimeout is how long a peer connection may take to connect,
	// or stay disconnected, before it is closed as failed (default 20 s).
	ConnectTimeout time.Duration
	// SweepInterval is how often every peer is checked against the fold,
	// besides the checks the fold's own changes trigger (default 5 s).
	SweepInterval time.Duration
	// MaxPeersPerSession bounds one session's peer connections (default 32).
	MaxPeersPerSession int
	// MaxRemoteCandidates is how many new ICE candidates of the client one
	// peer connection takes at once, in its offers and trickled; then one
	// more a second (default 100). The budget is the stream's, of the
	// session and kind: a connection that replaces another, or is offered
	// again after a close, has what was left. The node sends connectivity
	// checks to every address a candidate names: unbounded, a client could
	// have it send them anywhere, at any rate (RFC 8445, 6.1.2.5, bounds a
	// checklist to 100 pairs by default).
	MaxRemoteCandidates int
	// Net, if set, is the network the peer connections use instead of
	// the host's (tests run the SFU on a virtual network with loss).
	Net transport.Net
	// NACKBuffer is how many packets each sent track keeps for
	// retransmission (default 256; Pion's 1,024 costs ≈ 1.5 MiB a player).
	NACKBuffer uint16
	// Now is the clock of the candidate budget (default time.Now).
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if len(c.IPs) == 0 {
		c.IPs = []string{"127.0.0.1", "::1"}
	}
	if c.ShardSize <= 0 {
		c.ShardSize = 32
	}
	if c.KeyframeInterval <= 0 {
		c.KeyframeInterval = 500 * time.Millisecond
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 20 * time.Second
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = 5 * time.Second
	}
	if c.MaxPeersPerSession <= 0 {
		c.MaxPeersPerSession = 32
	}
	if c.MaxRemoteCandidates <= 0 {
		c.MaxRemoteCandidates = 100
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NACKBuffer == 0 {
		c.NACKBuffer = 256
	}
}

type peerKey struct {
	app     domain.AppID
	session domain.SessionID
	stream  domain.StreamID
	kind    Kind
}

type routeKey struct {
	app    domain.AppID
	stream domain.StreamID
}

// SFU is one media node.
type SFU struct {
	cfg    Config
	api    *webrtc.API
	udpMux ice.UDPMux
	// closeOnce runs close once, from Run's end or Close.
	closeOnce sync.Once

	mu       sync.Mutex
	peers    map[peerKey]*peer
	budgets  map[peerKey]*candidateBudget // spent, not yet grown back
	sessions map[sessionKey]int           // peers per session
	routers  map[routeKey]*router
	closed   bool
	// lastPeer is the last peer identity minted (Peer).
	lastPeer uint64

	// checks holds what the fold changed since the last check.
	checkMu sync.Mutex
	check   checkSet
	kick    chan struct{}

	// all holds every peer until its connection is closed and its
	// goroutines are done (under mu).
	all map[*peer]struct{}

	notes *notifier

	// beforeRoute, if set (by tests, before any offer), runs in open once
	// the peer is allowed and before it enters its router: a test ends the
	// peer there, as a close may at any time.
	beforeRoute func(*peer)
}

type sessionKey struct {
	app     domain.AppID
	session domain.SessionID
}

// checkSet names the peers a folded record may have ended.
type checkSet struct {
	all      bool
	apps     map[domain.AppID]bool
	streams  map[routeKey]bool
	sessions map[sessionKey]bool
}

func (c *checkSet) empty() bool {
	return !c.all && len(c.apps) == 0 && len(c.streams) == 0 && len(c.sessions) == 0
}

func (c *checkSet) matches(k peerKey) bool {
	return c.all || c.apps[k.app] || c.streams[routeKey{k.app, k.stream}] || c.sessions[sessionKey{k.app, k.session}]
}

// New builds an SFU and subscribes it to the live projection: call it before
// the projection runs.
func New(cfg Config) (*SFU, error) {
	cfg.setDefaults()
	if cfg.Live == nil || cfg.Node == "" {
		return nil, errors.New("media: Live and Node are required")
	}
	if cfg.Notify == nil && cfg.Bus != nil {
		bus, logger := cfg.Bus, cfg.Logger
		cfg.Notify = func(e StateEvent) {
			b, _ := json.Marshal(e)
			if err := bus.Publish(StateSubject, b); err != nil {
				logger.Warn("media: a state event was not sent", "session", e.Session, "stream", e.Stream, "err", err)
			}
		}
	}
	s := &SFU{cfg: cfg, peers: map[peerKey]*peer{}, budgets: map[peerKey]*candidateBudget{},
		sessions: map[sessionKey]int{}, routers: map[routeKey]*router{},
		all: map[*peer]struct{}{}, kick: make(chan struct{}, 1), notes: newNotifier(cfg.Notify)}
	if err := s.buildAPI(); err != nil {
		return nil, err
	}
	cfg.Live.Subscribe(s.onRecord, projections.Named("media-sfu"))
	return s, nil
}

// Node returns the node's name.
func (s *SFU) Node() string { return s.cfg.Node }

// mintPeerLocked returns a new peer identity (StateEvent.Peer), under s.mu:
// larger than every earlier one of this node, and, as it starts from the
// clock, than those of the node's earlier runs (a restarted node keeps its
// name), so that a late event of a peer gone with them cannot pass for a
// peer of this run.
func (s *SFU) mintPeerLocked() string {
	id := uint64(time.Now().UnixNano())
	if id <= s.lastPeer {
		id = s.lastPeer + 1
	}
	s.lastPeer = id
	return strconv.FormatUint(id, 36)
}

func (s *SFU) buildAPI() error {
	me := &webrtc.MediaEngine{}
	if err := registerCodecs(me); err != nil {
		return err
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptorsWithOptions(me, reg,
		webrtc.WithNackResponderOptions(nack.ResponderSize(s.cfg.NACKBuffer)),
		webrtc.WithNackGeneratorOptions(nack.GeneratorSize(s.cfg.NACKBuffer))); err != nil {
		return err
	}
	var se webrtc.SettingEngine
	ips := map[string]bool{}
	all := false
	for _, ip := range s.cfg.IPs {
		if ip == "0.0.0.0" || ip == "::" {
			all = true
		}
		if p := net.ParseIP(ip); p != nil {
			ips[p.String()] = true
			if p.IsLoopback() {
				se.SetIncludeLoopbackCandidate(true)
			}
		}
	}
	if !all {
		se.SetIPFilter(func(ip net.IP) bool { return ips[ip.String()] })
	}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	if s.cfg.Net != nil {
		se.SetNet(s.cfg.Net)
	}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(5*time.Second, s.cfg.ConnectTimeout, 2*time.Second)
	if len(s.cfg.NAT1To1IPs) > 0 {
		se.SetNAT1To1IPs(s.cfg.NAT1To1IPs, webrtc.ICECandidateTypeHost)
	}
	if s.cfg.UDPPort > 0 {
		mux, err := ice.NewMultiUDPMuxFromPort(s.cfg.UDPPort, ice.UDPMuxFromPortWithIPFilter(func(ip net.IP) bool {
			return all || ips[ip.String()]
		}), ice.UDPMuxFromPortWithLoopback())
		if err != nil {
			return fmt.Errorf("media: UDP port %d: %w", s.cfg.UDPPort, err)
		}
		s.udpMux = mux
		se.SetICEUDPMux(mux)
	} else if s.cfg.PortMin > 0 || s.cfg.PortMax > 0 {
		if err := se.SetEphemeralUDPPortRange(s.cfg.PortMin, s.cfg.PortMax); err != nil {
			return fmt.Errorf("media: port range: %w", err)
		}
	}
	s.api = webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
	return nil
}

// registerCodecs registers what the SFU forwards: Opus audio, VP8 video and
// H.264 where the browser offers it.
func registerCodecs(me *webrtc.MediaEngine) error {
	video := []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, PayloadType: 102},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032"}, PayloadType: 104},
	}
	for _, c := range video {
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return err
		}
	}
	return me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType: 111}, webrtc.RTPCodecTypeAudio)
}

// Run checks peers against the fold until ctx is done, then closes every
// peer connection.
func (s *SFU) Run(ctx context.Context) error {
	defer s.shutdown()
	if s.cfg.Bus != nil {
		stop, err := s.cfg.Bus.Serve(nodeSubject(s.cfg.Node), s.serve)
		if err != nil {
			return err
		}
		defer stop()
	}
	sweep := time.NewTicker(s.cfg.SweepInterval)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
			s.checkMu.Lock()
			c := s.check
			s.check = checkSet{}
			s.checkMu.Unlock()
			s.enforce(c)
		case <-sweep.C:
			s.enforce(checkSet{all: true})
			s.pruneBudgets()
		}
	}
}

// Close closes every peer connection and gives back what New took (the
// UDP port): Run does it when it returns, Close for an SFU that never ran
// (a node whose start failed later). Once is enough; more do nothing.
func (s *SFU) Close() { s.shutdown() }

func (s *SFU) shutdown() { s.closeOnce.Do(s.close) }

func (s *SFU) close() {
	s.mu.Lock()
	s.closed = true // no peer is opened from now on
	peers := make([]*peer, 0, len(s.all))
	for p := range s.all {
		peers = append(peers, p)
	}
	s.mu.Unlock()
	for _, p := range peers {
		p.close(nil, "shutdown")
	}
	for _, p := range peers {
		<-p.done
	}
	s.notes.close()
	if s.udpMux != nil {
		s.udpMux.Close()
	}
}

// onRecord is the projection's subscriber: it notes whose media a record
// may have ended. It never blocks.
func (s *SFU) onRecord(rec projections.Record) {
	var c checkSet
	for i := range rec.Events {
		e := &rec.Events[i]
		if e.Aggregate != domain.KindRoom {
			continue
		}
		switch d := e.Data.(type) {
		case *domain.StreamStoppedData:
			c.addStream(e.App, d.Stream)
		case *domain.PlayStoppedData:
			c.addSession(e.App, d.Session)
		case *domain.MemberLeftData:
			c.addSession(e.App, d.Session)
		case *domain.RoomDestroyedData:
			// It emits no stream_stopped: every peer of the app is checked.
			if c.apps == nil {
				c.apps = map[domain.AppID]bool{}
			}
			c.apps[e.App] = true
		case *domain.StreamPublishedData:
			c.addStream(e.App, d.Stream) // a new hosting node moves its players
		}
	}
	if c.empty() {
		return
	}
	s.checkMu.Lock()
	s.check.merge(c)
	s.checkMu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (c *checkSet) addStream(app domain.AppID, st domain.StreamID) {
	if c.streams == nil {
		c.streams = map[routeKey]bool{}
	}
	c.streams[routeKey{app, st}] = true
}

func (c *checkSet) addSession(app domain.AppID, sid domain.SessionID) {
	if c.sessions == nil {
		c.sessions = map[sessionKey]bool{}
	}
	c.sessions[sessionKey{app, sid}] = true
}

func (c *checkSet) merge(o checkSet) {
	c.all = c.all || o.all
	for k := range o.apps {
		if c.apps == nil {
			c.apps = map[domain.AppID]bool{}
		}
		c.apps[k] = true
	}
	for k := range o.streams {
		c.addStream(k.app, k.stream)
	}
	for k := range o.sessions {
		c.addSession(k.app, k.session)
	}
}

// enforce closes the peers of c the fold no longer allows.
func (s *SFU) enforce(c checkSet) {
	s.mu.Lock()
	var cands []*peer
	for k, p := range s.peers {
		if c.matches(k) {
			cands = append(cands, p)
		}
	}
	s.mu.Unlock()
	if len(cands) == 0 {
		return
	}
	type verdict struct {
		p   *peer
		err error
	}
	var ends []verdict
	s.cfg.Live.Read(func(m *projections.Model) {
		for _, p := range cands {
			if err := s.allowed(m, p.key); err != nil {
				ends = append(ends, verdict{p, err})
			}
		}
	})
	for _, v := range ends {
		if errors.Is(v.err, ErrPlayMoved) {
			v.p.close(ErrPlayMoved, "moved")
		} else {
			v.p.close(nil, "ended")
		}
	}
}

// allowed says whether the fold lets k's media flow on this node.
func (s *SFU) allowed(m *projections.Model, k peerKey) error {
	a := m.App(k.app)
	if k.kind == Publish {
		if a == nil || !publishes(a, k.session, k.stream) {
			return ErrNotPublishing
		}
		return nil
	}
	if a == nil || !plays(a, k.session, k.stream) {
		return ErrNotPlaying
	}
	if node := hostOf(a, k.stream); node != "" && node != s.cfg.Node {
		return ErrPlayMoved.With("the stream is hosted on media node %s", node)
	}
	return nil
}

// publishes reports whether session sid publishes stream st in the fold.
func publishes(a *projections.App, sid domain.SessionID, st domain.StreamID) bool {
	e := a.Streams[st]
	if e == nil || !e.Claimed {
		return false
	}
	r := a.Rooms[e.Room]
	if r == nil || !r.Exists {
		return false
	}
	p, ok := r.Streams[st]
	return ok && p.Session == sid
}

// plays reports whether session sid plays stream st in one of its rooms.
func plays(a *projections.App, sid domain.SessionID, st domain.StreamID) bool {
	sess := a.Sessions[sid]
	if sess == nil {
		return false
	}
	for room := range sess.Claims {
		r := a.Rooms[room]
		if r == nil || !r.Exists {
			continue
		}
		if m, ok := r.MemberBySession(sess.User, sid); ok && m.Playing[st] {
			return true
		}
	}
	return false
}

// hostOf returns the media node hosting stream st ("" if it is not
// published, or was published without one).
func hostOf(a *projections.App, st domain.StreamID) string {
	e := a.Streams[st]
	if e == nil || !e.Claimed {
		return ""
	}
	r := a.Rooms[e.Room]
	if r == nil {
		return ""
	}
	if p, ok := r.Streams[st]; ok {
		return p.Node
	}
	return ""
}

// HostOf returns the media node that hosts stream st of app in the fold, and
// whether the stream is published.
func HostOf(live *projections.Live, app domain.AppID, st domain.StreamID) (node string, published bool) {
	live.Read(func(m *projections.Model) {
		if a := m.App(app); a != nil {
			e := a.Streams[st]
			if e != nil && e.Claimed {
				if r := a.Rooms[e.Room]; r != nil {
					if p, ok := r.Streams[st]; ok {
						node, published = p.Node, true
					}
				}
			}
		}
	})
	return node, published
}

// Stats counts what the SFU holds now.
type Stats struct {
	Publishers, Players, Streams int
}

// Stats returns the SFU's current counts.
func (s *SFU) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st Stats
	for k := range s.peers {
		if k.kind == Publish {
			st.Publishers++
		} else {
			st.Players++
		}
	}
	st.Streams = len(s.routers)
	return st
}
