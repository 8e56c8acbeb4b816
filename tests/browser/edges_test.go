package browser

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/roomlog/roomlog/tests/clienttest"
)

// ZIM setRoomAttributes partly succeeds: keys another member owns are
// skipped and listed in the reply's error_keys, which the SDK resolves with
// as errorKeys (the Go SDK's WriteResult.ErrorKeys). A write refused whole
// (1902010) carries them in the error's data.
func TestSDKRoomAttributeWritesSayWhichKeysWereSkipped(t *testing.T) {
	n := startNode(t, nil)
	p := openHarness(t, n)
	ws := clienttest.URL(n.HTTPAddr())
	p.newEngine("z1", ws, nil)
	p.newEngine("z2", ws, nil)
	p.Must("z1", "login", user{"zoe", "Zoe"}, clienttest.Token(t, n, "zoe"))
	p.Must("z2", "login", user{"zed", "Zed"}, clienttest.Token(t, n, "zed"))
	// The creator owns the attributes a room is created with.
	p.Must("z1", "createRoom", map[string]string{"roomID": "maths"},
		map[string]any{"roomAttributes": map[string]string{"mic": "zoe"}})
	p.Must("z2", "joinRoom", "maths")

	var res struct {
		RoomID    string   `json:"roomID"`
		ErrorKeys []string `json:"errorKeys"`
	}
	json.Unmarshal(p.Must("z2", "setRoomAttributes", map[string]string{"mic": "zed", "topic": "fractions"}, "maths"), &res)
	var snap struct {
		RoomAttributes map[string]string `json:"roomAttributes"`
	}
	json.Unmarshal(p.Must("z1", "queryRoom", "maths"), &snap)
	if snap.RoomAttributes["mic"] != "zoe" || snap.RoomAttributes["topic"] != "fractions" {
		t.Fatalf("attributes after the partial write = %v, want mic=zoe (skipped), topic=fractions", snap.RoomAttributes)
	}
	if !slices.Equal(res.ErrorKeys, []string{"mic"}) {
		t.Errorf("setRoomAttributes resolved errorKeys %v; the server skipped [mic]", res.ErrorKeys)
	}

	r := p.Run("z2", "deleteRoomAttributes", []string{"mic"}, "maths")
	var data struct {
		ErrorKeys []string `json:"error_keys"`
	}
	json.Unmarshal(r.Data, &data)
	if r.OK || r.Code != 1902010 || !slices.Equal(data.ErrorKeys, []string{"mic"}) {
		t.Errorf("deleting only a key another member owns: %+v (data %s), want 1902010 with error_keys [mic]", r, r.Data)
	}
}

// destroyEngine while a reconnection is being dialled: the dial's outcome
// must not bring the session back (the Go SDK's Close cancels the dial).
// Nothing reaches the app after destroyEngine, and the engine stays closed.
func TestSDKDestroyedWhileReconnectingStaysDestroyed(t *testing.T) {
	p, proxy, _ := reconnectingPair(t, nil, nil)
	mark := p.Len()
	proxy.Refuse(true)
	proxy.Cut()
	p.WaitState(mark, "b", "r1", "RECONNECTING")
	// The next attempt connects to the proxy and hangs there, frozen,
	// before its hello.
	proxy.Freeze()
	for len(proxy.Accepted()) > 0 {
		<-proxy.Accepted()
	}
	proxy.Refuse(false)
	select {
	case <-proxy.Accepted():
	case <-time.After(clienttest.Wait):
		t.Fatal("no reconnection attempt reached the proxy")
	}
	p.Eval(`T.engines.b.destroyEngine()`, nil)
	destroyed := p.Len()
	for len(proxy.Ended()) > 0 {
		<-proxy.Ended()
	}
	proxy.Thaw()
	// The thawed dial gets its hello, and the destroyed engine closes it.
	select {
	case <-proxy.Ended():
	case <-time.After(clienttest.Wait):
		t.Fatal("the destroyed engine kept the connection its redial opened")
	}
	for _, e := range p.since(destroyed, "b") {
		t.Errorf("after destroyEngine, b's app got %s%s", e.Event, e.Args)
	}
	if r := p.Run("b", "sendBroadcastMessage", "r1", "x"); r.Code != 1906090 {
		t.Errorf("a call after destroyEngine: %+v, want 1906090 (client_closed)", r)
	}
}

// since returns the events of who recorded from index from on.
func (p *Page) since(from int, who string) []Event {
	p.t.Helper()
	var es []Event
	p.Eval(fmt.Sprintf(`T.of(%q).filter(e => e.index >= %d)`, who, from), &es)
	return es
}

// startPublishingStream called while the engine reconnects, when the session
// timed out meanwhile: the re-login ends the old session's streams, but the
// publish still waiting for the connection goes on the new session. It
// resolves, stays the engine's, and stopPublishingStream closes its peer
// connection: no media connection is left that nothing can close.
func TestSDKPublishCalledDuringAReloginGoesOnTheNewSession(t *testing.T) {
	p, proxy, _ := reconnectingPair(t, func(o *clienttest.NodeOptions) {
		// A short timeout, and heartbeats often enough to keep the
		// re-entered session well inside it (as TestSDKReloginAfterTimeout).
		o.Gateway.HeartbeatInterval, o.Gateway.HeartbeatTimeout = 250*time.Millisecond, 5*time.Second
	}, nil)
	// Record every peer connection the page makes.
	p.Eval(`(() => { const P = window.RTCPeerConnection; T.pcs = [];
		window.RTCPeerConnection = function (...a) { const pc = new P(...a); T.pcs.push(pc); return pc; };
		window.RTCPeerConnection.prototype = P.prototype; return true; })()`, nil)
	p.Eval(`(async () => { T.cam = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio: true }); return true; })()`, nil)
	mark := p.Len()
	proxy.Refuse(true)
	proxy.Cut()
	p.WaitState(mark, "b", "r1", "RECONNECTING")
	p.Wait(mark, `e => e.who === 'a' && e.event === 'roomUserUpdate' && e.args[1] === 'DELETE' && e.args[2][0].userID === 'bob'`)
	// The app publishes while the engine is still reconnecting.
	p.Eval(`(() => { T.pub = T.run('b', 'startPublishingStream', 'bob-cam', T.cam, { roomID: 'r1' }); return true; })()`, nil)
	proxy.Refuse(false)
	p.WaitState(mark, "b", "r1", "LOGINED")
	var r Result
	p.Eval(`T.pub`, &r)
	if !r.OK {
		t.Fatalf("startPublishingStream called while reconnecting: %+v, want it published on the new session", r)
	}
	p.Wait(mark, `e => e.who === 'a' && e.event === 'roomStreamUpdate' && e.args[1] === 'ADD' && e.args[2][0].streamID === 'bob-cam'`)
	var tracked bool
	p.Eval(`T.engines.b._publishers.has('bob-cam')`, &tracked)
	if !tracked {
		t.Fatal("the stream published during the re-login is not the engine's")
	}
	p.Must("b", "stopPublishingStream", "bob-cam")
	var open []string
	p.Eval(`T.pcs.filter(pc => pc.signalingState !== 'closed').map(pc => pc.connectionState)`, &open)
	if len(open) > 0 {
		t.Errorf("after stopPublishingStream, %d peer connection(s) still open (%v)", len(open), open)
	}
}

// A call waiting for the connection when the reconnect window runs out
// fails with 1002053, as the rooms do (RECONNECT_FAILED), like the Go SDK's
// errReconnectFailed: it is not sent on a new session.
func TestSDKACallWaitingWhenTheReconnectWindowEndsFailsWithIt(t *testing.T) {
	// A window long enough for the call to start inside it on a loaded
	// machine (a page round trip), short enough to wait out.
	p, proxy, _ := reconnectingPair(t, nil, map[string]any{"reconnectWindow": 4000})
	mark := p.Len()
	proxy.Refuse(true)
	proxy.Cut()
	p.WaitState(mark, "b", "r1", "RECONNECTING")
	r := p.Run("b", "sendBroadcastMessage", "r1", "anyone?")
	p.WaitState(mark, "b", "r1", "RECONNECT_FAILED")
	if r.OK || r.Code != 1002053 {
		t.Errorf("a call waiting when the reconnect window ran out: %+v, want 1002053 (timeout)", r)
	}
}
