package domain

// soleRoom returns the room a single-room session is in, by its claim.
func soleRoom(s *Session) (RoomID, bool) {
	if len(s.Claims) != 1 {
		return "", false
	}
	for id := range s.Claims {
		return id, true
	}
	return "", false
}

// memberOf loads room id and returns the session's member record in it.
func (x *decision) memberOf(s *Session, sid SessionID, id RoomID) (*Room, *Member, error) {
	if err := x.load(x.roomKey(id)); err != nil {
		return nil, nil, err
	}
	r := x.room(id)
	m, ok := r.MemberBySession(s.User, sid)
	if !ok || !s.Opened {
		return nil, nil, ErrNotLoggedIn.With("not in room %q", id)
	}
	return r, m, nil
}

// maxNodeBytes bounds a media node's name as a publish records it.
const maxNodeBytes = 64

// publish decides startPublishingStream.
//
// Steps: [void a stale claim in its room] → stream registry (claim) → room
// (stream published). The registry is the app-wide authority on the ID; the
// room only ever shows a stream whose claim it has not voided.
func (x *decision) publish(c PublishStream) error {
	if err := errorsJoinArgs(ValidateSessionID(c.Session), ValidateStreamID(c.Stream)); err != nil {
		return err
	}
	if len(c.Node) > maxNodeBytes {
		return ErrInvalidArgument.With("media node name longer than %d bytes", maxNodeBytes)
	}
	if len(c.ExtraInfo) > x.pol.Limits.StreamExtraInfoBytes {
		return ErrStreamExtraInfoLarge.With("%d bytes, at most %d", len(c.ExtraInfo), x.pol.Limits.StreamExtraInfoBytes)
	}
	if err := x.load(x.sessionKey(c.Session), x.streamKey(c.Stream)); err != nil {
		return err
	}
	s, e := x.session(c.Session), x.stream(c.Stream)
	if !s.Opened {
		return ErrNotLoggedIn
	}
	id := c.Room
	if id == "" {
		if s.Mode == MultiRoom {
			return ErrPublishRoomRequired
		}
		var ok bool
		if id, ok = soleRoom(s); !ok {
			return ErrNotLoggedIn
		}
	} else if err := checkArg(ValidateRoomID(id)); err != nil {
		return err
	}
	r, m, err := x.memberOf(s, c.Session, id)
	if err != nil {
		return err
	}
	x.out.Rooms = []RoomID{id}
	if m.Role != Anchor || !m.CanPublish {
		return ErrPublishNotAllowed
	}
	if st, ok := r.Streams[c.Stream]; ok {
		if st.Session == c.Session {
			return nil // already publishing it here
		}
		return ErrStreamIDInUse
	}
	if most := x.pol.Limits.StreamsPerMember; len(m.Publishing) >= most {
		return ErrTooManyStreams.With("at most %d", most)
	}
	sk, rk := x.streamKey(c.Stream), x.roomKey(id)
	claim := uint64(0)
	if e.Claimed {
		if err := x.load(x.roomKey(e.Room)); err != nil {
			return err
		}
		holder := x.room(e.Room)
		if st, ok := holder.Streams[c.Stream]; ok && st.Claim == e.Claim {
			return ErrStreamIDInUse.With("published in another room")
		}
		voided := holder.claimVoided(KindStream, string(c.Stream), e.Claim)
		if e.Session == c.Session && e.Room == id && e.Command == x.m.ID && !voided {
			claim = e.Claim // an earlier attempt of this command claimed it
		} else if x.newer(e.Command) && !voided {
			return ErrStreamIDInUse.With("a newer publish of this stream ID is in progress")
		} else if !voided {
			// Nobody publishes under this claim, but a slow publisher may still
			// hold it: void it in its room before taking the ID over.
			x.emit(x.roomKey(e.Room), &ClaimVoidedData{Registry: KindStream, ID: string(c.Stream), Claim: e.Claim})
		}
	}
	if claim == 0 {
		claim = x.emit(sk, &StreamClaimedData{Room: id, User: s.User, Session: c.Session, Command: x.m.ID})
	}
	x.emit(rk, &StreamPublishedData{Stream: c.Stream, User: s.User, UserName: m.UserName, Session: c.Session,
		ExtraInfo: c.ExtraInfo, Claim: claim, Node: c.Node})
	return nil
}

// publisherRoom finds the room where session sid publishes stream id.
func (x *decision) publisherRoom(sid SessionID, id StreamID) (*StreamEntry, *Room, *Stream, error) {
	if err := x.load(x.sessionKey(sid), x.streamKey(id)); err != nil {
		return nil, nil, nil, err
	}
	e := x.stream(id)
	if !e.Claimed {
		return nil, nil, nil, ErrStreamNotFound
	}
	if e.Session != sid {
		return nil, nil, nil, ErrNotStreamPublisher
	}
	if err := x.load(x.roomKey(e.Room)); err != nil {
		return nil, nil, nil, err
	}
	r := x.room(e.Room)
	st, ok := r.Streams[id]
	if !ok || st.Session != sid || st.Claim != e.Claim {
		return nil, nil, nil, ErrStreamNotFound
	}
	return e, r, st, nil
}

// stopPublishing decides stopPublishingStream. Steps: room → registry.
func (x *decision) stopPublishing(c StopPublishing) error {
	if err := errorsJoinArgs(ValidateSessionID(c.Session), ValidateStreamID(c.Stream)); err != nil {
		return err
	}
	if room, ok := x.m.storedRoom(); ok {
		// An earlier attempt stored the room's step (its only one, the
		// stop itself), and the reactor, following it, releases the
		// registry: the stop took effect, whatever the registry says now
		// (another publish may have taken the ID since).
		x.out.Rooms = []RoomID{room}
		return nil
	}
	e, _, st, err := x.publisherRoom(c.Session, c.Stream)
	if err != nil {
		return err
	}
	x.emit(x.roomKey(e.Room), &StreamStoppedData{Stream: c.Stream, User: st.User, UserName: st.UserName,
		Session: c.Session, Claim: st.Claim, Reason: ReasonStopped})
	x.emit(x.streamKey(c.Stream), &StreamReleasedData{Claim: st.Claim, Reason: ReasonStopped})
	x.out.Rooms = []RoomID{e.Room}
	return nil
}

// stopNodeStreams stops the room's streams hosted on a dead media node.
// Steps: room → (registries, by the reactor's follow-ups).
func (x *decision) stopNodeStreams(c StopNodeStreams) error {
	if err := checkArg(ValidateRoomID(c.Room)); err != nil {
		return err
	}
	if c.Node == "" || len(c.Node) > maxNodeBytes {
		return invalid("a media node name of 1 to %d bytes is required", maxNodeBytes)
	}
	if err := x.load(x.roomKey(c.Room)); err != nil {
		return err
	}
	r := x.room(c.Room)
	x.out.Rooms = []RoomID{c.Room}
	for _, id := range sortedKeys(r.Streams) {
		st := r.Streams[id]
		if st.Node != c.Node {
			continue
		}
		x.emit(x.roomKey(c.Room), &StreamStoppedData{Stream: id, User: st.User, UserName: st.UserName,
			Session: st.Session, Claim: st.Claim, Reason: ReasonMediaNodeLost})
	}
	return nil
}

// setStreamExtraInfo decides setStreamExtraInfo.
func (x *decision) setStreamExtraInfo(c SetStreamExtraInfo) error {
	if err := errorsJoinArgs(ValidateSessionID(c.Session), ValidateStreamID(c.Stream)); err != nil {
		return err
	}
	if len(c.ExtraInfo) > x.pol.Limits.StreamExtraInfoBytes {
		return ErrStreamExtraInfoLarge.With("%d bytes, at most %d", len(c.ExtraInfo), x.pol.Limits.StreamExtraInfoBytes)
	}
	e, _, st, err := x.publisherRoom(c.Session, c.Stream)
	if err != nil {
		return err
	}
	x.out.Rooms = []RoomID{e.Room}
	if st.ExtraInfo == c.ExtraInfo {
		return nil
	}
	x.emit(x.roomKey(e.Room), &StreamExtraInfoData{Stream: c.Stream, User: st.User, UserName: st.UserName,
		ExtraInfo: c.ExtraInfo})
	return nil
}

// play decides startPlayingStream. The stream need not be published yet: the
// player waits for it, as in the ZEGO SDKs.
func (x *decision) play(c PlayStream) error {
	if err := errorsJoinArgs(ValidateSessionID(c.Session), ValidateStreamID(c.Stream)); err != nil {
		return err
	}
	if err := x.load(x.sessionKey(c.Session)); err != nil {
		return err
	}
	s := x.session(c.Session)
	if !s.Opened {
		return ErrNotLoggedIn
	}
	id := c.Room
	switch {
	case id != "":
		if err := checkArg(ValidateRoomID(id)); err != nil {
			return err
		}
	case s.Mode == SingleRoom:
		var ok bool
		if id, ok = soleRoom(s); !ok {
			return ErrNotLoggedIn
		}
	default:
		// Multi-room without a room ID: the Web SDK way, by stream ID alone,
		// when the stream is published in one of the session's rooms.
		if err := x.load(x.streamKey(c.Stream)); err != nil {
			return err
		}
		e := x.stream(c.Stream)
		if _, in := s.Claims[e.Room]; !e.Claimed || !in {
			return ErrPlayRoomRequired
		}
		id = e.Room
	}
	_, m, err := x.memberOf(s, c.Session, id)
	if err != nil {
		return err
	}
	x.out.Rooms = []RoomID{id}
	if m.Playing[c.Stream] {
		return nil
	}
	if most := x.pol.Limits.PlaysPerMember; len(m.Playing) >= most {
		return ErrTooManyPlays.With("at most %d", most)
	}
	x.emit(x.roomKey(id), &PlayStartedData{Stream: c.Stream, User: s.User, Session: c.Session})
	return nil
}

// stopPlaying decides stopPlayingStream, in one room or all of the session's.
func (x *decision) stopPlaying(c StopPlaying) error {
	if err := errorsJoinArgs(ValidateSessionID(c.Session), ValidateStreamID(c.Stream)); err != nil {
		return err
	}
	s, rooms, err := x.sessionRooms(c.Session, c.Room)
	if err != nil {
		return err
	}
	for _, id := range rooms {
		if m, ok := x.room(id).MemberBySession(s.User, c.Session); ok && m.Playing[c.Stream] {
			x.emit(x.roomKey(id), &PlayStoppedData{Stream: c.Stream, User: s.User, Session: c.Session})
			x.out.Rooms = append(x.out.Rooms, id)
		}
	}
	return nil
}

// releaseStreamClaim frees a stream ID after its room stopped the stream.
func (x *decision) releaseStreamClaim(c ReleaseStreamClaim) error {
	if err := checkArg(ValidateStreamID(c.Stream)); err != nil {
		return err
	}
	if err := x.load(x.streamKey(c.Stream)); err != nil {
		return err
	}
	e := x.stream(c.Stream)
	if !e.Claimed || e.Claim != c.Claim {
		x.out.Settled = e.Seq >= c.Claim // released or replaced since: for good
		return nil
	}
	if err := x.load(x.roomKey(e.Room)); err != nil {
		return err
	}
	if st, ok := x.room(e.Room).Streams[c.Stream]; ok && st.Claim == c.Claim {
		return nil // still published under this claim
	}
	x.emit(x.streamKey(c.Stream), &StreamReleasedData{Claim: c.Claim, Reason: c.Reason})
	return nil
}
