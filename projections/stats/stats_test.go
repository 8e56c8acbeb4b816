package stats

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/projections/cursor"
)

func TestStatsFoldOnceByCursor(t *testing.T) {
	at := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	ev := func(seq uint64, after time.Duration, p domain.Payload) *domain.Event {
		return &domain.Event{Type: p.EventType(), App: "app", Aggregate: domain.KindRoom, AggregateID: "r1", Seq: seq,
			Time: at.Add(after), Data: p}
	}
	s := New()
	events := []*domain.Event{
		ev(1, 0, &domain.MemberJoinedData{User: "a", Session: "sa"}),
		ev(2, time.Second, &domain.MemberJoinedData{User: "b", Session: "sb"}),
		ev(3, 2*time.Second, &domain.BroadcastSentData{From: "a", Body: "hi"}),
		ev(4, 3*time.Second, &domain.StreamPublishedData{Stream: "cam", User: "a"}),
		ev(5, 45*time.Second, &domain.MemberLeftData{User: "a", Session: "sa", Reason: domain.ReasonKickedByBackend}),
		ev(6, 90*time.Second, &domain.RoomDestroyedData{Reason: domain.DestroyBackend}),
	}
	for i, e := range events {
		c := cursor.Cursor{Seq: uint64(10 + i)}
		if !s.Apply(c, e) {
			t.Fatalf("event %d not counted", i)
		}
		// A redelivery of anything up to the cursor counts nothing.
		if s.Apply(c, e) || s.Apply(cursor.Cursor{Seq: 10}, events[0]) {
			t.Fatalf("event %d counted twice", i)
		}
	}
	r := s.Rooms[Key("app", "r1")]
	if s.Events != 6 || r.Joins != 2 || r.Leaves != 2 || r.Peak != 2 || len(r.Members) != 0 || r.Messages != 1 || r.Streams != 1 {
		t.Fatalf("room figures %+v, events %d", r, s.Events)
	}
	if s.Leaves[domain.ReasonKickedByBackend] != 1 || s.Leaves[domain.ReasonRoomDestroyed] != 1 {
		t.Errorf("leaves by reason %v", s.Leaves)
	}
	// a stayed 45 s (≤ 60 s bucket), b 89 s (≤ 300 s bucket).
	if s.Durations[2] != 1 || s.Durations[3] != 1 || s.DurationSum != 45+89 {
		t.Errorf("durations %v, sum %v", s.Durations, s.DurationSum)
	}
	if m := s.Minutes[at.Unix()/60]; m.Joins != 2 || m.Messages != 1 || m.Leaves != 1 {
		t.Errorf("first minute %+v", m)
	}
}

// Room.Concurrent is "the most members at once, per minute that saw a
// change". Two members are in a room from 09:00; one leaves at 09:05:30.
// During minute 09:05 both were there at once until 09:05:30: the figure
// for that minute is 2, not the 1 left after the leave. Likewise a room of
// three destroyed at 09:10:30 had three members at once in minute 09:10.
func TestConcurrentCountsTheMembersPresentBeforeALeaveInItsMinute(t *testing.T) {
	at := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	ev := func(room string, seq uint64, after time.Duration, p domain.Payload) *domain.Event {
		return &domain.Event{Type: p.EventType(), App: "app", Aggregate: domain.KindRoom, AggregateID: room, Seq: seq,
			Time: at.Add(after), Data: p}
	}
	s := New()
	events := []*domain.Event{
		ev("r1", 1, 0, &domain.MemberJoinedData{User: "a", Session: "sa"}),
		ev("r1", 2, time.Second, &domain.MemberJoinedData{User: "b", Session: "sb"}),
		ev("r1", 3, 5*time.Minute+30*time.Second, &domain.MemberLeftData{User: "a", Session: "sa", Reason: domain.ReasonLogout}),
		ev("r2", 1, 0, &domain.MemberJoinedData{User: "x", Session: "sx"}),
		ev("r2", 2, time.Second, &domain.MemberJoinedData{User: "y", Session: "sy"}),
		ev("r2", 3, 2*time.Second, &domain.MemberJoinedData{User: "z", Session: "sz"}),
		ev("r2", 4, 10*time.Minute+30*time.Second, &domain.RoomDestroyedData{Reason: domain.DestroyBackend}),
	}
	for i, e := range events {
		s.Apply(cursor.Cursor{Seq: uint64(i + 1)}, e)
	}
	min0 := at.Unix() / 60
	r1, r2 := s.Rooms[Key("app", "r1")], s.Rooms[Key("app", "r2")]
	if got := r1.Concurrent[min0+5]; got != 2 {
		t.Errorf("room r1, minute 09:05 (a and b in the room until a left at 09:05:30): Concurrent %d, want 2 (all minutes: %v)",
			got, r1.Concurrent)
	}
	if got := r2.Concurrent[min0+10]; got != 3 {
		t.Errorf("room r2, minute 09:10 (three members until it was destroyed at 09:10:30): Concurrent %d, want 3 (all minutes: %v)",
			got, r2.Concurrent)
	}
}

// Both IDs may contain '/' (any UTF-8 text without control characters):
// room "b/c" of app "a" and room "c" of app "a/b" are two rooms, and their
// figures must not be added together.
func TestRoomsOfDifferentAppsAreNotMerged(t *testing.T) {
	at := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	for _, ids := range [][2]domain.AppID{{"a", "b/c"}, {"a/b", "c"}} {
		if err := domain.ValidateAppID(ids[0]); err != nil {
			t.Fatal(err)
		}
		if err := domain.ValidateRoomID(domain.RoomID(ids[1])); err != nil {
			t.Fatal(err)
		}
	}
	s := New()
	s.Apply(cursor.Cursor{Seq: 1}, &domain.Event{Type: domain.RoomMemberJoined, App: "a", Aggregate: domain.KindRoom,
		AggregateID: "b/c", Seq: 1, Time: at, Data: &domain.MemberJoinedData{User: "u1", Session: "s1"}})
	s.Apply(cursor.Cursor{Seq: 2}, &domain.Event{Type: domain.RoomMemberJoined, App: "a/b", Aggregate: domain.KindRoom,
		AggregateID: "c", Seq: 1, Time: at, Data: &domain.MemberJoinedData{User: "u2", Session: "s2"}})
	if len(s.Rooms) != 2 {
		var got []string
		for k, r := range s.Rooms {
			got = append(got, k+" = app "+string(r.App)+" room "+string(r.Room)+" members "+strconv.Itoa(len(r.Members)))
		}
		t.Fatalf("two rooms of two apps joined by one user each; stats hold %d room(s): %q", len(s.Rooms), got)
	}
	for _, ids := range [][3]string{{"a", "b/c", "u1"}, {"a/b", "c", "u2"}} {
		r := s.Rooms[Key(domain.AppID(ids[0]), domain.RoomID(ids[1]))]
		if r == nil || string(r.App) != ids[0] || string(r.Room) != ids[1] || len(r.Members) != 1 || r.Members[domain.UserID(ids[2])].IsZero() {
			t.Errorf("app %q room %q: %+v, want %s alone in it", ids[0], ids[1], r, ids[2])
		}
	}
}

// A state saved before rooms were keyed by Key ("<app>/<room>") still
// loads: its rooms are keyed by Key, and the events that follow count in
// them rather than in new rooms.
func TestStateSavedWithOldRoomKeysLoads(t *testing.T) {
	at := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	old := `{"cursor":"1","events":1,"rooms":{"app/r/1":{"app":"app","room":"r/1","members":{"a":"2026-11-21T09:00:00Z"},` +
		`"peak":1,"concurrent":{"29920860":1},"joins":1,"leaves":0,"messages":0,"streams_published":0}},` +
		`"minutes":{"29920860":{"messages":0,"joins":1,"leaves":0}},"leaves":{},"durations":[0,0,0,0,0,0,0,0,0,0],` +
		`"duration_sum_s":0,"streams_published":0}`
	s := New()
	if err := json.Unmarshal([]byte(old), s); err != nil {
		t.Fatal(err)
	}
	r := s.Rooms[Key("app", "r/1")]
	if len(s.Rooms) != 1 || r == nil || r.Joins != 1 || len(r.Members) != 1 {
		t.Fatalf("rooms loaded from the old state: %v, want room r/1 of app under %q", s.Rooms, Key("app", "r/1"))
	}
	s.Apply(cursor.Cursor{Seq: 2}, &domain.Event{Type: domain.RoomMemberJoined, App: "app", Aggregate: domain.KindRoom,
		AggregateID: "r/1", Seq: 2, Time: at.Add(time.Second), Data: &domain.MemberJoinedData{User: "b", Session: "sb"}})
	if len(s.Rooms) != 1 || r.Joins != 2 || r.Peak != 2 {
		t.Fatalf("a join after loading: rooms %v, room r/1 %+v; want one room with 2 joins", s.Rooms, r)
	}
	// Saved and loaded again, it is the same.
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	again := New()
	if err := json.Unmarshal(b, again); err != nil {
		t.Fatal(err)
	}
	if b2, _ := json.Marshal(again); string(b2) != string(b) {
		t.Errorf("saved and loaded again:\n%s\nwant\n%s", b2, b)
	}
}

// stored is e as read from the log: message seq, stored at at.
func stored(seq uint64, at time.Time, e *domain.Event) cursor.Event {
	return cursor.Event{Cursor: cursor.Cursor{Seq: seq}, Event: e, Record: &eventstore.Record{Seq: seq, Time: at}}
}

// churn folds (Fold, each event stored when stamped) days of short-lived
// rooms into s from seq on: every hour
// twenty rooms are created, two members each join, talk and leave, and the
// room is destroyed. One member stays in room "lobby" all along.
func churn(s *Stats, start time.Time, from, days int, seq *uint64) {
	ev := func(room string, at time.Time, p domain.Payload) {
		*seq++
		s.Fold(stored(*seq, at, &domain.Event{Type: p.EventType(), App: "app", Aggregate: domain.KindRoom,
			AggregateID: room, Seq: *seq, Time: at, Data: p}))
	}
	for h := from * 24; h < (from+days)*24; h++ {
		at := start.Add(time.Duration(h) * time.Hour)
		if h == 0 {
			ev("lobby", at, &domain.MemberJoinedData{User: "host", Session: "sh"})
		}
		for i := range 20 {
			room := "r" + strconv.Itoa(h) + "-" + strconv.Itoa(i)
			t := at.Add(time.Duration(i) * time.Minute)
			ev(room, t, &domain.MemberJoinedData{User: "a", Session: "sa"})
			ev(room, t.Add(time.Second), &domain.MemberJoinedData{User: "b", Session: "sb"})
			ev(room, t.Add(2*time.Second), &domain.BroadcastSentData{From: "a", Body: "hi"})
			ev(room, t.Add(3*time.Minute), &domain.MemberLeftData{User: "a", Session: "sa", Reason: domain.ReasonLogout})
			ev(room, t.Add(4*time.Minute), &domain.RoomDestroyedData{Reason: domain.DestroyEmpty})
		}
		ev("lobby", at.Add(30*time.Minute), &domain.BroadcastSentData{From: "host", Body: "still here"})
	}
}

// An analytics consumer runs for months: its state must follow the log's
// recent past, not its whole history. Thirty days of churn (14,400 rooms,
// each created and destroyed within minutes) leave the stats no larger than
// ten days did: rooms and minutes older than Keep are gone, while the totals
// count every event and the room that still has a member is kept.
func TestStatsStayFlatOverWeeksOfChurn(t *testing.T) {
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	s := New()
	var seq uint64
	size := func() int {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	churn(s, start, 0, 10, &seq)
	rooms10, minutes10, size10 := len(s.Rooms), len(s.Minutes), size()
	churn(s, start, 10, 20, &seq)
	rooms30, minutes30, size30 := len(s.Rooms), len(s.Minutes), size()
	t.Logf("after 10 days: %d rooms, %d minutes, %d bytes; after 30: %d rooms, %d minutes, %d bytes",
		rooms10, minutes10, size10, rooms30, minutes30, size30)

	// Keep (7 days) and an eighth of it, at 20 rooms an hour, plus the lobby.
	keptHours := int((DefaultKeep + DefaultKeep/8) / time.Hour)
	if most := 20*(keptHours+1) + 1; rooms30 > most {
		t.Errorf("30 days of churn left %d rooms, want at most %d (7 days and 3 hours of them)", rooms30, most)
	}
	if most := int((DefaultKeep+DefaultKeep/8)/time.Minute) + 60; minutes30 > most {
		t.Errorf("30 days of churn left %d minutes, want at most %d", minutes30, most)
	}
	if size30 > size10*11/10 {
		t.Errorf("the state grew from %d bytes after 10 days to %d after 30", size10, size30)
	}
	lobby := s.Rooms[Key("app", "lobby")]
	if lobby == nil || len(lobby.Members) != 1 || lobby.Messages != 30*24 {
		t.Fatalf("the lobby, with its host in it all along: %+v", lobby)
	}
	if _, ok := lobby.Concurrent[start.Unix()/60]; ok {
		t.Errorf("the lobby still has its first minute's figure %v", lobby.Concurrent)
	}
	if old := s.Rooms[Key("app", "r0-0")]; old != nil {
		t.Errorf("the first hour's room is still there: %+v", old)
	}
	if recent := s.Rooms[Key("app", "r719-19")]; recent == nil || recent.Joins != 2 || recent.Messages != 1 {
		t.Errorf("the last hour's room: %+v", recent)
	}
	rooms := uint64(30 * 24 * 20)
	if s.Events != seq || s.Leaves[domain.ReasonLogout] != rooms || s.Leaves[domain.ReasonRoomDestroyed] != rooms {
		t.Errorf("totals: %d events of %d, leaves %v; want every room's two leaves counted", s.Events, seq, s.Leaves)
	}
	var n uint64
	for _, c := range s.Durations {
		n += c
	}
	if n != 2*rooms {
		t.Errorf("durations count %d leaves, want %d", n, 2*rooms)
	}

	// Saved and loaded, it goes on dropping: another 10 days keep it flat.
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	s = New()
	if err := json.Unmarshal(b, s); err != nil {
		t.Fatal(err)
	}
	churn(s, start, 30, 10, &seq)
	if got := size(); got > size10*11/10 {
		t.Errorf("loaded and folded 10 more days, the state is %d bytes, against %d after the first 10", got, size10)
	}
}

// Keep 0 keeps everything (an operator who moves the history elsewhere
// before it grows).
func TestKeepZeroKeepsEverything(t *testing.T) {
	s := New()
	s.Keep = 0
	var seq uint64
	churn(s, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), 0, 10, &seq)
	if want := 10*24*20 + 1; len(s.Rooms) != want {
		t.Errorf("%d rooms, want all %d", len(s.Rooms), want)
	}
}

// A consumer killed and started again from its saved state drops what one
// that never stopped drops: the same log gives the same stats, whatever
// the restarts. Before, the point of the last drop was not saved, and a
// restart after 3 days left 3,481 rooms where the other had 3,661.
func TestARestartedConsumerDropsWhatAnUninterruptedOneDoes(t *testing.T) {
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var seqA, seqB uint64
	a := New()
	churn(a, start, 0, 12, &seqA)

	b := New()
	churn(b, start, 0, 3, &seqB)
	saved, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	b = New()
	if err := json.Unmarshal(saved, b); err != nil {
		t.Fatal(err)
	}
	churn(b, start, 3, 9, &seqB)

	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if seqA != seqB || string(ja) != string(jb) {
		t.Errorf("the same log: uninterrupted %d rooms, %d minutes (%d bytes); restarted once %d rooms, %d minutes (%d bytes)",
			len(a.Rooms), len(a.Minutes), len(ja), len(b.Rooms), len(b.Minutes), len(jb))
	}
}

// Event time is the writing node's clock. One event stamped a month ahead
// (a node whose clock jumped) moves the stats' time an eighth of Keep at
// most: the room that ended an hour before is still there. Before, the
// drop it set off left 2 rooms and 1 minute of two days of churn.
func TestOneEventStampedFarAheadDoesNotDropTheWeek(t *testing.T) {
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var seq uint64
	s := New()
	churn(s, start, 0, 2, &seq)
	seq++
	p := &domain.MemberJoinedData{User: "z", Session: "sz"}
	s.Apply(cursor.Cursor{Seq: seq}, &domain.Event{Type: p.EventType(), App: "app", Aggregate: domain.KindRoom,
		AggregateID: "skewed", Time: start.Add(32 * 24 * time.Hour), Data: p})
	if s.Rooms[Key("app", "r47-19")] == nil {
		t.Errorf("the room that ended an hour before the skewed event was dropped; %d rooms and %d minutes left",
			len(s.Rooms), len(s.Minutes))
	}
	// The stats' time caught up with the skewed stamp by an eighth of Keep.
	if got, want := s.Now, (start.Add(2*24*time.Hour).Unix()/60)+int64(DefaultKeep/time.Minute/8); got > want {
		t.Errorf("Now is %d, more than an eighth of Keep past the last event before the skewed one (%d)", got, want)
	}
}

// A node whose clock is a month ahead writes every event of its own so.
// Folded with their records (as roomstats does), the stats' time is the
// log's own (the messages' storage times): nine such events leave the
// week, the room that ended an hour before them included, and count in the
// minute they were stored in, not a month ahead (the page's range would
// span the month). Found by the second reader: with only the events' own
// times, eight of them moved Now a whole Keep ahead and dropped the week.
func TestASkewedNodesEventsCountInTheLogsTime(t *testing.T) {
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var seq uint64
	s := New()
	churn(s, start, 0, 2, &seq)
	now := start.Add(48 * time.Hour)
	for i := range 9 { // a user joining and chatting through the skewed node
		seq++
		var p domain.Payload = &domain.BroadcastSentData{From: "z", Body: "hi"}
		if i == 0 {
			p = &domain.MemberJoinedData{User: "z", Session: "sz"}
		}
		s.Fold(stored(seq, now.Add(time.Duration(i)*time.Second), &domain.Event{Type: p.EventType(), App: "app",
			Aggregate: domain.KindRoom, AggregateID: "skewed", Time: now.Add(32*24*time.Hour + time.Duration(i)*time.Second), Data: p}))
	}
	if s.Rooms[Key("app", "r47-19")] == nil {
		t.Errorf("9 events from a node whose clock is a month ahead dropped the room that ended an hour before them; "+
			"%d rooms and %d minutes left", len(s.Rooms), len(s.Minutes))
	}
	var hi int64
	for m := range s.Minutes {
		hi = max(hi, m)
	}
	if want := now.Unix() / 60; hi != want || s.Now != want {
		t.Errorf("the latest minute is %v and Now %v after the skewed events, want both %v (when they were stored)",
			time.Unix(hi*60, 0).UTC(), time.Unix(s.Now*60, 0).UTC(), now)
	}
	if r := s.Rooms[Key("app", "skewed")]; r == nil || r.Messages != 8 || r.Members["z"] != now {
		t.Errorf("the skewed node's room: %+v, want 8 messages and z joined at %v", r, now)
	}
}

// On a JetStream cluster each stream leader stamps messages with its own
// clock, and a leader change moves the stamps to another server's. One
// message stored by a leader whose clock is a month ahead moves the stats'
// time an eighth of Keep at most: the week stays. Found by the second
// reader: storage times moved Now uncapped, and the week was dropped.
func TestOneMessageStoredFarAheadDoesNotDropTheWeek(t *testing.T) {
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var seq uint64
	s := New()
	churn(s, start, 0, 2, &seq)
	now := start.Add(48 * time.Hour)
	seq++
	p := &domain.BroadcastSentData{From: "z", Body: "hi"}
	s.Fold(cursor.Event{Cursor: cursor.Cursor{Seq: seq},
		Event:  &domain.Event{Type: p.EventType(), App: "app", Aggregate: domain.KindRoom, AggregateID: "lobby", Time: now, Data: p},
		Record: &eventstore.Record{Seq: seq, Time: now.Add(32 * 24 * time.Hour)}})
	if s.Rooms[Key("app", "r47-19")] == nil || len(s.Minutes) < 100 {
		t.Errorf("one message stored by a leader whose clock is a month ahead dropped the week: %d rooms, %d minutes "+
			"left, Now %v", len(s.Rooms), len(s.Minutes), time.Unix(s.Now*60, 0).UTC())
	}
}

// A state saved before Fold holds join times as the events stamped them (a
// node a month ahead: a join a month ahead). After the upgrade the leave,
// stamped by the same node, counts at its storage time: the stay counts as
// none, not a month negative. Found by the second reader.
func TestAJoinStampedAfterItsLeaveCountsNoNegativeStay(t *testing.T) {
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	skew := 30 * 24 * time.Hour
	old := New()
	j := &domain.MemberJoinedData{User: "z", Session: "sz"}
	old.Apply(cursor.Cursor{Seq: 1}, &domain.Event{Type: j.EventType(), App: "app", Aggregate: domain.KindRoom,
		AggregateID: "r", Time: start.Add(skew), Data: j})
	b, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	s := New()
	if err := json.Unmarshal(b, s); err != nil {
		t.Fatal(err)
	}
	l := &domain.MemberLeftData{User: "z", Session: "sz", Reason: domain.ReasonLogout}
	s.Fold(cursor.Event{Cursor: cursor.Cursor{Seq: 2},
		Event: &domain.Event{Type: l.EventType(), App: "app", Aggregate: domain.KindRoom, AggregateID: "r",
			Time: start.Add(skew + 10*time.Minute), Data: l},
		Record: &eventstore.Record{Seq: 2, Time: start.Add(10 * time.Minute)}})
	if s.DurationSum < 0 {
		t.Errorf("a stay of 10 minutes (join saved before the upgrade) counted %v s", s.DurationSum)
	}
}

// A stream leader whose clock is a month ahead stamps every message it
// stores. Ten of them, their events stamped right by the writing node, do
// not drop the week: the stats' time is what both clocks agree on. Found by
// the second reader: with a cap of an eighth of Keep per message, eight of
// them (milliseconds on a busy log) moved it the whole week.
func TestASkewedLeadersMessagesDoNotDropTheWeek(t *testing.T) {
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var seq uint64
	s := New()
	churn(s, start, 0, 2, &seq)
	now := start.Add(48 * time.Hour)
	rooms, minutes := len(s.Rooms), len(s.Minutes)
	for i := range 10 { // ten messages in the same second, under the skewed leader
		seq++
		p := &domain.BroadcastSentData{From: "z", Body: "hi " + strconv.Itoa(i)}
		s.Fold(cursor.Event{Cursor: cursor.Cursor{Seq: seq},
			Event:  &domain.Event{Type: p.EventType(), App: "app", Aggregate: domain.KindRoom, AggregateID: "lobby", Time: now, Data: p},
			Record: &eventstore.Record{Seq: seq, Time: now.Add(32 * 24 * time.Hour)}})
	}
	if s.Rooms[Key("app", "r47-19")] == nil || len(s.Minutes) < 100 {
		t.Errorf("ten messages stored by a leader whose clock is a month ahead dropped the week: %d of %d rooms, "+
			"%d of %d minutes left, Now %v", len(s.Rooms), rooms, len(s.Minutes), minutes, time.Unix(s.Now*60, 0).UTC())
	}
}

// A quiet log, one message a day: the stats' time keeps up with the log's,
// and a room quiet for 15 days is dropped. Found by the second reader: with
// a cap per message, Now fell 3 h further behind every day.
func TestAQuietLogsTimeKeepsUp(t *testing.T) {
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	s := New()
	var seq uint64
	const days = 60
	for d := range days {
		seq++
		at := start.Add(time.Duration(d) * 24 * time.Hour)
		p := &domain.BroadcastSentData{From: "z", Body: "daily"}
		room := "day" + strconv.Itoa(d)
		s.Fold(cursor.Event{Cursor: cursor.Cursor{Seq: seq},
			Event:  &domain.Event{Type: p.EventType(), App: "app", Aggregate: domain.KindRoom, AggregateID: room, Time: at, Data: p},
			Record: &eventstore.Record{Seq: seq, Time: at}})
	}
	last := start.Add((days - 1) * 24 * time.Hour)
	lag := last.Sub(time.Unix(s.Now*60, 0))
	if lag > s.Keep/8 {
		t.Errorf("after %d daily messages the stats' time is %v behind the log's last storage time", days, lag)
	}
	old := "day" + strconv.Itoa(days-1-15)
	if s.Rooms[Key("app", domain.RoomID(old))] != nil {
		t.Errorf("room %s, quiet for 15 days (Keep %v), is still held; %d rooms held", old, s.Keep, len(s.Rooms))
	}
}

// After a month without a message, the first message drops what the month
// made older than Keep (with a cap per message, it took eight).
func TestTheFirstMessageAfterAQuietMonthDropsTheOldWeek(t *testing.T) {
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var seq uint64
	s := New()
	churn(s, start, 0, 2, &seq)
	later := start.Add(32 * 24 * time.Hour)
	n := 0
	for s.Rooms[Key("app", "r47-19")] != nil && n < 100 {
		n++
		seq++
		p := &domain.BroadcastSentData{From: "z", Body: "back"}
		s.Fold(cursor.Event{Cursor: cursor.Cursor{Seq: seq},
			Event:  &domain.Event{Type: p.EventType(), App: "app", Aggregate: domain.KindRoom, AggregateID: "lobby", Time: later, Data: p},
			Record: &eventstore.Record{Seq: seq, Time: later}})
	}
	if n > 1 {
		t.Errorf("after a quiet month it took %d messages to drop rooms a month old (Now %v behind)", n,
			later.Sub(time.Unix(s.Now*60, 0)))
	}
}
