package gateway

import (
	"encoding/json"
	"slices"
	"strconv"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/protocol"
)

// audience says which members of a room a frame goes to.
type audience struct {
	// exceptSession and exceptUser leave out the member the event is about
	// or came from (ZEGO does not tell a user about itself).
	exceptSession domain.SessionID
	exceptUser    domain.UserID
	// onlySession sends to one member only (its own state change).
	onlySession domain.SessionID
	// toUsers, when not nil, restricts to these users (custom commands).
	toUsers []domain.UserID
	// leaves marks a frame after which the member is no longer in the room.
	leaves bool
	// users marks other users' ADD and DELETE, which quiet members (ZEGO
	// isUserStatusNotify = false) do not get.
	users bool
	// unsent marks a frame that ends the membership without being sent: a
	// timed-out session's own departure, whose connection the gateway
	// closes with heartbeat_timeout instead (Server.onTimedOut).
	unsent bool
}

func (a audience) includes(s domain.SessionID, u domain.UserID) bool {
	switch {
	case a.onlySession != "":
		return s == a.onlySession
	case a.exceptSession != "" && s == a.exceptSession:
		return false
	case a.exceptUser != "" && u == a.exceptUser:
		return false
	case a.toUsers != nil:
		return slices.Contains(a.toUsers, u)
	}
	return true
}

// outFrame is one event frame of a room event, encoded once. The bytes are
// split around the value of "prev", which differs per connection.
type outFrame struct {
	to        audience
	head      []byte // {"type":"event",...,"seq":N,"prev":
	tail      []byte // ,"cursor":...,"data":{...}}
	droppable bool
}

// bytes returns the frame for a connection whose previous frame in the room
// had sequence prev.
func (f *outFrame) bytes(prev uint64) []byte {
	b := make([]byte, 0, len(f.head)+len(f.tail)+20)
	b = append(b, f.head...)
	b = strconv.AppendUint(b, prev, 10)
	return append(b, f.tail...)
}

// encodeEvent encodes a room event frame split around "prev".
func encodeEvent(name protocol.EventName, room domain.RoomID, seq, cursor uint64, data any) (head, tail []byte, err error) {
	payload, err := json.Marshal(data)
	if err != nil {
		return nil, nil, err
	}
	head = append(head, `{"type":"event","event":`...)
	head = strconv.AppendQuote(head, string(name))
	head = append(head, `,"room":`...)
	r, err := json.Marshal(string(room))
	if err != nil {
		return nil, nil, err
	}
	head = append(head, r...)
	head = append(head, `,"seq":`...)
	head = strconv.AppendUint(head, seq, 10)
	head = append(head, `,"prev":`...)
	tail = append(tail, `,"cursor":`...)
	tail = strconv.AppendUint(tail, cursor, 10)
	tail = append(tail, `,"data":`...)
	tail = append(tail, payload...)
	tail = append(tail, '}')
	return head, tail, nil
}

// stateOf is how a departure looks to the member who left (onRoomStateChanged
// and ZIM roomStateChanged).
func stateOf(reason domain.Reason, by domain.SessionID) protocol.RoomStateChanged {
	s := protocol.RoomStateChanged{State: string(domain.StateLogout), Reason: string(reason), ZIMState: "Disconnected",
		ZIMEvent: "Success"}
	switch reason {
	case domain.ReasonKickedByBackend:
		s.State, s.Code, s.ZIMEvent = string(domain.StateKickOut), int(domain.ErrKickedByBackend.Code), "KickedOut"
	case domain.ReasonKickedDuplicateLogin:
		s.State, s.Code, s.ZIMEvent, s.By = string(domain.StateKickOut), int(domain.ErrKickedDuplicate.Code), "KickedOutByOtherDevice", string(by)
	case domain.ReasonHeartbeatTimeout:
		s.Code, s.ZIMEvent = int(domain.ErrTimeout.Code), "NetworkInterrupted"
	case domain.ReasonRoomDestroyed:
		s.Code, s.ZIMEvent = int(domain.ErrRoomNotExist.Code), "RoomNotExist"
	}
	return s
}

func user(id domain.UserID, name string) protocol.User {
	return protocol.User{ID: string(id), Name: name}
}

// member is a user listed as a room's member: with its role.
func member(id domain.UserID, name string, role domain.Role) protocol.User {
	return protocol.User{ID: string(id), Name: name, Role: string(role)}
}

// translate turns one room event into the frames its members get. Events
// that concern nobody outside the server (claims, plays, the room's creation)
// give none; the member a departure or a stream is about, and the sender of a
// message, are not told about it (as in the ZEGO SDKs).
func translate(e *domain.Event, cursor uint64) ([]*outFrame, error) {
	room := domain.RoomID(e.AggregateID)
	var out []*outFrame
	add := func(name protocol.EventName, to audience, data any) error {
		head, tail, err := encodeEvent(name, room, e.Seq, cursor, data)
		if err != nil {
			return err
		}
		out = append(out, &outFrame{to: to, head: head, tail: tail})
		return nil
	}
	var err error
	switch d := e.Data.(type) {
	case *domain.MemberJoinedData:
		err = add(protocol.EvRoomUserUpdate, audience{exceptSession: d.Session, users: true},
			protocol.UserUpdate{UpdateType: "ADD", Users: []protocol.User{member(d.User, d.UserName, d.Role)}})
	case *domain.MemberLeftData:
		// A timed-out session is not told it left: its connection, if it
		// still has one, is closed with heartbeat_timeout, and a departure
		// read before that close would race it. The client logs in again
		// when it comes back (its resume is refused), whichever it saw.
		//
		// Members sent away by the destroy of a room too large for one
		// event are not announced to the others: they are all about to
		// hear the room is gone, as they would of the one event.
		if err = add(protocol.EvRoomStateChanged, audience{onlySession: d.Session, leaves: true,
			unsent: d.Reason == domain.ReasonHeartbeatTimeout}, stateOf(d.Reason, d.BySession)); err == nil &&
			d.Reason != domain.ReasonRoomDestroyed {
			err = add(protocol.EvRoomUserUpdate, audience{exceptSession: d.Session, users: true},
				protocol.UserUpdate{UpdateType: "DELETE", Users: []protocol.User{user(d.User, d.UserName)}})
		}
	case *domain.RoomDestroyedData:
		err = add(protocol.EvRoomStateChanged, audience{leaves: true}, stateOf(domain.ReasonRoomDestroyed, ""))
	case *domain.StreamPublishedData:
		err = add(protocol.EvRoomStreamUpdate, audience{exceptSession: d.Session},
			protocol.StreamUpdate{UpdateType: "ADD", Streams: []protocol.Stream{{Stream: string(d.Stream),
				User: user(d.User, d.UserName), ExtraInfo: d.ExtraInfo}}})
	case *domain.StreamStoppedData:
		if d.Reason == domain.ReasonRoomDestroyed {
			break // as for member_left above
		}
		err = add(protocol.EvRoomStreamUpdate, audience{exceptSession: d.Session},
			protocol.StreamUpdate{UpdateType: "DELETE", Streams: []protocol.Stream{{Stream: string(d.Stream),
				User: user(d.User, d.UserName)}}})
	case *domain.StreamExtraInfoData:
		err = add(protocol.EvStreamExtraInfoUpdate, audience{exceptUser: d.User},
			protocol.StreamExtraInfoUpdate{Streams: []protocol.Stream{{Stream: string(d.Stream),
				User: user(d.User, d.UserName), ExtraInfo: d.ExtraInfo}}})
	case *domain.BroadcastSentData:
		err = add(protocol.EvBroadcastMessage, audience{exceptSession: d.Session},
			protocol.Message{MessageID: e.ID.String(), From: user(d.From, d.FromName), Message: d.Body,
				SendTime: e.Time.UnixMilli()})
	case *domain.CustomCommandSentData:
		to := audience{exceptSession: d.Session, toUsers: d.To}
		if len(d.To) == 0 {
			to.toUsers = nil
		}
		err = add(protocol.EvCustomCommand, to, protocol.CustomCommand{MessageID: e.ID.String(),
			From: user(d.From, d.FromName), Command: d.Body, SendTime: e.Time.UnixMilli()})
	case *domain.ExtraInfoUpdatedData:
		err = add(protocol.EvRoomExtraInfoUpdate, audience{exceptUser: d.By},
			protocol.RoomExtraInfoUpdate{Items: []protocol.ExtraInfo{{Key: d.Key, Value: d.Value,
				UpdateUser: user(d.By, d.ByName), UpdateTime: e.Time.UnixMilli(), Version: e.Seq}}})
	case *domain.AttributesUpdatedData:
		name, to := protocol.EvRoomAttributesUpdate, audience{exceptUser: d.By}
		if d.Batch {
			name = protocol.EvRoomAttributesBatchUpdate
		}
		if d.OwnerLeft {
			to = audience{} // the owner has left: everyone else hears of it
		}
		by := user(d.By, d.ByName)
		err = add(name, to, protocol.RoomAttributesUpdate{Set: d.Set, Deleted: d.Deleted, By: &by, OwnerLeft: d.OwnerLeft})
	case *domain.MemberAttributesUpdatedData:
		err = add(protocol.EvRoomMemberAttributesUpdate, audience{exceptUser: d.By}, memberAttributesUpdate(d))
	}
	return out, err
}

// barrageFrame encodes a barrage message: best effort, no room sequence.
func barrageFrame(b *domain.Barrage, id string) (*outFrame, error) {
	payload, err := json.Marshal(protocol.Event{Type: protocol.TypeEvent, Event: protocol.EvBarrageMessage,
		Room: string(b.Room), Data: protocol.Message{MessageID: id, From: user(b.From, b.FromName), Message: b.Body,
			SendTime: b.Time.UnixMilli()}})
	if err != nil {
		return nil, err
	}
	return &outFrame{to: audience{exceptSession: b.Session}, head: payload, droppable: true}, nil
}

// snapshot is a room's state as a client gets it on entering.
func snapshot(r *domain.Room, id domain.RoomID) protocol.RoomSnapshot {
	s := protocol.RoomSnapshot{Room: protocol.RoomInfo{ID: string(id), Name: r.Name}, Seq: r.Seq,
		Users: []protocol.User{}, Streams: []protocol.Stream{}, ExtraInfo: []protocol.ExtraInfo{},
		Attributes: map[string]string{}, Online: len(r.Members)}
	for _, u := range sortedKeys(r.Members) {
		m := r.Members[u]
		s.Users = append(s.Users, member(m.User, m.UserName, m.Role))
	}
	for _, id := range sortedKeys(r.Streams) {
		st := r.Streams[id]
		s.Streams = append(s.Streams, protocol.Stream{Stream: string(id), User: user(st.User, st.UserName), ExtraInfo: st.ExtraInfo})
	}
	for _, k := range sortedKeys(r.ExtraInfo) {
		x := r.ExtraInfo[k]
		s.ExtraInfo = append(s.ExtraInfo, protocol.ExtraInfo{Key: k, Value: x.Value, UpdateUser: user(x.By, x.ByName),
			UpdateTime: x.UpdatedAt.UnixMilli(), Version: x.Version})
	}
	for k, v := range r.Attributes {
		s.Attributes[k] = v
	}
	if len(r.AttributeMeta) > 0 {
		s.AttributeVersions = map[string]uint64{}
		for k, meta := range r.AttributeMeta {
			s.AttributeVersions[k] = meta.Version
		}
	}
	s.MaxMemberCount = r.MaxMembers
	return s
}

// onlineFrame encodes a room's online user count (no room sequence).
func onlineFrame(room domain.RoomID, count int) []byte {
	b, _ := json.Marshal(protocol.Event{Type: protocol.TypeEvent, Event: protocol.EvRoomOnlineUserCount,
		Room: string(room), Data: protocol.OnlineUserCount{Count: count}})
	return b
}

// eventFrame encodes a frame that is not a room event (hello, state changes
// before an event exists, token warnings).
func eventFrame(name protocol.EventName, room domain.RoomID, data any) []byte {
	b, _ := json.Marshal(protocol.Event{Type: protocol.TypeEvent, Event: name, Room: string(room), Data: data})
	return b
}
