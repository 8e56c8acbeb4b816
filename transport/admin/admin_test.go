package admin_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/admin"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/protocol"
)

func start(t *testing.T) *node.Node {
	t.Helper()
	p := domain.DefaultPolicy()
	p.MultiRoom = true
	n, err := node.Start(estest.Ctx(t), node.Config{Log: eventstore.Config{DataDir: t.TempDir()},
		Policy: domain.Config{Default: p}, Secret: []byte("admin-test-secret-0123456789abcdef"), HTTPListen: "127.0.0.1:0",
		Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func clientToken(t *testing.T, n *node.Node, user string) string {
	t.Helper()
	tok, err := n.Signer.Mint(auth.Claims{App: "dev", User: user, AllRooms: true, Publish: true, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// call makes an admin request and decodes the answer into out.
func call(t *testing.T, n *node.Node, bearer, method, path string, body, out any) int {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, "http://"+n.HTTPAddr()+"/admin/v1/apps/dev"+path, rd)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
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

func admin_(t *testing.T, n *node.Node) string {
	t.Helper()
	tok, err := n.Signer.MintAdmin("test", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type errBody struct {
	Code    domain.Code `json:"code"`
	Error   string      `json:"error"`
	Message string      `json:"message"`
}

func TestAdminKickAndDestroy(t *testing.T) {
	n := start(t)
	adm := admin_(t, n)
	alice, bob := wire.Dial(t, n.HTTPAddr()), wire.Dial(t, n.HTTPAddr())
	alice.Login("class 1.A", "alice", clientToken(t, n, "alice"))
	bob.Login("class 1.A", "bob", clientToken(t, n, "bob"))
	alice.Do("pub", protocol.OpPublish, protocol.PublishRequest{Stream: "alice-cam", Room: "class 1.A"})

	var rooms struct{ Rooms []admin.RoomSummary }
	if code := call(t, n, adm, "GET", "/rooms", nil, &rooms); code != 200 || len(rooms.Rooms) != 1 ||
		rooms.Rooms[0].ID != "class 1.A" || rooms.Rooms[0].Members != 2 || rooms.Rooms[0].Streams != 1 {
		t.Fatalf("list rooms: %d %+v", code, rooms)
	}
	var detail admin.RoomDetail
	if code := call(t, n, adm, "GET", "/rooms/class%201.A", nil, &detail); code != 200 || len(detail.Members) != 2 ||
		detail.Members[0].User != "alice" || detail.Members[0].Publishing[0] != "alice-cam" {
		t.Fatalf("room detail: %d %+v", code, detail)
	}
	var members struct{ Members []admin.Member }
	if call(t, n, adm, "GET", "/rooms/class%201.A/members", nil, &members); len(members.Members) != 2 {
		t.Errorf("members: %+v", members)
	}
	var streams struct{ Streams []admin.Stream }
	if call(t, n, adm, "GET", "/rooms/class%201.A/streams", nil, &streams); len(streams.Streams) != 1 {
		t.Errorf("streams: %+v", streams)
	}

	// Kick alice: she gets KickOut 1002055; bob sees her stream and her go.
	var done admin.Done
	if code := call(t, n, adm, "POST", "/rooms/class%201.A/kick", admin.KickRequest{User: "alice", Reason: "spam"}, &done); code != 200 || done.Seq == 0 {
		t.Fatalf("kick: %d %+v", code, done)
	}
	kicked := alice.Until(func(f protocol.Frame) bool { return f.Event == protocol.EvRoomStateChanged && f.Seq != 0 })
	var st protocol.RoomStateChanged
	json.Unmarshal(kicked.Data, &st)
	if st.State != "KickOut" || st.Code != 1002055 || kicked.Seq != done.Seq {
		t.Errorf("alice was told %+v at seq %d (the kick is seq %d)", st, kicked.Seq, done.Seq)
	}
	bob.Until(func(f protocol.Frame) bool {
		return f.Event == protocol.EvRoomStreamUpdate && strings.Contains(string(f.Data), "DELETE")
	})
	bob.Until(func(f protocol.Frame) bool {
		return f.Event == protocol.EvRoomUserUpdate && strings.Contains(string(f.Data), "DELETE")
	})
	var e errBody
	if code := call(t, n, adm, "POST", "/rooms/class%201.A/kick", admin.KickRequest{User: "alice"}, &e); code != 404 || e.Code != domain.ErrUserNotInRoom.Code {
		t.Errorf("kicking someone not in the room: %d %+v", code, e)
	}

	// Destroy the room: bob gets Logout with RoomNotExist.
	if code := call(t, n, adm, "DELETE", "/rooms/class%201.A", admin.DestroyRequest{Reason: "class over"}, &done); code != 200 {
		t.Fatalf("destroy: %d", code)
	}
	gone := bob.Until(func(f protocol.Frame) bool { return f.Event == protocol.EvRoomStateChanged })
	json.Unmarshal(gone.Data, &st)
	if st.Code != int(domain.ErrRoomNotExist.Code) || st.ZIMEvent != "RoomNotExist" {
		t.Errorf("bob was told %+v", st)
	}
	if code := call(t, n, adm, "GET", "/rooms/class%201.A", nil, &e); code != 404 || e.Code != domain.ErrRoomNotExist.Code {
		t.Errorf("a destroyed room: %d %+v", code, e)
	}
}

func TestAdminRefusesWithoutAValidAdminToken(t *testing.T) {
	n := start(t)
	for name, bearer := range map[string]string{"none": "", "garbage": "garbage", "a client token": clientToken(t, n, "alice")} {
		var e errBody
		if code := call(t, n, bearer, "GET", "/rooms", nil, &e); code != 401 || e.Code != protocol.ErrUnauthorized.Code {
			t.Errorf("%s: %d %+v", name, code, e)
		}
	}
	adm := admin_(t, n)
	var e errBody
	req, _ := http.NewRequest("POST", "http://"+n.HTTPAddr()+"/admin/v1/apps/dev/rooms/r/kick", strings.NewReader("{"))
	req.Header.Set("Authorization", "Bearer "+adm)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(res.Body).Decode(&e)
	res.Body.Close()
	if res.StatusCode != 400 || e.Code != protocol.ErrMalformedRequest.Code {
		t.Errorf("a malformed body: %d %+v", res.StatusCode, e)
	}
	if code := call(t, n, adm, "GET", "/nothing/here", nil, &e); code != 404 {
		t.Errorf("an unknown path: %d", code)
	}
}

func TestAdminIssuesClientTokens(t *testing.T) {
	n := start(t)
	var tr admin.TokenReply
	if code := call(t, n, admin_(t, n), "POST", "/tokens", admin.TokenRequest{User: "carol", Rooms: []string{"r1"}, TTLSeconds: 600}, &tr); code != 200 {
		t.Fatalf("issue a token: %d", code)
	}
	c, err := n.Signer.Verify(tr.Token)
	if err != nil || c.User != "carol" || c.App != "dev" || c.AllRooms || len(c.Rooms) != 1 || !c.Publish {
		t.Fatalf("issued token: %+v %v", c, err)
	}
	// Claims every login would refuse are refused, and said once (the
	// message used to repeat "an argument is missing or malformed").
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if code := call(t, n, admin_(t, n), "POST", "/tokens", admin.TokenRequest{User: strings.Repeat("u", 65),
		TTLSeconds: 600}, &e); code != 400 || e.Code != 1906001 || strings.Count(e.Message, "missing or malformed") != 1 ||
		!strings.Contains(e.Message, "65 bytes") {
		t.Errorf("a token for a 65-byte user ID: %d %+v", code, e)
	}
	w := wire.Dial(t, n.HTTPAddr())
	w.Login("r1", "carol", tr.Token)
	w.Send("2", protocol.OpLogin, protocol.LoginRequest{Room: "r2", User: protocol.User{ID: "carol", Name: "carol"}})
	if f := w.Reply("2"); f.Code != domain.ErrTokenInvalid.Code {
		t.Errorf("a token for r1 logging into r2: %+v", f)
	}
}

// Text that is not valid UTF-8 is refused, not altered into something else
// and acted on.
func TestAdminRefusesTextThatIsNotUTF8(t *testing.T) {
	n := start(t)
	for _, body := range []string{"{\"user\":\"bo\xffb\",\"reason\":\"x\"}", `{"user":"bob","reason":"\ud800"}`} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+n.HTTPAddr()+"/admin/v1/apps/dev/rooms/r1/kick", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+admin_(t, n))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e errBody
		json.NewDecoder(res.Body).Decode(&e)
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest || e.Code != domain.ErrInvalidArgument.Code {
			t.Errorf("kick with %q: %d %+v, want 400 and invalid_argument", body, res.StatusCode, e)
		}
	}
}

// A room's detail shows its capacity, each attribute's owner and version,
// and the members' attributes.
func TestRoomDetailShowsRoomState(t *testing.T) {
	n := start(t)
	adm := admin_(t, n)
	alice, bob := wire.Dial(t, n.HTTPAddr()), wire.Dial(t, n.HTTPAddr())
	alice.Send("1", protocol.OpLogin, protocol.LoginRequest{Room: "stage", User: protocol.User{ID: "alice", Name: "alice"},
		Token: clientToken(t, n, "alice"), MaxMemberCount: 10})
	if f := alice.Reply("1"); f.Code != 0 {
		t.Fatalf("login: %+v", f)
	}
	bob.Login("stage", "bob", clientToken(t, n, "bob"))
	if f := alice.Do("2", protocol.OpSetRoomAttributes, protocol.RoomAttributesRequest{Room: "stage",
		Attributes: map[string]string{"mic": "alice"}, DeleteAfterOwnerLeft: true}); f.Code != 0 {
		t.Fatalf("set attributes: %+v", f)
	}
	if f := alice.Do("3", protocol.OpSetMemberAttributes, protocol.MemberAttributesRequest{Room: "stage",
		Users: []string{"bob"}, Attributes: map[string]string{"seat": "2"}}); f.Code != 0 {
		t.Fatalf("set member attributes: %+v", f)
	}
	var d admin.RoomDetail
	if code := call(t, n, adm, "GET", "/rooms/stage", nil, &d); code != 200 {
		t.Fatalf("get room: %d", code)
	}
	if d.MaxMemberCount != 10 || len(d.AttributeDetails) != 1 || d.AttributeDetails[0].Owner != "alice" ||
		!d.AttributeDetails[0].DeleteAfterOwnerLeft || d.AttributeDetails[0].Version == 0 {
		t.Fatalf("room detail: %+v", d)
	}
	if len(d.Members) != 2 || d.Members[1].User != "bob" || d.Members[1].Attributes["seat"] != "2" {
		t.Fatalf("members: %+v", d.Members)
	}
}

// An admin token whose subject roomd no longer mints (longer than
// 128 bytes, with a control character: minted by an older roomd) still
// kicks: the log records its subject cut to 128 bytes, the control
// character replaced, rather than the kick being refused.
func TestAnOlderAdminTokensLongSubjectIsRecordedCutShort(t *testing.T) {
	n := start(t)
	subject := "svc\x07" + strings.Repeat("é", 150)
	if _, err := n.Signer.MintAdmin(subject, time.Minute); err == nil {
		t.Error("MintAdmin minted a subject the log cannot record")
	}
	old, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Issuer: auth.Issuer, Subject: subject,
		Audience: jwt.ClaimStrings{auth.AudienceAdmin}, IssuedAt: jwt.NewNumericDate(time.Now()),
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute))}).SignedString([]byte("admin-test-secret-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	alice := wire.Dial(t, n.HTTPAddr())
	alice.Login("r1", "alice", clientToken(t, n, "alice"))
	wire.Dial(t, n.HTTPAddr()).Login("r1", "bob", clientToken(t, n, "bob"))
	var done admin.Done
	if code := call(t, n, old, "POST", "/rooms/r1/kick", admin.KickRequest{User: "alice"}, &done); code != 200 {
		t.Fatalf("kick with the older token: %d", code)
	}
	var left *domain.MemberLeftData
	if _, err := n.Log.Read(estest.Ctx(t), []string{n.Log.Subject("dev", "room", "r1")}, 1, func(rec eventstore.Record) error {
		events, err := domain.DecodeEvents(rec.Data)
		for i := range events {
			if d, ok := events[i].Data.(*domain.MemberLeftData); ok {
				left = d
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want := "svc\uFFFD" + strings.Repeat("é", 61) // 3 + 3 + 122 bytes
	if left == nil || left.Admin != want {
		t.Fatalf("the kick as the log has it: %+v, want admin %q", left, want)
	}
}
