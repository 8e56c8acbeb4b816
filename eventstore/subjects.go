package eventstore

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// Subjects have the shape
//
//	<prefix>.<Token(app)>.<kind>.<Token(id)>
//
// App and aggregate IDs come from users and may contain '.', '*', '>',
// spaces or any unicode, each of which would change the meaning of a NATS
// subject (an extra token, a wildcard, an invalid subject). They are
// therefore never put in a subject verbatim but as unpadded base64url
// (alphabet A-Z a-z 0-9 '-' '_'), which is always a single, literal token.
// The kind is a fixed lowercase word chosen in code ("room", "session"), so
// it stays readable and filterable (KindFilter).

// Token encodes an ID as one safe NATS subject token: the unpadded base64url
// encoding of its bytes (UTF-8 for any real ID). The empty ID encodes to "", which is not a
// valid token: callers validate IDs as non-empty before building subjects,
// and Append rejects a subject with an empty token.
func Token(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(id))
}

// ParseToken decodes a token made by Token. It fails with ErrInvalidSubject
// on anything Token cannot have produced, including non-canonical encodings
// (padding, line breaks, non-zero trailing bits), so that every ID has exactly one token
// and every accepted token has exactly one ID. The round trip holds for any
// Go string, valid UTF-8 or not: checking IDs is the domain's job.
func ParseToken(tok string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", fmt.Errorf("%w: token %q: %w", ErrInvalidSubject, tok, err)
	}
	// The decoder skips CR and LF and tolerates non-zero trailing bits;
	// re-encoding is the simplest complete canonicality check.
	if Token(string(b)) != tok {
		return "", fmt.Errorf("%w: token %q is not canonical base64url", ErrInvalidSubject, tok)
	}
	return string(b), nil
}

// Subject returns the subject of one aggregate: "<prefix>.<Token(app)>.<kind>.<Token(id)>".
// kind must be a fixed lowercase word ([a-z]+) chosen in code; any other
// kind is a programming error and Subject panics, because a kind built from
// input could smuggle wildcards or extra tokens into the subject.
func (l *Log) Subject(app, kind, id string) string {
	if !validKind(kind) {
		panic(fmt.Sprintf("eventstore: invalid subject kind %q: want [a-z]+", kind))
	}
	return l.prefix + "." + Token(app) + "." + kind + "." + Token(id)
}

// ParseSubject splits a subject made by Subject under prefix back into the
// app ID, kind and aggregate ID. It fails with ErrInvalidSubject when the
// subject is not of that shape.
func ParseSubject(prefix, subject string) (app, kind, id string, err error) {
	rest, ok := strings.CutPrefix(subject, prefix+".")
	if !ok {
		return "", "", "", fmt.Errorf("%w: %q is not under prefix %q", ErrInvalidSubject, subject, prefix)
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return "", "", "", fmt.Errorf("%w: %q: want <prefix>.<app>.<kind>.<id>", ErrInvalidSubject, subject)
	}
	if !validKind(parts[1]) {
		return "", "", "", fmt.Errorf("%w: %q: kind %q is not [a-z]+", ErrInvalidSubject, subject, parts[1])
	}
	if app, err = ParseToken(parts[0]); err != nil {
		return "", "", "", err
	}
	if id, err = ParseToken(parts[2]); err != nil {
		return "", "", "", err
	}
	return app, parts[1], id, nil
}

// KindFilter returns the filter "<prefix>.*.<kind>.*" matching every
// aggregate of a kind in every app, for Read and Tail. It panics on an
// invalid kind, like Subject.
func (l *Log) KindFilter(kind string) string {
	if !validKind(kind) {
		panic(fmt.Sprintf("eventstore: invalid subject kind %q: want [a-z]+", kind))
	}
	return l.prefix + ".*." + kind + ".*"
}

// validKind reports whether kind matches [a-z]+.
func validKind(kind string) bool {
	if kind == "" {
		return false
	}
	for i := 0; i < len(kind); i++ {
		if kind[i] < 'a' || kind[i] > 'z' {
			return false
		}
	}
	return true
}

// validSubject reports whether s is a literal NATS subject this package is
// willing to send: non-empty tokens separated by '.', with no wildcard and
// no whitespace or control character. Wildcards are allowed only when
// wildcards is true (for filters), and then only as whole tokens, with '>'
// last.
func validSubject(s string, wildcards bool) bool {
	if s == "" {
		return false
	}
	tokens := strings.Split(s, ".")
	for i, t := range tokens {
		if t == "" {
			return false
		}
		if wildcards && (t == "*" || (t == ">" && i == len(tokens)-1)) {
			continue
		}
		for _, r := range t {
			if r == '*' || r == '>' || r <= ' ' || r == 0x7f {
				return false
			}
		}
	}
	return true
}
