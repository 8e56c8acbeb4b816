package auth

import (
	"errors"
	"fmt"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/protocol"
)

// The coded refusals, as the wire sees them. Every error of Verify matches
// ErrTokenInvalid and every error of VerifyAdmin matches ErrAdminUnauthorized
// (errors.Is compares codes), so a transport replies with the right code
// without knowing why the token failed.
var (
	ErrTokenInvalid      = domain.ErrTokenInvalid   // 1002033: login fails (SEMANTICS.md §1, §5 LoginFailed)
	ErrAdminUnauthorized = protocol.ErrUnauthorized // 1906007: the admin API refuses the request
)

// Why a token was refused. Each failure of Verify or VerifyAdmin also matches
// exactly one of these, so a caller can tell a token to refresh (ErrExpired)
// from a forged one without reading the message.
var (
	ErrMalformed   = errors.New("auth: token is not a well-formed JWT")
	ErrAlgorithm   = errors.New("auth: token is not signed with HS256")
	ErrSignature   = errors.New("auth: token signature does not match")
	ErrIssuer      = errors.New("auth: token has the wrong issuer")
	ErrAudience    = errors.New("auth: token is of the wrong kind (audience)")
	ErrExpired     = errors.New("auth: token has expired")
	ErrNotYetValid = errors.New("auth: token is not valid yet")
	ErrClaims      = errors.New("auth: token claims are missing or invalid")
)

// ErrSecretTooShort is reported by NewSigner for a secret under MinSecretLen
// bytes; roomctl treats it as a usage error.
var ErrSecretTooShort = fmt.Errorf("auth: the secret must be at least %d bytes", MinSecretLen)

// failure joins the coded refusal sent on the wire with the reason, so that
// errors.Is matches both and errors.As(err, *domain.Error) finds the coded
// error with its detail (protocol.ReplyTo shows that detail to the client).
type failure struct {
	coded  *domain.Error
	reason error
}

func (f *failure) Error() string   { return f.coded.Error() }
func (f *failure) Unwrap() []error { return []error{f.coded, f.reason} }

func refuse(coded *domain.Error, reason error, format string, args ...any) error {
	return &failure{coded: coded.With(format, args...), reason: reason}
}
