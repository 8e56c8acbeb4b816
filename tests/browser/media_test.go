package browser

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/projections"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/netcut"
)

// Inbound is what a player's connection received.
type Inbound struct {
	Video struct {
		BytesReceived int64 `json:"bytesReceived"`
		FramesDecoded int64 `json:"framesDecoded"`
	} `json:"video"`
	Audio struct {
		PacketsReceived int64 `json:"packetsReceived"`
	} `json:"audio"`
	Tracks []string `json:"tracks"`
}

func (p *Page) publishCamera(who, stream, room string) Result {
	p.t.Helper()
	var r Result
	p.Eval(fmt.Sprintf(`T.publishCamera(%q, %q, %q)`, who, stream, room), &r)
	return r
}

func (p *Page) inbound(who, stream string) Inbound {
	p.t.Helper()
	var in Inbound
	p.Eval(fmt.Sprintf(`T.inbound(%q, %q)`, who, stream), &in)
	return in
}

// decoding waits until who's player of stream has decoded more than after
// frames, and audio packets arrive, and returns the stats.
func (p *Page) decoding(who, stream string, after int64) Inbound {
	p.t.Helper()
	deadline := time.Now().Add(clienttest.Wait)
	for {
		in := p.inbound(who, stream)
		if in.Video.BytesReceived > 0 && in.Video.FramesDecoded > after+5 && in.Audio.PacketsReceived > 0 {
			return in
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s's player of %s is not decoding past %d frames: %+v", who, stream, after, in)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kick kicks user out of room with the admin API, as a backend would.
func kick(t *testing.T, n *node.Node, room, user string) {
	t.Helper()
	tok, err := n.Signer.MintAdmin("tests", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", fmt.Sprintf("http://%s/admin/v1/apps/%s/rooms/%s/kick", n.HTTPAddr(), clienttest.App, room),
		bytes.NewReader([]byte(fmt.Sprintf(`{"user":%q}`, user))))
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("kick %s from %s: %s", user, room, res.Status)
	}
}

// The scenario: A publishes its fake camera in r1; B, in r1 and r2
// in multi-room mode, plays it and decodes video and audio; B's WebSocket is
// cut and comes back, missing nothing, while A's video keeps decoding; B
// switches r2 for r3; A is kicked by the backend, and B's player stops.
func TestMediaFakeCameraEndToEnd(t *testing.T) {
	n := startNode(t, nil)
	proxy := netcut.Start(t, n.HTTPAddr())
	a := openHarness(t, n)
	b := openHarness(t, n)
	a.newEngine("a", clienttest.URL(n.HTTPAddr()), nil)
	b.newEngine("b", clienttest.URL(proxy.Addr()), nil)

	a.Must("a", "loginRoom", "r1", clienttest.Token(t, n, "alice"), user{"alice", "Alice"})
	if r := a.publishCamera("a", "alice-cam", "r1"); !r.OK {
		t.Fatalf("publish the camera: %+v", r)
	}
	a.Wait(0, `e => e.event === 'publisherStateUpdate' && e.args[0].streamID === 'alice-cam' && e.args[0].state === 'PUBLISHING'`)

	b.Eval(`T.engines.b.enableMultiRoom(true)`, nil)
	tokB := clienttest.Token(t, n, "bob")
	b.Must("b", "loginRoom", "r1", tokB, user{"bob", "Bob"})
	b.Must("b", "loginRoom", "r2", tokB, user{"bob", "Bob"})
	b.Wait(0, `e => e.event === 'roomStreamUpdate' && e.args[0] === 'r1' && e.args[1] === 'ADD' && e.args[2][0].streamID === 'alice-cam'`)
	var play Result
	b.Eval(`T.play('b', 'alice-cam', {roomID: 'r1'})`, &play)
	if !play.OK {
		t.Fatalf("play alice-cam: %+v", play)
	}
	b.Wait(0, `e => e.event === 'playerStateUpdate' && e.args[0].streamID === 'alice-cam' && e.args[0].state === 'PLAYING'`)
	first := b.decoding("b", "alice-cam", 0)
	t.Logf("B decodes A: %+v", first)

	// B's WebSocket is cut; room events continue meanwhile.
	mark := b.Len()
	proxy.Refuse(true)
	proxy.Cut()
	b.WaitState(mark, "b", "r1", "RECONNECTING")
	b.WaitState(mark, "b", "r2", "RECONNECTING")
	for i := range 3 {
		a.Must("a", "sendBroadcastMessage", "r1", fmt.Sprintf("while away %d", i))
	}
	cut := b.decoding("b", "alice-cam", first.Video.FramesDecoded) // media does not ride the WebSocket
	proxy.Refuse(false)
	b.WaitState(mark, "b", "r1", "RECONNECTED")
	b.WaitState(mark, "b", "r2", "RECONNECTED")
	b.Wait(mark, `e => e.event === 'IMRecvBroadcastMessage' && e.args[1][0].message === 'while away 2'`)
	if got := b.broadcasts("b", "r1"); len(got) != 3 || got[0] != "while away 0" || got[2] != "while away 2" {
		t.Errorf("B got %q after resuming, want the 3 messages in order, once", got)
	}
	after := b.decoding("b", "alice-cam", cut.Video.FramesDecoded)
	t.Logf("after the cut and the resume: %+v", after)

	// B switches r2 for r3: its play in r1 goes on.
	b.Must("b", "switchRoom", "r2", "r3", map[string]string{"token": tokB})
	b.WaitState(mark, "b", "r3", "LOGINED")
	switched := b.decoding("b", "alice-cam", after.Video.FramesDecoded)

	// The ICE restart the SDK makes after a network change renegotiates the
	// connection in place: the picture goes on.
	b.Eval(`(async () => { const p = T.engines.b._players.get('alice-cam'); await T.engines.b._offer(p, p.pc, 'media_ice_restart'); return true; })()`, nil)
	switched = b.decoding("b", "alice-cam", switched.Video.FramesDecoded)

	// The backend kicks A: B sees the stream go and its player stop.
	kick(t, n, "r1", "alice")
	a.WaitState(0, "a", "r1", "KICKOUT")
	b.Wait(mark, `e => e.event === 'roomStreamUpdate' && e.args[1] === 'DELETE' && e.args[2][0].streamID === 'alice-cam'`)
	b.Wait(mark, `e => e.event === 'playerStateUpdate' && e.args[0].streamID === 'alice-cam' && e.args[0].state === 'NO_PLAY'`)
	a.Wait(0, `e => e.event === 'publisherStateUpdate' && e.args[0].streamID === 'alice-cam' && e.args[0].state === 'NO_PUBLISH'`)
	stopped := b.inbound("b", "alice-cam")
	for _, st := range stopped.Tracks {
		if st != "ended" {
			t.Errorf("B's tracks of alice-cam are %v after the kick, want ended", stopped.Tracks)
			break
		}
	}
	t.Logf("decoded %d frames in all", switched.Video.FramesDecoded)
	a.noGaps()
	b.noGaps()
}

// Stream extra info, and the stop calls: stopPlayingStream ends the player's
// tracks; stopPublishingStream deletes the stream for the others.
func TestMediaStopsAndStreamExtraInfo(t *testing.T) {
	n := startNode(t, nil)
	p := openHarness(t, n)
	ws := clienttest.URL(n.HTTPAddr())
	p.newEngine("a", ws, nil)
	p.newEngine("b", ws, nil)
	p.Must("a", "loginRoom", "r1", clienttest.Token(t, n, "alice"), user{"alice", "Alice"})
	p.Must("b", "loginRoom", "r1", clienttest.Token(t, n, "bob"), user{"bob", "Bob"})
	if r := p.Run("a", "startPublishingStream", "alice-cam", nil); r.Code != 1906001 || r.Name != "invalid_argument" {
		t.Errorf("publishing without a MediaStream: %+v, want 1906001 invalid_argument", r)
	}
	var r Result
	p.Eval(`(async () => {
		const cam = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio: true });
		return T.run('a', 'startPublishingStream', 'alice-cam', cam, { roomID: 'r1', extraInfo: '720p' });
	})()`, &r)
	if !r.OK {
		t.Fatalf("publish: %+v", r)
	}
	p.Wait(0, `e => e.who === 'b' && e.event === 'roomStreamUpdate' && e.args[1] === 'ADD' && e.args[2][0].streamID === 'alice-cam' && e.args[2][0].extraInfo === '720p' && e.args[2][0].user.userID === 'alice'`)
	p.Must("a", "setStreamExtraInfo", "alice-cam", "1080p")
	p.Wait(0, `e => e.who === 'b' && e.event === 'roomStreamExtraInfoUpdate' && e.args[0] === 'r1' && e.args[1][0].extraInfo === '1080p'`)

	p.Eval(`T.play('b', 'alice-cam')`, &r) // no room: the one it is published in
	if !r.OK {
		t.Fatalf("play: %+v", r)
	}
	p.decoding("b", "alice-cam", 0)
	p.Eval(`(() => { T.kept = T.engines.b._players.get('alice-cam').mediaStream; return true; })()`, nil)
	p.Must("b", "stopPlayingStream", "alice-cam")
	p.Wait(0, `e => e.who === 'b' && e.event === 'playerStateUpdate' && e.args[0].state === 'NO_PLAY'`)
	var states []string
	p.Eval(`T.kept.getTracks().map(t => t.readyState)`, &states)
	if len(states) != 2 || states[0] != "ended" || states[1] != "ended" {
		t.Errorf("the stopped player's tracks are %v, want 2 ended", states)
	}

	p.Must("a", "stopPublishingStream", "alice-cam")
	p.Wait(0, `e => e.who === 'a' && e.event === 'publisherStateUpdate' && e.args[0].state === 'NO_PUBLISH'`)
	p.Wait(0, `e => e.who === 'b' && e.event === 'roomStreamUpdate' && e.args[1] === 'DELETE' && e.args[2][0].streamID === 'alice-cam'`)
	p.noGaps()
}

// An app that stops a stream and starts it again at once (a "republish"
// button; a player re-opened) gets the new media. stopPublishingStream /
// stopPlayingStream send media_close without waiting; the media node's
// NO_PUBLISH / NO_PLAY for the old connection reaches the page after the new
// start is tracked, before its offer. It used to end the new start (1906093,
// and a publish left in the log with no media behind it).
func TestSDKStopThenStartAgainSurvivesTheOldConnectionsEnding(t *testing.T) {
	n := startNode(t, nil)
	p := openHarness(t, n)
	ws := clienttest.URL(n.HTTPAddr())
	p.newEngine("a", ws, nil)
	p.newEngine("b", ws, nil)
	p.Must("a", "loginRoom", "r1", clienttest.Token(t, n, "alice"), user{"alice", "Alice"})
	p.Must("b", "loginRoom", "r1", clienttest.Token(t, n, "bob"), user{"bob", "Bob"})
	if r := p.publishCamera("a", "alice-cam", "r1"); !r.OK {
		t.Fatalf("publish: %+v", r)
	}
	p.Wait(0, `e => e.who === 'a' && e.event === 'publisherStateUpdate' && e.args[0].state === 'PUBLISHING'`)
	var r Result
	p.Eval(`T.play('b', 'alice-cam')`, &r)
	if !r.OK {
		t.Fatalf("play: %+v", r)
	}
	p.Wait(0, `e => e.who === 'b' && e.event === 'playerStateUpdate' && e.args[0].state === 'PLAYING'`)

	t.Run("play", func(t *testing.T) {
		var res Result
		mark := p.Len()
		p.Eval(`(async () => {
			await T.engines.b.stopPlayingStream('alice-cam');
			return T.play('b', 'alice-cam');
		})()`, &res)
		if !res.OK {
			t.Errorf("startPlayingStream right after stopPlayingStream: %+v; player states since: %v", res, statesSince(p, "b", "playerStateUpdate", mark))
		}
		if res.OK {
			p.Wait(mark, `e => e.who === 'b' && e.event === 'playerStateUpdate' && e.args[0].state === 'PLAYING'`)
		}
		t.Logf("player states: %v", statesSince(p, "b", "playerStateUpdate", mark))
		var tracked bool
		p.Eval(`T.engines.b._players.has('alice-cam')`, &tracked)
		if !tracked {
			t.Errorf("the re-played alice-cam is not played any more")
		}
	})
	t.Run("publish", func(t *testing.T) {
		mark := p.Len()
		var res Result
		p.Eval(`(async () => {
			const cam = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio: true });
			await T.engines.a.stopPublishingStream('alice-cam');
			return T.run('a', 'startPublishingStream', 'alice-cam', cam, { roomID: 'r1' });
		})()`, &res)
		if !res.OK {
			t.Errorf("startPublishingStream right after stopPublishingStream: %+v; publisher states since: %v", res, statesSince(p, "a", "publisherStateUpdate", mark))
		}
		if res.OK {
			p.Wait(mark, `e => e.who === 'a' && e.event === 'publisherStateUpdate' && e.args[0].state === 'PUBLISHING'`)
		}
		t.Logf("publisher states: %v", statesSince(p, "a", "publisherStateUpdate", mark))
		var tracked bool
		p.Eval(`T.engines.a._publishers.has('alice-cam')`, &tracked)
		if !tracked {
			t.Errorf("the republished alice-cam is not published any more")
			// ...yet the log still has it published: the others see a
			// stream that carries no media.
			time.Sleep(time.Second)
			var listed bool
			p.Eval(`(() => { const r = T.engines.b._rooms.get('r1'); return !!(r && r.streams && r.streams.has('alice-cam')); })()`, &listed)
			if listed {
				t.Errorf("and the failed start left alice-cam published in the log: bob still lists it, with no media behind it")
			}
		}
	})
}

// statesSince is who's media state changes (event) recorded from mark.
func statesSince(p *Page, who, event string, mark int) []map[string]any {
	var out []map[string]any
	p.Eval(fmt.Sprintf(`T.events.slice(%d).filter(e => e.who === %q && e.event === %q).map(e => e.args[0])`, mark, who, event), &out)
	return out
}

// A startPlayingStream whose play the server took but whose connection
// could not be set up (here the browser cannot make an offer) stops that
// play: it used to stay in the room's log, counting against the member's
// plays (1903007) with nothing behind it.
func TestSDKAFailedStartPlayingStreamStopsItsPlay(t *testing.T) {
	n := startNode(t, nil)
	p := openHarness(t, n)
	p.newEngine("b", clienttest.URL(n.HTTPAddr()), nil)
	p.Must("b", "loginRoom", "r1", clienttest.Token(t, n, "bob"), user{"bob", "Bob"})
	var r Result
	p.Eval(`(async () => {
		const make = RTCPeerConnection.prototype.createOffer;
		RTCPeerConnection.prototype.createOffer = () => Promise.reject(new Error('no offer today'));
		try { return await T.play('b', 'alice-cam', { roomID: 'r1' }); }
		finally { RTCPeerConnection.prototype.createOffer = make; }
	})()`, &r)
	if r.OK || r.Code != 1906093 {
		t.Fatalf("startPlayingStream with no offer: %+v, want 1906093 media_failed", r)
	}
	playing := func() bool {
		var in bool
		n.Live.Read(func(m *projections.Model) {
			if a := m.App(clienttest.App); a != nil && a.Rooms["r1"] != nil {
				if mem := a.Rooms["r1"].Members["bob"]; mem != nil {
					in = mem.Playing["alice-cam"]
				}
			}
		})
		return in
	}
	for deadline := time.Now().Add(10 * time.Second); playing(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("bob still plays alice-cam in the room's state after the failed start")
		}
	}
}

// A publisher is PUBLISHING; the app starts the stream ID again (a camera
// switch). While the new start has not made its offer, the media node ends
// the old connection (here the node shuts down). That ending does not end
// the new start (TestSDKStopThenStartAgainSurvivesTheOldConnectionsEnding),
// but the old connection is gone: when the new start then fails before its
// offer, the old one is not put back (the app was told PUBLISHING again,
// for a stream the server had no connection for, and never NO_PUBLISH).
func TestSDKTheEndingOfATakenOverConnectionIsNotUndoneByAFailedStart(t *testing.T) {
	n := startNode(t, nil)
	p := openHarness(t, n)
	p.newEngine("a", clienttest.URL(n.HTTPAddr()), nil)
	p.Must("a", "loginRoom", "r1", clienttest.Token(t, n, "alice"), user{"alice", "Alice"})
	if r := p.publishCamera("a", "alice-cam", "r1"); !r.OK {
		t.Fatalf("publish: %+v", r)
	}
	p.Wait(0, `e => e.who === 'a' && e.event === 'publisherStateUpdate' && e.args[0].state === 'PUBLISHING'`)
	// The browser cannot make the new connection's offer (as in
	// TestSDKAFailedStartPlayingStreamStopsItsPlay), but only once the test
	// opens the gate; media events that reach the engine are recorded.
	p.Eval(`(() => {
		T.gate = new Promise((r) => { T.openGate = r; });
		const make = RTCPeerConnection.prototype.createOffer;
		RTCPeerConnection.prototype.createOffer = function () {
			return T.gate.then(() => { RTCPeerConnection.prototype.createOffer = make; throw new Error('no offer today'); });
		};
		const eng = T.engines.a, me = eng._mediaEvent.bind(eng);
		T.seen = [];
		eng._mediaEvent = (k, d) => { T.seen.push(d); return me(k, d); };
		T.calls = T.calls || {};
		T.calls.again = (async () => {
			const cam = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio: true });
			return T.run('a', 'startPublishingStream', 'alice-cam', cam, { roomID: 'r1' });
		})();
		return true;
	})()`, nil)
	// The new start's publish was answered and it is making its offer.
	p.Until(`(() => { const e = T.engines.a._publishers.get('alice-cam'); return e && e.old && !e.pending && e.pc && !e.offered; })()`, nil)
	mark := p.Len()
	n.SFU.Close() // the media node ends the old connection: NO_PUBLISH shutdown
	p.Until(`T.seen.some((d) => d.state === 'NO_PUBLISH')`, nil)
	p.Eval(`T.openGate(); true`, nil)
	r := p.outcome("again")
	t.Logf("the new start: %+v", r)
	states := statesSince(p, "a", "publisherStateUpdate", mark)
	t.Logf("publisher states since the node ended the connection: %v", states)
	last := ""
	if len(states) > 0 {
		last, _ = states[len(states)-1]["state"].(string)
	}
	var tracked bool
	p.Eval(`T.engines.a._publishers.has('alice-cam')`, &tracked)
	if st := n.SFU.Stats(); st.Publishers != 0 {
		t.Fatalf("SFU %+v", st)
	}
	if last != "NO_PUBLISH" || tracked {
		t.Errorf("the media node ended alice-cam's connection, yet the app's last publisher state is %q (tracked %v): it never hears NO_PUBLISH", last, tracked)
	}
}
