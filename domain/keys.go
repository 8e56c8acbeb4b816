package domain

import "fmt"

// Keys returns the aggregates a command certainly reads, so that a caller can
// load them before the first decision instead of learning them from a
// NeedError. Decide may still ask for more (the rooms of a session, the
// holder of a stream ID).
func Keys(app AppID, c Command) []Key {
	room := func(id RoomID) Key { return RoomKey(app, id) }
	sess := func(id SessionID) Key { return SessionKey(app, id) }
	stream := func(id StreamID) Key { return StreamKey(app, id) }
	switch c := c.(type) {
	case SetRoomMode:
		return []Key{sess(c.Session)}
	case JoinRoom:
		return []Key{sess(c.Session), room(c.Room)}
	case LeaveRoom:
		if c.Room != "" {
			return []Key{sess(c.Session), room(c.Room)}
		}
		return []Key{sess(c.Session)}
	case SwitchRoom:
		return []Key{sess(c.Session), room(c.From), room(c.To)}
	case PublishStream:
		if c.Room != "" {
			return []Key{sess(c.Session), stream(c.Stream), room(c.Room)}
		}
		return []Key{sess(c.Session), stream(c.Stream)}
	case StopPublishing:
		return []Key{sess(c.Session), stream(c.Stream)}
	case StopNodeStreams:
		return []Key{room(c.Room)}
	case SetStreamExtraInfo:
		return []Key{sess(c.Session), stream(c.Stream)}
	case PlayStream:
		if c.Room != "" {
			return []Key{sess(c.Session), room(c.Room)}
		}
		return []Key{sess(c.Session)}
	case StopPlaying:
		return []Key{sess(c.Session)}
	case SendBroadcast:
		return []Key{sess(c.Session), room(c.Room)}
	case SendBarrage:
		return []Key{sess(c.Session), room(c.Room)}
	case SendCustomCommand:
		return []Key{sess(c.Session), room(c.Room)}
	case SetRoomExtraInfo:
		return []Key{sess(c.Session), room(c.Room)}
	case SetRoomAttributes:
		return []Key{sess(c.Session), room(c.Room)}
	case SetMemberAttributes:
		return []Key{sess(c.Session), room(c.Room)}
	case KickUser:
		return []Key{room(c.Room)}
	case DestroyRoom:
		return []Key{room(c.Room)}
	case ExpireRoom:
		return []Key{room(c.Room)}
	case TimeoutSession:
		return []Key{sess(c.Session)}
	case KickSession:
		return []Key{sess(c.Session)}
	case ReleaseRoomClaim:
		return []Key{sess(c.Session), room(c.Room)}
	case ReleaseStreamClaim:
		return []Key{stream(c.Stream)}
	}
	return nil
}

// CheckKeys reports, as one ErrInvalidArgument, every key that names no
// aggregate the log can hold: an empty, oversized or non-UTF-8 app ID or ID.
// The engine checks a command's keys before it loads anything, so that a
// bad argument is refused as such and never reaches the store.
func CheckKeys(keys []Key) error {
	var errs []error
	seen := map[string]bool{}
	add := func(err error) {
		if err != nil && !seen[err.Error()] {
			seen[err.Error()] = true
			errs = append(errs, err)
		}
	}
	for _, k := range keys {
		add(ValidateAppID(k.App))
		switch k.Kind {
		case KindRoom:
			add(ValidateRoomID(RoomID(k.ID)))
		case KindSession:
			add(ValidateSessionID(SessionID(k.ID)))
		case KindStream:
			add(ValidateStreamID(StreamID(k.ID)))
		default:
			add(fmt.Errorf("unknown aggregate kind %q", k.Kind))
		}
	}
	return errorsJoinArgs(errs...)
}
