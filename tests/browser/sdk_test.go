package browser

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/auth"
)

type user struct {
	UserID   string `json:"userID"`
	UserName string `json:"userName,omitempty"`
}

// newEngine makes an engine called who in the page, speaking to ws.
func (p *Page) newEngine(who, ws string, opts map[string]any) {
	p.t.Helper()
	b, _ := json.Marshal(opts)
	if opts == nil {
		b = []byte("{}")
	}
	p.Eval(fmt.Sprintf(`T.engine(%q, %q, %s)`, who, ws, b), nil)
}

// A ZEGO app's room life in the browser: multi-room login, the room's users,
// messages of every kind, extra info, online counts, logout of one room,
// switch, and coded errors.
func TestSDKRoomsAndMessages(t *testing.T) {
	n := startNode(t, nil)
	p := openHarness(t, n)
	ws := clienttest.URL(n.HTTPAddr())
	alice, bob := user{"alice", "Alice"}, user{"bob", "Bob"}
	p.newEngine("a", ws, nil)
	p.newEngine("b", ws, nil)

	var ok bool
	p.Eval(`T.engines.b.enableMultiRoom(true)`, &ok)
	if !ok {
		t.Fatal("enableMultiRoom(true) before the first login returned false")
	}
	tokB := clienttest.Token(t, n, "bob")
	p.Must("b", "loginRoom", "r1", tokB, bob)
	p.WaitState(0, "b", "r1", "LOGINED")
	p.Must("b", "loginRoom", "r2", tokB, bob)
	p.WaitState(0, "b", "r2", "LOGINED")
	p.Eval(`T.engines.b.enableMultiRoom(false)`, &ok)
	if ok {
		t.Error("enableMultiRoom after a login returned true")
	}

	mark := p.Len()
	p.Must("a", "loginRoom", "r1", clienttest.Token(t, n, "alice"), alice)
	joined := p.Wait(mark, `e => e.who === 'b' && e.event === 'roomUserUpdate' && e.args[0] === 'r1' && e.args[1] === 'ADD'`)
	var users []user
	json.Unmarshal(joined.Args[2], &users)
	if len(users) != 1 || users[0] != alice {
		t.Errorf("b's ADD in r1 = %+v, want alice", users)
	}
	p.Wait(mark, `e => e.who === 'b' && e.event === 'roomMemberJoined' && e.args[0] === 'engine:b' && e.args[1].roomID === 'r1' && e.args[1].memberList[0].userID === 'alice'`)
	// After a login, the room's other users are ADDed.
	p.Wait(mark, `e => e.who === 'a' && e.event === 'roomUserUpdate' && e.args[1] === 'ADD' && e.args[2].some(u => u.userID === 'bob')`)
	p.Wait(mark, `e => e.who === 'b' && e.event === 'roomOnlineUserCountUpdate' && e.args[0] === 'r1' && e.args[1] === 2`)

	var sent struct {
		ErrorCode int    `json:"errorCode"`
		MessageID string `json:"messageID"`
		Seq       int    `json:"seq"`
	}
	json.Unmarshal(p.Must("a", "sendBroadcastMessage", "r1", "hello class"), &sent)
	if sent.MessageID == "" || sent.Seq == 0 {
		t.Errorf("sendBroadcastMessage resolved %+v, want a message ID and a seq", sent)
	}
	msg := p.Wait(mark, `e => e.who === 'b' && e.event === 'IMRecvBroadcastMessage' && e.args[0] === 'r1'`)
	var chat []struct {
		MessageID string `json:"messageID"`
		FromUser  user   `json:"fromUser"`
		Message   string `json:"message"`
		SendTime  int64  `json:"sendTime"`
	}
	json.Unmarshal(msg.Args[1], &chat)
	if len(chat) != 1 || chat[0].Message != "hello class" || chat[0].FromUser != alice || chat[0].MessageID != sent.MessageID ||
		chat[0].SendTime == 0 {
		t.Errorf("b got the broadcast %+v, want alice's %q %s", chat, "hello class", sent.MessageID)
	}
	p.Must("a", "sendBarrageMessage", "r1", "666")
	p.Wait(mark, `e => e.who === 'b' && e.event === 'IMRecvBarrageMessage' && e.args[1][0].message === '666'`)
	p.Must("a", "sendCustomCommand", "r1", `{"mic":"off"}`, []string{"bob"})
	cmd := p.Wait(mark, `e => e.who === 'b' && e.event === 'IMRecvCustomCommand'`)
	if cmd.Str(0) != "r1" || cmd.Str(2) != `{"mic":"off"}` || !strings.Contains(string(cmd.Args[1]), `"userID":"alice"`) {
		t.Errorf("b got the custom command %s", cmd.Args)
	}
	p.Must("a", "setRoomExtraInfo", "r1", "topic", "fractions")
	p.Wait(mark, `e => e.who === 'b' && e.event === 'roomExtraInfoUpdate' && e.args[0] === 'r1' && e.args[1][0].key === 'topic' && e.args[1][0].value === 'fractions' && e.args[1][0].updateUser.userID === 'alice'`)
	// Nothing of r1 reaches b's r2.
	for _, e := range p.Events("b", "") {
		switch e.Event {
		case "roomUserUpdate", "IMRecvBroadcastMessage", "IMRecvBarrageMessage", "IMRecvCustomCommand", "roomExtraInfoUpdate":
			if e.Index > mark && e.Str(0) != "r1" {
				t.Errorf("alice's doings in r1 reached b as %s in %s", e.Event, e.Str(0))
			}
		}
	}

	// Logout of one room, then a switch.
	var left []string
	json.Unmarshal(p.Must("b", "logoutRoom", "r2"), &left)
	if len(left) != 1 || left[0] != "r2" {
		t.Errorf("logoutRoom(r2) left %v", left)
	}
	p.WaitState(mark, "b", "r2", "LOGOUT")
	p.Must("b", "switchRoom", "r1", "r3", map[string]string{"token": tokB})
	p.WaitState(mark, "b", "r1", "LOGOUT")
	p.WaitState(mark, "b", "r3", "LOGINED")
	p.Wait(mark, `e => e.who === 'a' && e.event === 'roomUserUpdate' && e.args[1] === 'DELETE' && e.args[2][0].userID === 'bob'`)
	var rooms []string
	p.Eval(`T.engines.b.rooms`, &rooms)
	if len(rooms) != 1 || rooms[0] != "r3" {
		t.Errorf("b's rooms = %v, want [r3]", rooms)
	}

	// Coded errors: the server's and the SDK's.
	p.newEngine("c", ws, nil)
	r := p.Run("c", "loginRoom", "r1", "not-a-token", user{"carol", ""})
	if r.OK || r.Code != 1002033 || r.Name != "token_invalid" || !r.IsError {
		t.Errorf("login with a bad token: %+v, want a RoomlogError 1002033 token_invalid", r)
	}
	failed := p.WaitState(mark, "c", "r1", "LOGIN_FAILED")
	if failed.Num(2) != 1002033 {
		t.Errorf("LOGIN_FAILED came with code %d, want 1002033", failed.Num(2))
	}
	r = p.Run("a", "loginRoom", "r4", clienttest.Token(t, n, "alice"), alice)
	if r.OK || r.Code != 1902001 || r.Name != "already_in_another_room" {
		t.Errorf("a second login in single-room mode: %+v, want 1902001 already_in_another_room", r)
	}
	p.Eval(`T.engines.a.destroyEngine()`, nil)
	r = p.Run("a", "sendBroadcastMessage", "r1", "after close")
	if r.OK || r.Code != 1906090 || r.Name != "client_closed" || r.Op != "broadcast" {
		t.Errorf("a call after destroyEngine: %+v, want 1906090 client_closed of op broadcast", r)
	}
	// Each call's error names its own operation (they once shared one
	// error, named after the first call's).
	if r = p.Run("a", "setRoomExtraInfo", "r1", "k", "v"); r.Code != 1906090 || r.Op != "set_room_extra_info" {
		t.Errorf("a second call after destroyEngine: %+v, want 1906090 of op set_room_extra_info", r)
	}
	p.noGaps()
}

// ZIM's room operations: create, join, enter, switch, leave, leave all, and
// room attributes.
func TestSDKZIMRooms(t *testing.T) {
	n := startNode(t, nil)
	p := openHarness(t, n)
	ws := clienttest.URL(n.HTTPAddr())
	p.newEngine("z1", ws, nil)
	p.newEngine("z2", ws, nil)
	p.Must("z1", "login", user{"zoe", "Zoe"}, clienttest.Token(t, n, "zoe"))
	p.Must("z2", "login", user{"zed", "Zed"}, clienttest.Token(t, n, "zed"))

	var created struct {
		RoomInfo struct {
			BaseInfo struct{ RoomID, RoomName string } `json:"baseInfo"`
		} `json:"roomInfo"`
	}
	json.Unmarshal(p.Must("z1", "createRoom", map[string]string{"roomID": "maths", "roomName": "Maths"},
		map[string]any{"roomAttributes": map[string]string{"teacher": "bob"}}), &created)
	if created.RoomInfo.BaseInfo.RoomID != "maths" || created.RoomInfo.BaseInfo.RoomName != "Maths" {
		t.Errorf("createRoom resolved %+v", created)
	}
	if r := p.Run("z2", "createRoom", map[string]string{"roomID": "maths"}); r.Code != 1902003 || r.Name != "room_already_exists" {
		t.Errorf("creating an existing room: %+v, want 1902003", r)
	}
	if r := p.Run("z2", "joinRoom", "nowhere"); r.Code != 1902002 || r.Name != "room_not_exist" {
		t.Errorf("joining a missing room: %+v, want 1902002", r)
	}
	p.Must("z2", "joinRoom", "maths")
	p.Wait(0, `e => e.who === 'z1' && e.event === 'roomMemberJoined' && e.args[1].roomID === 'maths' && e.args[1].memberList[0].userID === 'zed' && e.args[1].memberList[0].userName === 'Zed'`)
	var snap struct {
		RoomAttributes map[string]string `json:"roomAttributes"`
		UserList       []user            `json:"userList"`
	}
	json.Unmarshal(p.Must("z2", "queryRoom", "maths"), &snap)
	if snap.RoomAttributes["teacher"] != "bob" || len(snap.UserList) != 2 {
		t.Errorf("queryRoom(maths) = %+v, want the teacher attribute and two users", snap)
	}
	p.Must("z2", "enterRoom", map[string]string{"roomID": "art", "roomName": "Art"})
	p.WaitState(0, "z2", "art", "LOGINED")

	p.Must("z1", "setRoomAttributes", map[string]string{"slide": "5"}, "maths")
	p.Wait(0, `e => e.who === 'z2' && e.event === 'roomAttributesUpdated' && e.args[1].roomID === 'maths' && e.args[1].infos[0].action === 'Set' && e.args[1].infos[0].roomAttributes.slide === '5'`)
	p.Must("z1", "deleteRoomAttributes", []string{"slide"}, "maths")
	p.Wait(0, `e => e.who === 'z2' && e.event === 'roomAttributesUpdated' && e.args[1].infos[0].action === 'Delete' && 'slide' in e.args[1].infos[0].roomAttributes`)

	p.Must("z2", "switchRoom", "art", map[string]string{"roomID": "music", "roomName": "Music"}, true,
		map[string]any{"roomDestroyDelayTime": 60})
	p.WaitState(0, "z2", "art", "LOGOUT")
	p.WaitState(0, "z2", "music", "LOGINED")
	p.Must("z2", "leaveRoom", "maths")
	p.Wait(0, `e => e.who === 'z1' && e.event === 'roomMemberLeft' && e.args[1].roomID === 'maths' && e.args[1].memberList[0].userID === 'zed'`)
	var all struct {
		RoomIDs []string `json:"roomIDs"`
	}
	json.Unmarshal(p.Must("z2", "leaveAllRoom"), &all)
	if len(all.RoomIDs) != 1 || all.RoomIDs[0] != "music" {
		t.Errorf("leaveAllRoom left %v, want [music]", all.RoomIDs)
	}
	p.WaitState(0, "z2", "music", "LOGOUT")
	p.noGaps()
}

// tokenWillExpire comes before the token expires, and renewToken replaces it.
func TestSDKTokenRenewal(t *testing.T) {
	n := startNode(t, nil)
	p := openHarness(t, n)
	p.newEngine("a", clienttest.URL(n.HTTPAddr()), nil)
	short := clienttest.Mint(t, n, auth.Claims{App: clienttest.App, User: "alice", AllRooms: true,
		ExpiresAt: time.Now().Add(20 * time.Second)})
	p.Must("a", "loginRoom", "r1", short, user{"alice", ""})
	warn := p.Wait(0, `e => e.event === 'tokenWillExpire'`)
	if warn.Str(0) != "r1" || warn.Num(1) <= 0 || warn.Num(1) > 20 {
		t.Errorf("tokenWillExpire(%s, %d), want r1 and at most 20 s", warn.Str(0), warn.Num(1))
	}
	if r := p.Run("a", "renewToken", "garbage"); r.Code != 1002033 {
		t.Errorf("renewToken(garbage): %+v, want 1002033", r)
	}
	p.Must("a", "renewToken", clienttest.Token(t, n, "alice"))
	if r := p.Run("a", "renewToken", clienttest.Token(t, n, "mallory")); r.Code != 1002033 {
		t.Errorf("renewToken with another user's token: %+v, want 1002033", r)
	}
}

// A server that refuses the page's origin fails the call with the SDK's
// connect_failed; a server that allows it serves the same page.
func TestSDKConnectFailed(t *testing.T) {
	ok := startNode(t, nil)
	n := startNode(t, func(o *clienttest.NodeOptions) { o.Gateway.OriginPatterns = []string{"example.com"} })
	p := openHarness(t, ok) // the page's origin is ok's, which n does not allow
	p.newEngine("a", clienttest.URL(n.HTTPAddr()), nil)
	r := p.Run("a", "loginRoom", "r1", clienttest.Token(t, n, "alice"), user{"alice", ""})
	if r.OK || r.Code != 1906091 || r.Name != "connect_failed" || !r.IsError {
		t.Errorf("login from a refused origin: %+v, want 1906091 connect_failed", r)
	}
	p.newEngine("b", clienttest.URL(ok.HTTPAddr()), nil)
	p.Must("b", "loginRoom", "r1", clienttest.Token(t, ok, "bob"), user{"bob", ""})
}

// An event whose prev is not the last seq the engine got for its room is a
// gap: the engine reports it. (A correct server never sends one, so the
// test hands the engine a frame of its own.)
func TestSDKReportsGaps(t *testing.T) {
	n := startNode(t, nil)
	p := openHarness(t, n)
	p.newEngine("a", clienttest.URL(n.HTTPAddr()), nil)
	p.newEngine("b", clienttest.URL(n.HTTPAddr()), nil)
	p.Must("a", "loginRoom", "r1", clienttest.Token(t, n, "alice"), user{"alice", ""})
	p.Must("b", "loginRoom", "r1", clienttest.Token(t, n, "bob"), user{"bob", ""})
	p.Must("b", "sendBroadcastMessage", "r1", "one")
	last := p.Wait(0, `e => e.who === 'a' && e.event === 'IMRecvBroadcastMessage'`)
	p.noGaps()
	var seq int
	p.Eval(`T.engines.a._rooms.get('r1').seq`, &seq)
	forged := fmt.Sprintf(`{"type":"event","event":"broadcast_message","room":"r1","seq":%d,"prev":%d,"cursor":1,`+
		`"data":{"message_id":"x","from":{"id":"bob"},"message":"after a gap","send_time":1}}`, seq+5, seq+3)
	p.Eval(fmt.Sprintf(`T.engines.a._link.frame(%q)`, forged), nil)
	gap := p.Wait(last.Index, `e => e.who === 'a' && e.event === 'roomEventGap'`)
	if gap.Str(0) != "r1" || gap.Num(1) != seq || gap.Num(2) != seq+3 {
		t.Errorf("roomEventGap%s, want (r1, %d, %d)", gap.Args, seq, seq+3)
	}
	// The engine follows on from the forged event: the next real one is a
	// gap too (it says prev = seq), and is still delivered.
	p.Must("b", "sendBroadcastMessage", "r1", "two")
	p.Wait(last.Index, `e => e.who === 'a' && e.event === 'IMRecvBroadcastMessage' && e.args[1][0].message === 'two'`)
	if gaps := p.Events("a", "roomEventGap"); len(gaps) != 2 || gaps[1].Num(1) != seq+5 || gaps[1].Num(2) != seq {
		t.Errorf("gaps %v, want a second one from %d back to %d", gaps, seq+5, seq)
	}
}
