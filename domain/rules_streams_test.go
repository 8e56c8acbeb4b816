package domain

import "testing"

// Section 2: streams and roles.
func TestStreamRules(t *testing.T) {
	noPublish := login("s2", "u2", "r1")
	noPublish.Grant.CanPublish = false
	multi := ptr(multiPolicy())
	few := DefaultPolicy()
	few.Limits.StreamsPerMember, few.Limits.PlaysPerMember = 2, 2

	runRules(t, []rule{
		{name: "single-room: publishing without a room uses the session's room",
			given: []Command{login("s1", "u1", "r1")},
			when:  PublishStream{Session: "s1", Stream: "st1", ExtraInfo: "hd"},
			then: []ev{
				inStream("st1", &StreamClaimedData{Room: "r1", User: "u1", Session: "s1", Command: "cmd-0002"}),
				inRoom("r1", &StreamPublishedData{Stream: "st1", User: "u1", UserName: "name-u1", Session: "s1", ExtraInfo: "hd", Claim: 1}),
			}},
		{name: "multi-room: publishing needs a room ID (1003070)", policy: multi,
			given: []Command{loginMulti("s1", "u1", "r1")},
			when:  PublishStream{Session: "s1", Stream: "st1"}, err: ErrPublishRoomRequired},
		{name: "multi-room: playing without a room ID is refused when the stream is in none of the session's rooms (1004070)",
			policy: multi,
			given: []Command{loginMulti("s1", "u1", "r1"), loginMulti("s2", "u2", "r2"),
				PublishStream{Session: "s2", Stream: "st2", Room: "r2"}},
			when: PlayStream{Session: "s1", Stream: "st2"}, err: ErrPlayRoomRequired},
		{name: "multi-room: playing by stream ID alone finds the stream's room (Web SDK)", policy: multi,
			given: []Command{loginMulti("s1", "u1", "r1"), loginMulti("s1", "u1", "r2"), loginMulti("s2", "u2", "r2"),
				PublishStream{Session: "s2", Stream: "st2", Room: "r2"}},
			when: PlayStream{Session: "s1", Stream: "st2"},
			then: []ev{inRoom("r2", &PlayStartedData{Stream: "st2", User: "u1", Session: "s1"})}},
		{name: "playing a stream not yet published waits for it",
			given: []Command{login("s1", "u1", "r1")},
			when:  PlayStream{Session: "s1", Stream: "later", Room: "r1"},
			then:  []ev{inRoom("r1", &PlayStartedData{Stream: "later", User: "u1", Session: "s1"})}},
		{name: "a stream ID is unique in the app while published (1903001)", policy: multi,
			given: []Command{loginMulti("s1", "u1", "r1"), loginMulti("s2", "u2", "r2"),
				PublishStream{Session: "s1", Stream: "st", Room: "r1"}},
			when: PublishStream{Session: "s2", Stream: "st", Room: "r2"}, err: ErrStreamIDInUse},
		{name: "a stream ID is unique in the room too (1903001)",
			given: []Command{login("s1", "u1", "r1"), login("s2", "u2", "r1"),
				PublishStream{Session: "s1", Stream: "st"}},
			when: PublishStream{Session: "s2", Stream: "st"}, err: ErrStreamIDInUse},
		{name: "a stopped stream's ID can be published by someone else", policy: multi,
			given: []Command{loginMulti("s1", "u1", "r1"), loginMulti("s2", "u2", "r2"),
				PublishStream{Session: "s1", Stream: "st", Room: "r1"}, StopPublishing{Session: "s1", Stream: "st"}},
			when: PublishStream{Session: "s2", Stream: "st", Room: "r2"},
			then: []ev{
				inStream("st", &StreamClaimedData{Room: "r2", User: "u2", Session: "s2", Command: "cmd-0005"}),
				inRoom("r2", &StreamPublishedData{Stream: "st", User: "u2", UserName: "name-u2", Session: "s2", Claim: 3}),
			}},
		{name: "stopping a stream: the room says DELETE, the ID is released",
			given: []Command{login("s1", "u1", "r1"), PublishStream{Session: "s1", Stream: "st"}},
			when:  StopPublishing{Session: "s1", Stream: "st"},
			then: []ev{
				inRoom("r1", &StreamStoppedData{Stream: "st", User: "u1", UserName: "name-u1", Session: "s1", Claim: 1, Reason: ReasonStopped}),
				inStream("st", &StreamReleasedData{Claim: 1, Reason: ReasonStopped}),
			}},
		{name: "only the publisher may stop a stream (1903004)",
			given: []Command{login("s1", "u1", "r1"), login("s2", "u2", "r1"), PublishStream{Session: "s1", Stream: "st"}},
			when:  StopPublishing{Session: "s2", Stream: "st"}, err: ErrNotStreamPublisher},
		{name: "stopping a stream nobody publishes (1903003)",
			given: []Command{login("s1", "u1", "r1")},
			when:  StopPublishing{Session: "s1", Stream: "st"}, err: ErrStreamNotFound},
		{name: "the publisher sets the stream's extra info; members get an update",
			given: []Command{login("s1", "u1", "r1"), PublishStream{Session: "s1", Stream: "st"}},
			when:  SetStreamExtraInfo{Session: "s1", Stream: "st", ExtraInfo: "layout=2"},
			then:  []ev{inRoom("r1", &StreamExtraInfoData{Stream: "st", User: "u1", UserName: "name-u1", ExtraInfo: "layout=2"})}},
		{name: "stream extra info is bounded (1903005)",
			given: []Command{login("s1", "u1", "r1"), PublishStream{Session: "s1", Stream: "st"}},
			when:  SetStreamExtraInfo{Session: "s1", Stream: "st", ExtraInfo: string(make([]byte, 1025))},
			err:   ErrStreamExtraInfoLarge},
		{name: "a member publishes at most streams_per_member streams in a room (1903006)", policy: &few,
			given: []Command{login("s1", "u1", "r1"), PublishStream{Session: "s1", Stream: "a"},
				PublishStream{Session: "s1", Stream: "b"}},
			when: PublishStream{Session: "s1", Stream: "c"}, err: ErrTooManyStreams},
		{name: "a stopped stream no longer counts against the member", policy: &few,
			given: []Command{login("s1", "u1", "r1"), PublishStream{Session: "s1", Stream: "a"},
				PublishStream{Session: "s1", Stream: "b"}, StopPublishing{Session: "s1", Stream: "a"}},
			when: PublishStream{Session: "s1", Stream: "c"},
			then: []ev{
				inStream("c", &StreamClaimedData{Room: "r1", User: "u1", Session: "s1", Command: "cmd-0005"}),
				inRoom("r1", &StreamPublishedData{Stream: "c", User: "u1", UserName: "name-u1", Session: "s1", Claim: 1}),
			}},
		{name: "a member plays at most plays_per_member streams in a room (1903007)", policy: &few,
			given: []Command{login("s1", "u1", "r1"), PlayStream{Session: "s1", Stream: "a"},
				PlayStream{Session: "s1", Stream: "b"}},
			when: PlayStream{Session: "s1", Stream: "c"}, err: ErrTooManyPlays},
		{name: "playing a stream again is no new play, even at the limit", policy: &few,
			given: []Command{login("s1", "u1", "r1"), PlayStream{Session: "s1", Stream: "a"},
				PlayStream{Session: "s1", Stream: "b"}},
			when: PlayStream{Session: "s1", Stream: "b"}},
		{name: "an audience member cannot publish (1903002)",
			given: []Command{asAudience(login("s1", "u1", "r1"))},
			when:  PublishStream{Session: "s1", Stream: "st"}, err: ErrPublishNotAllowed},
		{name: "a token without the publish privilege cannot publish (1903002)",
			given: []Command{noPublish},
			when:  PublishStream{Session: "s2", Stream: "st"}, err: ErrPublishNotAllowed},
		{name: "an audience member can play",
			given: []Command{login("s1", "u1", "r1"), asAudience(login("s2", "u2", "r1")),
				PublishStream{Session: "s1", Stream: "st"}},
			when: PlayStream{Session: "s2", Stream: "st"},
			then: []ev{inRoom("r1", &PlayStartedData{Stream: "st", User: "u2", Session: "s2"})}},
		{name: "anchor in one room, audience in another: may publish in the first", policy: multi,
			given: []Command{loginMulti("a", "A", "1000"), asAudience(loginMulti("a", "A", "2000"))},
			when:  PublishStream{Session: "a", Stream: "A-main", Room: "1000"},
			then: []ev{
				inStream("A-main", &StreamClaimedData{Room: "1000", User: "A", Session: "a", Command: "cmd-0003"}),
				inRoom("1000", &StreamPublishedData{Stream: "A-main", User: "A", UserName: "name-A", Session: "a", Claim: 1}),
			}},
		{name: "anchor in one room, audience in another: may not publish in the second (1903002)", policy: multi,
			given: []Command{loginMulti("a", "A", "1000"), asAudience(loginMulti("a", "A", "2000"))},
			when:  PublishStream{Session: "a", Stream: "A-2", Room: "2000"}, err: ErrPublishNotAllowed},
		{name: "publishing in a room the session is not in (1902006)", policy: multi,
			given: []Command{loginMulti("s1", "u1", "r1")},
			when:  PublishStream{Session: "s1", Stream: "st", Room: "r2"}, err: ErrNotLoggedIn},
		{name: "stop playing in every room",
			given: []Command{login("s1", "u1", "r1"), PlayStream{Session: "s1", Stream: "st"}},
			when:  StopPlaying{Session: "s1", Stream: "st"},
			then:  []ev{inRoom("r1", &PlayStoppedData{Stream: "st", User: "u1", Session: "s1"})}},
	})
}

// Section 7: cross-room co-hosting, both ways.
func TestCrossRoomCoHosting(t *testing.T) {
	check := func(t *testing.T, w *world) {
		t.Helper()
		for _, c := range []struct {
			room     RoomID
			anchor   UserID
			audience UserID
			stream   StreamID
		}{{"1000", "A", "B", "A-main"}, {"2000", "B", "A", "B-main"}} {
			r := w.room(c.room)
			if got := r.Members[c.anchor].Role; got != Anchor {
				t.Errorf("room %s: %s is %q, want anchor", c.room, c.anchor, got)
			}
			if got := r.Members[c.audience].Role; got != Audience {
				t.Errorf("room %s: visiting %s is %q, want audience", c.room, c.audience, got)
			}
			if !r.Members[c.audience].Playing[c.stream] {
				t.Errorf("room %s: %s does not play %s", c.room, c.audience, c.stream)
			}
		}
	}
	t.Run("one multi-room session per anchor (ZEGO)", func(t *testing.T) {
		w := newWorld(t, multiPolicy())
		w.must(
			loginMulti("a", "A", "1000"), PublishStream{Session: "a", Stream: "A-main", Room: "1000"},
			loginMulti("b", "B", "2000"), PublishStream{Session: "b", Stream: "B-main", Room: "2000"},
			asAudience(loginMulti("a", "A", "2000")), PlayStream{Session: "a", Stream: "B-main", Room: "2000"},
			asAudience(loginMulti("b", "B", "1000")), PlayStream{Session: "b", Stream: "A-main", Room: "1000"},
		)
		check(t, w)
	})
	t.Run("one connection per room (TRTC)", func(t *testing.T) {
		w := newWorld(t, DefaultPolicy())
		w.must(
			login("a1", "A", "1000"), PublishStream{Session: "a1", Stream: "A-main"},
			login("b1", "B", "2000"), PublishStream{Session: "b1", Stream: "B-main"},
			asAudience(login("a2", "A", "2000")), PlayStream{Session: "a2", Stream: "B-main"},
			asAudience(login("b2", "B", "1000")), PlayStream{Session: "b2", Stream: "A-main"},
		)
		// The same user in two rooms over two sessions is not a duplicate login.
		for _, e := range w.events {
			if l, ok := e.Data.(*MemberLeftData); ok {
				t.Fatalf("unexpected departure %+v", l)
			}
		}
		check(t, w)
	})
}
