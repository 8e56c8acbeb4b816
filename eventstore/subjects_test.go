package eventstore

import (
	"errors"
	"strings"
	"testing"
	"unicode"
)

func TestParseSubject(t *testing.T) {
	l := &Log{prefix: "acme.roomlog"}
	subj := l.Subject("app 1", "session", "user.*>")
	app, kind, id, err := ParseSubject("acme.roomlog", subj)
	if err != nil || app != "app 1" || kind != "session" || id != "user.*>" {
		t.Fatalf("ParseSubject(%q) = %q, %q, %q, %v", subj, app, kind, id, err)
	}
	if got, want := l.KindFilter("room"), "acme.roomlog.*.room.*"; got != want {
		t.Fatalf("KindFilter = %q, want %q", got, want)
	}
	bad := []string{
		"",
		"other.YQ.room.YQ",          // wrong prefix
		"acme.roomlog.YQ.room",      // too few tokens
		"acme.roomlog.YQ.room.YQ.x", // too many
		"acme.roomlog.YQ.Room.YQ",   // kind not [a-z]+
		"acme.roomlog.YQ.room.Y",    // not base64
		"acme.roomlog.YR.room.YQ",   // non-canonical: trailing bits set
		"acme.roomlog.YQ==.room.YQ", // padded
		"acme.roomlog.YQ.room.*",    // wildcard
	}
	for _, s := range bad {
		if _, _, _, err := ParseSubject("acme.roomlog", s); !errors.Is(err, ErrInvalidSubject) {
			t.Errorf("ParseSubject(%q) err = %v, want ErrInvalidSubject", s, err)
		}
	}
}

func TestSubjectPanicsOnInvalidKind(t *testing.T) {
	l := &Log{prefix: "roomlog"}
	for _, kind := range []string{"", "Room", "room.x", "*", ">", "ro om"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Subject with kind %q did not panic", kind)
				}
			}()
			l.Subject("a", kind, "b")
		}()
	}
}

func TestParseTokenRejectsLineBreaks(t *testing.T) {
	// encoding/base64 skips CR and LF; a token must not.
	if _, err := ParseToken("YW\nJj"); !errors.Is(err, ErrInvalidSubject) {
		t.Fatalf("err = %v, want ErrInvalidSubject", err)
	}
}

// FuzzToken checks that any ID round-trips through Token and that its
// token is always one literal NATS subject token.
func FuzzToken(f *testing.F) {
	for _, s := range []string{"", ".", "*", ">", " ", "a.b.c", "日本語 room", "\x00", "\xff\xfe", "roomlog.>", "a\tb\nc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		tok := Token(id)
		got, err := ParseToken(tok)
		if err != nil || got != id {
			t.Fatalf("ParseToken(Token(%q)) = %q, %v", id, got, err)
		}
		if (tok == "") != (id == "") {
			t.Fatalf("Token(%q) = %q: empty exactly for the empty ID", id, tok)
		}
		if strings.ContainsAny(tok, ".*>") || strings.ContainsFunc(tok, func(r rune) bool { return unicode.IsSpace(r) || r < 0x21 || r > 0x7e }) {
			t.Fatalf("Token(%q) = %q is not a safe subject token", id, tok)
		}
		if id != "" && !validSubject("p."+tok, false) {
			t.Fatalf("p.%s is not a valid literal subject", tok)
		}
	})
}
