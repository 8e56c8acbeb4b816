package domain

import (
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
)

// AppID names a tenant: every room, session and stream ID lives inside one app.
type AppID string

// RoomID identifies a room within an app. Any UTF-8 text is allowed
// (including '.', '*', '>' and spaces); the log encodes it before it becomes
// part of a subject.
type RoomID string

// UserID identifies a user within an app.
type UserID string

// SessionID identifies one client session (one logical SDK instance). The
// server assigns it as a ULID string.
type SessionID string

// StreamID identifies an audio/video stream, unique within an app while it is
// published.
type StreamID string

// EventID is the unique identifier of an event. It doubles as the JetStream
// de-duplication id (Nats-Msg-Id) of the message that carries it.
type EventID = ulid.ULID

// User is the identity a session logs in with.
type User struct {
	ID   UserID `json:"id"`
	Name string `json:"name"`
}

// Published size limits of identifiers, in bytes (ZEGO Express limits).
const (
	MaxAppIDBytes    = 64
	MaxRoomIDBytes   = 128
	MaxUserIDBytes   = 64
	MaxUserNameBytes = 256
	MaxStreamIDBytes = 256
	MaxSessionBytes  = 64
	// MaxAdminBytes bounds the admin subject recorded with what an admin
	// asked for (an admin token's subject).
	MaxAdminBytes = 128
)

// checkID reports whether id is acceptable as an identifier: non-empty, valid
// UTF-8, no control characters, at most max bytes.
func checkID(what, id string, max int) error {
	switch {
	case id == "":
		return fmt.Errorf("%s is empty", what)
	case len(id) > max:
		return fmt.Errorf("%s is %d bytes, at most %d allowed", what, len(id), max)
	case !utf8.ValidString(id):
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return fmt.Errorf("%s contains a control character", what)
		}
	}
	return nil
}

// ValidateAdmin reports whether admin is a usable admin subject ("" for
// none: a command not from the admin API).
func ValidateAdmin(admin string) error {
	if admin == "" {
		return nil
	}
	return checkID("admin subject", admin, MaxAdminBytes)
}

// ValidateAppID reports whether app is a usable app ID.
func ValidateAppID(app AppID) error { return checkID("app ID", string(app), MaxAppIDBytes) }

// ValidateRoomID reports whether id is a usable room ID.
func ValidateRoomID(id RoomID) error { return checkID("room ID", string(id), MaxRoomIDBytes) }

// ValidateUserID reports whether id is a usable user ID.
func ValidateUserID(id UserID) error { return checkID("user ID", string(id), MaxUserIDBytes) }

// ValidateStreamID reports whether id is a usable stream ID.
func ValidateStreamID(id StreamID) error {
	return checkID("stream ID", string(id), MaxStreamIDBytes)
}

// ValidateSessionID reports whether id is a usable session ID.
func ValidateSessionID(id SessionID) error {
	return checkID("session ID", string(id), MaxSessionBytes)
}

// ValidateUser reports whether u is a usable identity. The name may be empty
// (then the user ID is shown) but is otherwise held to what an ID is held to.
func ValidateUser(u User) error {
	if err := ValidateUserID(u.ID); err != nil {
		return err
	}
	if u.Name == "" {
		return nil
	}
	return checkID("user name", u.Name, MaxUserNameBytes)
}
