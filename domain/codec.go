package domain

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/oklog/ulid/v2"
)

// The stored form: one log message carries the events that one command
// produced for one aggregate, as a JSON array of event objects. One message
// per aggregate and command makes a multi-event change atomic for every
// reader without JetStream's atomic batches (which cost ≈2 ms each on a
// single file-backed server). Each event names its predecessor's hash, so a
// history can be verified from its bytes alone.

// ErrUnknownEventType is returned when a stored event has a type this build
// does not know. A reader must stop rather than skip it: skipping would fold a
// different state than the writer's.
var ErrUnknownEventType = errors.New("unknown event type")

// ErrMalformedEvent is returned for bytes that are not a valid event message.
var ErrMalformedEvent = errors.New("malformed event message")

// ErrBrokenChain is returned when an event's Prev does not match the hash of
// the event before it.
var ErrBrokenChain = errors.New("broken hash chain")

// HashEvent returns the hex SHA-256 of one stored event object.
func HashEvent(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// EncodeEvents sets Prev on each event, chaining from prev (the hash of the
// aggregate's last stored event, "" for a new aggregate), and returns the
// message body and the hash of its last event.
func EncodeEvents(prev string, events []Event) (body []byte, head string, err error) {
	if len(events) == 0 {
		return nil, "", fmt.Errorf("%w: no events", ErrMalformedEvent)
	}
	var buf bytes.Buffer
	buf.Grow(512 * len(events))
	buf.WriteByte('[')
	for i := range events {
		events[i].Prev = prev
		if i > 0 {
			buf.WriteByte(',')
		}
		start := buf.Len()
		if err := appendEvent(&buf, &events[i]); err != nil {
			return nil, "", fmt.Errorf("encode %s: %w", events[i].Type, err)
		}
		prev = HashEvent(buf.Bytes()[start:])
	}
	buf.WriteByte(']')
	return buf.Bytes(), prev, nil
}

// EventBytes returns how many bytes e takes in a stored message, its Prev
// hash and the comma before it included: what it costs a step against the
// log's message limit. e itself is not changed.
func EventBytes(e *Event) (int, error) {
	c := *e
	c.Prev = zeroHash
	var buf bytes.Buffer
	if err := appendEvent(&buf, &c); err != nil {
		return 0, err
	}
	return buf.Len() + 1, nil
}

// jsonBytes is how many bytes v takes as stored (0 if it cannot be).
func jsonBytes(v any) int {
	b, err := jsonv2.Marshal(v, storedFormat)
	if err != nil {
		return 0
	}
	return len(b)
}

// zeroHash is as long as every Prev but a new aggregate's first event's.
var zeroHash = strings.Repeat("0", sha256.Size*2)

// storedFormat makes go-json-experiment/json write payloads byte for byte as
// encoding/json did when the first events were stored (HTML-safe escaping,
// omitempty on zero values): the log's one JSON library, for writing and
// reading.
var storedFormat = jsonv1.DefaultOptionsV1()

// appendEvent writes e exactly as encoding/json writes an Event (the golden
// files and a fuzz test hold it to that), without reflecting over the
// envelope: it is on the path of every command.
func appendEvent(buf *bytes.Buffer, e *Event) error {
	data, err := jsonv2.Marshal(e.Data, storedFormat)
	if err != nil {
		return err
	}
	b := buf.AvailableBuffer()
	b = append(b, `{"id":"`...)
	b = append(b, e.ID.String()...)
	b = append(b, `","type":`...)
	b = appendJSONString(b, string(e.Type))
	b = append(b, `,"app":`...)
	b = appendJSONString(b, string(e.App))
	b = append(b, `,"aggregate":`...)
	b = appendJSONString(b, string(e.Aggregate))
	b = append(b, `,"aggregate_id":`...)
	b = appendJSONString(b, e.AggregateID)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	for _, f := range [...]struct{ name, value string }{
		{`,"correlation":`, e.Correlation}, {`,"causation":`, e.Causation}, {`,"prev":`, e.Prev},
	} {
		if f.value != "" {
			b = append(b, f.name...)
			b = appendJSONString(b, f.value)
		}
	}
	b = append(b, `,"data":`...)
	b = append(b, data...)
	b = append(b, '}')
	buf.Write(b)
	return nil
}

// appendJSONString appends s as encoding/json quotes a string: HTML-safe,
// with invalid UTF-8 replaced.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// DecodeEvents parses a message body into its events, for readers that fold
// them. It leaves Prev empty: a reader that checks the chain uses
// VerifyEvents.
func DecodeEvents(body []byte) ([]Event, error) {
	events, _, err := decodeMessage(body, false)
	return events, err
}

// VerifyEvents checks that the events of one message chain from prev, and
// returns the hash of the last one. It hashes the stored bytes, never a
// re-encoding, so it holds for events written by any version.
func VerifyEvents(prev string, body []byte) (head string, events []Event, err error) {
	events, hashes, err := decodeMessage(body, true)
	if err != nil {
		return "", nil, err
	}
	for i := range events {
		if events[i].Prev != prev {
			return "", nil, fmt.Errorf("%w: %s seq %d names %q, expected %q",
				ErrBrokenChain, events[i].Key(), events[i].Seq, events[i].Prev, prev)
		}
		prev = hashes[i]
	}
	return prev, events, nil
}

// MessageHead decodes one stored message without knowing its predecessor and
// returns its events and the hash of its last event: what a reader that
// takes an aggregate's state from elsewhere needs to chain the next append.
// The events inside the message must chain to each other.
func MessageHead(body []byte) (head string, events []Event, err error) {
	events, hashes, err := decodeMessage(body, true)
	if err != nil {
		return "", nil, err
	}
	for i := 1; i < len(events); i++ {
		if events[i].Prev != hashes[i-1] {
			return "", nil, fmt.Errorf("%w: %s seq %d does not chain to the event before it in its message",
				ErrBrokenChain, events[i].Key(), events[i].Seq)
		}
	}
	return hashes[len(hashes)-1], events, nil
}

// StoredHead returns the hash of the last event object of a message as
// stored, whether or not its events chain: what the next message of the
// aggregate must name, for a verifier that carries on past a broken link.
func StoredHead(body []byte) (string, error) {
	_, hashes, err := decodeMessage(body, true)
	if err != nil {
		return "", err
	}
	return hashes[len(hashes)-1], nil
}

// DecodeHashed parses a message body into its events, each with the Prev it
// names, and the hash of each event's stored bytes: what a verifier needs to
// tell which event of a broken link was changed.
func DecodeHashed(body []byte) (events []Event, hashes []string, err error) {
	return decodeMessage(body, true)
}

// decodeMessage parses a message body in one pass, and with hashes the hash
// of each event's stored bytes.
//
// Every command's events are read back by every projection, and a replay of a
// million events spends its time here: the envelope, whose shape is fixed, is
// read token by token with go-json-experiment/json's jsontext (the proposed
// encoding/json/v2), and only the small payload goes through reflection. It
// accepts any valid JSON with the same members, in any order.
func decodeMessage(body []byte, hashes bool) ([]Event, []string, error) {
	dec := getDecoder(body)
	defer decoders.Put(dec)
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '[' {
		return nil, nil, fmt.Errorf("%w: not an array of events", ErrMalformedEvent)
	}
	var events []Event
	var sums []string
	for dec.PeekKind() == '{' {
		start := int(dec.InputOffset())
		for start < len(body) && (body[start] == ',' || body[start] == ' ' || body[start] == '\t' ||
			body[start] == '\n' || body[start] == '\r') {
			start++
		}
		events = append(events, Event{}) // decoded in place: no copy, no second allocation
		e := &events[len(events)-1]
		if err := e.decodeFrom(dec, body, hashes); err != nil {
			return nil, nil, err
		}
		if n := len(events); n > 1 {
			// Events of one message share an app and an aggregate: share
			// the strings too.
			if e.App == events[n-2].App {
				e.App = events[n-2].App
			}
			if e.AggregateID == events[n-2].AggregateID {
				e.AggregateID = events[n-2].AggregateID
			}
		}
		if hashes {
			sums = append(sums, HashEvent(body[start:dec.InputOffset()]))
		}
	}
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != ']' {
		return nil, nil, fmt.Errorf("%w: events array not closed: %v", ErrMalformedEvent, err)
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, nil, fmt.Errorf("%w: data after the events", ErrMalformedEvent)
	}
	if len(events) == 0 {
		return nil, nil, fmt.Errorf("%w: no events", ErrMalformedEvent)
	}
	return events, sums, nil
}

// UnmarshalJSON decodes an event and its payload by its type name.
func (e *Event) UnmarshalJSON(b []byte) error {
	dec := getDecoder(b)
	defer decoders.Put(dec)
	if err := e.decodeFrom(dec, b, true); err != nil {
		return err
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return fmt.Errorf("%w: data after the event", ErrMalformedEvent)
	}
	return nil
}

// decoders are reused: a jsontext.Decoder is costly to make, and a replay
// makes one per message. The decoder refuses a member named twice in any
// object, envelope or payload, however the members are ordered (a payload
// decoded in the same pass and one decoded apart once disagreed on it).
var decoders = sync.Pool{New: func() any { return new(pooledDecoder) }}

// pooledDecoder is a decoder and the buffer it reads, reused together so that
// pointing it at a new body allocates nothing.
type pooledDecoder struct {
	jsontext.Decoder
	buf bytes.Buffer
	// app and aggregateID are the last ones read: a log's events repeat
	// them, and reusing the string saves an allocation each.
	app, aggregateID string
}

// intern returns quoted's string, last if it spells the same.
func intern(last *string, dec *jsontext.Decoder) (string, error) {
	v, err := dec.ReadValue()
	if err != nil {
		return "", err
	}
	if v.Kind() != '"' {
		return "", fmt.Errorf("want a string, got %s", v.Kind())
	}
	if raw := v[1 : len(v)-1]; bytes.IndexByte(raw, '\\') < 0 {
		if string(raw) != *last { // compared without allocating
			*last = string(raw)
		}
		return *last, nil
	}
	var str string
	if err := jsonv2.Unmarshal(v, &str); err != nil {
		return "", err
	}
	return str, nil
}

func getDecoder(b []byte) *pooledDecoder {
	d := decoders.Get().(*pooledDecoder)
	d.buf = *bytes.NewBuffer(b)
	d.Reset(&d.buf)
	return d
}

// decodeFrom reads one event object from dec, which reads body. Without
// withPrev it skips the hash of the previous event, which only a verifier
// needs.
func (e *Event) decodeFrom(pd *pooledDecoder, body []byte, withPrev bool) error {
	dec := &pd.Decoder
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return bad("an event is not an object", err)
	}
	var data jsontext.Value
	var seen uint16
	for dec.PeekKind() != '}' {
		name, err := dec.ReadValue()
		if err != nil || name.Kind() != '"' {
			return bad("member name", err)
		}
		field := fieldOf(name)
		seen |= field
		switch field {
		case fieldID:
			v, err := dec.ReadValue()
			if err != nil || v.Kind() != '"' {
				return bad("id", err)
			}
			raw := v[1 : len(v)-1]
			if err := e.ID.UnmarshalText(raw); err != nil {
				return bad("id", err)
			}
			// Crockford's base32 reads lower case too, and the lenient
			// parse reads any byte: roomlog writes one spelling, and an ID
			// has no other. Checked without allocating.
			var canon [ulid.EncodedSize]byte
			if err := e.ID.MarshalTextTo(canon[:]); err != nil || !bytes.Equal(canon[:], raw) {
				return bad("id "+string(raw)+" is not in canonical form", nil)
			}
		case fieldType:
			v, err := dec.ReadValue()
			if err != nil || v.Kind() != '"' {
				return bad("type", err)
			}
			e.Type = eventTypeOf(v)
		case fieldApp:
			s, err := intern(&pd.app, dec)
			e.App = AppID(s)
			if err != nil {
				return bad("app", err)
			}
		case fieldAggregate:
			v, err := dec.ReadValue()
			if err != nil || v.Kind() != '"' {
				return bad("aggregate", err)
			}
			switch string(v) {
			case `"room"`:
				e.Aggregate = KindRoom
			case `"session"`:
				e.Aggregate = KindSession
			case `"stream"`:
				e.Aggregate = KindStream
			default:
				return bad("unknown aggregate "+string(v), nil)
			}
		case fieldAggregateID:
			if e.AggregateID, err = intern(&pd.aggregateID, dec); err != nil {
				return bad("aggregate_id", err)
			}
		case fieldSeq:
			tok, err := dec.ReadToken()
			if err != nil || tok.Kind() != '0' {
				return bad("seq", err)
			}
			if e.Seq, err = strconv.ParseUint(tok.String(), 10, 64); err != nil {
				return bad("seq", err)
			}
		case fieldTime:
			v, err := dec.ReadValue()
			if err != nil || v.Kind() != '"' {
				return bad("time", err)
			}
			if bytes.IndexByte(v, '\\') >= 0 {
				return bad("time "+string(v)+" is escaped", nil)
			}
			// Strict RFC 3339, as encoding/json reads a time.Time.
			if err := e.Time.UnmarshalText(v[1 : len(v)-1]); err != nil {
				return bad("time", err)
			}
		case fieldCorrelation:
			if e.Correlation, err = readString(dec); err != nil {
				return bad("correlation", err)
			}
		case fieldCausation:
			v, err := dec.ReadValue()
			if err != nil || v.Kind() != '"' {
				return bad("causation", err)
			}
			if len(v) == len(e.Correlation)+2 && string(v[1:len(v)-1]) == e.Correlation {
				e.Causation = e.Correlation // usually the same command ID
			} else if err := jsonv2.Unmarshal(v, &e.Causation); err != nil {
				return bad("causation", err)
			}
		case fieldPrev:
			if !withPrev {
				if err := dec.SkipValue(); err != nil {
					return bad("prev", err)
				}
				continue
			}
			if e.Prev, err = readString(dec); err != nil {
				return bad("prev", err)
			}
		case fieldData:
			if p := newPayload(e.Type); p != nil && seen&fieldAggregate != 0 && dec.PeekKind() == '{' {
				// The type came first, as roomlog writes it: decode the
				// payload straight from the stream, in the same pass.
				if err := jsonv2.UnmarshalDecode(dec, p); err != nil {
					return fmt.Errorf("%w: %s payload: %v", ErrMalformedEvent, e.Type, err)
				}
				e.Data = p
				continue
			}
			v, err := dec.ReadValue()
			if err != nil {
				return bad("data", err)
			}
			// The same bytes, from the body rather than the decoder's buffer,
			// which the next read reuses.
			end := int(dec.InputOffset())
			data = jsontext.Value(body[end-len(v) : end])
		default:
			if err := dec.SkipValue(); err != nil {
				return bad("member "+string(name), err)
			}
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return bad("an event is not closed", err)
	}
	switch {
	case !knownType(e.Type):
		return &unknownTypeError{e.Type}
	case e.Type.Kind() != e.Aggregate:
		return fmt.Errorf("%w: %s event on a %q aggregate", ErrMalformedEvent, e.Type, e.Aggregate)
	case e.Data == nil && data.Kind() != '{':
		return fmt.Errorf("%w: %s event without an object payload", ErrMalformedEvent, e.Type)
	case seen&required != required:
		return fmt.Errorf("%w: %s event without %s", ErrMalformedEvent, e.Type, missing(seen))
	}
	if e.Data == nil {
		p := newPayload(e.Type)
		if err := jsonv2.Unmarshal(data, p); err != nil {
			return fmt.Errorf("%w: %s payload: %v", ErrMalformedEvent, e.Type, err)
		}
		e.Data = p
	}
	return nil
}

// eventTypeOf returns the event type named by a quoted JSON string, as one of
// the constants when it is one (no allocation), else as read.
func eventTypeOf(quoted jsontext.Value) EventType {
	if t, ok := eventTypeIndex[string(quoted[1:len(quoted)-1])]; ok {
		return t
	}
	var s string
	if jsonv2.Unmarshal(quoted, &s) != nil {
		return EventType(quoted[1 : len(quoted)-1])
	}
	return EventType(s)
}

func bad(what string, err error) error {
	if err == nil {
		return fmt.Errorf("%w: %s", ErrMalformedEvent, what)
	}
	return fmt.Errorf("%w: %s: %v", ErrMalformedEvent, what, err)
}

type unknownTypeError struct{ t EventType }

func (e *unknownTypeError) Error() string { return fmt.Sprintf("%v: %q", ErrUnknownEventType, e.t) }
func (e *unknownTypeError) Unwrap() error { return ErrUnknownEventType }

// Envelope members, as bits of a set.
const (
	fieldID uint16 = 1 << iota
	fieldType
	fieldApp
	fieldAggregate
	fieldAggregateID
	fieldSeq
	fieldTime
	fieldCorrelation
	fieldCausation
	fieldPrev
	fieldData
)

// required are the members every stored event has.
const required = fieldID | fieldType | fieldApp | fieldAggregate | fieldAggregateID | fieldSeq | fieldTime | fieldData

// missing names the required members absent from seen.
func missing(seen uint16) string {
	var names []string
	for i, name := range [...]string{"id", "type", "app", "aggregate", "aggregate_id", "seq", "time"} {
		if f := uint16(1) << i; required&f != 0 && seen&f == 0 {
			names = append(names, name)
		}
	}
	return strings.Join(names, ", ")
}

// fieldOf names a member from its quoted name, without allocating.
func fieldOf(quoted jsontext.Value) uint16 {
	switch string(quoted) {
	case `"id"`:
		return fieldID
	case `"type"`:
		return fieldType
	case `"app"`:
		return fieldApp
	case `"aggregate"`:
		return fieldAggregate
	case `"aggregate_id"`:
		return fieldAggregateID
	case `"seq"`:
		return fieldSeq
	case `"time"`:
		return fieldTime
	case `"correlation"`:
		return fieldCorrelation
	case `"causation"`:
		return fieldCausation
	case `"prev"`:
		return fieldPrev
	case `"data"`:
		return fieldData
	}
	return 0
}

// eventTypeNamed returns the event type constant spelled name, or name as
// read when it is none.
func eventTypeNamed(name []byte) EventType {
	if t, ok := eventTypeIndex[string(name)]; ok { // no allocation for the lookup
		return t
	}
	return EventType(name)
}

// knownType reports whether t names a payload this version decodes (as
// newPayload does, without allocating one).
func knownType(t EventType) bool {
	_, ok := eventTypeIndex[string(t)]
	return ok
}

// eventTypeIndex finds the constant of an event type from its name.
var eventTypeIndex = func() map[string]EventType {
	m := make(map[string]EventType, len(eventTypes))
	for _, t := range eventTypes {
		m[string(t)] = t
	}
	return m
}()

// readString reads a JSON string value, unquoting it only when it holds an
// escape.
func readString(dec *jsontext.Decoder) (string, error) {
	v, err := dec.ReadValue()
	if err != nil {
		return "", err
	}
	if v.Kind() != '"' {
		return "", fmt.Errorf("want a string, got %s", v.Kind())
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1]), nil
	}
	var s string
	if err := jsonv2.Unmarshal(v, &s); err != nil {
		return "", err
	}
	return s, nil
}
