package gateway_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/protocol"
)

// resumeAndRead resumes a session on c and returns the reply and every frame
// that came before the reply to a query sent after it: the resume's replay
// is over by then, as the connection's worker handles requests in order
// (heartbeats, answered at once by its reader, would not do).
func resumeAndRead(t *testing.T, c *wire.Conn, req protocol.ResumeRequest) (protocol.Frame, protocol.ResumeReply, []protocol.Frame) {
	t.Helper()
	c.Send("r", protocol.OpResume, req)
	c.Send("after", protocol.OpQueryRoom, protocol.RoomRequest{Room: "nowhere"})
	var reply protocol.Frame
	var rr protocol.ResumeReply
	var frames []protocol.Frame
	for {
		f := c.Next()
		switch {
		case f.Type == protocol.TypeReply && f.ID == "r":
			reply = f
			if f.Code == 0 {
				if err := json.Unmarshal(f.Data, &rr); err != nil {
					t.Fatal(err)
				}
			}
		case f.Type == protocol.TypeReply && f.ID == "after":
			return reply, rr, frames
		default:
			frames = append(frames, f)
		}
	}
}

// A client may name any room in its resume, but it gets the history only of
// rooms its session was in: naming a room its token does not allow, which
// it was never in, gets nothing of it, and the room is left out of the reply.
func TestResumeSendsNothingOfARoomTheSessionWasNotIn(t *testing.T) {
	n := startNode(t, gateway.Config{})
	bob := dial(t, n)
	bob.Login("secret", "bob", token(t, n, "bob"))
	bob.Do("m", protocol.OpBroadcast, protocol.MessageRequest{Room: "secret", Message: "the password is swordfish"})

	tok, err := n.Signer.Mint(auth.Claims{App: "dev", User: "alice", Rooms: []string{"public"},
		ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	alice := dial(t, n)
	snap := alice.Login("public", "alice", tok)
	alice.Send("x", protocol.OpLogin, protocol.LoginRequest{Room: "secret", User: protocol.User{ID: "alice"}})
	if f := alice.Reply("x"); f.Code == 0 {
		t.Fatalf("alice's token let her into the secret room: %+v", f)
	}

	again := dial(t, n)
	f, rr, frames := resumeAndRead(t, again, protocol.ResumeRequest{ResumeToken: alice.Hello.ResumeToken,
		Rooms: map[string]uint64{"public": snap.Seq, "secret": 0}})
	if f.Code != 0 {
		t.Fatalf("resume: %+v", f)
	}
	if _, named := rr.Rooms["secret"]; named || rr.Rooms["public"].Status != "resumed" {
		t.Errorf("resumed rooms %+v, want public resumed and nothing of secret", rr.Rooms)
	}
	for _, f := range frames {
		if f.Room == "secret" || strings.Contains(string(f.Data), "swordfish") {
			t.Errorf("alice got a frame of a room she was never in: %s %s", f.Event, f.Data)
		}
	}
}

// A client naming a seq from before its session joined a room gets only
// what came after the join.
func TestResumeSendsNothingFromBeforeTheSessionJoined(t *testing.T) {
	n := startClocked(t, estest.NewClock(t0), domain.DefaultPolicy(), gateway.Config{})
	bob := dial(t, n)
	bob.Login("r1", "bob", token(t, n, "bob"))
	bob.Do("m1", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "before alice"})
	alice := dial(t, n)
	alice.Login("r1", "alice", token(t, n, "alice"))
	waitTracked(t, n, 2)
	alice.WS.CloseNow()
	bob.Do("m2", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "while alice was away"})

	again := dial(t, n)
	f, rr, frames := resumeAndRead(t, again, protocol.ResumeRequest{ResumeToken: alice.Hello.ResumeToken,
		Rooms: map[string]uint64{"r1": 0}})
	if f.Code != 0 || rr.Rooms["r1"].Status != "resumed" {
		t.Fatalf("resume: %+v %+v", f, rr)
	}
	var got []string
	for _, f := range frames {
		if f.Event == protocol.EvBroadcastMessage {
			var m protocol.Message
			json.Unmarshal(f.Data, &m)
			got = append(got, m.Message)
		}
	}
	if len(got) != 1 || got[0] != "while alice was away" {
		t.Errorf("alice's replay has the broadcasts %q, want only the one sent while she was away", got)
	}
}

// A session removed from a room while its connection was down gets what it
// missed there up to its own departure, and nothing after it.
func TestResumeEndsARoomLeftMeanwhileWithTheDeparture(t *testing.T) {
	n := startClocked(t, estest.NewClock(t0), domain.DefaultPolicy(), gateway.Config{})
	bob := dial(t, n)
	bob.Login("r1", "bob", token(t, n, "bob"))
	alice := dial(t, n)
	snap := alice.Login("r1", "alice", token(t, n, "alice"))
	waitTracked(t, n, 2)
	alice.WS.CloseNow()
	bob.Do("m1", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "before the kick"})
	// alice logs in again elsewhere: her first session is kicked out.
	elsewhere := dial(t, n)
	elsewhere.Login("r1", "alice", token(t, n, "alice"))
	bob.Do("m2", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "after the kick"})

	again := dial(t, n)
	f, rr, frames := resumeAndRead(t, again, protocol.ResumeRequest{ResumeToken: alice.Hello.ResumeToken,
		Rooms: map[string]uint64{"r1": snap.Seq}})
	if f.Code != 0 || rr.Rooms["r1"].Status != "left" {
		t.Fatalf("resume: %+v %+v", f, rr)
	}
	var got []string
	for _, f := range frames {
		switch f.Event {
		case protocol.EvBroadcastMessage:
			var m protocol.Message
			json.Unmarshal(f.Data, &m)
			got = append(got, m.Message)
		case protocol.EvRoomStateChanged:
			var s protocol.RoomStateChanged
			json.Unmarshal(f.Data, &s)
			got = append(got, s.State)
		}
	}
	if strings.Join(got, ", ") != "before the kick, KickOut" {
		t.Errorf("alice's replay: %q, want the broadcast before the kick, then the kick", got)
	}
}

// A resume names at most twice as many rooms as a session can be in (rooms
// being left count).
func TestResumeNamingMoreRoomsThanASessionCanBeInIsRefused(t *testing.T) {
	n := startClocked(t, estest.NewClock(t0), domain.DefaultPolicy(), gateway.Config{}) // max_rooms 5
	alice := dial(t, n)
	alice.Login("r1", "alice", token(t, n, "alice"))
	waitTracked(t, n, 1)
	alice.WS.CloseNow()
	rooms := map[string]uint64{}
	for i := range 11 {
		rooms[fmt.Sprint("r", i+1)] = 1
	}
	again := dial(t, n)
	again.Send("r", protocol.OpResume, protocol.ResumeRequest{ResumeToken: alice.Hello.ResumeToken, Rooms: rooms})
	if f := again.Reply("r"); f.Code != protocol.ErrResumeFailed.Code {
		t.Fatalf("resume naming eleven rooms: %d %s %s, want resume_failed", f.Code, f.Error, f.Message)
	}
}

// A resumed session keeps its token: a later login may leave its token out,
// as on the lost connection, and the token's expiry is still warned of.
func TestAResumedSessionKeepsItsToken(t *testing.T) {
	for _, sendToken := range []bool{true, false} {
		name := "the old connection's token carries over"
		if sendToken {
			name = "the resume sends the token"
		}
		t.Run(name, func(t *testing.T) {
			clock := estest.NewClock(t0)
			p := domain.DefaultPolicy()
			p.MultiRoom = true
			n := startClocked(t, clock, p, gateway.Config{})
			far := t0.Add(time.Hour)
			alice := dial(t, n)
			alice.Do("m", protocol.OpSetRoomMode, protocol.SetRoomModeRequest{Mode: string(domain.MultiRoom)})
			tok := token(t, n, "alice")
			alice.Login("r1", "alice", tok)
			waitTracked(t, n, 1)
			req := protocol.ResumeRequest{ResumeToken: alice.Hello.ResumeToken, Rooms: map[string]uint64{"r1": 0}}
			if sendToken {
				// As on another node: with the old connection gone, only
				// what the client sends can give the session a token.
				alice.WS.CloseNow()
				waitNoTokenTimers(t, clock, far)
				req.Token = tok
			}
			again := dial(t, n)
			if f, _, _ := resumeAndRead(t, again, req); f.Code != 0 {
				t.Fatalf("resume: %+v", f)
			}
			again.Send("l2", protocol.OpLogin, protocol.LoginRequest{Room: "r2", User: protocol.User{ID: "alice", Name: "alice"}})
			if f := again.Reply("l2"); f.Code != 0 {
				t.Errorf("a login without a token after the resume: %d %s %s", f.Code, f.Error, f.Message)
			}
			if got := clock.PendingAfter(far); got != 1 {
				t.Errorf("%d timers due after an hour, want 1 (the resumed session's token warning)", got)
			}
		})
	}
}

// A resume that replaces a connection still open on this node stops the
// replaced session's token warning: nothing can reach that session, and the
// timer would pin it in memory until the token expires.
func TestAReplacedConnectionKeepsNoTokenTimer(t *testing.T) {
	clock := estest.NewClock(t0)
	n := startClocked(t, clock, domain.DefaultPolicy(), gateway.Config{})
	far := t0.Add(time.Hour)
	alice := dial(t, n)
	alice.Login("r1", "alice", token(t, n, "alice"))
	waitTracked(t, n, 1)
	again := dial(t, n)
	if f, _, _ := resumeAndRead(t, again, protocol.ResumeRequest{ResumeToken: alice.Hello.ResumeToken,
		Rooms: map[string]uint64{"r1": 0}}); f.Code != 0 {
		t.Fatalf("resume: %+v", f)
	}
	alice.Until(func(f protocol.Frame) bool { return f.Event == protocol.EvSessionClosing })
	again.WS.CloseNow() // the resumed session's own warning goes with its connection
	waitNoTokenTimers(t, clock, far)
}

// waitNoTokenTimers waits until no timer is due after far (token warnings
// are the only ones that far out).
func waitNoTokenTimers(t *testing.T, clock *estest.Clock, far time.Time) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for clock.PendingAfter(far) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d timers still due after %v", clock.PendingAfter(far), far)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
