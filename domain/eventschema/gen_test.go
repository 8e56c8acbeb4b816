package eventschema

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

var update = flag.Bool("update", false, "rewrite schemas/*.json and docs/events.md")

// obj is a JSON object that keeps its keys in the order they were set.
type obj []kv

type kv struct {
	k string
	v any
}

func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, p := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(p.k)
		v, err := json.Marshal(p.v)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (o obj) get(k string) any {
	for _, p := range o {
		if p.k == k {
			return p.v
		}
	}
	return nil
}

// comments are the doc comments of the domain's types and their fields.
type comments struct {
	types  map[string]string
	fields map[string]map[string]string // type -> field -> comment
}

func parseComments(t *testing.T) comments {
	t.Helper()
	c := comments{types: map[string]string{}, fields: map[string]map[string]string{}}
	fset := token.NewFileSet()
	for _, name := range []string{"events.go", "ids.go"} {
		f, err := parser.ParseFile(fset, filepath.Join("..", name), nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.TYPE {
				continue
			}
			for _, s := range g.Specs {
				ts := s.(*ast.TypeSpec)
				text := g.Doc.Text()
				if ts.Doc != nil {
					text = ts.Doc.Text()
				}
				c.types[ts.Name.Name] = strip(ts.Name.Name, oneLine(text))
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				fields := map[string]string{}
				for _, f := range st.Fields.List {
					text := f.Doc.Text()
					if text == "" {
						text = f.Comment.Text()
					}
					for _, n := range f.Names {
						fields[n.Name] = strip(n.Name, oneLine(text))
					}
				}
				c.fields[ts.Name.Name] = fields
			}
		}
	}
	return c
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// strip turns Go's "Name is the ..." and "NameData records ..." into what a
// reader of the JSON needs: "the ...", "Records ...".
func strip(name, text string) string {
	for _, verb := range []string{" is ", " are "} {
		if rest, ok := strings.CutPrefix(text, name+verb); ok {
			return rest
		}
	}
	if rest, ok := strings.CutPrefix(text, name+" "); ok && rest != "" {
		return strings.ToUpper(rest[:1]) + rest[1:]
	}
	return text
}

// common describes fields whose meaning is the same in every payload, where
// the Go source has no comment of its own.
var common = map[string]string{
	"user":            "the user's ID",
	"user_name":       "the user's display name when it happened",
	"session":         "the session (a server-assigned ULID)",
	"stream":          "the stream ID (unique within the app while published)",
	"claim":           "the sequence of the registry event (session or stream) this change answers",
	"reason":          "why it happened",
	"via":             "the operation that brought the member in",
	"role":            "the member's role in this room",
	"can_publish":     "whether the member may publish streams here",
	"extra_info":      "the stream's extra info",
	"by":              "the user who made the change",
	"by_name":         "that user's display name",
	"from":            "the sender's user ID",
	"from_name":       "the sender's display name",
	"body":            "the message body as sent",
	"to":              "the recipients' user IDs (none: everyone in the room)",
	"room":            "the room ID",
	"command":         "the ID of the command that made the claim",
	"name":            "the room's name",
	"attributes":      "the room's attributes",
	"key":             "the extra info key",
	"value":           "the extra info value",
	"by_session":      "the session whose action caused it",
	"detail":          "free text from the backend",
	"released":        "the rooms the session's claims were released in",
	"members":         "the members removed with the room",
	"streams":         "the streams stopped with the room",
	"mode":            "the session's room mode (ZEGO's single or multi)",
	"last_seen":       "when the session was last heard from",
	"registry":        "the registry aggregate kind of the voided claim",
	"id":              "the registry entry's ID",
	"set":             "the attributes set, key to value",
	"deleted":         "the attribute keys deleted",
	"destroy_delay_s": "seconds an empty room lives on before it is destroyed",
}

// typeFields describes fields whose meaning in one payload differs from the
// common one, where the Go source has no comment of its own: type -> JSON
// name -> description.
var typeFields = map[string]map[string]string{
	"MemberAttributesUpdatedData": {
		"members": "the changes, one entry per member changed: its user ID and the attributes set and deleted",
	},
}

// envelope describes the envelope fields whose comment they share with
// another field in the Go source.
var envelope = map[string]string{
	"app":          "the app (tenant) ID",
	"aggregate_id": "the aggregate's ID (a room, session or stream ID), not encoded",
	"causation":    "the command or event that directly caused this one",
}

// enums lists the values of the domain's closed string sets.
var enums = map[reflect.Type][]string{
	reflect.TypeFor[domain.Reason]():        strs(domain.Reasons()),
	reflect.TypeFor[domain.Via]():           strs(domain.Vias()),
	reflect.TypeFor[domain.Role]():          strs(domain.Roles()),
	reflect.TypeFor[domain.RoomMode]():      strs(domain.RoomModes()),
	reflect.TypeFor[domain.DestroyReason](): strs(domain.DestroyReasons()),
	// Kind appears in payloads only as claim_voided's registry, which is a
	// session or a stream, never a room (the envelope's aggregate is a const).
	reflect.TypeFor[domain.Kind](): {string(domain.KindSession), string(domain.KindStream)},
}

func strs[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// schemaOf returns the JSON Schema of a Go type as encoding/json writes it.
func schemaOf(c comments, t reflect.Type, desc string) obj {
	var o obj
	if desc != "" {
		o = append(o, kv{"description", desc})
	}
	if t == reflect.TypeFor[time.Time]() {
		return append(o, kv{"type", "string"}, kv{"format", "date-time"})
	}
	if vs, ok := enums[t]; ok {
		return append(o, kv{"type", "string"}, kv{"enum", vs})
	}
	switch t.Kind() {
	case reflect.String:
		return append(o, kv{"type", "string"})
	case reflect.Bool:
		return append(o, kv{"type", "boolean"})
	case reflect.Int, reflect.Int64:
		return append(o, kv{"type", "integer"})
	case reflect.Uint64, reflect.Uint:
		return append(o, kv{"type", "integer"}, kv{"minimum", 0})
	case reflect.Map:
		return append(o, kv{"type", "object"}, kv{"additionalProperties", schemaOf(c, t.Elem(), "")})
	case reflect.Slice:
		return append(o, kv{"type", "array"}, kv{"items", schemaOf(c, t.Elem(), "")})
	case reflect.Struct:
		var props obj
		var required []string
		for i := range t.NumField() {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			d := c.fields[t.Name()][f.Name]
			if d == "" {
				d = typeFields[t.Name()][name]
			}
			if d == "" {
				d = common[name]
			}
			props = append(props, kv{name, schemaOf(c, f.Type, d)})
			if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
				required = append(required, name)
			}
		}
		o = append(o, kv{"type", "object"})
		if len(required) > 0 {
			o = append(o, kv{"required", required})
		}
		return append(o, kv{"properties", props}, kv{"additionalProperties", false})
	}
	panic(fmt.Sprintf("no schema for %v", t))
}

// golden is one golden event file.
type golden struct {
	path  string
	raw   []byte
	event domain.Event
}

func goldens(t *testing.T, dir string) []golden {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "testdata", "events", dir, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no golden events in %s: %v", dir, err)
	}
	var out []golden
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		raw = bytes.TrimSpace(raw)
		events, err := domain.DecodeEvents(append(append([]byte{'['}, raw...), ']'))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, golden{p, raw, events[0]})
	}
	return out
}

// schemaFor returns the schema of one event type.
func schemaFor(c comments, e domain.Event) obj {
	env := reflect.TypeFor[domain.Event]()
	var props obj
	var required []string
	for i := range env.NumField() {
		f := env.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		d := c.fields["Event"][f.Name]
		var s obj
		switch name {
		case "id":
			s = obj{{"description", d}, {"type", "string"}, {"pattern", "^[0-9A-HJKMNP-TV-Z]{26}$"}}
		case "type":
			s = obj{{"description", d}, {"const", string(e.Type)}}
		case "aggregate":
			s = obj{{"description", "the aggregate's kind"}, {"const", string(e.Aggregate)}}
		case "seq":
			s = obj{{"description", d}, {"type", "integer"}, {"minimum", 1}}
		case "prev":
			s = obj{{"description", d}, {"type", "string"}, {"pattern", "^[0-9a-f]{64}$"}}
		case "data":
			pt := reflect.TypeOf(e.Data).Elem()
			s = schemaOf(c, pt, c.types[pt.Name()])
		default:
			if d == "" {
				d = envelope[name]
			}
			s = schemaOf(c, f.Type, d)
		}
		props = append(props, kv{name, s})
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			required = append(required, name)
		}
	}
	pt := reflect.TypeOf(e.Data).Elem()
	return obj{
		{"$schema", "https://json-schema.org/draft/2020-12/schema"},
		{"$id", BaseURL + string(e.Type) + ".json"},
		{"title", string(e.Type)},
		{"description", c.types[pt.Name()]},
		{"type", "object"},
		{"required", required},
		{"properties", props},
		{"additionalProperties", false},
	}
}

func indent(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// check compares a generated file with the one in the repository, or
// rewrites it with -update.
func check(t *testing.T, path string, want []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("%s is not what the domain's types generate (%v): run go test ./domain/eventschema -update", path, err)
	}
}

func TestSchemasAreGeneratedFromTheDomain(t *testing.T) {
	c := parseComments(t)
	current := goldens(t, "")
	types := map[domain.EventType]bool{}
	for _, g := range current {
		types[g.event.Type] = true
		check(t, filepath.Join("schemas", string(g.event.Type)+".json"), indent(t, schemaFor(c, g.event)))
	}
	for _, et := range domain.EventTypes() {
		if !types[et] {
			t.Errorf("event type %s has no golden file, so no schema", et)
		}
	}
	files, _ := filepath.Glob(filepath.Join("schemas", "*.json"))
	if len(files) != len(types) {
		t.Errorf("%d schema files for %d event types: remove the stale ones", len(files), len(types))
	}
}

func TestEveryGoldenEventValidates(t *testing.T) {
	for _, dir := range []string{"", "v1.0"} {
		for _, g := range goldens(t, dir) {
			if err := Validate(g.raw); err != nil {
				t.Errorf("%s: %v", g.path, err)
			}
		}
	}
}

func TestTheSchemasRejectWhatTheDomainWouldNotWrite(t *testing.T) {
	g := goldens(t, "")[0]
	for _, c := range []struct{ name, from, to string }{
		{"a wrong type for a field", `"seq":`, `"seq":"x",`},
		{"an unknown envelope field", `"id":`, `"colour":"red","id":`},
		{"a time that is not RFC 3339", `"time":"`, `"time":"yesterday","x":"`},
		{"an ID that is not a ULID", `"id":"`, `"id":"not-a-ulid","y":"`},
	} {
		bad := strings.Replace(string(g.raw), c.from, c.to, 1)
		if err := Validate([]byte(bad)); err == nil {
			t.Errorf("%s: %s validated", c.name, bad)
		}
	}
}

func TestEventsDocIsGenerated(t *testing.T) {
	c := parseComments(t)
	check(t, filepath.Join("..", "..", "docs", "events.md"), eventsDoc(t, c))
}

// ---- docs/events.md ----

func eventsDoc(t *testing.T, c comments) []byte {
	t.Helper()
	var b bytes.Buffer
	app, room := "demo", "class 1.A"
	roomSubject := "roomlog." + eventstore.Token(app) + ".room." + eventstore.Token(room)
	fmt.Fprintf(&b, eventsIntro, eventstore.Token(app), eventstore.Token(room), roomSubject)
	current := goldens(t, "")
	old := goldens(t, "v1.0")
	fmt.Fprintln(&b, "| type | aggregate | records |\n|---|---|---|")
	for _, g := range current {
		pt := reflect.TypeOf(g.event.Data).Elem()
		fmt.Fprintf(&b, "| [`%s`](#%s) | %s | %s |\n", g.event.Type, anchor(string(g.event.Type)), g.event.Aggregate,
			firstSentence(c.types[pt.Name()]))
	}
	fmt.Fprintln(&b)
	kind := domain.Kind("")
	for _, g := range current {
		if g.event.Aggregate != kind {
			kind = g.event.Aggregate
			fmt.Fprintf(&b, "## %s events\n\n", kind)
		}
		pt := reflect.TypeOf(g.event.Data).Elem()
		fmt.Fprintf(&b, "### `%s`\n\n%s\n\n", g.event.Type, c.types[pt.Name()])
		s := schemaOf(c, pt, "")
		fmt.Fprintln(&b, "| field of `data` | type | required | meaning |\n|---|---|---|---|")
		required, _ := s.get("required").([]string)
		for _, p := range s.get("properties").(obj) {
			ps := p.v.(obj)
			d, _ := ps.get("description").(string)
			req := ""
			if slices.Contains(required, p.k) {
				req = "yes"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", p.k, typeName(ps), req, strings.ReplaceAll(d, "|", "\\|"))
		}
		fmt.Fprintf(&b, "\nExample ([schema](../domain/eventschema/schemas/%s.json)):\n\n```json\n%s```\n\n", g.event.Type, indent(t, json.RawMessage(g.raw)))
		for _, o := range old {
			if o.event.Type == g.event.Type {
				fmt.Fprintf(&b, "As written by v1.0 (still read, and valid against the schema):\n\n```json\n%s```\n\n", indent(t, json.RawMessage(o.raw)))
			}
		}
	}
	return b.Bytes()
}

func anchor(s string) string { return strings.NewReplacer(".", "", "_", "_").Replace(s) }

func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i >= 0 {
		return s[:i+1]
	}
	return s
}

func typeName(s obj) string {
	if vs, ok := s.get("enum").([]string); ok {
		return "`" + strings.Join(vs, "` \\| `") + "`"
	}
	typ, _ := s.get("type").(string)
	switch typ {
	case "array":
		return "array of " + typeName(s.get("items").(obj))
	case "object":
		if ap, ok := s.get("additionalProperties").(obj); ok {
			return "object of " + typeName(ap)
		}
		var names []string
		for _, p := range s.get("properties").(obj) {
			names = append(names, p.k)
		}
		return "object (" + strings.Join(names, ", ") + ")"
	case "string":
		if f, ok := s.get("format").(string); ok {
			return "string (" + f + ")"
		}
	}
	return typ
}

const eventsIntro = `# Events: the public contract

<!-- Generated by go test ./domain/eventschema -update from the domain's types and the golden
files in domain/testdata/events; a test fails when this file is out of date. -->

Every change to a room is an event stored in NATS JetStream. This document is
all a consumer needs to read them with any NATS client: where they are, how
to connect, how they are encoded, how to resume, and every event type with an
example. Each type has a JSON Schema (draft 2020-12) in
[domain/eventschema/schemas](../domain/eventschema/schemas), checked by a test
against every golden event and every event of a generated log.

## Where events live

One stream, ` + "`ROOMLOG`" + `, holds every event under the prefix ` + "`roomlog`" + ` (built-in
defaults, which code embedding the event store may change). Each aggregate has one subject:

    roomlog.<app>.<kind>.<id>

- ` + "`<kind>`" + ` is ` + "`room`" + `, ` + "`session`" + ` (one client session, for the
  multi-room rules) or ` + "`stream`" + ` (the app-wide registry of a stream ID).
- ` + "`<app>`" + ` and ` + "`<id>`" + ` are the IDs' UTF-8 bytes in **unpadded base64url**
  (RFC 4648 §5: ` + "`A-Z a-z 0-9 - _`" + `, no ` + "`=`" + `), because IDs may contain ` + "`.`" + `,
  ` + "`*`" + `, ` + "`>`" + ` or spaces, which mean something in a subject. App ` + "`demo`" + ` is
  ` + "`%s`" + `; room ` + "`class 1.A`" + ` is ` + "`%s`" + `, so its subject is
  ` + "`%s`" + `. Decode a token with any base64url decoder
  (` + "`base64.RawURLEncoding`" + ` in Go, ` + "`base64.urlsafe_b64decode(t + '=' * (-len(t) %% 4))`" + ` in Python).

Useful filters: one room, its subject; every room of an app,
` + "`roomlog.<app>.room.*`" + `; every room, ` + "`roomlog.*.room.*`" + `; everything, ` + "`roomlog.>`" + `.

## Messages

A message's payload is a **JSON array of events** of one aggregate: every
event one command produced for it (a logout while publishing stores
` + "`room.stream_stopped`" + ` and ` + "`room.member_left`" + ` in one message), so readers see
a multi-event change at once or not at all. Its headers:
` + "`Nats-Msg-Id`" + ` (for de-duplication) and
` + "`Nats-Expected-Last-Subject-Sequence`" + ` (the stream sequence of the message
before it on the subject, which the server checked on append).

` + "`Nats-Msg-Id`" + ` is the first event's ID, except for a message written for a client
request that carried an idempotency key the server honours (docs/protocol.md,
"Idempotency keys"; the operations that enter a room ignore keys): then it is
` + "`rq-`" + ` and 32 hex digits, a hash of the app, the request (session, operation,
key, and which of the request's commands wrote it), the aggregate and the
message's index among that command's messages to the aggregate. Every try of
the request gives the same ID, so JetStream stores the message once; it
matches no event's ` + "`id`" + `.

Every event object has this envelope, and the type's payload in ` + "`data`" + `:

| field | type | meaning |
|---|---|---|
| ` + "`id`" + ` | ULID string | unique; the first event's ID is the message's ` + "`Nats-Msg-Id`" + `, unless the message has an ` + "`rq-`" + ` ID (above) |
| ` + "`type`" + ` | string | the event type (below) |
| ` + "`app`" + `, ` + "`aggregate`" + `, ` + "`aggregate_id`" + ` | string | the aggregate: app ID, kind, ID (not encoded) |
| ` + "`seq`" + ` | integer | the aggregate's gapless sequence, 1 for its first event |
| ` + "`time`" + ` | RFC 3339 | when it happened; never earlier than the aggregate's previous event |
| ` + "`correlation`" + `, ` + "`causation`" + ` | string | optional: the logical step (a switch's two rooms share it), the direct cause |
| ` + "`prev`" + ` | hex string | SHA-256 of the previous event of the aggregate **as stored** (its exact bytes inside the array); absent for the first |
| ` + "`data`" + ` | object | the payload |

The hash chain lets anyone verify a history from its bytes (` + "`roomctl verify`" + `,
which also checks roomd's signed checkpoints: docs/architecture.md).

## Cursors

A consumer's position is a **cursor** naming one event: the stream sequence of
its message and its index in the array, written ` + "`<stream sequence>.<index>`" + `
(` + "`1042.0`" + `, ` + "`1042.1`" + `). ` + "`roomctl tail`" + ` prints one per event; resuming
with ` + "`roomctl tail -after 1042.0`" + ` delivers exactly the events after it
(` + "`1042.1`" + `, then the next messages). With a plain client: start a consumer at
stream sequence 1042 and skip the events of message 1042 at index 0 and below.
Resuming from a stream sequence alone would repeat or lose the rest of a
multi-event message.

## Connecting

roomd's embedded NATS server listens on ` + "`-nats-listen`" + ` (default
` + "`127.0.0.1:4222`" + `; ` + "`off`" + `: no port, and nothing outside roomd can read the
log) and accepts one user, ` + "`roomlog`" + `, with a password:

- **development mode** (roomd without ` + "`-secret`" + `): generated at the first start
  and kept in ` + "`<data>/nats-password`" + ` (` + "`roomlog-data/nats-password`" + ` by
  default), unless ` + "`-nats-password`" + ` gives one; the same for ` + "`roomd -role nats`" + `
  without ` + "`-nats-password`" + `;
- **production** (roomd with ` + "`-secret`" + `): ` + "`-nats-password`" + ` or
  ` + "`ROOMLOG_NATS_PASSWORD`" + `, required while the port is open; roomd writes no
  copy of it anywhere, so ask whoever runs it.

roomd with ` + "`-nats-url`" + ` embeds nothing: it connects to that NATS server or
cluster as ` + "`roomlog`" + ` with ` + "`-nats-password`" + `, and a consumer connects with
whatever credentials that server gives it. The port speaks plain NATS, without
TLS: reach it over loopback or a private network. The user ` + "`roomlog`" + ` may not
delete the stream, and the stream refuses deleting or purging messages, but
it may publish: a reader holding the password could append to the log, so
give it only to what you would trust with roomd's own access.

With the ` + "`nats`" + ` CLI, the credentials go in ` + "`--server`" + `, ` + "`--user`" + ` and
` + "`--password`" + ` (or ` + "`NATS_URL`" + `, ` + "`NATS_USER`" + ` and ` + "`NATS_PASSWORD`" + `). Against a
development node, whose app ` + "`dev`" + ` is ` + "`ZGV2`" + ` in subjects:

    nats --server nats://127.0.0.1:4222 --user roomlog --password "$(cat roomlog-data/nats-password)" \
        sub 'roomlog.ZGV2.room.*'

prints every room event of app ` + "`dev`" + ` as roomd appends it (one JSON array per
message, with its headers), and nothing stored before. To read the stored
history first, then follow, subscribe through JetStream (an ephemeral
consumer): ` + "`sub --all`" + `, or ` + "`sub --start-sequence 1042`" + ` to start at a stream
sequence (a cursor's first half); ` + "`--raw`" + ` prints the payloads only:

    export NATS_URL=nats://127.0.0.1:4222 NATS_USER=roomlog NATS_PASSWORD="$(cat roomlog-data/nats-password)"
    nats sub --all --raw 'roomlog.ZGV2.room.*'
    nats sub --start-sequence 1042 'roomlog.ZGV2.room.*'

## Following a room with a plain NATS client

A durable JetStream consumer survives the client: it keeps its position in
the server, and each message is acknowledged once processed. With the
` + "`nats`" + ` CLI (the credentials as above, in the environment):

    nats consumer add ROOMLOG analytics --pull --deliver all --ack explicit --filter 'roomlog.*.room.*' --defaults
    nats consumer next ROOMLOG analytics --count 100
    nats stream view ROOMLOG --subject 'roomlog.ZGV2.room.*'

In Go with nats.go's jetstream package:

    nc, _ := nats.Connect("nats://127.0.0.1:4222", nats.UserInfo("roomlog", password))
    js, _ := jetstream.New(nc)
    cons, _ := js.OrderedConsumer(ctx, "ROOMLOG", jetstream.OrderedConsumerConfig{
        FilterSubjects: []string{"roomlog.ZGV2.room.*"}})
    cons.Consume(func(m jetstream.Msg) {
        var events []map[string]any
        json.Unmarshal(m.Data(), &events)
        md, _ := m.Metadata() // md.Sequence.Stream: the cursor's first half
    })

An ordered consumer (above) delivers in log order and starts itself over at
any gap. A durable consumer does not: a message sent to a client whose
connection then broke is sent again only after the consumer's ack wait,
after the messages that follow it. A reader that needs log order can watch
` + "`md.Sequence.Consumer`" + `, which every delivery (redeliveries included) takes
in turn: a skipped number is a delivery that never arrived, and reading the
log from the last stream sequence handled fills it. ` + "`projections/consume`" + `
(roomstats) does exactly that.

## Versioning

- A field is only ever **added**, as optional: old events lack it, and a
  reader must accept that (` + "`user_name`" + ` of ` + "`room.member_left`" + ` arrived in v1.1; the
  v1.0 form is shown below). Consumers must ignore fields they do not know.
- A change that would alter what an existing field means is a **new event
  type** with a new name; the old type keeps its meaning and its decoder.
- **Old decoders stay**: roomd reads every event any version wrote; the golden
  files of older versions (` + "`domain/testdata/events/v1.0`" + `) are decoded by the
  tests, and they validate against the current schemas.
- The schemas describe exactly what this version writes
  (` + "`additionalProperties: false`" + `, so a test catches any drift between code and
  schema); a consumer validating with them should relax that to accept fields
  added later.
- A reader that meets an event type it does not know must stop, not skip it:
  skipping folds a different state than the writer's.

## Event types

`
