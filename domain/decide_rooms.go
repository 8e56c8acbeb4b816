package domain

import "slices"

func (x *decision) setRoomMode(c SetRoomMode) error {
	if err := errorsJoinArgs(ValidateSessionID(c.Session), validMode(c.Mode)); err != nil {
		return err
	}
	if err := x.load(x.sessionKey(c.Session)); err != nil {
		return err
	}
	if x.session(c.Session).Opened {
		return ErrRoomModeAfterLogin
	}
	return nil
}

func validMode(m RoomMode) error {
	_, err := ParseRoomMode(string(m))
	return err
}

func validRole(r Role) error {
	_, err := ParseRole(string(r))
	return err
}

func validCreate(p CreatePolicy) error {
	_, err := ParseCreatePolicy(string(p))
	return err
}

// validRoomConfig checks the configuration a join may create a room with.
func (x *decision) validRoomConfig(cfg RoomConfig) error {
	if cfg.DestroyDelay < 0 || cfg.DestroyDelay > x.pol.Limits.MaxDestroyDelaySeconds {
		return ErrDestroyDelayInvalid.With("%d seconds", cfg.DestroyDelay)
	}
	if cfg.MaxMembers < 0 {
		return invalid("max members must not be negative, got %d", cfg.MaxMembers)
	}
	return x.checkAttributes(cfg.Attributes)
}

// checkAttributes checks a complete set of room attributes against the ZIM limits.
func (x *decision) checkAttributes(attrs map[string]string) error {
	l := x.pol.Limits
	if len(attrs) > l.AttributeKeys {
		return ErrAttributesInvalid.With("%d keys, at most %d", len(attrs), l.AttributeKeys)
	}
	total := 0
	for _, k := range sortedKeys(attrs) {
		v := attrs[k]
		switch {
		case k == "" || len(k) > l.AttributeKeyBytes:
			return ErrAttributesInvalid.With("key %q must be 1 to %d bytes", k, l.AttributeKeyBytes).OfArguments()
		case len(v) > l.AttributeValueBytes:
			return ErrAttributesInvalid.With("value of %q is %d bytes, at most %d", k, len(v), l.AttributeValueBytes).OfArguments()
		}
		total += len(k) + len(v)
	}
	if total > l.AttributeTotalBytes {
		return ErrAttributesInvalid.With("%d bytes in all, at most %d", total, l.AttributeTotalBytes)
	}
	return nil
}

// join decides ZEGO loginRoom and ZIM createRoom / joinRoom / enterRoom.
//
// Steps: [fences of stale claims] → session (open, claim) → room (create,
// duplicate-login kick, join) → [stream releases of a kicked session].
func (x *decision) join(c JoinRoom) error {
	if c.Role == "" {
		c.Role = Anchor
	}
	if err := errorsJoinArgs(ValidateSessionID(c.Session), ValidateUser(c.User), ValidateRoomID(c.Room),
		validMode(c.Mode), validRole(c.Role), validCreate(c.Create), validVia(c.Via)); err != nil {
		return err
	}
	if len(c.RoomName) > MaxRoomIDBytes {
		return invalid("room name is %d bytes, at most %d", len(c.RoomName), MaxRoomIDBytes)
	}
	if err := x.validRoomConfig(c.Config); err != nil {
		return err
	}
	if !c.Grant.allows(c.User, c.Room, x.now) {
		return ErrTokenInvalid
	}
	if err := x.load(x.sessionKey(c.Session), x.roomKey(c.Room)); err != nil {
		return err
	}
	s, r := x.session(c.Session), x.room(c.Room)
	mode, err := x.checkIdentity(s, c.User, c.Mode)
	if err != nil {
		return err
	}
	if _, ok := r.MemberBySession(c.User.ID, c.Session); ok {
		// ZIM createRoom fails if the room exists, even for a member; a
		// retry of the command that created it finds its own claim.
		if cl := s.Claims[c.Room]; c.Create == CreateRequired && cl.Command != x.m.ID {
			return ErrRoomAlreadyExists
		}
		return nil // already in the room: logging in again changes nothing
	}
	live := x.alive(r)
	if err := x.checkCreate(live, c.Create); err != nil {
		return x.refuseJoin(s, c.Session, c.Room, err)
	}
	if err := checkCapacity(live, c.User.ID); err != nil {
		return x.refuseJoin(s, c.Session, c.Room, err)
	}
	claim, err := x.claimRoom(s, c.Session, c.User, mode, c.Room, live, "")
	if err != nil {
		return err
	}
	x.enter(r, c.Room, joiner{
		session: c.Session, user: c.User, role: c.Role, canPublish: c.Grant.CanPublish,
		claim: claim, via: c.Via, name: c.RoomName, config: c.Config, quiet: c.Quiet,
	})
	return nil
}

func validVia(v Via) error {
	_, err := ParseVia(string(v))
	return err
}

// checkIdentity applies the per-session identity rules and returns the
// session's room mode.
func (x *decision) checkIdentity(s *Session, u User, mode RoomMode) (RoomMode, error) {
	if s.Opened {
		if s.User != u.ID || s.UserName != u.Name {
			return "", ErrUserMismatch.With("the session is %q (%q)", s.User, s.UserName)
		}
		mode = s.Mode
	}
	if mode == MultiRoom && !x.pol.MultiRoom {
		return "", ErrMultiRoomNotAllowed
	}
	return mode, nil
}

// expired reports whether room r is past its destroy delay (empty, and its
// deadline passed) with its destruction not recorded yet: the timekeeper's
// ExpireRoom is on its way (a timer's lag, a retry, a node restarting). Only
// a member who joins within the delay keeps a room alive (SEMANTICS.md
// section 4), so an entry after it finds no room, and enter records the
// destruction first.
func (x *decision) expired(r *Room) bool {
	at, due := r.DestroyAt()
	return due && len(r.Members) == 0 && !x.now.Before(at)
}

// alive returns r, or no room in its place if r expired.
func (x *decision) alive(r *Room) *Room {
	if x.expired(r) {
		return &Room{}
	}
	return r
}

func (x *decision) checkCreate(r *Room, p CreatePolicy) error {
	switch {
	case p == CreateNever && !r.Exists:
		return ErrRoomNotExist
	case p == CreateRequired && r.Exists:
		return ErrRoomAlreadyExists
	}
	return nil
}

// claimRoom takes the session's claim on room id (or reuses the one this
// very command took in an earlier attempt) and returns it. It enforces the
// room-count rules, reconciling stale claims when the session is at its
// limit. switchFrom, if not empty, is the room a switch is leaving: it does
// not count, so a switch holds one claim more than the limit until it has
// left that room; every membership still has a claim, and a join never makes
// the memberships more than the limit.
func (x *decision) claimRoom(s *Session, sid SessionID, u User, mode RoomMode, id RoomID, r *Room,
	switchFrom RoomID) (uint64, error) {
	sk := x.sessionKey(sid)
	held, have := s.Claims[id]
	if have && held.Command == x.m.ID && !r.claimVoided(KindSession, string(sid), held.Seq) {
		// An earlier attempt of this very command took the claim.
		return held.Seq, nil
	}
	limit := x.pol.MaxRooms
	if mode == SingleRoom {
		limit = 1
	}
	var others []RoomID
	for _, rid := range sortedKeys(s.Claims) {
		if rid != id && rid != switchFrom {
			others = append(others, rid)
		}
	}
	var fence []RoomRef // claims to void in their rooms before they are released
	if len(others) >= limit {
		if err := x.load(x.roomKeys(others)...); err != nil {
			return 0, err
		}
		live := 0
		for _, rid := range others {
			cl := s.Claims[rid]
			// A membership occupies its slot whatever claim it joined with,
			// and so does the claim of a newer command still on its way.
			if _, ok := x.room(rid).MemberBySession(u.ID, sid); ok || x.newer(cl.Command) {
				live++
			} else {
				fence = append(fence, RoomRef{Room: rid, Claim: cl.Seq})
			}
		}
		if mode == SingleRoom && live > 0 {
			return 0, ErrAlreadyInAnotherRoom
		}
		if live >= limit {
			return 0, ErrTooManyRooms.With("at most %d rooms", limit)
		}
	}
	if have {
		// A claim on this room taken by another command that never joined: it
		// died, or it is still on its way. An older one is voided here, so
		// that it can never land, and replaced; a newer one wins.
		if x.newer(held.Command) {
			return 0, ErrTimeout.With("a newer login of this session to this room is in progress")
		}
		fence = append(fence, RoomRef{Room: id, Claim: held.Seq})
	}
	// Void stale claims in their rooms first: once a room has voided a claim,
	// no slow writer can still use it, so the session may release it.
	for _, f := range fence {
		if room := x.v.Rooms[f.Room]; !room.claimVoided(KindSession, string(sid), f.Claim) {
			x.emit(x.roomKey(f.Room), &ClaimVoidedData{Registry: KindSession, ID: string(sid), Claim: f.Claim})
		}
	}
	if !s.Opened {
		x.emit(sk, &SessionOpenedData{User: u.ID, UserName: u.Name, Mode: mode})
	}
	for _, f := range fence {
		x.emit(sk, &RoomReleasedData{Room: f.Room, Claim: f.Claim, Reason: ReasonClaimVoided})
	}
	return x.emit(sk, &RoomClaimedData{Room: id, Command: x.m.ID}), nil
}

// joiner is who enters a room and how.
type joiner struct {
	session    SessionID
	user       User
	role       Role
	canPublish bool
	claim      uint64
	via        Via
	name       string
	config     RoomConfig
	quiet      bool
}

// enter emits the room step of a join: create the room if needed, kick the
// same user's other session, add the member. Its follow-ups (the kicked
// session's other rooms and claims) belong to KickSession.
func (x *decision) enter(r *Room, id RoomID, j joiner) {
	rk := x.roomKey(id)
	if x.expired(r) {
		x.emit(rk, &RoomDestroyedData{Reason: DestroyEmpty})
		r = &Room{}
	}
	if !r.Exists {
		attrs := j.config.Attributes
		if len(attrs) == 0 {
			attrs = nil
		}
		x.emit(rk, &RoomCreatedData{Name: j.name, Attributes: attrs, DestroyDelay: j.config.DestroyDelay,
			By: j.user.ID, Session: j.session, Via: j.via, MaxMembers: j.config.MaxMembers})
	}
	if old, ok := r.Members[j.user.ID]; ok && old.Session != j.session {
		// One session per user and room: the older one is kicked here, and
		// out of its other rooms by KickSession, which the reactor sends on
		// seeing this event. Its streams' registry entries are released the
		// same way.
		x.removeMember(r, id, old, MemberLeftData{Reason: ReasonKickedDuplicateLogin, BySession: j.session}, false)
	}
	canPublish := j.canPublish && j.role == Anchor
	x.emit(rk, &MemberJoinedData{User: j.user.ID, UserName: j.user.Name, Session: j.session, Role: j.role,
		CanPublish: canPublish, Claim: j.claim, Via: j.via, Quiet: j.quiet})
}

// removeMember emits, in the room's step, the stops of the member's streams
// and its departure (left says why and who caused it; the member's own fields
// are filled in here), and destroys the room if it empties with no destroy
// delay (unless !mayDestroy: someone joins in the same step). It returns the
// streams it stopped, for their registry releases.
func (x *decision) removeMember(r *Room, id RoomID, m *Member, left MemberLeftData, mayDestroy bool) []StreamClaim {
	rk := x.roomKey(id)
	stops, gone, stopped := departure(r, m, left)
	for _, p := range stops {
		x.emit(rk, p)
	}
	x.ownerLeft(r, id, m)
	x.emit(rk, gone)
	if mayDestroy && len(r.Members) == 1 && r.DestroyDelay == 0 && r.Exists {
		x.emit(rk, &RoomDestroyedData{Reason: DestroyEmpty})
	}
	return stopped
}

// departure returns the events of member m's departure from room r: its
// streams' stops, then its member_left (left says why and who caused it; the
// member's own fields are filled in here), and the streams it stops.
func departure(r *Room, m *Member, left MemberLeftData) (stops []Payload, gone *MemberLeftData, stopped []StreamClaim) {
	for _, sid := range sortedKeys(m.Publishing) {
		st, ok := r.Streams[sid]
		if !ok {
			continue
		}
		stops = append(stops, &StreamStoppedData{Stream: sid, User: m.User, UserName: m.UserName, Session: m.Session,
			Claim: st.Claim, Reason: left.Reason})
		stopped = append(stopped, StreamClaim{Stream: sid, User: m.User, Session: m.Session, Claim: st.Claim})
	}
	left.User, left.UserName, left.Session, left.Claim = m.User, m.UserName, m.Session, m.Claim
	return stops, &left, stopped
}

// releaseStreams emits the registry releases of stopped streams. The caller
// has loaded their entries (or they are loaded here, via NeedError).
func (x *decision) releaseStreams(stopped []StreamClaim, reason Reason) {
	for _, st := range stopped {
		e := x.v.Streams[st.Stream]
		if e == nil {
			// Not loaded: the reactor releases it from the room's stream_stopped.
			continue
		}
		if e.Claimed && e.Claim == st.Claim {
			x.emit(x.streamKey(st.Stream), &StreamReleasedData{Claim: st.Claim, Reason: reason})
		}
	}
}

// memberStreams lists the registry keys of the streams m publishes.
func (x *decision) memberStreams(m *Member) []Key {
	return x.streamKeys(sortedKeys(m.Publishing))
}

// leave decides ZEGO logoutRoom and ZIM leaveRoom / leaveAllRoom.
//
// Steps: rooms (stops, member left, maybe destroyed) → session (releases) →
// stream registry releases.
func (x *decision) leave(c LeaveRoom) error {
	if c.Reason == "" {
		c.Reason = ReasonLogout
	}
	if err := checkArg(ValidateSessionID(c.Session)); err != nil {
		return err
	}
	if c.Reason != ReasonLogout && c.Reason != ReasonLeave {
		return invalid("a leave's reason is logout or leave, not %q", c.Reason)
	}
	if c.Room != "" {
		if err := checkArg(ValidateRoomID(c.Room)); err != nil {
			return err
		}
	}
	sk := x.sessionKey(c.Session)
	s, rooms, err := x.sessionRooms(c.Session, c.Room)
	if err != nil {
		return err
	}
	type gone struct {
		room  RoomID
		claim uint64
	}
	var left []gone
	var streams []Key
	var ours []RoomID // departures an earlier attempt of this command stored
	for _, id := range rooms {
		r := x.room(id)
		m, ok := r.MemberBySession(s.User, c.Session)
		if s.Opened && x.m.stored(x.roomKey(id)) {
			// An earlier attempt stored this departure. A claim a newer
			// command took since (the session logged in again through
			// another node, after the departure) is not this one's to undo:
			// releasing it would leave the session in a room it holds no
			// claim on.
			if cl, has := s.Claims[id]; has && x.newer(cl.Command) {
				continue
			}
			if !ok {
				ours = append(ours, id)
				continue
			}
		}
		if !ok || !s.Opened {
			if c.Room != "" {
				return ErrNotInRoom
			}
			continue // a claim whose room already removed us; the reactor frees it
		}
		streams = append(streams, x.memberStreams(m)...)
		left = append(left, gone{id, m.Claim})
	}
	if err := x.load(streams...); err != nil {
		return err
	}
	var stopped []StreamClaim
	for _, g := range left {
		r := x.room(g.room)
		m := r.Members[s.User]
		stopped = append(stopped, x.removeMember(r, g.room, m, MemberLeftData{Reason: c.Reason}, true)...)
		x.out.Rooms = append(x.out.Rooms, g.room)
	}
	for _, id := range ours {
		x.out.Rooms = append(x.out.Rooms, id)
		left = append(left, gone{room: id})
	}
	for _, g := range left {
		if cl, ok := s.Claims[g.room]; ok {
			x.emit(sk, &RoomReleasedData{Room: g.room, Claim: cl.Seq, Reason: c.Reason})
		}
	}
	x.releaseStreams(stopped, c.Reason)
	return nil
}

// switchRoom decides ZEGO and ZIM switchRoom: leave From and join To under one
// correlation.
//
// Steps: session (claim To) → From (stops, member left) → session (release
// From) → To (create, join) → stream registry releases. From stays claimed
// until it is left, so a concurrent login can never take its slot while the
// session is still in it; the claim on To, taken first, lets a retried switch
// recognise what it already did.
func (x *decision) switchRoom(c SwitchRoom) error {
	if c.Role == "" {
		c.Role = Anchor
	}
	if err := errorsJoinArgs(ValidateSessionID(c.Session), ValidateRoomID(c.From), ValidateRoomID(c.To),
		validRole(c.Role), validCreate(c.Create)); err != nil {
		return err
	}
	if c.From == c.To {
		return invalid("cannot switch from a room to itself")
	}
	if len(c.ToName) > MaxRoomIDBytes {
		return invalid("room name is %d bytes, at most %d", len(c.ToName), MaxRoomIDBytes)
	}
	if err := x.validRoomConfig(c.Config); err != nil {
		return err
	}
	sk := x.sessionKey(c.Session)
	if err := x.load(sk, x.roomKey(c.From), x.roomKey(c.To)); err != nil {
		return err
	}
	s, from, to := x.session(c.Session), x.room(c.From), x.room(c.To)
	if !s.Opened {
		return ErrNotInRoom
	}
	toRoom := to // to as enter finds it (it records an expired one's end)
	to = x.alive(to)
	user := User{ID: s.User, Name: s.UserName}
	if !c.Grant.allows(user, c.To, x.now) {
		return ErrTokenInvalid
	}
	mFrom, inFrom := from.MemberBySession(s.User, c.Session)
	if inFrom {
		if err := x.load(x.memberStreams(mFrom)...); err != nil {
			return err
		}
	}
	held, have := s.Claims[c.To]
	var claim uint64
	if have && held.Command == x.m.ID {
		claim = held.Seq // a retry: the claim on To is ours
	} else {
		if _, ok := to.MemberBySession(s.User, c.Session); ok {
			return ErrAlreadyInRoom
		}
		if _, claimed := s.Claims[c.From]; !inFrom || !claimed {
			return ErrNotInRoom
		}
		if err := x.checkCreate(to, c.Create); err != nil {
			return err
		}
		if err := checkCapacity(to, s.User); err != nil {
			return err
		}
		var err error
		if claim, err = x.claimRoom(s, c.Session, user, s.Mode, c.To, to, c.From); err != nil {
			return err
		}
	}
	var stopped []StreamClaim
	if inFrom {
		stopped = x.removeMember(from, c.From, mFrom, MemberLeftData{Reason: ReasonSwitch}, true)
		if cl, ok := s.Claims[c.From]; ok {
			x.emit(sk, &RoomReleasedData{Room: c.From, Claim: cl.Seq, Reason: ReasonSwitch})
		}
	}
	if _, ok := to.MemberBySession(s.User, c.Session); !ok {
		err := x.checkCreate(to, c.Create)
		if err == nil {
			err = checkCapacity(to, s.User)
		}
		if err == nil && to.claimVoided(KindSession, string(c.Session), claim) {
			err = ErrTimeout.With("a concurrent command of the session took the target room's slot")
		}
		if err != nil {
			// The target changed under the switch: give its claim back.
			x.emit(sk, &RoomReleasedData{Room: c.To, Claim: claim, Reason: ReasonLoginFailed})
			x.releaseStreams(stopped, ReasonSwitch)
			return err
		}
		quiet := inFrom && mFrom.Quiet // not in From: a retry after its step landed
		if c.Quiet != nil {
			quiet = *c.Quiet
		}
		x.enter(toRoom, c.To, joiner{session: c.Session, user: user, role: c.Role,
			canPublish: c.Grant.CanPublish, claim: claim, via: ViaSwitch, name: c.ToName, config: c.Config, quiet: quiet})
	}
	x.releaseStreams(stopped, ReasonSwitch)
	x.out.Rooms = []RoomID{c.From, c.To}
	return nil
}

// kickUser decides the admin API's kick: the user leaves the room.
//
// Steps: room → session (release) → stream registry releases.
func (x *decision) kickUser(c KickUser) error {
	if err := errorsJoinArgs(ValidateRoomID(c.Room), ValidateUserID(c.User), ValidateAdmin(c.Admin)); err != nil {
		return err
	}
	if len(c.Detail) > x.pol.Limits.MessageBytes {
		return invalid("kick detail is longer than %d bytes", x.pol.Limits.MessageBytes)
	}
	if err := x.load(x.roomKey(c.Room)); err != nil {
		return err
	}
	r := x.room(c.Room)
	if x.m.stored(x.roomKey(c.Room)) {
		// An earlier attempt removed the member (its only room step); the
		// reactor releases the rest. A member of that name now is a later
		// login, which this kick must not take.
		return nil
	}
	m, ok := r.Members[c.User]
	if !ok {
		return ErrUserNotInRoom
	}
	keys := append([]Key{x.sessionKey(m.Session)}, x.memberStreams(m)...)
	if err := x.load(keys...); err != nil {
		return err
	}
	s := x.session(m.Session)
	stopped := x.removeMember(r, c.Room, m, MemberLeftData{Reason: ReasonKickedByBackend, Detail: c.Detail,
		Admin: c.Admin}, true)
	if cl, ok := s.Claims[c.Room]; ok && cl.Seq == m.Claim {
		x.emit(x.sessionKey(m.Session), &RoomReleasedData{Room: c.Room, Claim: cl.Seq, Reason: ReasonKickedByBackend})
	}
	x.releaseStreams(stopped, ReasonKickedByBackend)
	return nil
}

// destroyRoom decides the admin API's destroy. The members' claims and the
// streams' registry entries are released by the reactor from the event,
// which lists them: a room may have thousands of members.
func (x *decision) destroyRoom(c DestroyRoom) error {
	if err := errorsJoinArgs(ValidateRoomID(c.Room), ValidateAdmin(c.Admin)); err != nil {
		return err
	}
	if len(c.Detail) > x.pol.Limits.MessageBytes {
		return invalid("destroy detail is longer than %d bytes", x.pol.Limits.MessageBytes)
	}
	if err := x.load(x.roomKey(c.Room)); err != nil {
		return err
	}
	r := x.room(c.Room)
	if !r.Exists {
		return ErrRoomNotExist
	}
	x.emitDestroyed(r, c.Room, DestroyBackend, c.Detail, c.Admin)
	return nil
}

// emitDestroyed ends room r with a room.destroyed that lists its members and
// streams, so that consumers release their claims without folding, and the
// admin subject that asked ("" for none).
//
// A room too large for that list to fit one log message (about 12,000
// members under the default 1 MiB) is emptied first: members leave in user
// order, each with its streams' stream_stopped and a member_left of reason
// room_destroyed, in steps of as many as fit one message, until the rest fit
// the room.destroyed. Every step leaves a valid room with fewer members, so
// a destroy cut short (its node died) leaves a room that a retry destroys.
func (x *decision) emitDestroyed(r *Room, id RoomID, reason DestroyReason, detail, admin string) {
	rk := x.roomKey(id)
	d := &RoomDestroyedData{Reason: reason, Detail: detail, Admin: admin}
	for _, u := range sortedKeys(r.Members) {
		m := r.Members[u]
		d.Members = append(d.Members, MemberClaim{User: m.User, Session: m.Session, Claim: m.Claim})
	}
	for _, sid := range sortedKeys(r.Streams) {
		st := r.Streams[sid]
		d.Streams = append(d.Streams, StreamClaim{Stream: sid, User: st.User, Session: st.Session, Claim: st.Claim})
	}
	over := x.eventBytes(rk, d) - x.d.stepBytes
	if over <= 0 {
		x.emit(rk, d)
		return
	}
	// How many members must leave before the rest fit.
	n := 0
	for ; over > 0 && n < len(d.Members); n++ {
		over -= listedBytes(r, r.Members[d.Members[n].User])
	}
	leaving := map[SessionID]bool{}
	x.cutStep() // nothing else in the departures' steps, whatever came before
	step := 0
	for _, mc := range d.Members[:n] {
		m := r.Members[mc.User]
		leaving[m.Session] = true
		stops, gone, _ := departure(r, m, MemberLeftData{Reason: ReasonRoomDestroyed, Admin: admin})
		size := x.eventBytes(rk, gone)
		for _, p := range stops {
			size += x.eventBytes(rk, p)
		}
		if step > 0 && step+size > x.d.stepBytes {
			x.cutStep()
			step = 0
		}
		for _, p := range stops {
			x.emit(rk, p)
		}
		x.emit(rk, gone)
		step += size
	}
	d.Members = d.Members[n:]
	d.Streams = slices.DeleteFunc(d.Streams, func(s StreamClaim) bool { return leaving[s.Session] })
	x.cutStep()
	x.emit(rk, d)
}

// listedBytes is what member m and its streams take in a room.destroyed's
// lists.
func listedBytes(r *Room, m *Member) int {
	n := jsonBytes(MemberClaim{User: m.User, Session: m.Session, Claim: m.Claim}) + 1
	for sid := range m.Publishing {
		if st, ok := r.Streams[sid]; ok {
			n += jsonBytes(StreamClaim{Stream: sid, User: st.User, Session: st.Session, Claim: st.Claim}) + 1
		}
	}
	return n
}

// expireRoom destroys an empty room whose destroy delay has run out.
func (x *decision) expireRoom(c ExpireRoom) error {
	if err := checkArg(ValidateRoomID(c.Room)); err != nil {
		return err
	}
	if err := x.load(x.roomKey(c.Room)); err != nil {
		return err
	}
	r := x.room(c.Room)
	at, due := r.DestroyAt()
	if !due || x.now.Before(at) || len(r.Members) > 0 {
		return nil
	}
	x.emitDestroyed(r, c.Room, DestroyEmpty, "", "")
	return nil
}

// timeoutSession records a heartbeat timeout: the session leaves every room.
// A claim no membership backs is voided in its room, so a login still in
// flight from the silent session can never land after the timeout.
//
// Steps: rooms → session (timed out, all claims released) → stream releases.
func (x *decision) timeoutSession(c TimeoutSession) error {
	if err := checkArg(ValidateSessionID(c.Session)); err != nil {
		return err
	}
	sk := x.sessionKey(c.Session)
	if err := x.load(sk); err != nil {
		return err
	}
	s := x.session(c.Session)
	if len(s.Claims) == 0 {
		if _, left := x.m.storedRoom(); left && !x.m.stored(sk) {
			// An earlier attempt removed the session from its rooms, and the
			// reactor released the claims before this command's own step:
			// the timeout is still recorded (nodes close its connection on
			// it).
			x.emit(sk, &SessionTimedOutData{LastSeen: c.LastSeen.UTC()})
		}
		return nil
	}
	released, stopped, err := x.evict(s, c.Session, MemberLeftData{Reason: ReasonHeartbeatTimeout}, "")
	if err != nil {
		return err
	}
	x.emit(sk, &SessionTimedOutData{LastSeen: c.LastSeen.UTC(), Released: released})
	x.releaseStreams(stopped, ReasonHeartbeatTimeout)
	return nil
}

// evict removes session s from every room it claims (voiding claims no
// membership backs), each departure as left says, and returns the claims to
// release and the streams stopped.
// skip names a room already handled by the caller, whose claim is released
// without touching the room.
func (x *decision) evict(s *Session, sid SessionID, left MemberLeftData, skip RoomID) ([]RoomRef, []StreamClaim, error) {
	rooms := sortedKeys(s.Claims)
	if err := x.load(x.roomKeys(rooms)...); err != nil {
		return nil, nil, err
	}
	var streams []Key
	for _, id := range rooms {
		if m, ok := x.room(id).MemberBySession(s.User, sid); ok {
			streams = append(streams, x.memberStreams(m)...)
		}
	}
	if err := x.load(streams...); err != nil {
		return nil, nil, err
	}
	var released []RoomRef
	var stopped []StreamClaim
	for _, id := range rooms {
		cl := s.Claims[id]
		r := x.room(id)
		switch m, ok := r.MemberBySession(s.User, sid); {
		case ok:
			stopped = append(stopped, x.removeMember(r, id, m, left, true)...)
		case id == skip:
		case !r.claimVoided(KindSession, string(sid), cl.Seq):
			x.emit(x.roomKey(id), &ClaimVoidedData{Registry: KindSession, ID: string(sid), Claim: cl.Seq})
		}
		released = append(released, RoomRef{Room: id, Claim: cl.Seq})
	}
	return released, stopped, nil
}

// kickSession is the follow-up of a duplicate-login kick: the kicked session
// leaves all the other rooms it was in at the time of the kick, and its claims
// on them are released. Rooms it logs into after the kick are its own new
// choice and are left alone.
func (x *decision) kickSession(c KickSession) error {
	if err := errorsJoinArgs(ValidateSessionID(c.Session), ValidateSessionID(c.BySession),
		ValidateRoomID(c.Room)); err != nil {
		return err
	}
	sk := x.sessionKey(c.Session)
	if err := x.load(sk); err != nil {
		return err
	}
	s := x.session(c.Session)
	old := &Session{Head: s.Head, Opened: s.Opened, User: s.User, UserName: s.UserName, Mode: s.Mode}
	for id, cl := range s.Claims {
		if (id == c.Room && cl.Seq == c.Claim) || (id != c.Room && !cl.At.After(c.At)) {
			old.claim(id, cl.Seq, cl.Command, cl.At)
		}
	}
	if len(old.Claims) == 0 {
		return nil
	}
	released, stopped, err := x.evict(old, c.Session, MemberLeftData{Reason: ReasonKickedDuplicateLogin, BySession: c.BySession, KickedAt: c.At.UTC()}, c.Room)
	if err != nil {
		return err
	}
	x.emit(sk, &SessionKickedData{BySession: c.BySession, Reason: ReasonKickedDuplicateLogin, Released: released})
	x.releaseStreams(stopped, ReasonKickedDuplicateLogin)
	return nil
}

// releaseRoomClaim frees a claim after its room removed the member.
func (x *decision) releaseRoomClaim(c ReleaseRoomClaim) error {
	if err := errorsJoinArgs(ValidateSessionID(c.Session), ValidateRoomID(c.Room)); err != nil {
		return err
	}
	if err := x.load(x.sessionKey(c.Session), x.roomKey(c.Room)); err != nil {
		return err
	}
	s, r := x.session(c.Session), x.room(c.Room)
	cl, ok := s.Claims[c.Room]
	if !ok || cl.Seq != c.Claim {
		// Gone or replaced since the session state saw it: for good. A
		// state from before the claim proves nothing.
		x.out.Settled = s.Seq >= c.Claim
		return nil
	}
	if _, ok := r.MemberBySession(s.User, c.Session); ok {
		return nil // the session is in the room (again): the claim counts it
	}
	x.emit(x.sessionKey(c.Session), &RoomReleasedData{Room: c.Room, Claim: c.Claim, Reason: c.Reason})
	return nil
}

// sessionRooms loads a session and the rooms a command about room concerns:
// that room, or (room empty) every room the session claims, in order.
func (x *decision) sessionRooms(session SessionID, room RoomID) (*Session, []RoomID, error) {
	if err := x.load(x.sessionKey(session)); err != nil {
		return nil, nil, err
	}
	s := x.session(session)
	rooms := sortedKeys(s.Claims)
	if room != "" {
		rooms = []RoomID{room}
	}
	return s, rooms, x.load(x.roomKeys(rooms)...)
}
