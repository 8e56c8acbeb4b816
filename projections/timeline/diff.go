package timeline

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/roomlog/roomlog/domain"
)

// Change is one difference between a room's state at two points.
type Change struct {
	// What changed: "room", "member", "stream", "extra_info" or "attribute".
	What string `json:"what"`
	// ID names the member, stream or key ("" for the room itself).
	ID string `json:"id,omitempty"`
	// Op is "added", "removed" or "changed".
	Op string `json:"op"`
	// Text says it in words.
	Text string `json:"text"`
}

// Diff returns what differs from state a to state b (either may be nil: a
// room with no history yet), in a fixed order: the room, members, streams,
// extra info, attributes, each sorted by ID.
func Diff(a, b *domain.Room) []Change {
	if a == nil {
		a = &domain.Room{}
	}
	if b == nil {
		b = &domain.Room{}
	}
	var out []Change
	add := func(what, id, op, format string, args ...any) {
		out = append(out, Change{What: what, ID: id, Op: op, Text: fmt.Sprintf(format, args...)})
	}
	switch {
	case !a.Exists && b.Exists:
		add("room", "", "added", "the room was created (at %s)", b.CreatedAt.UTC().Format(time.RFC3339Nano))
	case a.Exists && !b.Exists:
		add("room", "", "removed", "the room was destroyed")
	case a.Exists && b.Exists && a.CreatedAt != b.CreatedAt:
		add("room", "", "changed", "the room was destroyed and created again")
	}
	if a.Name != b.Name {
		add("room", "", "changed", "name %q → %q", a.Name, b.Name)
	}
	for _, u := range keys(a.Members, b.Members) {
		x, y := a.Members[u], b.Members[u]
		switch {
		case x == nil:
			add("member", string(u), "added", "%s joined as %s (session %s)", who(u, y.UserName), y.Role, y.Session)
		case y == nil:
			add("member", string(u), "removed", "%s left (session %s)", who(u, x.UserName), x.Session)
		case x.Session != y.Session:
			add("member", string(u), "changed", "%s is in with session %s instead of %s", who(u, y.UserName), y.Session, x.Session)
		case x.Role != y.Role || x.CanPublish != y.CanPublish:
			add("member", string(u), "changed", "%s: role %s → %s, may publish %v → %v", u, x.Role, y.Role, x.CanPublish, y.CanPublish)
		}
	}
	for _, id := range keys(a.Streams, b.Streams) {
		x, y := a.Streams[id], b.Streams[id]
		switch {
		case x == nil:
			add("stream", string(id), "added", "stream %s published by %s", id, who(y.User, y.UserName))
		case y == nil:
			add("stream", string(id), "removed", "stream %s of %s stopped", id, who(x.User, x.UserName))
		case x.Session != y.Session || x.User != y.User:
			add("stream", string(id), "changed", "stream %s republished by %s", id, who(y.User, y.UserName))
		case x.ExtraInfo != y.ExtraInfo:
			add("stream", string(id), "changed", "stream %s extra info %q → %q", id, x.ExtraInfo, y.ExtraInfo)
		}
	}
	for _, k := range keys(a.ExtraInfo, b.ExtraInfo) {
		x, xok := a.ExtraInfo[k]
		y, yok := b.ExtraInfo[k]
		switch {
		case !xok:
			add("extra_info", k, "added", "extra info %q set to %q by %s", k, y.Value, y.By)
		case !yok:
			add("extra_info", k, "removed", "extra info %q (was %q) is gone", k, x.Value)
		case x.Value != y.Value:
			add("extra_info", k, "changed", "extra info %q: %q → %q (by %s)", k, x.Value, y.Value, y.By)
		}
	}
	for _, k := range keys(a.Attributes, b.Attributes) {
		x, xok := a.Attributes[k]
		y, yok := b.Attributes[k]
		switch {
		case !xok:
			add("attribute", k, "added", "attribute %q set to %q", k, y)
		case !yok:
			add("attribute", k, "removed", "attribute %q (was %q) deleted", k, x)
		case x != y:
			add("attribute", k, "changed", "attribute %q: %q → %q", k, x, y)
		}
	}
	return out
}

// keys returns the keys of two maps, sorted, once each.
func keys[K ~string, V any](a, b map[K]V) []K {
	all := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			all = append(all, k)
		}
	}
	slices.Sort(all)
	return all
}
