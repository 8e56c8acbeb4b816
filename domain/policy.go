package domain

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	jsonv1 "github.com/go-json-experiment/json/v1"
)

// Limits are the per-app size and rate limits (SEMANTICS.md section 3 and
// the ZIM room attribute limits). Sizes are in bytes, rates per second.
type Limits struct {
	MessageBytes           int `json:"message_bytes"`              // broadcast, barrage and custom command bodies
	BroadcastPerSecond     int `json:"broadcast_per_second"`       // per room
	BarragePerSecond       int `json:"barrage_per_second"`         // per room, enforced by each node (barrage is not logged)
	CommandToOnePerSecond  int `json:"command_to_one_per_second"`  // per room and recipient
	CommandToManyPerSecond int `json:"command_to_many_per_second"` // per room, for zero or several recipients
	CommandMaxRecipients   int `json:"command_max_recipients"`
	ExtraInfoKeyBytes      int `json:"extra_info_key_bytes"`   // a key must be shorter than this
	ExtraInfoValueBytes    int `json:"extra_info_value_bytes"` // a value must be shorter than this
	ExtraInfoPerSecond     int `json:"extra_info_per_second"`  // per room
	ExtraInfoKeys          int `json:"extra_info_keys"`        // distinct keys per room
	StreamExtraInfoBytes   int `json:"stream_extra_info_bytes"`
	// StreamsPerMember and PlaysPerMember bound what one member publishes
	// and plays in a room: each is in the room's state, and the streams in
	// every joiner's snapshot.
	StreamsPerMember       int `json:"streams_per_member"`
	PlaysPerMember         int `json:"plays_per_member"`
	AttributeKeys          int `json:"attribute_keys"`
	AttributeKeyBytes      int `json:"attribute_key_bytes"`
	AttributeValueBytes    int `json:"attribute_value_bytes"`
	AttributeTotalBytes    int `json:"attribute_total_bytes"`
	AttributesPerSecond    int `json:"attributes_per_second"` // room attribute writes per room
	MaxDestroyDelaySeconds int `json:"max_destroy_delay_s"`
	// Room member attributes (ZIM setRoomMembersAttributes).
	MemberAttributeKeys       int `json:"member_attribute_keys"` // per member
	MemberAttributeKeyBytes   int `json:"member_attribute_key_bytes"`
	MemberAttributeValueBytes int `json:"member_attribute_value_bytes"`
	MemberAttributeUsers      int `json:"member_attribute_users"`       // members one write may name
	MemberAttributesPerSecond int `json:"member_attributes_per_second"` // writes per room
	// HistoryPage is the most messages one history query or login returns.
	HistoryPage int `json:"history_page"`
}

// DefaultLimits returns the limits published by ZEGO and ZIM.
func DefaultLimits() Limits {
	return Limits{
		MessageBytes:           1024,
		BroadcastPerSecond:     10,
		BarragePerSecond:       20,
		CommandToOnePerSecond:  200,
		CommandToManyPerSecond: 10,
		CommandMaxRecipients:   100,
		ExtraInfoKeyBytes:      128,
		ExtraInfoValueBytes:    4096,
		ExtraInfoPerSecond:     10,
		ExtraInfoKeys:          10,
		StreamExtraInfoBytes:   1024,
		StreamsPerMember:       8,
		PlaysPerMember:         64,
		AttributeKeys:          20,
		AttributeKeyBytes:      16,
		AttributeValueBytes:    1024,
		AttributeTotalBytes:    5 * 1024,
		AttributesPerSecond:    10,
		MaxDestroyDelaySeconds: 10800,

		MemberAttributeKeys:       30,
		MemberAttributeKeyBytes:   8,
		MemberAttributeValueBytes: 64,
		MemberAttributeUsers:      100,
		MemberAttributesPerSecond: 10,
		HistoryPage:               100,
	}
}

// Policy is what an app is allowed to do.
type Policy struct {
	// MultiRoom allows sessions in multi-room mode (off by default, as in ZEGO).
	MultiRoom bool `json:"multi_room"`
	// MaxRooms is how many rooms one multi-room session may be in at once.
	MaxRooms int    `json:"max_rooms"`
	Limits   Limits `json:"limits"`
}

// DefaultPolicy returns the policy of an app that configured nothing.
func DefaultPolicy() Policy {
	return Policy{MultiRoom: false, MaxRooms: 5, Limits: DefaultLimits()}
}

// Validate reports every problem with p at once.
func (p Policy) Validate() error {
	var errs []error
	positive := func(name string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %d", name, v))
		}
	}
	positive("max_rooms", p.MaxRooms)
	l := p.Limits
	positive("message_bytes", l.MessageBytes)
	positive("broadcast_per_second", l.BroadcastPerSecond)
	positive("barrage_per_second", l.BarragePerSecond)
	positive("command_to_one_per_second", l.CommandToOnePerSecond)
	positive("command_to_many_per_second", l.CommandToManyPerSecond)
	positive("command_max_recipients", l.CommandMaxRecipients)
	positive("extra_info_key_bytes", l.ExtraInfoKeyBytes)
	positive("extra_info_value_bytes", l.ExtraInfoValueBytes)
	positive("extra_info_per_second", l.ExtraInfoPerSecond)
	positive("extra_info_keys", l.ExtraInfoKeys)
	positive("stream_extra_info_bytes", l.StreamExtraInfoBytes)
	positive("streams_per_member", l.StreamsPerMember)
	positive("plays_per_member", l.PlaysPerMember)
	positive("attribute_keys", l.AttributeKeys)
	positive("attribute_key_bytes", l.AttributeKeyBytes)
	positive("attribute_value_bytes", l.AttributeValueBytes)
	positive("attribute_total_bytes", l.AttributeTotalBytes)
	positive("attributes_per_second", l.AttributesPerSecond)
	positive("member_attribute_keys", l.MemberAttributeKeys)
	positive("member_attribute_key_bytes", l.MemberAttributeKeyBytes)
	positive("member_attribute_value_bytes", l.MemberAttributeValueBytes)
	positive("member_attribute_users", l.MemberAttributeUsers)
	positive("member_attributes_per_second", l.MemberAttributesPerSecond)
	positive("history_page", l.HistoryPage)
	if l.MaxDestroyDelaySeconds < 0 {
		errs = append(errs, fmt.Errorf("max_destroy_delay_s must not be negative, got %d", l.MaxDestroyDelaySeconds))
	}
	return errors.Join(errs...)
}

// ParseAppPolicies reads per-app policies, as roomd's -apps file holds
// them: {"app-id": {"multi_room": true, "max_rooms": 5, "limits": {...}}};
// missing fields keep def's. A key no policy has (a misspelling) is
// refused, naming the app and the key, rather than leaving the default in
// force.
func ParseAppPolicies(b []byte, def Policy) (map[AppID]Policy, error) {
	var raw map[AppID]jsonv1.RawMessage
	if err := jsonv1.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	apps := map[AppID]Policy{}
	for app, r := range raw {
		p := def
		dec := jsonv1.NewDecoder(bytes.NewReader(r))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			if k, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
				return nil, fmt.Errorf("app %q: unknown key %s (the keys are listed in README, Per-app policies)", app, k)
			}
			return nil, fmt.Errorf("app %q: %w", app, err)
		}
		apps[app] = p
	}
	return apps, nil
}

// Config configures a Decider.
type Config struct {
	// Default applies to every app without an entry in Apps.
	Default Policy
	// Apps overrides the policy per app.
	Apps map[AppID]Policy
	// MaxMessageBytes is the largest message the log stores
	// (eventstore.Config.MaxMsgSize; 0: DefaultMaxMessageBytes). Every step
	// of a decision is kept to it, with room for the message's headers: a
	// room too large to be destroyed in one event is emptied in several
	// steps first. At least MinMaxMessageBytes.
	MaxMessageBytes int
}

// DefaultMaxMessageBytes is the log's default message limit (1 MiB), and
// MinMaxMessageBytes the least a Decider accepts: a room's attributes and
// extra info, and a member's departure with its streams' stops, must each
// fit one message.
const (
	DefaultMaxMessageBytes = 1 << 20
	MinMaxMessageBytes     = 16 << 10
	// messageHeadroom is left in each message for its headers (Msg-Id,
	// expected sequence: well under 1 KiB); the size of a step's events is
	// known to the byte, their sequence numbers counted at 20 digits.
	messageHeadroom = 2 << 10
)

// Decider decides commands under per-app policies. It holds configuration
// only; its methods are pure functions of their arguments.
type Decider struct {
	def  Policy
	apps map[AppID]Policy
	// stepBytes is the most a step's events may take.
	stepBytes int
}

// NewDecider validates cfg and returns a Decider.
func NewDecider(cfg Config) (*Decider, error) {
	var errs []error
	if err := cfg.Default.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("default policy: %w", err))
	}
	apps := make(map[AppID]Policy, len(cfg.Apps))
	for app, p := range cfg.Apps {
		if err := ValidateAppID(app); err != nil {
			errs = append(errs, err)
		}
		if err := p.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("policy of app %q: %w", app, err))
		}
		apps[app] = p
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxMessageBytes < MinMaxMessageBytes {
		errs = append(errs, fmt.Errorf("max message bytes is %d, at least %d needed", cfg.MaxMessageBytes,
			MinMaxMessageBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Decider{def: cfg.Default, apps: apps, stepBytes: cfg.MaxMessageBytes - messageHeadroom}, nil
}

// Policy returns the policy of app.
func (d *Decider) Policy(app AppID) Policy {
	if p, ok := d.apps[app]; ok {
		return p
	}
	return d.def
}
