package browser

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/netcut"
)

// reconnectingPair is a node with alice's engine "a" connected directly and
// bob's engine "b" (multi-room, in r1 and r2) connected through a proxy the
// test can cut; alice is in r1.
func reconnectingPair(t *testing.T, edit func(*clienttest.NodeOptions), bobOpts map[string]any) (*Page, *netcut.Proxy, *node.Node) {
	t.Helper()
	n := startNode(t, edit)
	proxy := netcut.Start(t, n.HTTPAddr())
	p := openHarness(t, n)
	p.newEngine("a", clienttest.URL(n.HTTPAddr()), nil)
	p.newEngine("b", clienttest.URL(proxy.Addr()), bobOpts)
	p.Eval(`T.engines.b.enableMultiRoom(true)`, nil)
	tokB := clienttest.Token(t, n, "bob")
	p.Must("b", "loginRoom", "r1", tokB, user{"bob", "Bob"})
	p.Must("b", "loginRoom", "r2", tokB, user{"bob", "Bob"})
	p.Must("a", "loginRoom", "r1", clienttest.Token(t, n, "alice"), user{"alice", "Alice"})
	p.Wait(0, `e => e.who === 'b' && e.event === 'roomUserUpdate' && e.args[0] === 'r1' && e.args[2][0].userID === 'alice'`)
	return p, proxy, n
}

func (p *Page) session(who string) string {
	p.t.Helper()
	var s string
	p.Eval(fmt.Sprintf(`T.engines[%q].session`, who), &s)
	return s
}

// broadcasts returns the broadcast messages who received in room, in order.
func (p *Page) broadcasts(who, room string) []string {
	p.t.Helper()
	var out []string
	for _, e := range p.Events(who, "IMRecvBroadcastMessage") {
		var chat []struct{ Message string }
		json.Unmarshal(e.Args[1], &chat)
		if e.Str(0) == room {
			for _, c := range chat {
				out = append(out, c.Message)
			}
		}
	}
	return out
}

// The connection drops: the engine reports RECONNECTING for each room,
// resumes the same session when the network is back, reports RECONNECTED,
// and gets every event it missed, in order, once; the others never see it
// leave.
func TestSDKReconnectResumesWithoutGap(t *testing.T) {
	const beat = 300 * time.Millisecond
	p, proxy, _ := reconnectingPair(t, func(o *clienttest.NodeOptions) { o.Gateway.HeartbeatInterval = beat }, nil)
	session := p.session("b")
	p.Must("a", "sendBroadcastMessage", "r1", "before")
	p.Wait(0, `e => e.who === 'b' && e.event === 'IMRecvBroadcastMessage' && e.args[1][0].message === 'before'`)
	// Idle for several heartbeat intervals: heartbeats keep the session up.
	// (Were the machine so busy that the SDK missed them and reconnected,
	// it would resume, and what follows would hold all the same.)
	time.Sleep(5 * beat)

	mark := p.Len()
	proxy.Refuse(true)
	proxy.Cut()
	for _, room := range []string{"r1", "r2"} {
		if e := p.WaitState(mark, "b", room, "RECONNECTING"); e.Num(2) != 1002051 {
			t.Errorf("RECONNECTING in %s came with code %d, want 1002051", room, e.Num(2))
		}
	}
	var missed []string
	for i := range 5 {
		missed = append(missed, fmt.Sprintf("missed %d", i))
		p.Must("a", "sendBroadcastMessage", "r1", missed[i])
	}
	p.Must("a", "setRoomExtraInfo", "r1", "topic", "while away")
	proxy.Refuse(false)
	for _, room := range []string{"r1", "r2"} {
		if e := p.WaitState(mark, "b", room, "RECONNECTED"); e.Num(2) != 0 {
			t.Errorf("RECONNECTED in %s came with code %d, want 0", room, e.Num(2))
		}
	}
	p.Wait(mark, `e => e.who === 'b' && e.event === 'roomExtraInfoUpdate' && e.args[1][0].value === 'while away'`)
	p.Must("a", "sendBroadcastMessage", "r1", "after")
	p.Wait(mark, `e => e.who === 'b' && e.event === 'IMRecvBroadcastMessage' && e.args[1][0].message === 'after'`)

	want := append(append([]string{"before"}, missed...), "after")
	if got := p.broadcasts("b", "r1"); !slices.Equal(got, want) {
		t.Errorf("b received %q, want %q: each once, in order", got, want)
	}
	if got := p.session("b"); got != session {
		t.Errorf("the session changed from %s to %s: it was not resumed", session, got)
	}
	for _, e := range p.Events("a", "roomUserUpdate") {
		if e.Str(1) == "DELETE" {
			t.Errorf("alice saw bob leave: %s", e.Args)
		}
	}
	for _, e := range p.Events("b", "roomStateChanged") {
		if r := e.Str(1); r == "LOGINING" && e.Index > mark {
			t.Errorf("b logged in again instead of resuming: %s", e.Args)
		}
	}
	p.noGaps()
}

// A server that goes silent is detected by the heartbeat watchdog.
func TestSDKHeartbeatWatchdog(t *testing.T) {
	const beat = 400 * time.Millisecond
	p, proxy, _ := reconnectingPair(t, func(o *clienttest.NodeOptions) { o.Gateway.HeartbeatInterval = beat }, nil)
	mark := p.Len()
	proxy.MuteServer()
	start := time.Now()
	p.WaitState(mark, "b", "r1", "RECONNECTING")
	t.Logf("silence detected after %v (heartbeat %v)", time.Since(start).Round(time.Millisecond), beat)
	p.WaitState(mark, "b", "r1", "RECONNECTED")
	t.Logf("reconnected after %v", time.Since(start).Round(time.Millisecond))
	p.Must("a", "sendBroadcastMessage", "r1", "still there?")
	p.Wait(mark, `e => e.who === 'b' && e.event === 'IMRecvBroadcastMessage' && e.args[1][0].message === 'still there?'`)
	p.noGaps()
}

// A client away longer than the heartbeat timeout cannot resume: it logs
// into its rooms again on a new session, and the others see it come back.
func TestSDKReloginAfterTimeout(t *testing.T) {
	p, proxy, _ := reconnectingPair(t, func(o *clienttest.NodeOptions) {
		// A short timeout, and heartbeats often enough to keep the
		// re-entered session well inside it (through Chromium and a -race
		// server on a loaded machine: 5 s).
		o.Gateway.HeartbeatInterval, o.Gateway.HeartbeatTimeout = 250*time.Millisecond, 5*time.Second
	}, nil)
	session := p.session("b")
	mark := p.Len()
	proxy.Refuse(true)
	proxy.Cut()
	p.WaitState(mark, "b", "r1", "RECONNECTING")
	p.Wait(mark, `e => e.who === 'a' && e.event === 'roomUserUpdate' && e.args[1] === 'DELETE' && e.args[2][0].userID === 'bob'`)
	proxy.Refuse(false)
	p.WaitState(mark, "b", "r1", "LOGINED")
	p.WaitState(mark, "b", "r2", "LOGINED")
	back := p.Wait(mark, `e => e.who === 'a' && e.event === 'roomUserUpdate' && e.args[1] === 'ADD' && e.args[2][0].userID === 'bob'`)
	if got := p.session("b"); got == session || got == "" {
		t.Errorf("the session is %q after a timeout, want a new one (was %s)", got, session)
	}
	// The new session works: messages flow both ways.
	p.Must("b", "sendBroadcastMessage", "r1", "I'm back")
	p.Wait(back.Index, `e => e.who === 'a' && e.event === 'IMRecvBroadcastMessage' && e.args[1][0].message === "I'm back"`)
	p.noGaps()
}

// A client away longer than the heartbeat timeout logs in again: the users
// and streams that left meanwhile get their DELETE (their departures went
// with the old session), so that an app keeping its lists from
// roomUserUpdate and roomStreamUpdate ends with the room's. Before, it kept
// them for good.
func TestSDKReloginDeletesWhoLeftMeanwhile(t *testing.T) {
	p, proxy, _ := reconnectingPair(t, func(o *clienttest.NodeOptions) {
		// 5 s: the live sessions heartbeat through Chromium and a -race
		// server on a loaded machine.
		o.Gateway.HeartbeatInterval, o.Gateway.HeartbeatTimeout = 250*time.Millisecond, 5*time.Second
	}, nil)
	if r := p.publishCamera("a", "alice-cam", "r1"); !r.OK {
		t.Fatalf("publish: %+v", r)
	}
	p.Wait(0, `e => e.who === 'b' && e.event === 'roomStreamUpdate' && e.args[1] === 'ADD' && e.args[2][0].streamID === 'alice-cam'`)
	mark := p.Len()
	proxy.Refuse(true)
	proxy.Cut()
	p.WaitState(mark, "b", "r1", "RECONNECTING")
	p.Wait(mark, `e => e.who === 'a' && e.event === 'roomUserUpdate' && e.args[1] === 'DELETE' && e.args[2][0].userID === 'bob'`)
	p.Must("a", "stopPublishingStream", "alice-cam")
	p.Must("a", "logoutRoom", "r1") // alice leaves while bob is away
	proxy.Refuse(false)
	p.WaitState(mark, "b", "r1", "LOGINED")

	var snap struct {
		UserList   []user `json:"userList"`
		StreamList []struct {
			StreamID string `json:"streamID"`
		} `json:"streamList"`
	}
	json.Unmarshal(p.Must("b", "queryRoom", "r1"), &snap)
	var users, streams []string
	for _, u := range snap.UserList {
		if u.UserID != "bob" {
			users = append(users, u.UserID)
		}
	}
	for _, st := range snap.StreamList {
		streams = append(streams, st.StreamID)
	}
	shownUsers := p.shown("b", "r1", "roomUserUpdate", "userID")
	shownStreams := p.shown("b", "r1", "roomStreamUpdate", "streamID")
	if !slices.Equal(shownUsers, users) || !slices.Equal(shownStreams, streams) {
		t.Errorf("after the re-login, b's users and streams of r1 from its callbacks are %v and %v; the room's (queryRoom) "+
			"are %v and %v", shownUsers, shownStreams, users, streams)
	}
	p.noGaps()
}

// shown returns the IDs (field idField) that who's ADD and DELETE callbacks
// of event in room leave listed, sorted.
func (p *Page) shown(who, room, event, idField string) []string {
	p.t.Helper()
	in := map[string]bool{}
	for _, e := range p.Events(who, event) {
		if e.Str(0) != room {
			continue
		}
		var items []map[string]any
		json.Unmarshal(e.Args[2], &items)
		for _, it := range items {
			id, _ := it[idField].(string)
			in[id] = e.Str(1) == "ADD"
		}
	}
	var ids []string
	for id, listed := range in {
		if listed {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Past the retry window the engine reports RECONNECT_FAILED (1002053) and
// forgets the session; the app can log in again.
func TestSDKReconnectFailed(t *testing.T) {
	p, proxy, n := reconnectingPair(t, nil, map[string]any{"reconnectWindow": 1000})
	mark := p.Len()
	proxy.Refuse(true)
	proxy.Cut()
	p.WaitState(mark, "b", "r1", "RECONNECTING")
	for _, room := range []string{"r1", "r2"} {
		if e := p.WaitState(mark, "b", room, "RECONNECT_FAILED"); e.Num(2) != 1002053 {
			t.Errorf("RECONNECT_FAILED in %s came with code %d, want 1002053", room, e.Num(2))
		}
	}
	var rooms []string
	p.Eval(`T.engines.b.rooms`, &rooms)
	if len(rooms) != 0 {
		t.Errorf("rooms after RECONNECT_FAILED = %v, want none", rooms)
	}
	proxy.Refuse(false)
	p.Must("b", "loginRoom", "r1", clienttest.Token(t, n, "bob"), user{"bob", "Bob"})
	p.WaitState(mark, "b", "r1", "LOGINED")
}

// A request made while the socket is closing, before the browser has told
// the engine (readyState CLOSING, no close event yet), never left: it is
// sent again on the next connection, as the Go SDK does, and succeeds. It
// used to fail with "the connection was lost before the reply; the
// operation may or may not have taken effect", which no caller can act on.
func TestSDKARequestThatCouldNotBeSentIsSentOnTheNextConnection(t *testing.T) {
	p, _, _ := reconnectingPair(t, nil, nil)
	var r Result
	p.Eval(`(async () => {
		const e = T.engines.b;
		e._link.ws.close(); // CLOSING at once; the close event comes later
		return await T.run('b', 'sendBroadcastMessage', 'r1', 'sent after the close');
	})()`, &r)
	if !r.OK {
		t.Fatalf("a broadcast made while the socket was closing: %+v, want it sent on the next connection", r)
	}
	p.Wait(0, `e => e.who === 'a' && e.event === 'IMRecvBroadcastMessage' && JSON.stringify(e.args).includes('sent after the close')`)
}

// The connection is lost just after the reply to a logout of r2, before the
// room's departure reached the engine, and the reconnection gives up: the
// session is over, and so is every media connection of it, r2's publisher
// included (NO_PUBLISH, its connection closed), as the Go SDK ends all
// media on ReconnectFailed. It used to end only the media of the rooms not
// being left, and bob's camera connection stayed open, PUBLISHING, on a
// session that no longer existed.
func TestSDKReconnectFailedEndsTheMediaOfARoomBeingLeft(t *testing.T) {
	p, proxy, _ := reconnectingPair(t, nil, map[string]any{"reconnectWindow": 1000})
	if r := p.publishCamera("b", "bob-cam", "r2"); !r.OK {
		t.Fatalf("publish: %+v", r)
	}
	mark := p.Len()
	proxy.Refuse(true) // no reconnection gets through
	var r Result
	p.Eval(`(async () => {
		const e = T.engines.b;
		const leaving = e._leaving.bind(e);
		// The reply's hook runs, then the connection drops before any
		// later frame (the room's departure) is read.
		e._leaving = (rooms, reason) => { leaving(rooms, reason); e._lost(e._link, 'cut after the reply'); };
		return await T.run('b', 'logoutRoom', 'r2');
	})()`, &r)
	if !r.OK {
		t.Fatalf("logout of r2: %+v", r)
	}
	p.WaitState(mark, "b", "r1", "RECONNECT_FAILED")
	p.Wait(mark, `e => e.who === 'b' && e.event === 'publisherStateUpdate' && e.args[0].streamID === 'bob-cam' && e.args[0].state === 'NO_PUBLISH'`)
	if st := p.entryState("b", "publisher", "bob-cam"); st != "untracked" {
		t.Errorf("after RECONNECT_FAILED, b's publisher of bob-cam is %s, want untracked", st)
	}
}
