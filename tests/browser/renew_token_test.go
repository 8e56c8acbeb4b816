package browser

import (
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/netcut"
	"github.com/roomlog/roomlog/transport/auth"
)

// bobToken mints bob a token that expires after ttl.
func bobToken(t *testing.T, n *node.Node, ttl time.Duration) string {
	t.Helper()
	return clienttest.Mint(t, n, auth.Claims{App: clienttest.App, User: "bob", AllRooms: true, Publish: true,
		ExpiresAt: time.Now().Add(ttl)})
}

// bob's token expires while he is away and his session times out; the app
// calls renewToken before the engine is back. The reconnection uses the
// renewed token at once: r1 is entered again with it (LOGINED), not
// refused with the expired one (LOGIN_FAILED 1002033, the room lost), and
// renewToken resolves once the connection is back. Before, the renewed
// token was recorded only when renew_token's reply came, after the
// re-logins.
func TestSDKATokenRenewedWhileReconnectingEntersTheRoomsAgain(t *testing.T) {
	clock := estest.NewClock(time.Now()) // the server's: it times bob out, and his token
	n := startNode(t, func(o *clienttest.NodeOptions) {
		o.Clock = clock
		o.Gateway.HeartbeatTimeout = time.Minute
	})
	proxy := netcut.Start(t, n.HTTPAddr())
	p := openHarness(t, n)
	p.newEngine("a", clienttest.URL(n.HTTPAddr()), nil)
	p.newEngine("b", clienttest.URL(proxy.Addr()), nil)
	p.Must("b", "loginRoom", "r1", bobToken(t, n, 30*time.Second), user{"bob", "Bob"})
	p.Must("a", "loginRoom", "r1", clienttest.Token(t, n, "alice"), user{"alice", "Alice"})
	// Logined comes after a login's reply: wait for it, or b's may be taken
	// below for the state after the reconnection.
	p.WaitState(0, "b", "r1", "LOGINED")
	p.WaitState(0, "a", "r1", "LOGINED")
	session := p.session("b")
	mark := p.Len()

	proxy.Refuse(true)
	proxy.Cut()
	p.WaitState(mark, "b", "r1", "RECONNECTING")
	clock.Advance(59 * time.Second)
	p.Must("a", "queryRoom", "r1") // alice is heard from on time
	clock.Advance(2 * time.Second) // bob's session and his first token are past their time
	p.Wait(mark, `e => e.who === 'a' && e.event === 'roomUserUpdate' && e.args[1] === 'DELETE' && e.args[2][0].userID === 'bob'`)

	// renewToken records the token before it waits for the connection.
	p.start("renew", "b", "renewToken", bobToken(t, n, time.Hour))
	proxy.Refuse(false)
	e := p.Wait(mark, `e => e.who === 'b' && e.event === 'roomStateChanged' && e.args[0] === 'r1' && (e.args[1] === 'LOGINED' || e.args[1] === 'LOGIN_FAILED')`)
	if e.Str(1) != "LOGINED" {
		t.Fatalf("the app renewed the token while reconnecting, yet r1 got %s: entered again with the expired one", e.Args)
	}
	if r := p.outcome("renew"); !r.OK {
		t.Errorf("renewToken: %+v", r)
	}
	if got := p.session("b"); got == session || got == "" {
		t.Errorf("the session is %q, want a new one (was %s): the test meant it to time out", got, session)
	}
	p.Wait(mark, `e => e.who === 'a' && e.event === 'roomUserUpdate' && e.args[1] === 'ADD' && e.args[2][0].userID === 'bob'`)
}
