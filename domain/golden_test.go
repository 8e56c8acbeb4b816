package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// fixtures returns one fully populated event of every type. Their stored form
// is pinned by testdata/events/<type>.json: a change to a stored shape breaks
// the test, and is made by adding (a new optional field, or a new event name),
// never by changing what old events mean.
func fixtures() []Event {
	at := time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.UTC)
	id := ulid.MustParse("01KAK3J7Q8ZX5V2B8T9W0N3E4R")
	mk := func(k Key, seq uint64, p Payload) Event {
		return Event{ID: id, Type: p.EventType(), App: k.App, Aggregate: k.Kind, AggregateID: k.ID, Seq: seq,
			Time: at, Correlation: "01KAK3J7Q8ZX5V2B8T9W0N3E4S", Causation: "01KAK3J7Q8ZX5V2B8T9W0N3E4T",
			Prev: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Data: p}
	}
	room := RoomKey("demo", "class 1.A")
	sess := SessionKey("demo", "01KAK3J7Q8ZX5V2B8T9W0N3E4V")
	stream := StreamKey("demo", "teacher-main")
	return []Event{
		mk(room, 1, &RoomCreatedData{Name: "Maths", Attributes: map[string]string{"teacher": "t1"}, DestroyDelay: 90,
			By: "t1", Session: "s-t1", Via: ViaCreate, MaxMembers: 50}),
		mk(room, 2, &MemberJoinedData{User: "t1", UserName: "Teacher", Session: "s-t1", Role: Anchor, CanPublish: true,
			Claim: 2, Via: ViaLogin, Quiet: true}),
		mk(room, 3, &MemberLeftData{User: "u1", UserName: "Student 1", Session: "s-u1", Claim: 4, Reason: ReasonKickedDuplicateLogin,
			BySession: "s-u1b", Detail: "replaced", KickedAt: at.Add(-time.Second)}),
		mk(room, 4, &StreamPublishedData{Stream: "teacher-main", User: "t1", UserName: "Teacher", Session: "s-t1", ExtraInfo: "hd", Claim: 1, Node: "01KAK3J7Q8ZX5V2B8T9W0N3E4N"}),
		mk(room, 5, &StreamStoppedData{Stream: "teacher-main", User: "t1", UserName: "Teacher", Session: "s-t1", Claim: 1, Reason: ReasonStopped}),
		mk(room, 6, &StreamExtraInfoData{Stream: "teacher-main", User: "t1", UserName: "Teacher", ExtraInfo: "layout=2"}),
		mk(room, 7, &PlayStartedData{Stream: "teacher-main", User: "u1", Session: "s-u1"}),
		mk(room, 8, &PlayStoppedData{Stream: "teacher-main", User: "u1", Session: "s-u1"}),
		mk(room, 9, &BroadcastSentData{From: "t1", FromName: "Teacher", Session: "s-t1", Body: "hello class"}),
		mk(room, 10, &CustomCommandSentData{From: "t1", FromName: "Teacher", Session: "s-t1", To: []UserID{"u1", "u2"},
			Body: `{"mic":"off"}`}),
		mk(room, 11, &ExtraInfoUpdatedData{Key: "topic", Value: "fractions", By: "t1", ByName: "Teacher"}),
		mk(room, 12, &AttributesUpdatedData{Set: map[string]string{"slide": "4"}, Deleted: []string{"poll"}, By: "t1", ByName: "Teacher",
			UpdateOwner: true, DeleteAfterOwnerLeft: true, Force: true, Batch: true, OwnerLeft: true}),
		mk(room, 12, &MemberAttributesUpdatedData{Members: []MemberAttributes{{User: "u1", Set: map[string]string{"seat": "3"},
			Deleted: []string{"hand"}}}, By: "t1", ByName: "Teacher"}),
		mk(room, 13, &ClaimVoidedData{Registry: KindSession, ID: "s-u9", Claim: 7}),
		mk(room, 14, &RoomDestroyedData{Reason: DestroyBackend, Detail: "class over", Admin: "ops@school.example",
			Members: []MemberClaim{{User: "t1", Session: "s-t1", Claim: 2}},
			Streams: []StreamClaim{{Stream: "teacher-main", User: "t1", Session: "s-t1", Claim: 1}}}),
		mk(sess, 1, &SessionOpenedData{User: "t1", UserName: "Teacher", Mode: MultiRoom}),
		mk(sess, 2, &RoomClaimedData{Room: "class 1.A", Command: "01KAK3J7Q8ZX5V2B8T9W0N3E4W"}),
		mk(sess, 3, &RoomReleasedData{Room: "class 1.A", Claim: 2, Reason: ReasonLogout}),
		mk(sess, 5, &SessionKickedData{BySession: "s-t1b", Reason: ReasonKickedDuplicateLogin,
			Released: []RoomRef{{Room: "group 2", Claim: 4}}}),
		mk(sess, 6, &SessionTimedOutData{LastSeen: at.Add(-90 * time.Second), Released: []RoomRef{{Room: "class 1.A", Claim: 5}}}),
		mk(stream, 1, &StreamClaimedData{Room: "class 1.A", User: "t1", Session: "s-t1", Command: "01KAK3J7Q8ZX5V2B8T9W0N3E4Y"}),
		mk(stream, 2, &StreamReleasedData{Claim: 1, Reason: ReasonStopped}),
	}
}

func TestGoldenEvents(t *testing.T) {
	seen := map[EventType]bool{}
	for _, e := range fixtures() {
		seen[e.Type] = true
		t.Run(string(e.Type), func(t *testing.T) {
			raw, err := json.Marshal(&e)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "events", string(e.Type)+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./domain -run TestGoldenEvents -update to create it)", err)
			}
			want = bytes.TrimSpace(want)
			if !bytes.Equal(raw, want) {
				t.Errorf("stored shape changed:\n got %s\nwant %s", raw, want)
			}
			// The golden bytes decode to the same event: old events stay readable.
			var back Event
			if err := json.Unmarshal(want, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, e) {
				t.Errorf("golden decodes to %+v\nwant %+v", back, e)
			}
		})
	}
	for _, typ := range EventTypes() {
		if !seen[typ] {
			t.Errorf("event type %s has no golden fixture", typ)
		}
	}
}

func TestEncodeChainsAndVerifies(t *testing.T) {
	fx := fixtures()
	body1, head1, err := EncodeEvents("", fx[:3])
	if err != nil {
		t.Fatal(err)
	}
	body2, head2, err := EncodeEvents(head1, fx[3:5])
	if err != nil {
		t.Fatal(err)
	}
	got1, events, err := VerifyEvents("", body1)
	if err != nil || got1 != head1 || len(events) != 3 {
		t.Fatalf("verify first message: head %s (want %s), %d events, %v", got1, head1, len(events), err)
	}
	if events[0].Prev != "" || events[1].Prev == "" {
		t.Errorf("prev hashes not chained: %q, %q", events[0].Prev, events[1].Prev)
	}
	if got2, _, err := VerifyEvents(head1, body2); err != nil || got2 != head2 {
		t.Fatalf("verify second message: %v", err)
	}
	// A message verified against the wrong predecessor fails.
	if _, _, err := VerifyEvents("", body2); !errors.Is(err, ErrBrokenChain) {
		t.Errorf("broken chain not detected: %v", err)
	}
	// Altering an event breaks the chain at the next event: within its message...
	if _, _, err := VerifyEvents("", bytes.Replace(body1, []byte("Teacher"), []byte("Teachr"), 1)); !errors.Is(err, ErrBrokenChain) {
		t.Errorf("tampering inside a message not detected: %v", err)
	}
	// ...or, for the last event of a message, at the next message.
	tampered := bytes.Replace(body1, []byte("replaced"), []byte("REPLACED"), 1)
	h, _, err := VerifyEvents("", tampered)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := VerifyEvents(h, body2); !errors.Is(err, ErrBrokenChain) {
		t.Errorf("tampering with an earlier message not detected")
	}
}

func TestDecodeRejectsWhatItCannotFold(t *testing.T) {
	for name, body := range map[string]string{
		"not json":        `{`,
		"empty array":     `[]`,
		"unknown type":    `[{"type":"room.teleported","aggregate":"room","time":"2026-01-01T00:00:00Z","data":{}}]`,
		"wrong aggregate": `[{"type":"room.created","aggregate":"session","time":"2026-01-01T00:00:00Z","data":{}}]`,
		"no payload":      `[{"type":"room.created","aggregate":"room","time":"2026-01-01T00:00:00Z"}]`,
		"bad time":        `[{"type":"room.created","aggregate":"room","time":"yesterday","data":{}}]`,
		"bad payload":     `[{"type":"room.created","aggregate":"room","time":"2026-01-01T00:00:00Z","data":{"destroy_delay_s":"x"}}]`,
	} {
		if _, err := DecodeEvents([]byte(body)); err == nil {
			t.Errorf("%s: decoded", name)
		} else if !errors.Is(err, ErrMalformedEvent) && !errors.Is(err, ErrUnknownEventType) {
			t.Errorf("%s: error %v is neither malformed nor unknown", name, err)
		}
	}
}

// A payload with a member twice is refused wherever its members stand:
// once decoded in the same pass as the envelope (type before data, as
// roomlog writes), and once decoded apart (data first), the two ways
// must agree.
func TestDuplicatePayloadMembersAreRefusedInEitherOrder(t *testing.T) {
	const env = `"id":"01KAK3J7Q8ZX5V2B8T9W0N3E4R","app":"a","aggregate":"room","aggregate_id":"r","seq":1,"time":"2026-01-01T00:00:00Z"`
	const data = `"data":{"destroy_delay_s":5,"destroy_delay_s":6}`
	for name, body := range map[string]string{
		"type first": `[{` + env + `,"type":"room.created",` + data + `}]`,
		"data first": `[{` + env + `,` + data + `,"type":"room.created"}]`,
		"envelope":   `[{` + env + `,"seq":2,"type":"room.created","data":{}}]`,
	} {
		if events, err := DecodeEvents([]byte(body)); err == nil {
			t.Errorf("%s: decoded %+v", name, events[0].Data)
		} else if !errors.Is(err, ErrMalformedEvent) {
			t.Errorf("%s: error %v is not ErrMalformedEvent", name, err)
		}
	}
}

func FuzzDecodeEvents(f *testing.F) {
	body, _, err := EncodeEvents("", fixtures())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(body)
	f.Add([]byte(`[{"type":"room.created"}]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		events, err := DecodeEvents(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes and decodes to the same events.
		again, _, err := EncodeEvents(events[0].Prev, append([]Event(nil), events...))
		if err != nil {
			t.Fatalf("decoded events do not encode: %v", err)
		}
		back, err := DecodeEvents(again)
		if err != nil {
			t.Fatalf("re-encoded events do not decode: %v", err)
		}
		if len(back) != len(events) {
			t.Fatalf("%d events became %d", len(events), len(back))
		}
		// Folding never panics, whatever the payload.
		var r Room
		var s Session
		var e StreamEntry
		for i := range back {
			switch back[i].Aggregate {
			case KindRoom:
				r.Apply(&back[i])
			case KindSession:
				s.Apply(&back[i])
			case KindStream:
				e.Apply(&back[i])
			}
		}
	})
}

func TestEnumsRoundTrip(t *testing.T) {
	check := func(name string, values []string, parse func(string) (string, error)) {
		t.Helper()
		seen := map[string]bool{}
		for _, v := range values {
			if seen[v] {
				t.Errorf("%s %q listed twice", name, v)
			}
			seen[v] = true
			got, err := parse(v)
			if err != nil || got != v {
				t.Errorf("%s %q parses to %q, %v", name, v, got, err)
			}
		}
		if _, err := parse("no such " + name); err == nil {
			t.Errorf("%s: an unknown value parses", name)
		}
	}
	str := func(xs any) []string {
		var out []string
		v := reflect.ValueOf(xs)
		for i := range v.Len() {
			out = append(out, v.Index(i).String())
		}
		return out
	}
	wrap := func(f any) func(string) (string, error) {
		fv := reflect.ValueOf(f)
		return func(s string) (string, error) {
			out := fv.Call([]reflect.Value{reflect.ValueOf(s)})
			err, _ := out[1].Interface().(error)
			return out[0].String(), err
		}
	}
	check("room mode", str(RoomModes()), wrap(ParseRoomMode))
	check("role", str(Roles()), wrap(ParseRole))
	check("via", str(Vias()), wrap(ParseVia))
	check("reason", str(Reasons()), wrap(ParseReason))
	check("destroy reason", str(DestroyReasons()), wrap(ParseDestroyReason))
	check("create policy", str(CreatePolicies()), wrap(ParseCreatePolicy))
	check("kind", str(Kinds()), wrap(ParseKind))
	check("connection state", str(ConnStates()), wrap(ParseConnState))
	for _, typ := range EventTypes() {
		if newPayload(typ) == nil || newPayload(typ).EventType() != typ {
			t.Errorf("event type %s has no payload of its own", typ)
		}
		if _, err := ParseKind(string(typ.Kind())); err != nil {
			t.Errorf("event type %s names no aggregate kind", typ)
		}
	}
}

func TestErrorCodesAreUnique(t *testing.T) {
	codes, names := map[Code]string{}, map[string]Code{}
	for _, e := range Errors() {
		if other, ok := codes[e.Code]; ok {
			t.Errorf("code %d used by %s and %s", e.Code, other, e.Name)
		}
		if other, ok := names[e.Name]; ok {
			t.Errorf("name %s used by %d and %d", e.Name, other, e.Code)
		}
		codes[e.Code], names[e.Name] = e.Name, e.Code
		if !errors.Is(e.With("detail"), e) {
			t.Errorf("%s with detail does not match its sentinel", e.Name)
		}
	}
	for _, c := range []Code{1001020, 1002002, 1002018, 1002033, 1002036, 1002037, 1002050, 1002051, 1002053, 1002055, 1003070, 1004070} {
		if _, ok := codes[c]; !ok {
			t.Errorf("SEMANTICS.md code %d has no error", c)
		}
	}
}

// The hand-written encoder writes what encoding/json writes, for any strings.
func FuzzEncoderMatchesEncodingJSON(f *testing.F) {
	f.Add("room.*.>", "<&>", "日本語", "\x00\x1f\b\f\n\r\t\"\\", "\u2028\u2029\xff")
	f.Fuzz(func(t *testing.T, app, id, corr, cause, prev string) {
		e := fixtures()[1]
		e.App, e.AggregateID, e.Correlation, e.Causation, e.Prev = AppID(app), id, corr, cause, prev
		want, err := json.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := appendEvent(&buf, &e); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("encoder wrote\n%s\nencoding/json writes\n%s", buf.Bytes(), want)
		}
	})
}

// What roomlog writes, with any strings in it, reads back as exactly what
// was written; and whatever the decoder accepts is canonical: its IDs are the
// strings it was given (no other spelling of a ULID is read as the same ID)
// and its text is valid UTF-8.
func FuzzDecodeRoundTrip(f *testing.F) {
	body, _, _ := EncodeEvents("", fixtures())
	f.Add(body, "room.*.>", "日本語 \u2028", "<&>\\\"", uint64(7))
	f.Add([]byte(`[{"id":"01KAK3J7Q8ZX5V2B8T9W0N3E4R","type":"room.created","app":"a","aggregate":"room","aggregate_id":"r","seq":1,"time":"2026-01-01T00:00:00Z","data":{}}]`), "", "", "", uint64(0))
	f.Add([]byte(`[{"id":"01kak3j7q8zx5v2b8t9w0n3e4r","type":"room.created","app":"a","aggregate":"room","aggregate_id":"r","seq":1,"time":"2026-01-01T00:00:00Z","data":{}}]`), "", "", "", uint64(0))
	f.Add([]byte("[{\"id\":\"01KAK3J7Q8ZX5V2B8T9W0N3E4R\",\"type\":\"room.created\",\"app\":\"\xff\",\"aggregate\":\"room\",\"aggregate_id\":\"r\",\"seq\":1,\"time\":\"2026-01-01T00:00:00Z\",\"data\":{}}]"), "", "", "", uint64(0))
	f.Fuzz(func(t *testing.T, raw []byte, app, id, corr string, seq uint64) {
		if events, err := DecodeEvents(raw); err == nil {
			for _, e := range events {
				if !bytes.Contains(raw, []byte(`"`+e.ID.String()+`"`)) {
					t.Fatalf("the ID %s was read from another spelling: %q", e.ID, raw)
				}
				for _, s := range []string{string(e.App), e.AggregateID, e.Correlation, e.Causation} {
					if !utf8.ValidString(s) {
						t.Fatalf("invalid UTF-8 %q accepted from %q", s, raw)
					}
				}
			}
		}
		if !utf8.ValidString(app) || !utf8.ValidString(id) || !utf8.ValidString(corr) {
			return // refused before the store: the writer is never given it
		}
		events := fixtures()
		for i := range events {
			events[i].App, events[i].AggregateID, events[i].Correlation, events[i].Seq = AppID(app), id, corr, seq
		}
		written, _, err := EncodeEvents("", events)
		if err != nil {
			t.Fatal(err)
		}
		read, err := DecodeEvents(written)
		if err != nil {
			t.Fatalf("roomlog cannot read its own message: %v\n%s", err, written)
		}
		again, _, err := EncodeEvents("", read)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(written, again) {
			t.Fatalf("read back differently:\n%s\n%s", written, again)
		}
	})
}

// Events stored by earlier versions stay readable: testdata/events/v1.0
// holds shapes that later versions extended by addition.
func TestOlderEventShapesDecode(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "events", "v*", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no older event shapes found: %v", err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var e Event
		if err := json.Unmarshal(bytes.TrimSpace(raw), &e); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if string(e.Type)+".json" != filepath.Base(f) {
			t.Errorf("%s holds a %s event", f, e.Type)
		}
	}
}
