package gateway_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/protocol"
)

// A request the log cannot serve (its JetStream gone while the gateway
// runs) is answered with a timeout, and the node's log says so at WARN,
// naming the session and the request: the operator sees which clients were
// refused, and why, without asking them.
func TestARequestTheLogCannotServeIsLoggedWithItsSessionAndRequest(t *testing.T) {
	logger, lines := estest.Capture(t)
	// The engine rides out a log that does not answer for the whole command
	// timeout: 5 s here, past the engine's first append attempt (2 s), so
	// that the command ends in its resends, still saying "unavailable"
	// (the log's error, not the deadline's). Long enough for the login and
	// the first broadcast on a loaded machine.
	n, err := node.Start(estest.Ctx(t), node.Config{Log: eventstore.Config{DataDir: t.TempDir(), ConnectTimeout: 10 * time.Second},
		Policy: domain.Config{Default: domain.DefaultPolicy()}, Secret: secret, HTTPListen: "127.0.0.1:0", Logger: logger,
		Gateway: gateway.Config{CommandTimeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	w := dial(t, n)
	w.Login("r1", "alice", token(t, n, "alice"))
	w.Do("ok", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "hello"})
	if line, ok := lines.Find(`msg="request failed"`); ok {
		t.Fatalf("a request was logged as failed while the log served: %s", line)
	}

	if err := n.Log.Server().DisableJetStream(); err != nil {
		t.Fatal(err)
	}
	w.Send("lost", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "anyone?"})
	if f := w.Reply("lost"); f.Code != domain.ErrTimeout.Code && f.Code != domain.ErrUnavailable.Code {
		t.Fatalf("a broadcast the log cannot store: %d %s %s, want a timeout or unavailable", f.Code, f.Error, f.Message)
	}
	line := lines.Wait(t, "level=WARN", `msg="request failed"`, " session="+w.Hello.Session+" ", " request=lost ")
	if !strings.Contains(line, " err=") || !strings.Contains(line, "unavailable") {
		t.Fatalf("the log line does not say why: %s", line)
	}
}

// docs/protocol.md: a user name (which may be empty) is UTF-8 text without
// control characters, as IDs are. One with a control character is refused
// with invalid_argument; it used to be accepted and shown to the room's
// other members, NUL and escape sequences included.
func TestAUserNameWithAControlCharacterIsRefused(t *testing.T) {
	n := startNode(t, gateway.Config{})
	bob := dial(t, n)
	bob.Login("r1", "bob", token(t, n, "bob"))
	for i, name := range []string{"Al\u0000ice", "Al\nice", "Al\u001b[2Jice", "Al\u0085ice"} {
		user := fmt.Sprint("mallory", i)
		m := dial(t, n)
		m.Send("in", protocol.OpLogin, protocol.LoginRequest{Room: "r1", User: protocol.User{ID: user, Name: name},
			Token: token(t, n, user)})
		if f := m.Reply("in"); f.Code != domain.ErrInvalidArgument.Code {
			t.Errorf("login with user name %q: %d %s %q, want 1906001 invalid_argument", name, f.Code, f.Error, f.Message)
		}
	}
	// None of them reached bob: the next user update he gets is carol's.
	carol := dial(t, n)
	carol.Login("r1", "carol", token(t, n, "carol"))
	upd := bob.Until(func(f protocol.Frame) bool { return f.Event == protocol.EvRoomUserUpdate })
	if !strings.Contains(string(upd.Data), `"carol"`) {
		t.Errorf("bob heard of another member first: %s", upd.Data)
	}
}

// docs/protocol.md: history_page bounds the members a query_member_attributes
// page returns, and the users it lists. A list was not bounded, and each
// listed user was answered as often as listed: 7,000 copies of one member
// with 30 attributes made a reply of over 16 MiB (the Go SDK's read limit)
// from a 56 kB request.
func TestQueryMemberAttributesListsAtMostAPageEachOnce(t *testing.T) {
	n := startNode(t, gateway.Config{})
	w := dial(t, n)
	w.Login("r1", "alice", token(t, n, "alice"))
	w.Do("set", protocol.OpSetMemberAttributes, protocol.MemberAttributesRequest{Room: "r1", Users: []string{"alice"},
		Attributes: map[string]string{"k": "v"}})
	users := slices.Repeat([]string{"alice", "nobody"}, 50)
	w.Send("q100", protocol.OpQueryMemberAttributes, protocol.MemberAttributesQuery{Room: "r1", Users: users})
	var page protocol.MemberAttributesPage
	f := w.Reply("q100")
	if json.Unmarshal(f.Data, &page); f.Code != 0 || len(page.Members) != 1 || page.Members[0].User != "alice" {
		t.Errorf("query_member_attributes listing alice 50 times among 100 users: code %d, %d members; want alice once",
			f.Code, len(page.Members))
	}
	w.Send("q101", protocol.OpQueryMemberAttributes, protocol.MemberAttributesQuery{Room: "r1",
		Users: append(users, "alice")})
	if f = w.Reply("q101"); f.Code != domain.ErrInvalidArgument.Code {
		t.Errorf("query_member_attributes listing 101 users: %d %s, want 1906001 invalid_argument", f.Code, f.Error)
	}
}

// The queries are for members only: a session that is not a member of an
// existing room gets not_logged_in (1902006), as one logged into another
// room does. One that has not logged in anywhere yet was told the room does
// not exist (1902002), which is false.
func TestQueriesBeforeAnyLoginAreRefusedAsNotLoggedIn(t *testing.T) {
	n := startNode(t, gateway.Config{})
	bob := dial(t, n)
	bob.Login("r1", "bob", token(t, n, "bob"))
	fresh := dial(t, n)
	for i, op := range []protocol.Op{protocol.OpQueryRoom, protocol.OpQueryOnlineCount, protocol.OpQueryMemberList,
		protocol.OpQueryRoomAttributes, protocol.OpQueryMemberAttributes, protocol.OpQueryHistory} {
		id := fmt.Sprint("q", i)
		fresh.Send(id, op, protocol.RoomRequest{Room: "r1"})
		if f := fresh.Reply(id); f.Code != domain.ErrNotLoggedIn.Code {
			t.Errorf("%s of the existing room r1 before any login: %d %s %q, want 1902006 not_logged_in",
				op, f.Code, f.Error, f.Message)
		}
	}
}
