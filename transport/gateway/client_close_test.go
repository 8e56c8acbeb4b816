package gateway_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections"
	"github.com/roomlog/roomlog/tests/wire"
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

// A client that closed its socket while a login of it was on its way to the
// log comes back on a new connection and resumes: the session is served
// there now, so the old connection's last requests stop (the login is
// cancelled) and the resume is answered at once, not after the held
// command. A resume elsewhere stops them the same way (a takeover notice),
// and so does a resume given up by its client: it exists for its answer.
// Commands may take 5 minutes here: a resume that waited for the held login
// would not be answered within the test's 30 s.
func TestAResumeStopsTheLastRequestsOfTheConnectionItReplaces(t *testing.T) {
	var src *holdSource
	h := newHandNodeOn(t, nil, func(l *projections.Live) engine.Source {
		src = newHoldSource(l)
		return src
	})
	addr := h.serve(t, gateway.Config{CommandTimeout: 5 * time.Minute}, src.let)
	estest.RunLive(t, h.log, h.live)
	t.Cleanup(src.let)
	alice := wire.Dial(t, addr)
	tok, snap := loginHeldOnR2(t, h, src, alice)
	alice.WS.CloseNow() // the login goes on as one of her last requests, held

	again := wire.Dial(t, addr)
	f := again.Do("r", protocol.OpResume, protocol.ResumeRequest{ResumeToken: alice.Hello.ResumeToken, Token: tok,
		Rooms: map[string]uint64{"r1": snap.Seq}})
	var rr protocol.ResumeReply
	if f.Code != 0 || json.Unmarshal(f.Data, &rr) != nil {
		t.Fatalf("the resume while the old connection's login is held: %+v", f)
	}
	if st := rr.Rooms["r1"]; st.Status != "resumed" {
		t.Errorf("r1 after the resume: %+v", rr.Rooms)
	}
	if st, ok := rr.Rooms["r2"]; ok && st.Status != "left" {
		t.Errorf("r2 after the resume: %q, but its login was stopped", st.Status)
	}
}
