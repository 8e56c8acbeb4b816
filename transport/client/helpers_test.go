package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/netcut"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/gateway"
)

// The harness is clienttest's; these names keep the tests short.
type (
	ev  = clienttest.Event
	rec = clienttest.Recorder
)

const wait = clienttest.Wait

func newRec(t *testing.T, name string) *rec { return clienttest.NewRecorder(t, name) }

// startNode starts a real node (embedded JetStream, gateway, admin API) on a
// free port, with multi-room mode allowed.
func startNode(t *testing.T, gc gateway.Config) *node.Node {
	return clienttest.StartNode(t, clienttest.NodeOptions{Gateway: gc})
}

// startNodeClocked starts a node whose time is clock.
func startNodeClocked(t *testing.T, gc gateway.Config, clock *estest.Clock) *node.Node {
	return clienttest.StartNode(t, clienttest.NodeOptions{Gateway: gc, Clock: clock})
}

func wsURL(n *node.Node) string { return clienttest.URL(n.HTTPAddr()) }

func token(t *testing.T, n *node.Node, user string) string { return clienttest.Token(t, n, user) }

// tokenFor mints a token for user that expires after ttl.
func tokenFor(t *testing.T, n *node.Node, user string, ttl time.Duration) string {
	return clienttest.Mint(t, n, auth.Claims{App: clienttest.App, User: user, AllRooms: true, Publish: true,
		ExpiresAt: time.Now().Add(ttl)})
}

func ctx(t *testing.T) context.Context { return clienttest.Ctx(t) }

func dial(t *testing.T, url string, r *rec, edit func(*client.Options)) *client.Client {
	t.Helper()
	return clienttest.Dial(t, url, r, edit)
}

func login(t *testing.T, n *node.Node, c *client.Client, r *rec, room, user string) *client.RoomSnapshot {
	t.Helper()
	return clienttest.Login(t, n, c, r, room, user)
}

// waitRefused waits until the proxy refused a connection.
func waitRefused(t *testing.T, p *netcut.Proxy) {
	t.Helper()
	select {
	case <-p.Refused():
	case <-time.After(wait):
		t.Fatal("no connection attempt reached the proxy")
	}
}
