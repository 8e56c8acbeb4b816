package domain

import (
	"maps"
	"time"
)

// The states below are folds of events. Apply never fails and never
// validates: everything was decided before the event existed. Applying the
// same events in the same order always gives the same state, field for field.

// Head is what every aggregate state carries about its place in the log.
type Head struct {
	// Seq is the sequence of the last applied event (0 for a new aggregate).
	Seq uint64 `json:"seq"`
	// Time is the time of the last applied event.
	Time time.Time `json:"time"`
}

func (h *Head) advance(e *Event) {
	h.Seq = e.Seq
	h.Time = e.Time
}

// Member is one member of a room.
type Member struct {
	User       UserID            `json:"user"`
	UserName   string            `json:"user_name,omitempty"`
	Session    SessionID         `json:"session"`
	Role       Role              `json:"role"`
	CanPublish bool              `json:"can_publish"`
	Claim      uint64            `json:"claim"`
	Via        Via               `json:"via"`
	JoinedAt   time.Time         `json:"joined_at"`
	Playing    map[StreamID]bool `json:"playing,omitempty"`
	Publishing map[StreamID]bool `json:"publishing,omitempty"`
	// Quiet members are not sent other members' ADD and DELETE.
	Quiet bool `json:"quiet,omitempty"`
	// Attributes are the member's room member attributes (ZIM).
	Attributes map[string]string `json:"attributes,omitempty"`
}

// AttributeMeta is who owns a room attribute and which event last wrote it.
type AttributeMeta struct {
	Owner UserID `json:"owner"`
	// Version is the room seq of the event that last set the key.
	Version              uint64 `json:"version"`
	DeleteAfterOwnerLeft bool   `json:"delete_after_owner_left,omitempty"`
}

// Stream is a stream published in a room.
type Stream struct {
	ID          StreamID  `json:"id"`
	User        UserID    `json:"user"`
	UserName    string    `json:"user_name,omitempty"`
	Session     SessionID `json:"session"`
	ExtraInfo   string    `json:"extra_info,omitempty"`
	Claim       uint64    `json:"claim"`
	PublishedAt time.Time `json:"published_at"`
	// Node is the media node hosting the stream's media.
	Node string `json:"node,omitempty"`
}

// ExtraInfo is one room extra info value (ZEGO setRoomExtraInfo).
type ExtraInfo struct {
	Value     string    `json:"value"`
	By        UserID    `json:"by"`
	ByName    string    `json:"by_name,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
	// Version is the room seq of the event that set the value.
	Version uint64 `json:"version"`
}

// Window counts events in one whole second, for the per-room rate limits.
// It is part of the state, so a limit decided on one node holds on every node
// and in every replay.
type Window struct {
	Second int64 `json:"second"`
	Count  int   `json:"count"`
}

func (w *Window) add(t time.Time) {
	s := t.Unix()
	if w.Second != s {
		w.Second, w.Count = s, 0
	}
	w.Count++
}

// full reports whether the window for t already holds limit events.
func (w Window) full(t time.Time, limit int) bool {
	return w.Second == t.Unix() && w.Count >= limit
}

// Rates holds the room's rate-limit windows.
type Rates struct {
	Broadcast     Window            `json:"broadcast"`
	ExtraInfo     Window            `json:"extra_info"`
	CommandToMany Window            `json:"command_to_many"`
	CommandToOne  map[UserID]Window `json:"command_to_one,omitempty"`
	Attributes    Window            `json:"attributes"`
	MemberAttrs   Window            `json:"member_attributes"`
}

// Room is the state of a room aggregate.
type Room struct {
	Head
	Exists       bool      `json:"exists"`
	Name         string    `json:"name,omitempty"`
	CreatedAt    time.Time `json:"created_at,omitzero"`
	DestroyDelay int       `json:"destroy_delay_s,omitempty"`
	// MaxMembers is the room's capacity (0: none).
	MaxMembers int               `json:"max_members,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
	// AttributeMeta holds, per attribute key, its owner and version.
	AttributeMeta map[string]AttributeMeta `json:"attribute_meta,omitempty"`
	ExtraInfo     map[string]ExtraInfo     `json:"extra_info,omitempty"`
	Members       map[UserID]*Member       `json:"members,omitempty"`
	Streams       map[StreamID]*Stream     `json:"streams,omitempty"`
	// EmptySince is when the last member left a room that still exists; the
	// room is destroyed DestroyDelay seconds later unless someone joins.
	EmptySince time.Time `json:"empty_since,omitzero"`
	// Voided holds, per registry aggregate ("session:<id>", "stream:<id>"), the
	// highest claim this room will never honour.
	Voided map[string]uint64 `json:"voided,omitempty"`
	Rates  Rates             `json:"rates"`
}

// DestroyAt returns when an empty room is due to be destroyed, and whether it is.
func (r *Room) DestroyAt() (time.Time, bool) {
	if !r.Exists || r.EmptySince.IsZero() {
		return time.Time{}, false
	}
	return r.EmptySince.Add(time.Duration(r.DestroyDelay) * time.Second), true
}

// MemberBySession returns the member record of session s, if it is a member.
func (r *Room) MemberBySession(u UserID, s SessionID) (*Member, bool) {
	m, ok := r.Members[u]
	if !ok || m.Session != s {
		return nil, false
	}
	return m, true
}

func voidKey(registry Kind, id string) string { return string(registry) + ":" + id }

// claimVoided reports whether the room has voided claim c of a registry entry.
func (r *Room) claimVoided(registry Kind, id string, c uint64) bool {
	return r.Voided[voidKey(registry, id)] >= c
}

// Apply folds one room event into the state.
func (r *Room) Apply(e *Event) {
	switch d := e.Data.(type) {
	case *RoomCreatedData:
		r.Exists = true
		r.Name = d.Name
		r.CreatedAt = e.Time
		r.DestroyDelay = d.DestroyDelay
		r.MaxMembers = d.MaxMembers
		r.Attributes = maps.Clone(d.Attributes)
		for _, k := range sortedKeys(d.Attributes) {
			if r.AttributeMeta == nil {
				r.AttributeMeta = map[string]AttributeMeta{}
			}
			r.AttributeMeta[k] = AttributeMeta{Owner: d.By, Version: e.Seq}
		}
		r.EmptySince = e.Time // empty until the creator's join, in the same message
	case *MemberJoinedData:
		if r.Members == nil {
			r.Members = map[UserID]*Member{}
		}
		r.Members[d.User] = &Member{User: d.User, UserName: d.UserName, Session: d.Session, Role: d.Role,
			CanPublish: d.CanPublish, Claim: d.Claim, Via: d.Via, JoinedAt: e.Time, Quiet: d.Quiet}
		r.EmptySince = time.Time{}
	case *MemberLeftData:
		delete(r.Members, d.User)
		if len(r.Members) == 0 {
			r.Members = nil
			if r.Exists {
				r.EmptySince = e.Time
			}
		}
	case *StreamPublishedData:
		if r.Streams == nil {
			r.Streams = map[StreamID]*Stream{}
		}
		s := &Stream{ID: d.Stream, User: d.User, Session: d.Session, ExtraInfo: d.ExtraInfo, Claim: d.Claim,
			PublishedAt: e.Time, Node: d.Node}
		if m, ok := r.Members[d.User]; ok {
			s.UserName = m.UserName
			if m.Publishing == nil {
				m.Publishing = map[StreamID]bool{}
			}
			m.Publishing[d.Stream] = true
		}
		r.Streams[d.Stream] = s
	case *StreamStoppedData:
		delete(r.Streams, d.Stream)
		if len(r.Streams) == 0 {
			r.Streams = nil
		}
		if m, ok := r.Members[d.User]; ok {
			delete(m.Publishing, d.Stream)
			if len(m.Publishing) == 0 {
				m.Publishing = nil
			}
		}
	case *StreamExtraInfoData:
		if s, ok := r.Streams[d.Stream]; ok {
			s.ExtraInfo = d.ExtraInfo
		}
	case *PlayStartedData:
		if m, ok := r.Members[d.User]; ok {
			if m.Playing == nil {
				m.Playing = map[StreamID]bool{}
			}
			m.Playing[d.Stream] = true
		}
	case *PlayStoppedData:
		if m, ok := r.Members[d.User]; ok {
			delete(m.Playing, d.Stream)
			if len(m.Playing) == 0 {
				m.Playing = nil
			}
		}
	case *BroadcastSentData:
		r.Rates.Broadcast.add(e.Time)
	case *CustomCommandSentData:
		if len(d.To) == 1 {
			if r.Rates.CommandToOne == nil {
				r.Rates.CommandToOne = map[UserID]Window{}
			}
			// Windows of other recipients from earlier seconds are dropped so
			// the map stays as small as one second's recipients.
			now := e.Time.Unix()
			for u, w := range r.Rates.CommandToOne {
				if w.Second != now {
					delete(r.Rates.CommandToOne, u)
				}
			}
			w := r.Rates.CommandToOne[d.To[0]]
			w.add(e.Time)
			r.Rates.CommandToOne[d.To[0]] = w
		} else {
			r.Rates.CommandToMany.add(e.Time)
		}
	case *ExtraInfoUpdatedData:
		if r.ExtraInfo == nil {
			r.ExtraInfo = map[string]ExtraInfo{}
		}
		r.ExtraInfo[d.Key] = ExtraInfo{Value: d.Value, By: d.By, ByName: d.ByName, UpdatedAt: e.Time, Version: e.Seq}
		r.Rates.ExtraInfo.add(e.Time)
	case *AttributesUpdatedData:
		r.applyAttributes(d, e.Seq)
		if !d.OwnerLeft {
			r.Rates.Attributes.add(e.Time)
		}
	case *MemberAttributesUpdatedData:
		for _, ch := range d.Members {
			if m, ok := r.Members[ch.User]; ok {
				m.applyAttributes(ch)
			}
		}
		r.Rates.MemberAttrs.add(e.Time)
	case *ClaimVoidedData:
		if r.Voided == nil {
			r.Voided = map[string]uint64{}
		}
		k := voidKey(d.Registry, d.ID)
		r.Voided[k] = max(r.Voided[k], d.Claim)
	case *RoomDestroyedData:
		voided := r.Voided
		*r = Room{Head: r.Head, Voided: voided}
	}
	r.advance(e)
}

// RoomClaim is one room slot a session holds.
type RoomClaim struct {
	// Seq is the claim: the sequence of the session event that took it.
	Seq uint64 `json:"seq"`
	// Command is the command that took it, so that a retried command
	// recognises its own claim.
	Command string    `json:"command"`
	At      time.Time `json:"at"`
}

// Session is the state of a session aggregate.
type Session struct {
	Head
	Opened   bool                 `json:"opened"`
	User     UserID               `json:"user,omitempty"`
	UserName string               `json:"user_name,omitempty"`
	Mode     RoomMode             `json:"mode,omitempty"`
	Claims   map[RoomID]RoomClaim `json:"claims,omitempty"`
}

func (s *Session) release(room RoomID, claim uint64) {
	if c, ok := s.Claims[room]; ok && c.Seq == claim {
		delete(s.Claims, room)
		if len(s.Claims) == 0 {
			s.Claims = nil
		}
	}
}

func (s *Session) claim(room RoomID, seq uint64, cmd string, at time.Time) {
	if s.Claims == nil {
		s.Claims = map[RoomID]RoomClaim{}
	}
	s.Claims[room] = RoomClaim{Seq: seq, Command: cmd, At: at}
}

// Apply folds one session event into the state.
func (s *Session) Apply(e *Event) {
	switch d := e.Data.(type) {
	case *SessionOpenedData:
		s.Opened = true
		s.User, s.UserName, s.Mode = d.User, d.UserName, d.Mode
	case *RoomClaimedData:
		s.claim(d.Room, e.Seq, d.Command, e.Time)
	case *RoomReleasedData:
		s.release(d.Room, d.Claim)
	case *SessionKickedData:
		for _, r := range d.Released {
			s.release(r.Room, r.Claim)
		}
	case *SessionTimedOutData:
		for _, r := range d.Released {
			s.release(r.Room, r.Claim)
		}
	}
	s.advance(e)
}

// StreamEntry is the state of a stream ID's registry aggregate.
type StreamEntry struct {
	Head
	Claimed bool      `json:"claimed"`
	Claim   uint64    `json:"claim,omitempty"`
	Room    RoomID    `json:"room,omitempty"`
	User    UserID    `json:"user,omitempty"`
	Session SessionID `json:"session,omitempty"`
	Command string    `json:"command,omitempty"`
}

// Apply folds one stream registry event into the state.
func (s *StreamEntry) Apply(e *Event) {
	switch d := e.Data.(type) {
	case *StreamClaimedData:
		*s = StreamEntry{Head: s.Head, Claimed: true, Claim: e.Seq, Room: d.Room, User: d.User,
			Session: d.Session, Command: d.Command}
	case *StreamReleasedData:
		if s.Claim == d.Claim {
			*s = StreamEntry{Head: s.Head}
		}
	}
	s.advance(e)
}

func (r *Room) applyAttributes(d *AttributesUpdatedData, seq uint64) {
	if r.Attributes == nil && len(d.Set) > 0 {
		r.Attributes = map[string]string{}
	}
	if r.AttributeMeta == nil && len(d.Set) > 0 {
		r.AttributeMeta = map[string]AttributeMeta{}
	}
	for _, k := range sortedKeys(d.Set) {
		meta, existed := r.AttributeMeta[k]
		if _, had := r.Attributes[k]; !had || !existed || d.UpdateOwner {
			meta.Owner = d.By
		}
		if meta.Owner == d.By {
			meta.DeleteAfterOwnerLeft = d.DeleteAfterOwnerLeft
		}
		meta.Version = seq
		r.Attributes[k] = d.Set[k]
		r.AttributeMeta[k] = meta
	}
	for _, k := range d.Deleted {
		delete(r.Attributes, k)
		delete(r.AttributeMeta, k)
	}
	if len(r.Attributes) == 0 {
		r.Attributes = nil
	}
	if len(r.AttributeMeta) == 0 {
		r.AttributeMeta = nil
	}
}

func (m *Member) applyAttributes(ch MemberAttributes) {
	if m.Attributes == nil && len(ch.Set) > 0 {
		m.Attributes = map[string]string{}
	}
	maps.Copy(m.Attributes, ch.Set)
	for _, k := range ch.Deleted {
		delete(m.Attributes, k)
	}
	if len(m.Attributes) == 0 {
		m.Attributes = nil
	}
}
