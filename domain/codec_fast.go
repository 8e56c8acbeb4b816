package domain

import (
	"strconv"

	jsonv2 "github.com/go-json-experiment/json"
)

// The fast path reads messages in exactly the layout appendEvent writes
// (members in its order, no white space) with plain byte scanning, and only
// the payload goes through a JSON decoder. Anything else (another writer's
// layout, white space, an unexpected member) makes it decline, and the
// general decoder reads the message instead; FuzzFastDecodeMatchesGeneral
// holds the two to the same result. It exists because replaying the log is
// mostly decoding: it roughly halves the cost of a rebuild.

// fastMessage decodes a message body written by EncodeEvents. ok is false if
// the body is not in that layout (then nothing is decided about its validity).
func fastMessage(body []byte, hashes bool) (events []Event, sums []string, ok bool, err error) {
	if len(body) < 2 || body[0] != '[' || body[len(body)-1] != ']' {
		return nil, nil, false, nil
	}
	i := 1
	for {
		start := i
		var e Event
		end, ok, err := e.fastDecode(body, i, hashes)
		if !ok || err != nil {
			return nil, nil, ok, err
		}
		events = append(events, e)
		if hashes {
			sums = append(sums, HashEvent(body[start:end]))
		}
		switch {
		case end == len(body)-1:
			return events, sums, true, nil
		case body[end] == ',':
			i = end + 1
		default:
			return nil, nil, false, nil
		}
	}
}

// fastDecode reads the event object starting at b[i] and returns the index
// just after it.
func (e *Event) fastDecode(b []byte, i int, withPrev bool) (end int, ok bool, err error) {
	s := scanner{b: b, i: i}
	var id, typ, agg, seq, tm []byte
	if !s.lit(`{"id":`) || !s.plain(&id) || !s.lit(`,"type":`) || !s.plain(&typ) || !s.lit(`,"app":`) ||
		!s.str((*string)(&e.App)) || !s.lit(`,"aggregate":`) || !s.plain(&agg) || !s.lit(`,"aggregate_id":`) ||
		!s.str(&e.AggregateID) || !s.lit(`,"seq":`) || !s.digits(&seq) || !s.lit(`,"time":`) || !s.plain(&tm) {
		return 0, false, nil
	}
	if s.lit(`,"correlation":`) && !s.str(&e.Correlation) {
		return 0, false, nil
	}
	if s.lit(`,"causation":`) {
		if c := e.Correlation; c != "" && s.quoted(c) {
			e.Causation = c // usually the same command ID: share the string
		} else if !s.str(&e.Causation) {
			return 0, false, nil
		}
	}
	if s.lit(`,"prev":`) {
		if !withPrev {
			if !s.skipString() {
				return 0, false, nil
			}
		} else if !s.str(&e.Prev) {
			return 0, false, nil
		}
	}
	if !s.lit(`,"data":`) {
		return 0, false, nil
	}
	dataStart := s.i
	if !s.skipObject() || !s.lit(`}`) {
		return 0, false, nil
	}
	data := b[dataStart : s.i-1]
	// The envelope is in roomlog's layout: from here on, what is wrong with
	// it is wrong whatever decoder reads it.
	if err := e.ID.UnmarshalText(id); err != nil {
		return 0, true, bad("id", err)
	}
	e.Type = eventTypeNamed(typ)
	switch string(agg) {
	case "room":
		e.Aggregate = KindRoom
	case "session":
		e.Aggregate = KindSession
	case "stream":
		e.Aggregate = KindStream
	default:
		return 0, true, bad("unknown aggregate "+strconv.Quote(string(agg)), nil)
	}
	for _, c := range seq {
		if e.Seq > (1<<64-1-9)/10 {
			return 0, true, bad("seq out of range", nil)
		}
		e.Seq = e.Seq*10 + uint64(c-'0')
	}
	if err := e.Time.UnmarshalText(tm); err != nil {
		return 0, true, bad("time", err)
	}
	p := newPayload(e.Type)
	switch {
	case p == nil:
		return 0, true, &unknownTypeError{e.Type}
	case e.Type.Kind() != e.Aggregate:
		return 0, true, bad(string(e.Type)+" event on a "+strconv.Quote(string(e.Aggregate))+" aggregate", nil)
	}
	if err := jsonv2.Unmarshal(data, p); err != nil {
		return 0, true, bad(string(e.Type)+" payload", err)
	}
	e.Data = p
	return s.i, true, nil
}

// scanner reads roomlog's own JSON layout byte by byte.
type scanner struct {
	b []byte
	i int
}

// lit consumes lit if the input continues with it.
func (s *scanner) lit(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// quoted consumes the JSON string "v" if the input continues with it,
// written without escapes.
func (s *scanner) quoted(v string) bool {
	n := len(v) + 2
	if len(s.b)-s.i >= n && s.b[s.i] == '"' && s.b[s.i+n-1] == '"' && string(s.b[s.i+1:s.i+n-1]) == v {
		s.i += n
		return true
	}
	return false
}

// plain reads a JSON string without escapes, returning its content in
// place; a string with an escape makes the fast path decline.
func (s *scanner) plain(out *[]byte) bool {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return false
	}
	for j := s.i + 1; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '\\' || c < 0x20:
			return false
		case c == '"':
			*out = s.b[s.i+1 : j]
			s.i = j + 1
			return true
		}
	}
	return false
}

// str reads a JSON string into *out. Escapes are handed to the JSON decoder,
// which also rejects invalid ones.
func (s *scanner) str(out *string) bool {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return false
	}
	start, escaped := s.i, false
	for j := s.i + 1; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '\\':
			escaped = true
			j++
		case c < 0x20:
			return false
		case c == '"':
			s.i = j + 1
			if !escaped {
				*out = string(s.b[start+1 : j])
				return true
			}
			return jsonv2.Unmarshal(s.b[start:s.i], out) == nil
		}
	}
	return false
}

// skipString consumes a JSON string without keeping it.
func (s *scanner) skipString() bool {
	var tmp string
	if s.i < len(s.b) && s.b[s.i] == '"' {
		for j := s.i + 1; j < len(s.b); j++ {
			switch s.b[j] {
			case '\\':
				return s.str(&tmp)
			case '"':
				s.i = j + 1
				return true
			}
		}
	}
	return false
}

// digits reads an unsigned decimal number.
func (s *scanner) digits(out *[]byte) bool {
	j := s.i
	for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
		j++
	}
	if j == s.i || (s.b[s.i] == '0' && j-s.i > 1) {
		return false
	}
	*out = s.b[s.i:j]
	s.i = j
	return true
}

// skipObject consumes a JSON object, tracking strings and nesting only: the
// payload decoder validates what is inside.
func (s *scanner) skipObject() bool {
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return false
	}
	depth := 0
	for j := s.i; j < len(s.b); j++ {
		switch s.b[j] {
		case '"':
			for j++; j < len(s.b) && s.b[j] != '"'; j++ {
				if s.b[j] == '\\' {
					j++
				}
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				s.i = j + 1
				return true
			}
		}
	}
	return false
}
