package domain

import (
	"maps"
	"slices"
)

// This file decides the room state that ZIM apps keep beyond members and
// messages: owned room attributes, member attributes, compare-and-set and
// room capacity.

// SetMemberAttributes sets and deletes attributes of some room members (ZIM
// setRoomMembersAttributes). Any member may write any member's attributes;
// they go when the member leaves.
type SetMemberAttributes struct {
	Session SessionID
	Room    RoomID
	Users   []UserID
	Set     map[string]string
	Delete  []string
}

func (SetMemberAttributes) CommandName() string { return "set_member_attributes" }

// Current is one key's current value and version, as a version conflict
// reports it.
type Current struct {
	Key     string `json:"key"`
	Value   string `json:"value,omitempty"`
	Version uint64 `json:"version"`
	Exists  bool   `json:"exists"`
}

// VersionConflict is the data of ErrVersionConflict: the current value and
// version of every key the write expected a version of.
type VersionConflict struct {
	Current []Current `json:"current"`
}

// checkCapacity refuses a new member of a full room (ZEGO maxMemberCount).
// A user already in the room (a login from another device replaces it)
// takes no new place.
func checkCapacity(r *Room, u UserID) error {
	if !r.Exists || r.MaxMembers == 0 {
		return nil
	}
	if _, in := r.Members[u]; !in && len(r.Members) >= r.MaxMembers {
		return ErrRoomFull.With("at most %d members", r.MaxMembers)
	}
	return nil
}

// refuseJoin gives back the claim this very command took on room in an
// earlier attempt (the room changed under it) and returns err.
func (x *decision) refuseJoin(s *Session, sid SessionID, room RoomID, err error) error {
	if held, ok := s.Claims[room]; ok && held.Command == x.m.ID {
		x.emit(x.sessionKey(sid), &RoomReleasedData{Room: room, Claim: held.Seq, Reason: ReasonLoginFailed})
	}
	return err
}

// ownerLeft emits the deletion of the attributes m owns with
// DeleteAfterOwnerLeft, in the step of m's departure.
func (x *decision) ownerLeft(r *Room, id RoomID, m *Member) {
	var gone []string
	for _, k := range sortedKeys(r.AttributeMeta) {
		if meta := r.AttributeMeta[k]; meta.Owner == m.User && meta.DeleteAfterOwnerLeft {
			gone = append(gone, k)
		}
	}
	if len(gone) > 0 {
		x.emit(x.roomKey(id), &AttributesUpdatedData{Deleted: gone, By: m.User, ByName: m.UserName, OwnerLeft: true})
	}
}

// checkVersions refuses a write whose expected versions are stale.
func checkVersions(r *Room, expect map[string]uint64) error {
	var cur []Current
	stale := false
	for _, k := range sortedKeys(expect) {
		v, ok := r.Attributes[k]
		ver := r.AttributeMeta[k].Version
		if !ok {
			ver = 0
		}
		if ver != expect[k] {
			stale = true
		}
		cur = append(cur, Current{Key: k, Value: v, Version: ver, Exists: ok})
	}
	if !stale {
		return nil
	}
	return ErrVersionConflict.With("a key changed since the version the write expected").
		WithData(VersionConflict{Current: cur})
}

// setAttributes decides ZIM setRoomAttributes, deleteRoomAttributes and
// batch operations.
func (x *decision) setAttributes(c SetRoomAttributes) error {
	if len(c.Set) == 0 && len(c.Delete) == 0 {
		return invalid("nothing to set or delete")
	}
	l := x.pol.Limits
	if len(c.Expect) > l.AttributeKeys {
		return invalid("%d expected versions, at most %d", len(c.Expect), l.AttributeKeys)
	}
	if len(c.Delete) > l.AttributeKeys {
		return ErrAttributesInvalid.With("%d keys to delete, at most %d", len(c.Delete), l.AttributeKeys).OfArguments()
	}
	r, m, err := x.sender(c.Session, c.Room)
	if err != nil {
		return err
	}
	if err := checkVersions(r, c.Expect); err != nil {
		return err
	}
	owned := func(k string) bool {
		_, exists := r.Attributes[k]
		meta, ok := r.AttributeMeta[k]
		return exists && ok && meta.Owner != m.User
	}
	next := maps.Clone(r.Attributes)
	if next == nil {
		next = map[string]string{}
	}
	set := map[string]string{}
	var deleted, skipped []string
	force := false
	for _, k := range sortedKeys(c.Set) {
		v := c.Set[k]
		if owned(k) {
			if !c.Force {
				skipped = append(skipped, k)
				continue
			}
			force = true
		}
		old, had := next[k]
		meta := r.AttributeMeta[k]
		becomesOwner := !had || c.UpdateOwner || meta.Owner == m.User
		if !had || old != v || (c.UpdateOwner && meta.Owner != m.User) ||
			(becomesOwner && meta.DeleteAfterOwnerLeft != c.DeleteAfterOwnerLeft) {
			set[k] = v
		}
		next[k] = v
	}
	for _, k := range c.Delete {
		if _, ok := next[k]; !ok || slices.Contains(deleted, k) {
			continue
		}
		if owned(k) {
			if !c.Force {
				if !slices.Contains(skipped, k) {
					skipped = append(skipped, k)
				}
				continue
			}
			force = true
		}
		delete(next, k)
		deleted = append(deleted, k)
	}
	slices.Sort(skipped)
	if len(skipped) > 0 && (c.Batch || (len(set) == 0 && len(deleted) == 0)) {
		// A batch is all or nothing; a plain write with nothing left to do
		// is refused rather than acknowledged as if it had worked.
		return ErrAttributeOwned.With("keys %q", skipped).WithData(Partial{Keys: skipped})
	}
	if err := x.checkAttributes(next); err != nil {
		return err
	}
	if len(set) == 0 && len(deleted) == 0 {
		return nil
	}
	rk := x.roomKey(c.Room)
	if r.Rates.Attributes.full(x.at(rk), l.AttributesPerSecond) {
		return ErrRateLimited.With("%d room attribute writes per second per room", l.AttributesPerSecond)
	}
	if len(set) == 0 {
		set = nil
	}
	slices.Sort(deleted)
	x.emit(rk, &AttributesUpdatedData{Set: set, Deleted: deleted, By: m.User, ByName: m.UserName,
		UpdateOwner:          c.UpdateOwner && set != nil,
		DeleteAfterOwnerLeft: c.DeleteAfterOwnerLeft && set != nil, Force: force, Batch: c.Batch})
	if len(skipped) > 0 {
		x.out.Partial = &Partial{Keys: skipped}
	}
	return nil
}

// setMemberAttributes decides ZIM setRoomMembersAttributes. Members the
// write names who are not in the room are left out and reported (ZIM's
// errorUserList); if none is, the write is refused (1902007).
func (x *decision) setMemberAttributes(c SetMemberAttributes) error {
	l := x.pol.Limits
	if len(c.Set) == 0 && len(c.Delete) == 0 {
		return invalid("nothing to set or delete")
	}
	if len(c.Users) == 0 || len(c.Users) > l.MemberAttributeUsers {
		return invalid("%d users, 1 to %d allowed", len(c.Users), l.MemberAttributeUsers)
	}
	if len(c.Set) > l.MemberAttributeKeys || len(c.Delete) > l.MemberAttributeKeys {
		return ErrMemberAttrsInvalid.With("at most %d keys per member", l.MemberAttributeKeys).OfArguments()
	}
	for _, k := range sortedKeys(c.Set) {
		switch v := c.Set[k]; {
		case k == "" || len(k) > l.MemberAttributeKeyBytes:
			return ErrMemberAttrsInvalid.With("key %q must be 1 to %d bytes", k, l.MemberAttributeKeyBytes).OfArguments()
		case len(v) > l.MemberAttributeValueBytes:
			return ErrMemberAttrsInvalid.With("value of %q is %d bytes, at most %d", k, len(v), l.MemberAttributeValueBytes).OfArguments()
		}
	}
	var users []UserID
	for _, u := range c.Users {
		if err := ValidateUserID(u); err != nil {
			return ErrInvalidArgument.With("%v", err)
		}
		if !slices.Contains(users, u) {
			users = append(users, u)
		}
	}
	r, m, err := x.sender(c.Session, c.Room)
	if err != nil {
		return err
	}
	var changes []MemberAttributes
	var missing []UserID
	for _, u := range users {
		tm, ok := r.Members[u]
		if !ok {
			missing = append(missing, u)
			continue
		}
		next := maps.Clone(tm.Attributes)
		if next == nil {
			next = map[string]string{}
		}
		ch := MemberAttributes{User: u}
		for _, k := range sortedKeys(c.Set) {
			if old, had := next[k]; !had || old != c.Set[k] {
				if ch.Set == nil {
					ch.Set = map[string]string{}
				}
				ch.Set[k] = c.Set[k]
			}
			next[k] = c.Set[k]
		}
		for _, k := range c.Delete {
			if _, ok := next[k]; ok {
				delete(next, k)
				ch.Deleted = append(ch.Deleted, k)
			}
		}
		if len(next) > l.MemberAttributeKeys {
			return ErrMemberAttrsInvalid.With("member %q would have %d keys, at most %d", u, len(next), l.MemberAttributeKeys)
		}
		if ch.Set != nil || ch.Deleted != nil {
			slices.Sort(ch.Deleted)
			changes = append(changes, ch)
		}
	}
	if len(missing) == len(users) {
		return ErrUserNotInRoom.With("none of the users is in the room").WithData(Partial{Users: missing})
	}
	if len(missing) > 0 {
		x.out.Partial = &Partial{Users: missing}
	}
	if len(changes) == 0 {
		return nil
	}
	rk := x.roomKey(c.Room)
	if r.Rates.MemberAttrs.full(x.at(rk), l.MemberAttributesPerSecond) {
		x.out.Partial = nil
		return ErrRateLimited.With("%d member attribute writes per second per room", l.MemberAttributesPerSecond)
	}
	x.emit(rk, &MemberAttributesUpdatedData{Members: changes, By: m.User, ByName: m.UserName})
	return nil
}
