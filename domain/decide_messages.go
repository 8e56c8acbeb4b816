package domain

import "slices"

func (x *decision) checkBody(body string) error {
	if body == "" || len(body) > x.pol.Limits.MessageBytes {
		return ErrMessageTooLarge.With("%d bytes, 1 to %d allowed", len(body), x.pol.Limits.MessageBytes)
	}
	return nil
}

// sender loads the room and the sender's session and returns the sender's
// member record.
func (x *decision) sender(sid SessionID, id RoomID) (*Room, *Member, error) {
	if err := errorsJoinArgs(ValidateSessionID(sid), ValidateRoomID(id)); err != nil {
		return nil, nil, err
	}
	if err := x.load(x.sessionKey(sid), x.roomKey(id)); err != nil {
		return nil, nil, err
	}
	return x.memberOf(x.session(sid), sid, id)
}

// broadcast decides sendBroadcastMessage: reliable, ordered, in the history.
func (x *decision) broadcast(c SendBroadcast) error {
	if err := x.checkBody(c.Body); err != nil {
		return err
	}
	r, m, err := x.sender(c.Session, c.Room)
	if err != nil {
		return err
	}
	rk := x.roomKey(c.Room)
	if r.Rates.Broadcast.full(x.at(rk), x.pol.Limits.BroadcastPerSecond) {
		return ErrRateLimited.With("%d broadcast messages per second per room", x.pol.Limits.BroadcastPerSecond)
	}
	x.emit(rk, &BroadcastSentData{From: m.User, FromName: m.UserName, Session: c.Session, Body: c.Body})
	return nil
}

// barrage decides sendBarrageMessage. It checks the sender and the size; the
// rate is counted where it is fanned out, since a barrage is never logged.
func (x *decision) barrage(c SendBarrage) error {
	if err := x.checkBody(c.Body); err != nil {
		return err
	}
	_, m, err := x.sender(c.Session, c.Room)
	if err != nil {
		return err
	}
	x.out.Barrage = &Barrage{Room: c.Room, From: m.User, FromName: m.UserName, Session: c.Session, Body: c.Body,
		Time: x.at(x.roomKey(c.Room))}
	return nil
}

// customCommand decides sendCustomCommand.
func (x *decision) customCommand(c SendCustomCommand) error {
	if err := x.checkBody(c.Body); err != nil {
		return err
	}
	l := x.pol.Limits
	if len(c.To) > l.CommandMaxRecipients {
		return ErrRecipientsInvalid.With("%d recipients, at most %d", len(c.To), l.CommandMaxRecipients)
	}
	var to []UserID
	for _, u := range c.To {
		if err := ValidateUserID(u); err != nil {
			return ErrRecipientsInvalid.With("%v", err)
		}
		if !slices.Contains(to, u) {
			to = append(to, u)
		}
	}
	r, m, err := x.sender(c.Session, c.Room)
	if err != nil {
		return err
	}
	rk := x.roomKey(c.Room)
	at := x.at(rk)
	if len(to) == 1 {
		if r.Rates.CommandToOne[to[0]].full(at, l.CommandToOnePerSecond) {
			return ErrRateLimited.With("%d custom commands per second to one user", l.CommandToOnePerSecond)
		}
	} else if r.Rates.CommandToMany.full(at, l.CommandToManyPerSecond) {
		return ErrRateLimited.With("%d custom commands per second to many users", l.CommandToManyPerSecond)
	}
	x.emit(rk, &CustomCommandSentData{From: m.User, FromName: m.UserName, Session: c.Session, To: to, Body: c.Body})
	return nil
}

// setExtraInfo decides setRoomExtraInfo.
func (x *decision) setExtraInfo(c SetRoomExtraInfo) error {
	l := x.pol.Limits
	if c.Key == "" || len(c.Key) >= l.ExtraInfoKeyBytes {
		return ErrExtraInfoInvalid.With("key must be 1 to %d bytes", l.ExtraInfoKeyBytes-1).OfArguments()
	}
	if len(c.Value) >= l.ExtraInfoValueBytes {
		return ErrExtraInfoInvalid.With("value must be shorter than %d bytes", l.ExtraInfoValueBytes).OfArguments()
	}
	r, m, err := x.sender(c.Session, c.Room)
	if err != nil {
		return err
	}
	if c.Expect != nil {
		cur, ok := r.ExtraInfo[c.Key]
		if cur.Version != *c.Expect {
			return ErrVersionConflict.With("key %q is at version %d, the write expected %d", c.Key, cur.Version, *c.Expect).
				WithData(VersionConflict{Current: []Current{{Key: c.Key, Value: cur.Value, Version: cur.Version, Exists: ok}}})
		}
	}
	if cur, ok := r.ExtraInfo[c.Key]; ok && cur.Value == c.Value {
		// Nothing changes: no update for the others, no new version (which
		// would fail every other writer's expect), no rate slot used.
		return nil
	}
	if _, ok := r.ExtraInfo[c.Key]; !ok && len(r.ExtraInfo) >= l.ExtraInfoKeys {
		return ErrExtraInfoInvalid.With("at most %d keys per room", l.ExtraInfoKeys)
	}
	rk := x.roomKey(c.Room)
	if r.Rates.ExtraInfo.full(x.at(rk), l.ExtraInfoPerSecond) {
		return ErrRateLimited.With("%d extra info updates per second per room", l.ExtraInfoPerSecond)
	}
	x.emit(rk, &ExtraInfoUpdatedData{Key: c.Key, Value: c.Value, By: m.User, ByName: m.UserName})
	return nil
}
