// Package eventschema holds the JSON Schema of every stored event type
// (schemas/<type>.json, draft 2020-12) and validates stored events against
// them with github.com/santhosh-tekuri/jsonschema/v6.
//
// The schemas are generated from the domain's Go types and doc comments and
// checked by this package's tests, which also validate every golden event
// (the current and the older versions) and every event of a generated log
// against them, and generate docs/events.md. Regenerate both with
//
//	go test ./domain/eventschema -update
package eventschema

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed schemas/*.json
var files embed.FS

// BaseURL is where the schemas' $id values point (a name, not fetched).
const BaseURL = "https://roomlog.dev/schemas/events/"

var (
	once     sync.Once
	compiled map[string]*jsonschema.Schema
	errLoad  error
)

func load() {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	entries, err := fs.ReadDir(files, "schemas")
	if err != nil {
		errLoad = err
		return
	}
	compiled = map[string]*jsonschema.Schema{}
	for _, e := range entries {
		b, err := files.ReadFile(path.Join("schemas", e.Name()))
		if err != nil {
			errLoad = err
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			errLoad = fmt.Errorf("%s: %w", e.Name(), err)
			return
		}
		url := BaseURL + e.Name()
		if err := c.AddResource(url, doc); err != nil {
			errLoad = err
			return
		}
		s, err := c.Compile(url)
		if err != nil {
			errLoad = fmt.Errorf("%s: %w", e.Name(), err)
			return
		}
		compiled[strings.TrimSuffix(e.Name(), ".json")] = s
	}
}

// Types lists the event types that have a schema.
func Types() ([]string, error) {
	once.Do(load)
	if errLoad != nil {
		return nil, errLoad
	}
	var out []string
	for t := range compiled {
		out = append(out, t)
	}
	return out, nil
}

// Validate checks one stored event object (the JSON of one element of a
// message's array) against the schema of its type.
func Validate(event []byte) error {
	once.Do(load)
	if errLoad != nil {
		return errLoad
	}
	var probe struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(event, &probe); err != nil {
		return fmt.Errorf("not an event object: %w", err)
	}
	s := compiled[probe.Type]
	if s == nil {
		return fmt.Errorf("no schema for event type %q", probe.Type)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(event))
	if err != nil {
		return err
	}
	return s.Validate(inst)
}

// ValidateMessage checks every event of one stored message (a JSON array
// of event objects).
func ValidateMessage(body []byte) error {
	var events []json.RawMessage
	if err := json.Unmarshal(body, &events); err != nil {
		return fmt.Errorf("not an array of events: %w", err)
	}
	for i, e := range events {
		if err := Validate(e); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
	}
	return nil
}
