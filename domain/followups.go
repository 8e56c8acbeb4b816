package domain

// FollowUp is a command some event calls for, with the event that caused it.
type FollowUp struct {
	Cause   *Event
	Command Command
}

// FollowUps returns the commands an event calls for. They complete what one
// command began in one room and must finish in other aggregates, after a crash
// too: freeing the claims of members and streams a room removed, and taking a
// session kicked by a duplicate login out of its other rooms.
//
// Every follow-up decides against current state and does nothing when its
// work is already done (the command that caused the event usually did it), so
// running one twice, or late, is harmless.
func FollowUps(e *Event) []FollowUp {
	room := RoomID(e.AggregateID)
	var out []FollowUp
	add := func(c Command) { out = append(out, FollowUp{Cause: e, Command: c}) }
	switch d := e.Data.(type) {
	case *MemberLeftData:
		if d.Reason == ReasonKickedDuplicateLogin {
			// The kick's time: this event's own in the login's room, the
			// login's in the rooms the kick went on to.
			at := e.Time
			if !d.KickedAt.IsZero() {
				at = d.KickedAt
			}
			add(KickSession{Session: d.Session, BySession: d.BySession, Room: room, Claim: d.Claim, At: at})
		} else {
			add(ReleaseRoomClaim{Session: d.Session, Room: room, Claim: d.Claim, Reason: d.Reason})
		}
	case *StreamStoppedData:
		add(ReleaseStreamClaim{Stream: d.Stream, Claim: d.Claim, Reason: d.Reason})
	case *RoomDestroyedData:
		for _, m := range d.Members {
			add(ReleaseRoomClaim{Session: m.Session, Room: room, Claim: m.Claim, Reason: ReasonRoomDestroyed})
		}
		for _, s := range d.Streams {
			add(ReleaseStreamClaim{Stream: s.Stream, Claim: s.Claim, Reason: ReasonRoomDestroyed})
		}
	}
	return out
}
