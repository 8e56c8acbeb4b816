package protocol

import "github.com/roomlog/roomlog/domain"

// Room state beyond members and messages: history, owned room attributes
// and their batches, member attributes, compare-and-set, paged member lists.

// Operations.
const (
	OpRoomAttributesBatch   Op = "room_attributes_batch"   // ZIM begin/endRoomAttributesBatchOperation
	OpQueryRoomAttributes   Op = "query_room_attributes"   // ZIM queryRoomAllAttributes
	OpSetMemberAttributes   Op = "set_member_attributes"   // ZIM setRoomMembersAttributes
	OpQueryMemberAttributes Op = "query_member_attributes" // ZIM queryRoomMembersAttributes / queryRoomMemberAttributesList
	OpQueryMemberList       Op = "query_member_list"       // ZIM queryRoomMemberList
	OpQueryOnlineCount      Op = "query_online_count"      // ZIM queryRoomOnlineMemberCount
	OpQueryHistory          Op = "query_history"           // ZIM queryHistoryMessage
)

var roomStateOps = []Op{OpRoomAttributesBatch, OpQueryRoomAttributes, OpSetMemberAttributes, OpQueryMemberAttributes,
	OpQueryMemberList, OpQueryOnlineCount, OpQueryHistory}

// Events.
const (
	EvRoomAttributesBatchUpdate  EventName = "room_attributes_batch_update"  // ZIM roomAttributesBatchUpdated
	EvRoomMemberAttributesUpdate EventName = "room_member_attributes_update" // ZIM roomMemberAttributesUpdated
)

var roomStateEvents = []EventName{EvRoomAttributesBatchUpdate, EvRoomMemberAttributesUpdate}

func newRoomStatePayload(op Op) any {
	switch op {
	case OpRoomAttributesBatch:
		return &RoomAttributesRequest{}
	case OpQueryRoomAttributes, OpQueryOnlineCount:
		return &RoomRequest{}
	case OpSetMemberAttributes:
		return &MemberAttributesRequest{}
	case OpQueryMemberAttributes:
		return &MemberAttributesQuery{}
	case OpQueryMemberList:
		return &MemberListRequest{}
	case OpQueryHistory:
		return &HistoryRequest{}
	}
	return nil
}

// ---- requests ----

// MemberAttributesRequest sets (Attributes) and deletes (Keys) attributes
// of the listed members.
type MemberAttributesRequest struct {
	Room       string            `json:"room"`
	Users      []string          `json:"users"`
	Attributes map[string]string `json:"attributes,omitempty"`
	Keys       []string          `json:"keys,omitempty"`
}

// MemberAttributesQuery reads the attributes of the listed members, or,
// with no users, pages through the members that have any.
type MemberAttributesQuery struct {
	Room     string   `json:"room"`
	Users    []string `json:"users,omitempty"`
	NextFlag string   `json:"next_flag,omitempty"`
	Count    int      `json:"count,omitempty"` // default and most: 100
}

// MemberListRequest pages through a room's members, ordered by user ID.
type MemberListRequest struct {
	Room string `json:"room"`
	// NextFlag is the previous page's next_flag ("" for the first page).
	NextFlag string `json:"next_flag,omitempty"`
	Count    int    `json:"count,omitempty"` // default and most: 100
}

// HistoryRequest reads one page of a room's message history.
type HistoryRequest struct {
	Room string `json:"room"`
	// Before is the previous page's next (0 for the newest page).
	Before uint64 `json:"before,omitempty"`
	Count  int    `json:"count,omitempty"` // default 20, most 100
}

// ---- replies ----

// WriteReply answers a room attribute or extra info write: the room seq
// the write was stored at (the new version of the keys it set), and for a
// plain (not batch) attribute write the keys it skipped because another
// member owns them (ZIM errorKeys). A write that changed nothing has no seq.
type WriteReply struct {
	Version   uint64   `json:"version,omitempty"`
	ErrorKeys []string `json:"error_keys,omitempty"`
}

// MemberAttributesReply answers set_member_attributes: the users the write
// left out because they are not in the room (ZIM errorUserList).
type MemberAttributesReply struct {
	ErrorUsers []string `json:"error_users,omitempty"`
}

// RoomAttribute is one room attribute with its owner and version.
type RoomAttribute struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Owner   string `json:"owner,omitempty"`
	Version uint64 `json:"version"`
	// DeleteAfterOwnerLeft: the key goes when its owner leaves.
	DeleteAfterOwnerLeft bool `json:"delete_after_owner_left,omitempty"`
}

// RoomAttributesReply answers query_room_attributes, as of room seq Seq.
type RoomAttributesReply struct {
	Seq        uint64          `json:"seq"`
	Attributes []RoomAttribute `json:"attributes"`
}

// MemberAttributes is one member's attributes.
type MemberAttributes struct {
	User       string            `json:"user"`
	Attributes map[string]string `json:"attributes"`
}

// MemberAttributesPage answers query_member_attributes.
type MemberAttributesPage struct {
	Members  []MemberAttributes `json:"members"`
	NextFlag string             `json:"next_flag,omitempty"`
}

// MemberListReply is one page of a room's members; NextFlag is empty on
// the last page.
type MemberListReply struct {
	Users    []User `json:"users"`
	NextFlag string `json:"next_flag,omitempty"`
}

// HistoryMessage is one message of a room's history.
type HistoryMessage struct {
	// Type is "broadcast" or "custom_command".
	Type      string   `json:"type"`
	Seq       uint64   `json:"seq"` // the room event's seq
	MessageID string   `json:"message_id"`
	From      User     `json:"from"`
	Message   string   `json:"message"`
	To        []string `json:"to,omitempty"` // a custom command's recipients
	SendTime  int64    `json:"send_time"`    // Unix milliseconds
}

// HistoryReply is one page of history, newest first; Next is the before of
// the next older page, 0 when there is none.
type HistoryReply struct {
	Messages []HistoryMessage `json:"messages"`
	Next     uint64           `json:"next,omitempty"`
}

// ---- events ----

// MemberAttributesUpdate is ZIM roomMemberAttributesUpdated.
type MemberAttributesUpdate struct {
	Members []MemberAttributesChange `json:"members"`
	By      User                     `json:"by"`
}

// MemberAttributesChange is the change to one member's attributes.
type MemberAttributesChange struct {
	User    string            `json:"user"`
	Set     map[string]string `json:"set,omitempty"`
	Deleted []string          `json:"deleted,omitempty"`
}

// roomStateExamples are the examples of this file's operations and events.
func roomStateExamples() []Example {
	var v4 uint64 = 4
	return []Example{
		{"login with the last messages, a capacity and no user updates", req("40", OpLogin, LoginRequest{Room: "live-1", User: bob,
			Token: "eyJhbGciOiJIUzI1NiIs...", History: 2, MaxMemberCount: 500, UserStatusNotify: new(false)})},
		{"login: reply (the snapshot with its last messages, newest first)", ok("40", RoomSnapshot{Room: RoomInfo{ID: "live-1"},
			Seq: 41, Users: []User{aliceMember, bobMember}, Streams: []Stream{}, ExtraInfo: []ExtraInfo{},
			Attributes: map[string]string{"mic": "alice"}, AttributeVersions: map[string]uint64{"mic": 12}, Online: 2,
			MaxMemberCount: 500, Messages: []HistoryMessage{
				{Type: "broadcast", Seq: 40, MessageID: "01KAK3J7Q8ZX5V2B8T9W0N3E5B", From: alice, Message: "welcome", SendTime: 1795262460000},
				{Type: "custom_command", Seq: 38, MessageID: "01KAK3J7Q8ZX5V2B8T9W0N3E5A", From: alice, Message: `{"seat":2}`,
					To: []string{"bob"}, SendTime: 1795262450000}}})},
		{"login: refused (the room is full)", ReplyTo("40", nil, domain.ErrRoomFull.With("at most 500 members"))},
		{"set_room_attributes (ZIM, with its config and a compare-and-set)", req("41", OpSetRoomAttributes,
			RoomAttributesRequest{Room: "live-1", Attributes: map[string]string{"mic": "bob", "topic": "q&a"}, Force: false,
				DeleteAfterOwnerLeft: true, Expect: map[string]uint64{"topic": 0}})},
		{"set_room_attributes: reply (mic is alice's: skipped, as ZIM's errorKeys)", ok("41", WriteReply{Version: 42,
			ErrorKeys: []string{"mic"}})},
		{"set_room_attributes: refused (a key changed since the expected version)", ReplyTo("41", nil,
			domain.ErrVersionConflict.With("a key changed since the version the write expected").WithData(domain.VersionConflict{
				Current: []domain.Current{{Key: "topic", Value: "intro", Version: 39, Exists: true}}}))},
		{"delete_room_attributes (ZIM, forced)", req("42", OpDeleteRoomAttributes, RoomAttributesRequest{Room: "live-1",
			Keys: []string{"mic"}, Force: true})},
		{"delete_room_attributes: refused (another member's key, without force)", ReplyTo("42", nil,
			domain.ErrAttributeOwned.With(`keys ["mic"]`).WithData(domain.Partial{Keys: []string{"mic"}}))},
		{"room_attributes_batch (ZIM batch operation: all or nothing, one event)", req("43", OpRoomAttributesBatch,
			RoomAttributesRequest{Room: "live-1", Attributes: map[string]string{"seat-1": "bob", "seat-2": ""}, Keys: []string{"poll"},
				UpdateOwner: true})},
		{"room_attributes_batch: reply", ok("43", WriteReply{Version: 44})},
		{"query_room_attributes (ZIM queryRoomAllAttributes)", req("44", OpQueryRoomAttributes, RoomRequest{Room: "live-1"})},
		{"query_room_attributes: reply", ok("44", RoomAttributesReply{Seq: 44, Attributes: []RoomAttribute{
			{Key: "mic", Value: "alice", Owner: "alice", Version: 12},
			{Key: "seat-1", Value: "bob", Owner: "bob", Version: 44, DeleteAfterOwnerLeft: true}}})},
		{"set_room_extra_info with a compare-and-set", req("45", OpSetRoomExtraInfo, RoomExtraInfoRequest{Room: "live-1",
			Key: "topic", Value: "q&a", Expect: &v4})},
		{"set_room_extra_info: reply", ok("45", WriteReply{Version: 45})},
		{"set_member_attributes (ZIM setRoomMembersAttributes)", req("46", OpSetMemberAttributes, MemberAttributesRequest{
			Room: "live-1", Users: []string{"bob", "carol"}, Attributes: map[string]string{"seat": "2"}})},
		{"set_member_attributes: reply (carol is not in the room: ZIM's errorUserList)", ok("46",
			MemberAttributesReply{ErrorUsers: []string{"carol"}})},
		{"query_member_attributes (listed members; without users: a page of the members that have any)", req("47",
			OpQueryMemberAttributes, MemberAttributesQuery{Room: "live-1", Users: []string{"bob"}})},
		{"query_member_attributes: reply", ok("47", MemberAttributesPage{Members: []MemberAttributes{{User: "bob",
			Attributes: map[string]string{"seat": "2"}}}})},
		{"query_member_list (ZIM queryRoomMemberList)", req("48", OpQueryMemberList, MemberListRequest{Room: "live-1", Count: 2})},
		{"query_member_list: reply (pass next_flag for the next page)", ok("48", MemberListReply{Users: []User{aliceMember, bobMember},
			NextFlag: "bob"})},
		{"query_online_count", req("49", OpQueryOnlineCount, RoomRequest{Room: "live-1"})},
		{"query_online_count: reply", ok("49", OnlineUserCount{Count: 2})},
		{"query_history (ZIM queryHistoryMessage)", req("50", OpQueryHistory, HistoryRequest{Room: "live-1", Count: 2})},
		{"query_history: reply (newest first; pass next as before for the next page)", ok("50", HistoryReply{
			Messages: []HistoryMessage{{Type: "broadcast", Seq: 40, MessageID: "01KAK3J7Q8ZX5V2B8T9W0N3E5B", From: alice,
				Message: "welcome", SendTime: 1795262460000}, {Type: "broadcast", Seq: 35, MessageID: "01KAK3J7Q8ZX5V2B8T9W0N3E59",
				From: bob, Message: "hi", SendTime: 1795262440000}}, Next: 2210})},
		{"room_attributes_update (a plain write, with who made it)", ev(EvRoomAttributesUpdate, "live-1", 42, 41, 2212,
			RoomAttributesUpdate{Set: map[string]string{"topic": "q&a"}, By: &bob})},
		{"room_attributes_update (keys that left with their owner)", ev(EvRoomAttributesUpdate, "live-1", 46, 45, 2218,
			RoomAttributesUpdate{Deleted: []string{"seat-1"}, By: &bob, OwnerLeft: true})},
		{"room_attributes_batch_update (ZIM roomAttributesBatchUpdated: a batch as one update)", ev(EvRoomAttributesBatchUpdate,
			"live-1", 44, 43, 2215, RoomAttributesUpdate{Set: map[string]string{"seat-1": "bob", "seat-2": ""},
				Deleted: []string{"poll"}, By: &bob})},
		{"room_member_attributes_update (ZIM roomMemberAttributesUpdated)", ev(EvRoomMemberAttributesUpdate, "live-1", 47, 46,
			2216, MemberAttributesUpdate{Members: []MemberAttributesChange{{User: "bob", Set: map[string]string{"seat": "2"}}},
				By: alice})},
	}
}
