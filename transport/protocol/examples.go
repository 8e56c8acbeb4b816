package protocol

import "github.com/roomlog/roomlog/domain"

// Example is one frame as docs/protocol.md shows it.
type Example struct {
	Title string
	Frame any
}

func req(id string, op Op, data any) Request {
	b, err := marshal(data)
	if err != nil {
		panic(err)
	}
	return Request{ID: id, Op: op, Data: b}
}

func keyed(r Request, key string) Request {
	r.IdempotencyKey = key
	return r
}

func ok(id string, data any) Reply { return Reply{Type: TypeReply, ID: id, Data: data} }

func ev(name EventName, room string, seq, prev, cursor uint64, data any) Event {
	return Event{Type: TypeEvent, Event: name, Room: room, Seq: seq, Prev: prev, Cursor: cursor, Data: data}
}

var (
	alice = User{ID: "alice", Name: "Alice"}
	bob   = User{ID: "bob", Name: "Bob"}
	// As listed among a room's members: with their roles.
	aliceMember = User{ID: "alice", Name: "Alice", Role: "anchor"}
	bobMember   = User{ID: "bob", Name: "Bob", Role: "audience"}
	yes         = true
)

// Examples returns one example of every request, of the reply to it, and of
// every event. docs/protocol.md holds exactly these (a test checks).
func Examples() []Example {
	snap := RoomSnapshot{Room: RoomInfo{ID: "class-1"}, Seq: 7, Users: []User{aliceMember, bobMember},
		Streams:    []Stream{{Stream: "alice-cam", User: alice, ExtraInfo: "720p"}},
		ExtraInfo:  []ExtraInfo{{Key: "topic", Value: "fractions", UpdateUser: bob, UpdateTime: 1795262400000}},
		Attributes: map[string]string{"slide": "4"}, Online: 2}
	return append([]Example{
		{"hello (the first frame of every connection)", ev(EvHello, "", 0, 0, 0, Hello{Protocol: Version,
			Session: "01KAK3J7Q8ZX5V2B8T9W0N3E4V", ResumeToken: "eyJhbGciOiJIUzI1NiIs...", HeartbeatMS: 30000,
			TimeoutMS: 90000, ServerTime: 1795262400000})},
		{"set_room_mode", req("1", OpSetRoomMode, SetRoomModeRequest{Mode: "multi"})},
		{"set_room_mode: reply", ok("1", nil)},
		{"login", req("2", OpLogin, LoginRequest{Room: "class-1", User: alice, Token: "eyJhbGciOiJIUzI1NiIs...", Role: "anchor"})},
		{"login: reply (the room's snapshot)", ok("2", snap)},
		{"login: refused", ReplyTo("2", nil, domain.ErrTokenInvalid.With("expired at 2026-11-21T10:00:00Z"))},
		{"logout (one room; without room: every room)", req("3", OpLogout, LogoutRequest{Room: "class-1"})},
		{"logout: reply", ok("3", RoomsReply{Rooms: []string{"class-1"}})},
		{"switch_room", req("4", OpSwitchRoom, SwitchRoomRequest{From: "group-1", To: "group-2", Token: "eyJhbGciOiJIUzI1NiIs..."})},
		{"switch_room (ZIM, create the target if missing)", req("5", OpSwitchRoom, SwitchRoomRequest{From: "group-1",
			To: "group-3", ToName: "Group 3", CreateIfMissing: &yes, Config: &RoomConfig{DestroyDelay: 90}})},
		{"switch_room: reply (the target's snapshot)", ok("4", RoomSnapshot{Room: RoomInfo{ID: "group-2"}, Seq: 3,
			Users: []User{aliceMember}, Streams: []Stream{}, ExtraInfo: []ExtraInfo{}, Attributes: map[string]string{}, Online: 1})},
		{"create_room (ZIM)", req("6", OpCreateRoom, CreateRoomRequest{Room: RoomInfo{ID: "maths", Name: "Maths"},
			Config: &RoomConfig{Attributes: map[string]string{"teacher": "bob"}, DestroyDelay: 300}})},
		{"enter_room (ZIM: create or join)", req("7", OpEnterRoom, CreateRoomRequest{Room: RoomInfo{ID: "maths", Name: "Maths"}})},
		{"join_room (ZIM: the room must exist)", req("8", OpJoinRoom, JoinRoomRequest{Room: "maths"})},
		{"join_room: refused", ReplyTo("8", nil, domain.ErrRoomNotExist)},
		{"leave_room (ZIM)", req("9", OpLeaveRoom, RoomRequest{Room: "maths"})},
		{"leave_all_rooms (ZIM)", req("10", OpLeaveAllRooms, struct{}{})},
		{"leave_all_rooms: reply (the rooms left)", ok("10", RoomsReply{Rooms: []string{"class-1", "maths"}})},
		{"publish", req("11", OpPublish, PublishRequest{Stream: "alice-cam", Room: "class-1", ExtraInfo: "720p"})},
		{"publish: reply (the room it is published in)", ok("11", StreamReply{Room: "class-1"})},
		{"publish: refused (multi-room mode without a room)", ReplyTo("11", nil, domain.ErrPublishRoomRequired)},
		{"stop_publish", req("12", OpStopPublish, StreamRequest{Stream: "alice-cam"})},
		{"set_stream_extra_info", req("13", OpSetStreamExtraInfo, StreamExtraInfoRequest{Stream: "alice-cam", ExtraInfo: "1080p"})},
		{"play", req("14", OpPlay, PlayRequest{Stream: "bob-cam", Room: "class-1"})},
		{"stop_play", req("15", OpStopPlay, PlayRequest{Stream: "bob-cam"})},
		{"broadcast", req("16", OpBroadcast, MessageRequest{Room: "class-1", Message: "hello class"})},
		{"broadcast: reply", ok("16", MessageReply{MessageID: "01KAK3J7Q8ZX5V2B8T9W0N3E4R", Seq: 12})},
		{"broadcast with an idempotency key (sent again after a lost reply: answered with the original reply)",
			keyed(req("17", OpBroadcast, MessageRequest{Room: "class-1", Message: "hello again"}), "3f9c2a7d-17")},
		{"broadcast: refused (rate)", ReplyTo("16", nil, domain.ErrRateLimited.With("10 broadcast messages per second per room"))},
		{"barrage", req("17", OpBarrage, MessageRequest{Room: "class-1", Message: "666"})},
		{"barrage: reply (no room sequence: barrage is not logged)", ok("17", MessageReply{MessageID: "01KAK3J7Q8ZX5V2B8T9W0N3E4S"})},
		{"custom_command", req("18", OpCustomCommand, CustomCommandRequest{Room: "class-1", To: []string{"bob"}, Command: `{"mic":"off"}`})},
		{"set_room_extra_info", req("19", OpSetRoomExtraInfo, RoomExtraInfoRequest{Room: "class-1", Key: "topic", Value: "fractions"})},
		{"set_room_attributes (ZIM)", req("20", OpSetRoomAttributes, RoomAttributesRequest{Room: "maths", Attributes: map[string]string{"slide": "5"}})},
		{"delete_room_attributes (ZIM)", req("21", OpDeleteRoomAttributes, RoomAttributesRequest{Room: "maths", Keys: []string{"poll"}})},
		{"query_room", req("22", OpQueryRoom, RoomRequest{Room: "class-1"})},
		{"renew_token", req("23", OpRenewToken, TokenRequest{Token: "eyJhbGciOiJIUzI1NiIs..."})},
		{"heartbeat", req("24", OpHeartbeat, nil)},
		{"heartbeat: reply (a fresh resume token once the current one is half spent)", ok("24",
			HeartbeatReply{ResumeToken: "eyJhbGciOiJIUzI1NiIs..."})},
		{"resume (the first request of a new connection)", req("25", OpResume, ResumeRequest{ResumeToken: "eyJhbGciOiJIUzI1NiIs...",
			Rooms: map[string]uint64{"class-1": 12, "group-2": 5}, Token: "eyJhbGciOiJIUzI1NiIs..."})},
		{"resume: reply", ok("25", ResumeReply{Session: "01KAK3J7Q8ZX5V2B8T9W0N3E4V", ResumeToken: "eyJhbGciOiJIUzI1NiIs...",
			Rooms: map[string]ResumedRoom{"class-1": {Status: "resumed", Seq: 12}, "group-2": {Status: "left", Seq: 5},
				"group-7": {Status: "unknown"}}})},
		{"resume: refused (the session timed out)", ReplyTo("25", nil, ErrResumeFailed.With("the session timed out; log in again"))},
		{"resume: refused (the session timed out, kicked out of a room while away)", ReplyTo("25", nil,
			ErrResumeFailed.With("the session timed out; log in again").WithData(ResumeRefused{Kicked: map[string]RoomStateChanged{
				"class-1": {State: "KickOut", Code: 1002050, Reason: "kicked_duplicate_login", ZIMState: "Disconnected",
					ZIMEvent: "KickedOutByOtherDevice", By: "01KAK3J7Q8ZX5V2B8T9W0N3E4W"}}}))},
		{"a frame that is not JSON", ReplyTo("", nil, ErrMalformedRequest.With("unexpected end of JSON input"))},
		{"an unknown operation", ReplyTo("26", nil, ErrUnknownOperation.With(`"teleport"`))},
		{"room_state_changed (not a room event: no seq)", ev(EvRoomStateChanged, "class-1", 0, 0, 0,
			RoomStateChanged{State: "Logining", ZIMState: "Connecting", ZIMEvent: "Success"})},
		{"room_state_changed: kicked by a duplicate login (a room event)", ev(EvRoomStateChanged, "class-1", 14, 12, 2051,
			RoomStateChanged{State: "KickOut", Code: 1002050, Reason: "kicked_duplicate_login", ZIMState: "Disconnected",
				ZIMEvent: "KickedOutByOtherDevice", By: "01KAK3J7Q8ZX5V2B8T9W0N3E4W"})},
		{"room_user_update", ev(EvRoomUserUpdate, "class-1", 8, 7, 2040, UserUpdate{UpdateType: "ADD", Users: []User{bobMember}})},
		{"room_stream_update", ev(EvRoomStreamUpdate, "class-1", 9, 8, 2042, StreamUpdate{UpdateType: "ADD",
			Streams: []Stream{{Stream: "bob-cam", User: bob, ExtraInfo: "720p"}}})},
		{"stream_extra_info_update", ev(EvStreamExtraInfoUpdate, "class-1", 10, 9, 2043,
			StreamExtraInfoUpdate{Streams: []Stream{{Stream: "bob-cam", User: bob, ExtraInfo: "1080p"}}})},
		{"broadcast_message", ev(EvBroadcastMessage, "class-1", 11, 10, 2044, Message{MessageID: "01KAK3J7Q8ZX5V2B8T9W0N3E4R",
			From: bob, Message: "hello class", SendTime: 1795262400000})},
		{"barrage_message (no seq)", ev(EvBarrageMessage, "class-1", 0, 0, 0, Message{MessageID: "01KAK3J7Q8ZX5V2B8T9W0N3E4S",
			From: bob, Message: "666", SendTime: 1795262400000})},
		{"custom_command", ev(EvCustomCommand, "class-1", 12, 11, 2046, CustomCommand{MessageID: "01KAK3J7Q8ZX5V2B8T9W0N3E4T",
			From: bob, Command: `{"mic":"off"}`, SendTime: 1795262400000})},
		{"room_extra_info_update", ev(EvRoomExtraInfoUpdate, "class-1", 13, 12, 2047, RoomExtraInfoUpdate{Items: []ExtraInfo{
			{Key: "topic", Value: "fractions", UpdateUser: bob, UpdateTime: 1795262400000}}})},
		{"room_attributes_update", ev(EvRoomAttributesUpdate, "maths", 5, 4, 2050, RoomAttributesUpdate{Set: map[string]string{"slide": "5"},
			Deleted: []string{"poll"}})},
		{"room_online_user_count (no seq)", ev(EvRoomOnlineUserCount, "class-1", 0, 0, 0, OnlineUserCount{Count: 31})},
		{"token_will_expire", ev(EvTokenWillExpire, "", 0, 0, 0, TokenWillExpire{RemainSeconds: 30})},
		{"session_closing (then the server closes the connection)", ev(EvSessionClosing, "", 0, 0, 0,
			SessionClosing{Code: int(ErrSlowConsumer.Code), Error: ErrSlowConsumer.Name, Message: ErrSlowConsumer.Message})},
	}, append(roomStateExamples(), mediaExamples()...)...)
}
