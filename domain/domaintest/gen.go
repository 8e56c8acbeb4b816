// Package domaintest generates random command sequences over a population of
// users, sessions, rooms and streams, for determinism, race and load tests.
// Most generated commands are valid for the state the generator believes in;
// some are refused, which tests that refusals change nothing.
package domaintest

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/roomlog/roomlog/domain"
)

// Config sizes a population.
type Config struct {
	Users           int // distinct user IDs
	SessionsPerUser int // sessions per user (several: duplicate logins, one connection per room)
	Rooms           int
	Streams         int // distinct stream IDs
	MultiRoom       bool
	// Weird makes IDs contain '.', '*', '>', spaces and non-ASCII text.
	Weird bool
}

// Gen generates commands. It is not safe for concurrent use.
type Gen struct {
	cfg   Config
	rnd   *rand.Rand
	users []domain.User
	// rooms the generator believes each session is in (from Observe).
	in map[domain.SessionID]map[domain.RoomID]bool
	// streams it believes each session publishes.
	pub map[domain.SessionID]map[domain.StreamID]bool
}

// New returns a generator seeded with seed.
func New(cfg Config, seed uint64) *Gen {
	g := &Gen{cfg: cfg, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		in: map[domain.SessionID]map[domain.RoomID]bool{}, pub: map[domain.SessionID]map[domain.StreamID]bool{}}
	for u := range cfg.Users {
		g.users = append(g.users, domain.User{ID: domain.UserID(g.id("user", u)), Name: fmt.Sprint("User ", u)})
	}
	return g
}

func (g *Gen) id(kind string, i int) string {
	if !g.cfg.Weird {
		return fmt.Sprintf("%s-%d", kind, i)
	}
	weird := []string{"%s.%d", "%s *%d", "%s>%d", "%s 房间 %d", "%s.*.>%d"}
	return fmt.Sprintf(weird[i%len(weird)], kind, i)
}

// Session returns the i-th session of user u.
func (g *Gen) Session(u, i int) domain.SessionID {
	return domain.SessionID(fmt.Sprintf("sess-%d-%d", u, i))
}

// Room returns the i-th room.
func (g *Gen) Room(i int) domain.RoomID { return domain.RoomID(g.id("room", i)) }

// Stream returns the i-th stream ID.
func (g *Gen) Stream(i int) domain.StreamID { return domain.StreamID(g.id("stream", i)) }

// User returns the i-th user.
func (g *Gen) User(i int) domain.User { return g.users[i] }

func (g *Gen) mode() domain.RoomMode {
	if g.cfg.MultiRoom {
		return domain.MultiRoom
	}
	return domain.SingleRoom
}

// pick returns a random (user index, session) pair.
func (g *Gen) pick() (int, domain.SessionID) {
	u := g.rnd.IntN(g.cfg.Users)
	return u, g.Session(u, g.rnd.IntN(g.cfg.SessionsPerUser))
}

// roomOf returns a room the session is believed to be in, or a random one.
func (g *Gen) roomOf(s domain.SessionID) domain.RoomID {
	if rooms := slices.Sorted(maps.Keys(g.in[s])); len(rooms) > 0 && g.rnd.IntN(4) > 0 {
		return rooms[g.rnd.IntN(len(rooms))]
	}
	return g.Room(g.rnd.IntN(g.cfg.Rooms))
}

// Next returns a random command.
func (g *Gen) Next() domain.Command {
	u, s := g.pick()
	user := g.users[u]
	grant := domain.Grant{User: user.ID, AllRooms: true, CanPublish: g.rnd.IntN(10) > 0}
	room := g.roomOf(s)
	join := func(r domain.RoomID, via domain.Via, create domain.CreatePolicy) domain.Command {
		role := domain.Anchor
		if g.rnd.IntN(4) == 0 {
			role = domain.Audience
		}
		cfg := domain.RoomConfig{}
		if via == domain.ViaCreate || via == domain.ViaEnter {
			cfg.DestroyDelay = g.rnd.IntN(3) * 30
			if g.rnd.IntN(2) == 0 {
				cfg.Attributes = map[string]string{"k": fmt.Sprint(g.rnd.IntN(100))}
			}
			if g.rnd.IntN(4) == 0 {
				cfg.MaxMembers = 1 + g.rnd.IntN(3)
			}
		}
		return domain.JoinRoom{Session: s, User: user, Mode: g.mode(), Room: r, Role: role, Grant: grant,
			Create: create, Config: cfg, Via: via}
	}
	switch n := g.rnd.IntN(100); {
	case n < 18:
		return join(g.Room(g.rnd.IntN(g.cfg.Rooms)), domain.ViaLogin, domain.CreateIfMissing)
	case n < 21:
		return join(g.Room(g.rnd.IntN(g.cfg.Rooms)), domain.ViaCreate, domain.CreateRequired)
	case n < 24:
		return join(g.Room(g.rnd.IntN(g.cfg.Rooms)), domain.ViaJoin, domain.CreateNever)
	case n < 27:
		return join(g.Room(g.rnd.IntN(g.cfg.Rooms)), domain.ViaEnter, domain.CreateIfMissing)
	case n < 33:
		return domain.LeaveRoom{Session: s, Room: room, Reason: domain.ReasonLogout}
	case n < 35:
		return domain.LeaveRoom{Session: s, Reason: domain.ReasonLeave}
	case n < 40:
		return domain.SwitchRoom{Session: s, From: room, To: g.Room(g.rnd.IntN(g.cfg.Rooms)), Grant: grant,
			Create: domain.CreateIfMissing}
	case n < 48:
		st := g.Stream(g.rnd.IntN(g.cfg.Streams))
		return domain.PublishStream{Session: s, Stream: st, Room: room, ExtraInfo: fmt.Sprint(g.rnd.IntN(9))}
	case n < 52:
		return domain.StopPublishing{Session: s, Stream: g.pubOf(s)}
	case n < 54:
		return domain.SetStreamExtraInfo{Session: s, Stream: g.pubOf(s), ExtraInfo: fmt.Sprint("x", g.rnd.IntN(9))}
	case n < 59:
		return domain.PlayStream{Session: s, Stream: g.Stream(g.rnd.IntN(g.cfg.Streams)), Room: room}
	case n < 61:
		return domain.StopPlaying{Session: s, Stream: g.Stream(g.rnd.IntN(g.cfg.Streams))}
	case n < 73:
		return domain.SendBroadcast{Session: s, Room: room, Body: fmt.Sprint("hello ", g.rnd.IntN(1000))}
	case n < 79:
		var to []domain.UserID
		for range g.rnd.IntN(3) {
			to = append(to, g.users[g.rnd.IntN(g.cfg.Users)].ID)
		}
		return domain.SendCustomCommand{Session: s, Room: room, To: to, Body: "cmd"}
	case n < 84:
		return domain.SetRoomExtraInfo{Session: s, Room: room, Key: fmt.Sprint("k", g.rnd.IntN(3)), Value: fmt.Sprint(g.rnd.IntN(99))}
	case n < 87:
		if g.rnd.IntN(3) == 0 {
			return domain.SetMemberAttributes{Session: s, Room: room, Users: []domain.UserID{g.users[g.rnd.IntN(g.cfg.Users)].ID},
				Set: map[string]string{fmt.Sprint("m", g.rnd.IntN(3)): fmt.Sprint(g.rnd.IntN(9))}, Delete: []string{fmt.Sprint("m", g.rnd.IntN(3))}}
		}
		flags := g.rnd.IntN(16)
		return domain.SetRoomAttributes{Session: s, Room: room, Set: map[string]string{fmt.Sprint("a", g.rnd.IntN(4)): "v"},
			Delete: []string{fmt.Sprint("a", g.rnd.IntN(4))}, Force: flags&1 != 0, DeleteAfterOwnerLeft: flags&2 != 0,
			UpdateOwner: flags&4 != 0, Batch: flags&8 != 0}
	case n < 90:
		return domain.KickUser{Room: room, User: g.users[g.rnd.IntN(g.cfg.Users)].ID}
	case n < 91:
		return domain.DestroyRoom{Room: room}
	case n < 94:
		return domain.ExpireRoom{Room: g.Room(g.rnd.IntN(g.cfg.Rooms))}
	case n < 96:
		return domain.TimeoutSession{Session: s}
	default:
		return domain.SendBarrage{Session: s, Room: room, Body: "666"}
	}
}

func (g *Gen) pubOf(s domain.SessionID) domain.StreamID {
	if streams := slices.Sorted(maps.Keys(g.pub[s])); len(streams) > 0 {
		return streams[g.rnd.IntN(len(streams))]
	}
	return g.Stream(g.rnd.IntN(g.cfg.Streams))
}

// Advance returns a random time step: mostly small, sometimes long enough for
// destroy delays to run out.
func (g *Gen) Advance() time.Duration {
	if g.rnd.IntN(50) == 0 {
		return time.Duration(30+g.rnd.IntN(90)) * time.Second
	}
	return time.Duration(g.rnd.IntN(300)) * time.Millisecond
}

// Observe teaches the generator what a command did, from the events it
// appended, so that later commands are mostly valid.
func (g *Gen) Observe(events []domain.Event) {
	for _, e := range events {
		switch d := e.Data.(type) {
		case *domain.MemberJoinedData:
			if g.in[d.Session] == nil {
				g.in[d.Session] = map[domain.RoomID]bool{}
			}
			g.in[d.Session][domain.RoomID(e.AggregateID)] = true
		case *domain.MemberLeftData:
			delete(g.in[d.Session], domain.RoomID(e.AggregateID))
		case *domain.RoomDestroyedData:
			for _, m := range d.Members {
				delete(g.in[m.Session], domain.RoomID(e.AggregateID))
			}
		case *domain.StreamPublishedData:
			if g.pub[d.Session] == nil {
				g.pub[d.Session] = map[domain.StreamID]bool{}
			}
			g.pub[d.Session][d.Stream] = true
		case *domain.StreamStoppedData:
			delete(g.pub[d.Session], d.Stream)
		}
	}
}
