package gateway_test

import (
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/protocol"
)

// A client that sends its last requests and closes its socket at once (a
// browser tab's pagehide: broadcast a goodbye, log out, close) has them
// carried out: the room hears the goodbye and sees the user leave now, not
// when the heartbeat timeout ends the session. They used to be dropped, and
// the one running cancelled, with the reader.
func TestRequestsSentBeforeTheClientClosesAreCarriedOut(t *testing.T) {
	n := startNode(t, gateway.Config{HeartbeatInterval: time.Hour, HeartbeatTimeout: 2 * time.Hour})
	a, b := dial(t, n), dial(t, n)
	a.Login("r1", "alice", token(t, n, "alice"))
	b.Login("r1", "bob", token(t, n, "bob"))
	a.Send("2", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "bye"})
	a.Send("3", protocol.OpLogout, protocol.LogoutRequest{Room: "r1"})
	if err := a.WS.Close(websocket.StatusNormalClosure, "gone"); err != nil {
		t.Logf("close: %v", err) // the server may close first; the frames are sent
	}
	b.Until(func(f protocol.Frame) bool {
		return f.Event == protocol.EvBroadcastMessage && strings.Contains(string(f.Data), `"bye"`)
	})
	b.Until(func(f protocol.Frame) bool {
		return f.Event == protocol.EvRoomUserUpdate && strings.Contains(string(f.Data), "DELETE") &&
			strings.Contains(string(f.Data), `"alice"`)
	})
}
