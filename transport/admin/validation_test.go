package admin_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/admin"
	"github.com/roomlog/roomlog/transport/protocol"
)

// rawCall sends body as it is and decodes the answer into out.
func rawCall(t *testing.T, n *node.Node, bearer, method, path string, body []byte, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+n.HTTPAddr()+"/admin/v1/apps/dev"+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+bearer)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if out != nil {
		json.NewDecoder(res.Body).Decode(out)
	}
	return res.StatusCode
}

// docs/admin.md, POST /tokens: `name` is "the user name; when set, a login
// must use it". A token issued for Alice must not log in as someone else's
// name.
func TestATokensUserNameIsEnforcedAtLogin(t *testing.T) {
	n := start(t)
	var tr admin.TokenReply
	if code := call(t, n, admin_(t, n), "POST", "/tokens", admin.TokenRequest{User: "alice", Name: "Alice"}, &tr); code != 200 {
		t.Fatalf("issue a token: %d", code)
	}
	w := wire.Dial(t, n.HTTPAddr())
	w.Send("1", protocol.OpLogin, protocol.LoginRequest{Room: "r1", User: protocol.User{ID: "alice", Name: "Mallory"}, Token: tr.Token})
	if f := w.Reply("1"); f.Code != domain.ErrTokenInvalid.Code {
		t.Errorf("a token naming %q logged in as %q: reply %+v, want 1002033", "Alice", "Mallory", f)
	}
	// Logged in as Alice, the session takes no token naming someone else.
	w.Send("2", protocol.OpLogin, protocol.LoginRequest{Room: "r1", User: protocol.User{ID: "alice", Name: "Alice"}, Token: tr.Token})
	if f := w.Reply("2"); f.Code != 0 {
		t.Fatalf("login as Alice with her token: %+v", f)
	}
	var bob admin.TokenReply
	if code := call(t, n, admin_(t, n), "POST", "/tokens", admin.TokenRequest{User: "alice", Name: "Bob"}, &bob); code != 200 {
		t.Fatalf("issue a token: %d", code)
	}
	w.Send("3", protocol.OpRenewToken, protocol.TokenRequest{Token: bob.Token})
	if f := w.Reply("3"); f.Code != domain.ErrTokenInvalid.Code {
		t.Errorf("renewing Alice's session with a token naming Bob: reply %+v, want 1002033", f)
	}
}

// A token names as many rooms as fit in a login request: one for 200
// rooms is issued and logs in, one for 2,000 is refused with the reason
// rather than issued unusable; a body over 64 KiB is refused as such.
func TestTokensFitInALoginAndBodiesHaveALimit(t *testing.T) {
	n := start(t)
	adm := admin_(t, n)
	rooms := func(k int) []string {
		var rs []string
		for i := range k {
			rs = append(rs, fmt.Sprintf("room-%04d-%s", i, strings.Repeat("x", 90)))
		}
		return rs
	}
	var tr admin.TokenReply
	if code := call(t, n, adm, "POST", "/tokens", admin.TokenRequest{User: "alice", Rooms: rooms(200)}, &tr); code != 200 {
		t.Fatalf("a token for 200 rooms: HTTP %d", code)
	}
	w := wire.Dial(t, n.HTTPAddr())
	w.Send("1", protocol.OpLogin, protocol.LoginRequest{Room: rooms(200)[199], User: protocol.User{ID: "alice"}, Token: tr.Token})
	if f := w.Reply("1"); f.Code != 0 {
		t.Fatalf("login with the token for 200 rooms (%d bytes): %+v", len(tr.Token), f)
	}
	var e errBody
	if code := call(t, n, adm, "POST", "/tokens", admin.TokenRequest{User: "alice", Rooms: rooms(500)}, &e); code != 400 ||
		e.Code != domain.ErrInvalidArgument.Code || !strings.Contains(e.Message, "at most 49152") {
		t.Errorf("a token for 500 rooms: HTTP %d %+v, want 400 invalid_argument saying the token would be too large", code, e)
	}
	body, _ := json.Marshal(admin.TokenRequest{User: "alice", Rooms: rooms(2000)})
	if code := rawCall(t, n, adm, "POST", "/tokens", body, &e); code != 400 || e.Code != protocol.ErrMalformedRequest.Code ||
		!strings.Contains(e.Message, "over 65536 bytes") {
		t.Errorf("a %d-byte body: HTTP %d %+v, want 400 malformed_request naming the limit", len(body), code, e)
	}
}

// docs/admin.md: "IDs have the limits of protocol.md (room IDs 128 bytes,
// user IDs 64)": POST /tokens refuses IDs no login could use, rather than
// issue a useless token.
func TestTokensForInvalidIDsAreRefused(t *testing.T) {
	n := start(t)
	adm := admin_(t, n)
	for name, req := range map[string]admin.TokenRequest{
		"a 65-byte user ID":        {User: strings.Repeat("u", 65)},
		"a user ID with a control": {User: "al\x01ice"},
		"a 129-byte room ID":       {User: "alice", Rooms: []string{strings.Repeat("r", 129)}},
		"a 257-byte user name":     {User: "alice", Name: strings.Repeat("n", 257)},
	} {
		var e errBody
		if code := call(t, n, adm, "POST", "/tokens", req, &e); code != 400 || e.Code != domain.ErrInvalidArgument.Code {
			t.Errorf("%s: HTTP %d %+v, want 400 invalid_argument", name, code, e)
		}
	}
}

// protocol.md: "Every ID is checked before anything is read from or written
// to the log"; admin.md: IDs have protocol.md's limits. A room ID over 128
// bytes is refused, not read from the log as a room with no history.
func TestRoutesRefuseInvalidRoomIDsBeforeReading(t *testing.T) {
	n := start(t)
	adm := admin_(t, n)
	long := strings.Repeat("r", 129)
	for _, path := range []string{"/rooms/" + long + "/history", "/rooms/" + long + "/state",
		"/rooms/" + long + "/diff?from=1", "/rooms/" + long} {
		var e errBody
		if code := call(t, n, adm, "GET", path, nil, &e); code != 400 || e.Code != domain.ErrInvalidArgument.Code {
			t.Errorf("GET %s: HTTP %d %+v, want 400 invalid_argument", strings.Replace(path, long, "<129 bytes>", 1), code, e)
		}
	}
}

// ttl_seconds is at most 10 years: a longer validity is refused, rather
// than overflowing into a token valid for about an hour.
func TestATokensValidityIsBounded(t *testing.T) {
	n := start(t)
	adm := admin_(t, n)
	for _, ttl := range []string{"18446747674", "315360001"} {
		var e errBody
		code := rawCall(t, n, adm, "POST", "/tokens", []byte(`{"user":"alice","ttl_seconds":`+ttl+`}`), &e)
		if code != 400 || e.Code != domain.ErrInvalidArgument.Code || !strings.Contains(e.Message, "10 years") {
			t.Errorf("ttl_seconds %s: HTTP %d %+v, want 400 invalid_argument naming the limit", ttl, code, e)
		}
	}
	var tr admin.TokenReply
	if code := rawCall(t, n, adm, "POST", "/tokens", []byte(`{"user":"alice","ttl_seconds":315360000}`), &tr); code != 200 ||
		tr.ExpiresAt.Before(time.Now().AddDate(9, 11, 0)) {
		t.Errorf("ttl_seconds 315360000 (10 years): HTTP %d, expires at %s", code, tr.ExpiresAt)
	}
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// docs/admin.md: an admin token's "subject names who acted, and is logged
// with every refused request", at roomd's default level (info).
func TestARefusedRequestIsLoggedWithItsAdminSubject(t *testing.T) {
	var buf lockedBuf
	p := domain.DefaultPolicy()
	p.MultiRoom = true
	n, err := node.Start(estest.Ctx(t), node.Config{Log: eventstore.Config{DataDir: t.TempDir()},
		Policy: domain.Config{Default: p}, Secret: []byte("admin-test-secret-0123456789abcdef"), HTTPListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	tok, err := n.Signer.MintAdmin("billing-service", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var e errBody
	if code := call(t, n, tok, "POST", "/rooms/nowhere/kick", admin.KickRequest{User: "bob"}, &e); code != 404 {
		t.Fatalf("kick in a room that does not exist: HTTP %d %+v", code, e)
	}
	if !strings.Contains(buf.String(), "billing-service") {
		t.Errorf("the refused kick by billing-service is not in the log at the default level; log:\n%s", buf.String())
	}
}

// A misspelt field is refused, not dropped: "room" for "rooms" in a token
// request used to issue a token for every room (rooms left out), and a
// misspelt reason was dropped from the kick or destroy it explained.
// Trailing data after the body is refused too. So are a field named in
// another case and a field given twice: encoding/json took "USER" for
// "user" and kept the last, so {"user":"bob","USER":"mallory"} issued a
// token for mallory, and a kick of bob with "User":"alice" kicked alice.
func TestBodiesWithUnknownFieldsAreRefused(t *testing.T) {
	n := start(t)
	adm := admin_(t, n)
	for _, c := range []struct{ method, path, body, says string }{
		{"POST", "/tokens", `{"user":"alice","room":["class-1"]}`, `unknown field "room"`},
		{"POST", "/tokens", `{"user":"alice","rooms":["class-1"]} {"rooms":"*"}`, "after top-level value"},
		{"POST", "/rooms/class-1/kick", `{"user":"alice","resaon":"spam"}`, `unknown field "resaon"`},
		{"DELETE", "/rooms/class-1", `{"why":"class over"}`, `unknown field "why"`},
		{"POST", "/tokens", `{"user":"bob","USER":"mallory"}`, `unknown field "USER"`},
		{"POST", "/tokens", `{"User":"bob"}`, `unknown field "User"`},
		{"POST", "/tokens", `{"user":"alice","rooms":["class-1"],"Rooms":["*"]}`, `unknown field "Rooms"`},
		{"POST", "/tokens", `{"user":"bob","user":"mallory"}`, `field "user" given twice`},
		{"POST", "/rooms/class-1/kick", `{"user":"bob","User":"alice"}`, `unknown field "User"`},
		{"DELETE", "/rooms/class-1", `{"Reason":"class over"}`, `unknown field "Reason"`},
		{"POST", "/tokens", `{"user":"alice","ttl_seconds":"600"}`, `field "ttl_seconds": want a whole number, not a string`},
		{"POST", "/tokens", `{"user":"alice","ttl_seconds":1.5}`, `field "ttl_seconds": want a whole number`},
		{"POST", "/tokens", `{"user":"alice","ttl_seconds":99999999999999999999}`, `field "ttl_seconds": out of range`},
		{"POST", "/tokens", `{"user":"alice","name":{}}`, `field "name": want a string, not an object`},
		{"POST", "/tokens", `{"user":"alice","rooms":"*"}`, `field "rooms": want an array of room IDs`},
		{"POST", "/tokens", `{"user":"alice","rooms":[1]}`, `field "rooms": want an array of room IDs`},
		{"POST", "/rooms/class-1/kick", `{"user":"alice","reason":["x"]}`, `field "reason": want a string, not an array`},
		{"POST", "/tokens", `["alice"]`, "not one JSON object"},
	} {
		var e errBody
		if code := rawCall(t, n, adm, c.method, c.path, []byte(c.body), &e); code != 400 || e.Code != protocol.ErrMalformedRequest.Code ||
			!strings.Contains(e.Message, c.says) {
			t.Errorf("%s %s %s: HTTP %d %+v, want 400 malformed_request saying %s", c.method, c.path, c.body, code, e, c.says)
		}
	}
}

// docs/admin.md, POST /tokens: expires_at is when the token expires. A
// token's exp has whole seconds; the reply gave the time before it was
// cut, up to a second after the token had expired (and with nanoseconds).
func TestATokenRepliesItsOwnExpiry(t *testing.T) {
	n := start(t)
	var tr admin.TokenReply
	if code := call(t, n, admin_(t, n), "POST", "/tokens", admin.TokenRequest{User: "alice", TTLSeconds: 600}, &tr); code != 200 {
		t.Fatalf("issue a token: HTTP %d", code)
	}
	c, err := n.Signer.Verify(tr.Token)
	if err != nil {
		t.Fatal(err)
	}
	if !tr.ExpiresAt.Equal(c.ExpiresAt) {
		t.Errorf("expires_at %s, but the token expires at %s", tr.ExpiresAt.Format(time.RFC3339Nano), c.ExpiresAt.Format(time.RFC3339Nano))
	}
}
