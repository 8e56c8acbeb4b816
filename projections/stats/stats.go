// Package stats folds room events into analytics: concurrent users per room
// over time, session durations, messages per minute, leaves and kicks by
// reason, streams published. cmd/roomstats keeps one up to date from the log
// through a watermill consumer (package consume) and serves it.
//
// A Stats is a pure fold keyed by cursor: Apply ignores an event at or
// before the cursor it has reached, so a consumer that restarts from the
// state it saved (cursor included) neither loses nor double-counts.
//
// Its size follows the log's recent past, not its whole history: per-minute
// figures older than Keep, and rooms without members whose last event is
// older than Keep, are dropped as the log's time moves on (the messages'
// storage times, not the consumer's clock: a replay drops the same). The
// totals (events, leaves by reason, durations, streams published) count
// everything.
package stats

import (
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/projections/cursor"
)

// DefaultKeep is how long New's stats keep per-minute figures and rooms that
// have gone quiet.
const DefaultKeep = 7 * 24 * time.Hour

// DurationBuckets are the upper bounds, in seconds, of the session duration
// histogram (time in one room, from join to leave).
var DurationBuckets = []float64{10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600}

// Stats is the analytics state. It is plain data: encode it with
// encoding/json to save it, with its cursor, in one write.
type Stats struct {
	// Cursor is the last event folded.
	Cursor cursor.Cursor `json:"cursor"`
	// Events counts the room events folded.
	Events uint64 `json:"events"`
	// Rooms holds each room's figures, by Key(app, room).
	Rooms map[string]*Room `json:"rooms"`
	// Minutes holds the log's figures per minute (Unix time / 60).
	Minutes map[int64]*Minute `json:"minutes"`
	// Leaves counts members leaving rooms by reason (kicks, timeouts and
	// destroyed rooms included).
	Leaves map[domain.Reason]uint64 `json:"leaves"`
	// Durations is the histogram of time spent in a room: counts per
	// DurationBuckets bound (the last, past every bound), and their sum.
	Durations   []uint64 `json:"durations"`
	DurationSum float64  `json:"duration_sum_s"`
	// StreamsPublished counts streams published, in every room.
	StreamsPublished uint64 `json:"streams_published"`

	// Now is the log's time as the stats see it (a minute: Unix time /
	// 60). Folded with their records (Fold), it is the latest time two
	// clocks agree on, the stream leader's that stored a message and the
	// node's that wrote its event (the earlier of the storage time and a
	// minute past the event's), so that neither clock alone, far ahead,
	// can drop the last week. Folded without (Apply), it is the latest
	// event's own time, which one event moves at most an eighth of Keep.
	// Pruned is the Now at which old figures were last dropped. Both are
	// saved, so a consumer restarted from its state drops what one that
	// never stopped would.
	Now    int64 `json:"now_minute,omitempty"`
	Pruned int64 `json:"pruned_minute,omitempty"`

	// Keep is how far back, in the log's time, per-minute figures are kept
	// (Minutes, Room.Concurrent), and how long a room without members is
	// kept after its last event; 0 keeps everything. It is not saved with
	// the state: the consumer sets it.
	Keep time.Duration `json:"-"`

	// The room and minute of the last event: most events follow one of
	// the same room or minute, and a map lookup with a built key costs
	// more than the fold itself.
	lastRoom   *Room
	lastMinute *Minute
	lastMin    int64
}

// Room is one room's figures.
type Room struct {
	App  domain.AppID  `json:"app"`
	Room domain.RoomID `json:"room"`
	// Members maps who is in the room now to when they joined.
	Members map[domain.UserID]time.Time `json:"members"`
	// Peak is the most members the room had at once.
	Peak int `json:"peak"`
	// Concurrent is the most members at once, per minute that saw a change.
	Concurrent map[int64]int `json:"concurrent"`
	Joins      uint64        `json:"joins"`
	Leaves     uint64        `json:"leaves"`
	Messages   uint64        `json:"messages"`
	Streams    uint64        `json:"streams_published"`
	// Last is the minute of the room's last event.
	Last int64 `json:"last_minute"`
}

// Minute is the log's figures for one minute.
type Minute struct {
	Messages uint64 `json:"messages"`
	Joins    uint64 `json:"joins"`
	Leaves   uint64 `json:"leaves"`
}

// Key returns the key of a room in Stats.Rooms:
// "<Token(app)>/<Token(room)>" (eventstore.Token, base64url), so that IDs
// holding '/' name one room each.
func Key(app domain.AppID, room domain.RoomID) string {
	return eventstore.Token(string(app)) + "/" + eventstore.Token(string(room))
}

// UnmarshalJSON decodes saved stats and keys the rooms by Key, so that a
// state saved with rooms keyed "<app>/<room>" (before Key) still loads.
func (s *Stats) UnmarshalJSON(b []byte) error {
	type plain Stats // without this method
	if err := json.Unmarshal(b, (*plain)(s)); err != nil {
		return err
	}
	rooms := make(map[string]*Room, len(s.Rooms))
	for _, r := range s.Rooms {
		if r == nil {
			continue
		}
		if r.Members == nil {
			r.Members = map[domain.UserID]time.Time{}
		}
		if r.Concurrent == nil {
			r.Concurrent = map[int64]int{}
		}
		if r.Last == 0 { // saved before Last: its latest minute on record
			for m := range r.Concurrent {
				r.Last = max(r.Last, m)
			}
		}
		rooms[Key(r.App, r.Room)] = r
	}
	s.Rooms, s.lastRoom, s.lastMinute = rooms, nil, nil
	if s.Now == 0 { // saved before Now: its latest minute on record
		for m := range s.Minutes {
			s.Now = max(s.Now, m)
		}
		s.Pruned = s.Now
	}
	return nil
}

// New returns empty stats that keep DefaultKeep of the past.
func New() *Stats {
	return &Stats{Rooms: map[string]*Room{}, Minutes: map[int64]*Minute{}, Leaves: map[domain.Reason]uint64{},
		Durations: make([]uint64, len(DurationBuckets)+1), Keep: DefaultKeep}
}

// Apply folds one event, unless its cursor is at or before the one the
// stats reached (a redelivery): it reports whether it counted. The event's
// own time, the writing node's clock, is the stats' time: prefer Fold for
// events read from the log.
func (s *Stats) Apply(c cursor.Cursor, e *domain.Event) bool {
	return s.apply(c, e, time.Time{})
}

// Fold is Apply for an event read from the log (a consumer's, or
// cursor.Read's): the message's storage timestamp keeps the stats' time
// with the event's own (see Now), and an event stamped more than a minute
// after it was stored (its node's clock ahead) counts at the time it was
// stored.
func (s *Stats) Fold(ev cursor.Event) bool {
	var stored time.Time
	if ev.Record != nil {
		stored = ev.Record.Time
	}
	return s.apply(ev.Cursor, ev.Event, stored)
}

func (s *Stats) apply(c cursor.Cursor, e *domain.Event, stored time.Time) bool {
	if !s.Cursor.Less(c) {
		return false
	}
	s.Cursor = c
	if e.Aggregate != domain.KindRoom {
		return true
	}
	s.Events++
	r := s.lastRoom
	if r == nil || r.App != e.App || string(r.Room) != e.AggregateID {
		key := Key(e.App, domain.RoomID(e.AggregateID))
		if r = s.Rooms[key]; r == nil {
			r = &Room{App: e.App, Room: domain.RoomID(e.AggregateID), Members: map[domain.UserID]time.Time{}, Concurrent: map[int64]int{}}
			s.Rooms[key] = r
		}
		s.lastRoom = r
	}
	at := e.Time
	if !stored.IsZero() && at.Sub(stored) > time.Minute {
		at = stored
	}
	minute := at.Unix() / 60
	r.Last = max(r.Last, minute)
	if stored.IsZero() {
		s.advance(minute, true)
	} else {
		// The log's time as two clocks agree: the stream leader's that
		// stored the message, and the writing node's, give or take a
		// minute. Either clock alone ahead moves Now no further.
		s.advance(min(stored.Unix(), e.Time.Add(time.Minute).Unix())/60, false)
	}
	m := s.lastMinute
	if m == nil || minute != s.lastMin {
		if m = s.Minutes[minute]; m == nil {
			m = &Minute{}
			s.Minutes[minute] = m
		}
		s.lastMinute, s.lastMin = m, minute
	}
	switch d := e.Data.(type) {
	case *domain.MemberJoinedData:
		r.Members[d.User] = at
		r.Joins++
		m.Joins++
		r.Peak = max(r.Peak, len(r.Members))
		r.Concurrent[minute] = max(r.Concurrent[minute], len(r.Members))
	case *domain.MemberLeftData:
		s.leave(r, m, minute, d.User, d.Reason, at)
	case *domain.RoomDestroyedData:
		for _, u := range slices.Sorted(maps.Keys(r.Members)) {
			s.leave(r, m, minute, u, domain.ReasonRoomDestroyed, at)
		}
	case *domain.BroadcastSentData, *domain.CustomCommandSentData:
		r.Messages++
		m.Messages++
	case *domain.StreamPublishedData:
		r.Streams++
		s.StreamsPublished++
	}
	return true
}

// advance moves Now to minute if it is later, at most a step at once if
// capped (minute is an event's own time: one node's clock, which may be far
// ahead), and drops what is then older than Keep.
func (s *Stats) advance(minute int64, capped bool) {
	if minute <= s.Now {
		return
	}
	if step := s.step(); capped && s.Now != 0 && step > 0 {
		s.Now = min(minute, s.Now+step)
	} else {
		s.Now = minute
	}
	s.prune()
}

// step is an eighth of Keep, in minutes (0: Keep is 0, nothing is dropped).
func (s *Stats) step() int64 {
	keep := int64(s.Keep / time.Minute)
	if keep <= 0 {
		return 0
	}
	return max(keep/8, 1)
}

// prune drops the figures older than Keep before Now: the minutes, each
// room's concurrent users per minute, and the rooms without members whose
// last event is that old. It walks everything, so it runs once every step
// of the log's time: the stats hold at most Keep and an eighth of it.
func (s *Stats) prune() {
	step := s.step()
	if step == 0 || s.Now-s.Pruned < step {
		return
	}
	s.Pruned = s.Now
	cutoff := s.Now - int64(s.Keep/time.Minute)
	for m := range s.Minutes {
		if m < cutoff {
			delete(s.Minutes, m)
		}
	}
	for key, r := range s.Rooms {
		if len(r.Members) == 0 && r.Last < cutoff {
			delete(s.Rooms, key)
			continue
		}
		for m := range r.Concurrent {
			if m < cutoff {
				delete(r.Concurrent, m)
			}
		}
	}
	s.lastRoom, s.lastMinute = nil, nil
}

func (s *Stats) leave(r *Room, m *Minute, minute int64, u domain.UserID, reason domain.Reason, at time.Time) {
	joined, ok := r.Members[u]
	if !ok {
		return
	}
	// The members present until the leave count for its minute.
	r.Concurrent[minute] = max(r.Concurrent[minute], len(r.Members))
	delete(r.Members, u)
	r.Leaves++
	m.Leaves++
	s.Leaves[reason]++
	// A join stamped after its leave (clocks that disagree: nodes', or a
	// join saved before Fold counted the stored time) stayed no time.
	d := max(at.Sub(joined).Seconds(), 0)
	s.DurationSum += d
	i, _ := slices.BinarySearch(DurationBuckets, d)
	s.Durations[i]++
}
