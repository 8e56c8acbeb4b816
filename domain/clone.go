package domain

import "maps"

// Clone returns a deep copy of the room: folding into one never changes the other.
func (r *Room) Clone() *Room {
	c := *r
	c.Attributes = maps.Clone(r.Attributes)
	c.AttributeMeta = maps.Clone(r.AttributeMeta)
	c.ExtraInfo = maps.Clone(r.ExtraInfo)
	c.Voided = maps.Clone(r.Voided)
	c.Rates.CommandToOne = maps.Clone(r.Rates.CommandToOne)
	if r.Members != nil {
		c.Members = make(map[UserID]*Member, len(r.Members))
		for u, m := range r.Members {
			mc := *m
			mc.Playing = maps.Clone(m.Playing)
			mc.Publishing = maps.Clone(m.Publishing)
			mc.Attributes = maps.Clone(m.Attributes)
			c.Members[u] = &mc
		}
	}
	if r.Streams != nil {
		c.Streams = make(map[StreamID]*Stream, len(r.Streams))
		for id, s := range r.Streams {
			sc := *s
			c.Streams[id] = &sc
		}
	}
	return &c
}

// Clone returns a deep copy of the session.
func (s *Session) Clone() *Session {
	c := *s
	c.Claims = maps.Clone(s.Claims)
	return &c
}

// Clone returns a copy of the registry entry.
func (s *StreamEntry) Clone() *StreamEntry {
	c := *s
	return &c
}
