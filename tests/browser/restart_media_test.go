package browser

import (
	"encoding/json"
	"testing"

	"github.com/roomlog/roomlog/tests/clienttest"
)

// mediaStates returns who's publisherStateUpdate or playerStateUpdate
// states of stream from event index mark on.
func (p *Page) mediaStates(who, event, stream string, mark int) []string {
	var states []string
	for _, e := range p.Events(who, event) {
		var u struct {
			StreamID string `json:"streamID"`
			State    string `json:"state"`
		}
		if e.Index >= mark && json.Unmarshal(e.Args[0], &u) == nil && u.StreamID == stream {
			states = append(states, u.State)
		}
	}
	return states
}

// entryState returns the state of who's publisher or player entry of stream
// ("untracked" if it has none).
func (p *Page) entryState(who, kind, stream string) string {
	var st string
	p.Eval(`((e, m, id) => { const x = e[m].get(id); return x ? x.state : 'untracked'; })(T.engines.`+who+`, `+
		`'_`+kind+`s', '`+stream+`')`, &st)
	return st
}

// liveStream logs a and b into r1, publishes a's camera as alice-cam and
// has b play it, decoding.
func liveStream(t *testing.T) *Page {
	n := startNode(t, nil)
	p := openHarness(t, n)
	ws := clienttest.URL(n.HTTPAddr())
	p.newEngine("a", ws, nil)
	p.newEngine("b", ws, nil)
	p.Eval(`T.engines.a.enableMultiRoom(true)`, nil)
	tokA := clienttest.Token(t, n, "alice")
	p.Must("a", "loginRoom", "r1", tokA, user{"alice", "Alice"})
	p.Must("a", "loginRoom", "r2", tokA, user{"alice", "Alice"})
	p.Must("b", "loginRoom", "r1", clienttest.Token(t, n, "bob"), user{"bob", "Bob"})
	if r := p.publishCamera("a", "alice-cam", "r1"); !r.OK {
		t.Fatalf("publish: %+v", r)
	}
	var r Result
	p.Eval(`T.play('b', 'alice-cam', {roomID: 'r1'})`, &r)
	if !r.OK {
		t.Fatalf("play: %+v", r)
	}
	p.decoding("b", "alice-cam", 0)
	return p
}

// Publishing a stream ID again in its room (the app switched cameras)
// replaces its media. Before, the SDK closed the old connection first, and
// the server's NO_PUBLISH for it ended the new one: the call failed with
// 1906093, and the stream stayed published with no media behind it.
func TestPublishingAStreamAgainReplacesItsMedia(t *testing.T) {
	p := liveStream(t)
	before := p.inbound("b", "alice-cam")
	mark := p.Len()
	if r := p.publishCamera("a", "alice-cam", "r1"); !r.OK {
		t.Fatalf("publishing alice-cam again in r1: %+v", r)
	}
	p.Wait(mark, `e => e.who === 'a' && e.event === 'publisherStateUpdate' && e.args[0].state === 'PUBLISHING'`)
	p.decoding("b", "alice-cam", before.Video.FramesDecoded+25)
	if got := p.mediaStates("a", "publisherStateUpdate", "alice-cam", mark); len(got) != 2 ||
		got[0] != "PUBLISH_REQUESTING" || got[1] != "PUBLISHING" {
		t.Errorf("a's publisher states of the republish: %v, want [PUBLISH_REQUESTING PUBLISHING]", got)
	}
	if st := p.entryState("a", "publisher", "alice-cam"); st != "PUBLISHING" {
		t.Errorf("a's publisher of alice-cam is %s, want PUBLISHING", st)
	}
}

// Playing a stream again (an app that calls startPlayingStream on each
// render) leaves a working player; before, the second call failed with
// 1906093 and the stream was left unplayed.
func TestPlayingAStreamAgainKeepsAWorkingPlayer(t *testing.T) {
	p := liveStream(t)
	mark := p.Len()
	if r := p.Run("b", "startPlayingStream", "alice-cam", map[string]string{"roomID": "r1"}); !r.OK {
		t.Fatalf("playing alice-cam again: %+v", r)
	}
	p.Wait(mark, `e => e.who === 'b' && e.event === 'playerStateUpdate' && e.args[0].state === 'PLAYING'`)
	p.decoding("b", "alice-cam", 0) // the new player's connection
	for _, st := range p.mediaStates("b", "playerStateUpdate", "alice-cam", mark) {
		if st == "NO_PLAY" {
			t.Errorf("b's player states of the second play: %v", p.mediaStates("b", "playerStateUpdate", "alice-cam", mark))
			break
		}
	}
	if st := p.entryState("b", "player", "alice-cam"); st != "PLAYING" {
		t.Errorf("b's player of alice-cam is %s, want PLAYING", st)
	}
}

// Publishing a live stream ID again in another room is refused (1903001):
// the stream live in the first room goes on, and its publisher is PUBLISHING
// again. Before, the refused call had closed its connection.
func TestARefusedRepublishKeepsTheLiveStream(t *testing.T) {
	p := liveStream(t)
	before := p.inbound("b", "alice-cam")
	mark := p.Len()
	if r := p.publishCamera("a", "alice-cam", "r2"); r.OK || r.Code != 1903001 {
		t.Fatalf("publishing alice-cam again in r2: %+v, want 1903001", r)
	}
	if got := p.mediaStates("a", "publisherStateUpdate", "alice-cam", mark); len(got) == 0 || got[len(got)-1] != "PUBLISHING" {
		t.Errorf("a's publisher states after the refused republish: %v, want the last PUBLISHING", got)
	}
	p.decoding("b", "alice-cam", before.Video.FramesDecoded+25)
	if st := p.entryState("a", "publisher", "alice-cam"); st != "PUBLISHING" {
		t.Errorf("a's publisher of alice-cam is %s, want PUBLISHING", st)
	}
}

// An app that calls startPlayingStream on each render may call it again
// before the last call resolved. Each start takes over the live connection
// from the one it supersedes, so the last call leaves a working player;
// before, an earlier call's failure closed the live connection first, the
// server's NO_PLAY for it ended the last start, and that call never
// settled (its offer was cut off by the close).
func TestPlayingAStreamThreeTimesInARowKeepsAWorkingPlayer(t *testing.T) {
	p := liveStream(t)
	mark := p.Len()
	var rs []Result
	p.Eval(`Promise.all([1, 2, 3].map(() => Promise.race([T.run('b', 'startPlayingStream', 'alice-cam', { roomID: 'r1' }),
		new Promise((res) => setTimeout(() => res({ ok: false, name: 'did not settle within 20 s' }), 20000))])))`, &rs)
	if len(rs) != 3 || !rs[2].OK {
		t.Fatalf("the last of three startPlayingStream in a row: %+v", rs)
	}
	for i, r := range rs[:2] {
		if r.OK || r.Code != 1906093 {
			t.Errorf("start %d of three, superseded by the next: %+v, want 1906093 (media_failed)", i+1, r)
		}
	}
	p.Wait(mark, `e => e.who === 'b' && e.event === 'playerStateUpdate' && e.args[0].state === 'PLAYING'`)
	p.decoding("b", "alice-cam", 0)
	if st := p.entryState("b", "player", "alice-cam"); st != "PLAYING" {
		t.Errorf("b's player of alice-cam is %s after three starts, want PLAYING (states %v)", st,
			p.mediaStates("b", "playerStateUpdate", "alice-cam", mark))
	}
}

// destroyEngine while a second startPublishingStream of a live stream ID
// waits for its reply closes the connection the new start took over too:
// before, the failed start put it back, open and PUBLISHING, on a destroyed
// engine, where nothing could close it.
func TestDestroyingTheEngineDuringARepublishClosesTheOldConnection(t *testing.T) {
	p := liveStream(t)
	var r struct {
		Outcome Result `json:"outcome"`
		Old     string `json:"old"`
	}
	p.Eval(`(async () => {
		const e = T.engines.a;
		const oldPc = e._publishers.get('alice-cam').pc;
		const cam = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio: true });
		const started = T.run('a', 'startPublishingStream', 'alice-cam', cam, { roomID: 'r1' });
		e.destroyEngine();
		const outcome = await started;
		return { outcome, old: oldPc.signalingState + '/' + oldPc.connectionState };
	})()`, &r)
	if r.Outcome.OK || r.Outcome.Code != 1906090 {
		t.Errorf("the republish cut short by destroyEngine: %+v, want 1906090 (client_closed)", r.Outcome)
	}
	if r.Old != "closed/closed" {
		t.Errorf("the superseded publisher connection is %s once the republish failed, want closed/closed", r.Old)
	}
	if st := p.entryState("a", "publisher", "alice-cam"); st != "untracked" {
		t.Errorf("after destroyEngine, a's publisher of alice-cam is %s, want untracked", st)
	}
}

// gatheringAlice opens a page whose engine a, alice logged in to r1, gathers
// ICE candidates for up to the SDK's second on every offer: its STUN server
// never answers (loopback, discard port), as a slow STUN or TURN server.
func gatheringAlice(t *testing.T) *Page {
	n := startNode(t, nil)
	p := openHarness(t, n)
	p.newEngine("a", clienttest.URL(n.HTTPAddr()), map[string]any{
		"iceServers": []map[string]any{{"urls": "stun:127.0.0.1:9"}}})
	p.Must("a", "loginRoom", "r1", clienttest.Token(t, n, "alice"), user{"alice", "Alice"})
	return p
}

// offerOut, inside an async function on gatheringAlice's page, starts a's
// publish of alice-cam and waits until its offer is the local description
// and not sent yet; it defines e (the engine), started (the call's
// outcome), x (the publisher) and reached (whether the offer got there).
const offerOut = `
		const e = T.engines.a;
		const cam = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio: true });
		const started = T.run('a', 'startPublishingStream', 'alice-cam', cam, { roomID: 'r1' });
		const deadline = Date.now() + 30000;
		let reached = false, x;
		while (Date.now() < deadline) {
			x = e._publishers.get('alice-cam');
			if (x && x.pc && x.pc.signalingState === 'have-local-offer' && !x.offered) { reached = true; break; }
			await new Promise((res) => setTimeout(res, 5));
		}`

// destroyEngine while a startPublishingStream waits for its ICE candidates
// (its offer made, not yet sent: with a STUN or TURN server, gathering takes
// up to the SDK's second) fails the start with client_closed, as the Go
// SDK's PublishMedia fails with ErrClosed. It used to resolve true,
// "published", on a destroyed engine, its connection closed and its offer
// never sent.
func TestDestroyingTheEngineWhileAnOfferGathersFailsTheStart(t *testing.T) {
	p := gatheringAlice(t)
	var r struct {
		Outcome Result `json:"outcome"`
		Reached bool   `json:"reached"`
	}
	p.Eval(`(async () => {`+offerOut+`
		e.destroyEngine();
		return { outcome: await started, reached };
	})()`, &r)
	if !r.Reached {
		t.Fatal("the start never reached its offer")
	}
	if r.Outcome.OK || r.Outcome.Code != 1906090 {
		t.Errorf("a startPublishingStream cut short by destroyEngine while its offer gathered candidates: %+v, "+
			"want it rejected with 1906090 (client_closed)", r.Outcome)
	}
}

// The browser says the network is back while a start's first offer is still
// out: there is nothing to restart yet (the answer to that offer sets the
// path up), and a second offer crossing the first would leave the two sides
// with different ICE credentials. The restart used to go out anyway, and
// its answer failed to apply ("Called in wrong state: stable").
func TestTheNetworkComingBackDuringAFirstOfferRestartsNothing(t *testing.T) {
	p := gatheringAlice(t)
	var r struct {
		Outcome    Result `json:"outcome"`
		Reached    bool   `json:"reached"`
		Restarting bool   `json:"restarting"`
	}
	p.Eval(`(async () => {`+offerOut+`
		window.dispatchEvent(new Event('online'));
		const restarting = !!(x && x.restarting);
		const outcome = await started;
		while (x && x.restarting && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
		return { outcome, reached, restarting };
	})()`, &r)
	if !r.Reached {
		t.Fatal("the start never reached its offer")
	}
	if !r.Outcome.OK {
		t.Fatalf("the start: %+v", r.Outcome)
	}
	if r.Restarting {
		t.Error("the network coming back started an ICE restart of a connection whose first offer was still out")
	}
}
