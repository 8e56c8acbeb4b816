package client_test

import (
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/protocol"
)

// The Go SDK's side of clienttest.ScriptedGateway: a gateway whose every
// frame the test writes by hand.

// dialScripted connects a client, recorded by r and quick to reconnect, to
// g, and answers its connection with a hello of session: it returns the
// client and its connection.
func dialScripted(t *testing.T, g *clienttest.ScriptedGateway, r *rec, session string) (*client.Client, *clienttest.ScriptedConn) {
	t.Helper()
	return dialScriptedWith(t, g, session, client.Options{Handlers: r.Handlers(), Logger: clienttest.Logger(t),
		BackoffMin: time.Millisecond, BackoffMax: 2 * time.Millisecond})
}

// dialScriptedWith is dialScripted with the client's options.
func dialScriptedWith(t *testing.T, g *clienttest.ScriptedGateway, session string, opts client.Options) (*client.Client,
	*clienttest.ScriptedConn) {
	t.Helper()
	dialed := make(chan *client.Client, 1)
	go func() {
		a, err := client.Dial(ctx(t), g.URL(), opts)
		if err != nil {
			t.Error(err)
		}
		dialed <- a
	}()
	c := g.Next(t)
	c.Hello(session, "rt-"+session)
	a := <-dialed
	if a == nil {
		t.FailNow()
	}
	t.Cleanup(func() { a.Close() })
	return a, c
}

// scriptedLogin logs a into room through c, the room at seq.
func scriptedLogin(t *testing.T, c *clienttest.ScriptedConn, a *client.Client, room string, seq uint64) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := a.LoginRoom(ctx(t), room, client.User{ID: "alice", Name: "Alice"}, client.LoginOptions{Token: "tok"})
		errc <- err
	}()
	c.ServeEntry(c.Req(protocol.OpLogin), room, seq)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// settle has c answer the client's next request (a query it makes here)
// and then send a token_will_expire, and waits for that callback: every
// callback queued before it has run by then. It returns those, in order.
func settle(t *testing.T, a *client.Client, c *clienttest.ScriptedConn, r *rec) []ev {
	t.Helper()
	go a.QueryRoom(ctx(t), "settle") //nolint:errcheck
	q := c.Req(protocol.OpQueryRoom)
	c.Refuse(q.ID, domain.ErrNotInRoom)
	c.Event(protocol.EvTokenWillExpire, "", 0, 0, protocol.TokenWillExpire{RemainSeconds: 7})
	var seen []ev
	for {
		e := r.Next()
		if e.Kind == "token" && e.Count == 7 {
			return seen
		}
		seen = append(seen, e)
	}
}

// finalStates returns the last state each room was told of in evs.
func finalStates(evs []ev) map[string]ev {
	last := map[string]ev{}
	for _, e := range evs {
		if e.Kind == "state" {
			last[e.Room] = e
		}
	}
	return last
}
