// Package auth mints and verifies roomlog's tokens: JWTs signed with the
// server's secret (HS256 only).
//
// There are two kinds, told apart by their audience so that one can never be
// used as the other:
//
//   - client tokens (aud "roomlog-client") let a user log into rooms: they
//     carry the app, the user, the rooms ("*": every room), whether the user may
//     publish, and an expiry. Verify turns one into Claims, and Claims.Grant
//     into the domain.Grant that the domain checks against each login.
//   - admin tokens (aud "roomlog-admin") let an operator or a backend service
//     call the admin API. VerifyAdmin returns their subject.
//
// A token carries exactly one audience: a token naming both would otherwise
// pass both checks.
//
// Every failure of Verify matches domain.ErrTokenInvalid (code 1002033, what
// ZEGO apps expect of a bad login token) and every failure of VerifyAdmin
// matches protocol.ErrUnauthorized; each also matches one reason (ErrExpired,
// ErrSignature, ...) and its message says what was wrong.
//
// The secret is the same bytes for roomd and roomctl: the exact string of
// -secret or ROOMLOG_SECRET (SecretEnv), not hex- or base64-decoded.
package auth

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/protocol"
)

const (
	// Issuer is the iss claim of every roomlog token.
	Issuer = "roomlog"
	// AudienceClient and AudienceAdmin are the aud claims of the two kinds.
	AudienceClient = "roomlog-client"
	AudienceAdmin  = "roomlog-admin"
	// AudienceResume is the aud claim of a session's resume token.
	AudienceResume = "roomlog-resume"
	// AllRooms is the rooms entry that grants every room of the app.
	AllRooms = "*"
	// MinSecretLen is the shortest secret accepted: 256 bits, the HS256 key size.
	MinSecretLen = 32
	// SecretEnv is the environment variable roomd and roomctl read the secret
	// from; its value's bytes are the secret as they are.
	SecretEnv = "ROOMLOG_SECRET"
	// MaxTTL is the longest validity a token may be issued for: 10 years
	// (the admin API's ttl_seconds at most 315360000; roomctl token -ttl at
	// most 87600h).
	MaxTTL = 10 * 365 * 24 * time.Hour
)

// Claims is what a client token says. Times have second precision (JWT
// NumericDate): Mint truncates them and Verify returns them in UTC, so a
// verified Claims re-mints to an equal one. How long a token has left is
// ExpiresAt minus now; there is no helper because the caller owns the clock.
type Claims struct {
	App  string // app ID (the token is only good for this app; the caller checks it)
	User string // user ID (sub)
	Name string // user name, optional
	// Rooms the token may log into, unless AllRooms. A room literally named "*"
	// cannot be listed: "*" on the wire means every room.
	Rooms     []string
	AllRooms  bool
	Publish   bool      // the user may publish streams
	IssuedAt  time.Time // zero: Mint uses the Clock; it is also the token's not-before
	ExpiresAt time.Time // required, and after now when minted
}

// Grant is what the domain checks at login: the user, the rooms, publishing
// and expiry. It says nothing of the app: the caller must compare c.App with
// the app the connection is for before using it.
func (c Claims) Grant() domain.Grant {
	g := domain.Grant{User: domain.UserID(c.User), UserName: c.Name, AllRooms: c.AllRooms, CanPublish: c.Publish,
		ExpiresAt: c.ExpiresAt}
	if !c.AllRooms {
		g.Rooms = make([]domain.RoomID, len(c.Rooms))
		for i, r := range c.Rooms {
			g.Rooms[i] = domain.RoomID(r)
		}
	}
	return g
}

// problems lists what makes c unfit to be a token; Mint refuses such claims
// and Verify refuses a token carrying them, so both accept the same set.
func (c Claims) problems() []string {
	var p []string
	if c.App == "" {
		p = append(p, "no app")
	} else if err := domain.ValidateAppID(domain.AppID(c.App)); err != nil {
		// Every login with it would be refused.
		p = append(p, err.Error())
	}
	if c.User == "" {
		p = append(p, "no user (sub)")
	} else if err := domain.ValidateUser(domain.User{ID: domain.UserID(c.User), Name: c.Name}); err != nil {
		p = append(p, err.Error())
	}
	switch {
	case c.AllRooms && len(c.Rooms) > 0:
		p = append(p, "both every room and a list of rooms")
	case !c.AllRooms && len(c.Rooms) == 0:
		p = append(p, "no rooms (list them, or allow every room)")
	case slices.Contains(c.Rooms, ""):
		p = append(p, "an empty room ID")
	case slices.Contains(c.Rooms, AllRooms):
		p = append(p, `"*" in a list of rooms (it can only stand alone, for every room)`)
	}
	for _, r := range c.Rooms {
		if err := domain.ValidateRoomID(domain.RoomID(r)); err != nil && r != "" {
			p = append(p, err.Error())
			break
		}
	}
	if c.ExpiresAt.IsZero() {
		p = append(p, "no expiry")
	}
	return p
}

// Config configures a Signer.
type Config struct {
	// Secret signs and verifies every token; at least MinSecretLen bytes.
	// It is copied, so a later change by the caller has no effect.
	Secret []byte
	// Clock is the time used for iat when minting and for exp and nbf when
	// verifying (default time.Now); tests inject one instead of sleeping.
	Clock func() time.Time
	// Leeway tolerates clock skew between the minting and the verifying host
	// on exp and nbf (default 0).
	Leeway time.Duration
}

// Signer mints and verifies tokens with one secret. It is safe for concurrent
// use.
type Signer struct {
	secret []byte
	clock  func() time.Time
	client *jwt.Parser
	admin  *jwt.Parser
	resume *jwt.Parser
}

// NewSigner checks cfg, reporting every problem at once, and fills its
// defaults. A short secret matches ErrSecretTooShort.
func NewSigner(cfg Config) (*Signer, error) {
	var errs []error
	if len(cfg.Secret) < MinSecretLen {
		errs = append(errs, fmt.Errorf("%w (got %d)", ErrSecretTooShort, len(cfg.Secret)))
	}
	if cfg.Leeway < 0 {
		errs = append(errs, fmt.Errorf("auth: leeway %s is negative", cfg.Leeway))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	s := &Signer{secret: bytes.Clone(cfg.Secret), clock: cfg.Clock}
	parser := func(aud string) *jwt.Parser {
		return jwt.NewParser(jwt.WithIssuer(Issuer), jwt.WithAudience(aud), jwt.WithExpirationRequired(),
			jwt.WithTimeFunc(cfg.Clock), jwt.WithLeeway(cfg.Leeway),
			// Strict base64: no second spelling of the same token.
			jwt.WithStrictDecoding())
	}
	s.client, s.admin, s.resume = parser(AudienceClient), parser(AudienceAdmin), parser(AudienceResume)
	return s, nil
}

// clientClaims is the wire form of a client token.
type clientClaims struct {
	App     string   `json:"app"`
	Name    string   `json:"name,omitempty"`
	Rooms   []string `json:"rooms"`
	Publish bool     `json:"pub"`
	jwt.RegisteredClaims
}

// Mint signs a client token. Claims with no app, user, rooms or expiry, or an
// expiry not after both the Clock's now and IssuedAt (now when zero), are
// refused with an error matching domain.ErrInvalidArgument, so the admin API
// can reply with that code as it is.
func (s *Signer) Mint(c Claims) (string, error) {
	p := c.problems()
	now := s.clock()
	iat := c.IssuedAt
	if iat.IsZero() {
		iat = now
	}
	// Compared as they will be sent (whole seconds): an expiry half a second
	// away would otherwise mint a token that is born expired.
	iatN, exp := jwt.NewNumericDate(iat), jwt.NewNumericDate(c.ExpiresAt)
	if !c.ExpiresAt.IsZero() && (!exp.After(now) || !exp.After(iatN.Time)) {
		p = append(p, fmt.Sprintf("expiry %s is not after now (%s) and the issue time (%s)",
			stamp(exp.Time), stamp(now), stamp(iatN.Time)))
	}
	if len(p) > 0 {
		return "", domain.ErrInvalidArgument.With("token claims: %s", strings.Join(p, "; "))
	}
	rooms := c.Rooms
	if c.AllRooms {
		rooms = []string{AllRooms}
	}
	tok, err := s.sign(clientClaims{App: c.App, Name: c.Name, Rooms: rooms, Publish: c.Publish,
		RegisteredClaims: jwt.RegisteredClaims{Issuer: Issuer, Subject: c.User,
			Audience: jwt.ClaimStrings{AudienceClient}, IssuedAt: iatN, NotBefore: iatN, ExpiresAt: exp}})
	if err == nil && len(tok) > MaxTokenBytes {
		return "", domain.ErrInvalidArgument.With("the token would be %d bytes, at most %d (it must fit in a login "+
			"request): name fewer rooms, or every room", len(tok), MaxTokenBytes)
	}
	return tok, err
}

// MaxTokenBytes is the largest client token Mint issues: with the rest of
// a login request it must fit in the gateway's 64 KiB request frame. About
// 250 room IDs of 128 bytes fit in it.
const MaxTokenBytes = 48 << 10

// Verify checks a client token's signature (HS256 with this secret only),
// issuer, audience, expiry and not-before (against the Clock, with Leeway) and
// claims. Every error matches domain.ErrTokenInvalid and one reason
// (ErrMalformed, ErrAlgorithm, ErrSignature, ErrIssuer, ErrAudience,
// ErrExpired, ErrNotYetValid or ErrClaims).
func (s *Signer) Verify(token string) (Claims, error) {
	if token == "" {
		return Claims{}, refuse(ErrTokenInvalid, ErrMalformed, "no token")
	}
	var cc clientClaims
	tok, err := s.client.ParseWithClaims(token, &cc, s.key)
	if err := s.check(ErrTokenInvalid, AudienceClient, tok, &cc.RegisteredClaims, err); err != nil {
		return Claims{}, err
	}
	if cc.IssuedAt == nil {
		// Mint always sets it; requiring it keeps what Verify accepts exactly
		// what Mint produces, so a verified Claims re-mints to itself.
		return Claims{}, refuse(ErrTokenInvalid, ErrClaims, "no issue time (iat)")
	}
	c := Claims{App: cc.App, User: cc.Subject, Name: cc.Name, Rooms: cc.Rooms, Publish: cc.Publish,
		IssuedAt: cc.IssuedAt.UTC(), ExpiresAt: cc.ExpiresAt.UTC()}
	if len(c.Rooms) == 1 && c.Rooms[0] == AllRooms {
		c.Rooms, c.AllRooms = nil, true
	}
	if p := c.problems(); len(p) > 0 {
		return Claims{}, refuse(ErrTokenInvalid, ErrClaims, "%s", strings.Join(p, "; "))
	}
	return c, nil
}

// MintAdmin signs an admin token for subject ("admin", or an operator's
// name, for the audit trail) valid for ttl from the Clock's now. An empty
// subject or a ttl under a second is refused with domain.ErrInvalidArgument.
func (s *Signer) MintAdmin(subject string, ttl time.Duration) (string, error) {
	var p []string
	if subject == "" {
		p = append(p, "no subject")
	} else if err := domain.ValidateAdmin(subject); err != nil {
		p = append(p, err.Error()) // the log records it with what the admin does
	}
	if ttl < time.Second {
		// Shorter would truncate to an already expired token.
		p = append(p, fmt.Sprintf("ttl %s is under a second", ttl))
	}
	if len(p) > 0 {
		return "", domain.ErrInvalidArgument.With("admin token: %s", strings.Join(p, "; "))
	}
	now := s.clock()
	return s.sign(jwt.RegisteredClaims{Issuer: Issuer, Subject: subject, Audience: jwt.ClaimStrings{AudienceAdmin},
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl))})
}

// VerifyAdmin checks an admin token as Verify checks a client token and
// returns its subject. Every error matches protocol.ErrUnauthorized
// (ErrAdminUnauthorized) and one reason, as for Verify.
func (s *Signer) VerifyAdmin(token string) (string, error) {
	if token == "" {
		return "", refuse(ErrAdminUnauthorized, ErrMalformed, "no token")
	}
	var rc jwt.RegisteredClaims
	tok, err := s.admin.ParseWithClaims(token, &rc, s.key)
	if err := s.check(ErrAdminUnauthorized, AudienceAdmin, tok, &rc, err); err != nil {
		return "", err
	}
	if rc.Subject == "" {
		return "", refuse(ErrAdminUnauthorized, ErrClaims, "no subject")
	}
	return rc.Subject, nil
}

// MintResume signs the token a client presents to reattach session after a
// reconnect (sent in hello, before the session has an app). Any node with the
// secret can check it, so a client may reconnect to another node.
func (s *Signer) MintResume(session string, ttl time.Duration) (string, error) {
	if session == "" || ttl < time.Second {
		return "", domain.ErrInvalidArgument.With("resume token: a session and a ttl of at least a second are required")
	}
	now := s.clock()
	return s.sign(jwt.RegisteredClaims{Issuer: Issuer, Subject: session, Audience: jwt.ClaimStrings{AudienceResume},
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl))})
}

// VerifyResume checks a resume token and returns its session. Every error
// matches protocol.ErrResumeFailed and one reason, as for Verify.
func (s *Signer) VerifyResume(token string) (session string, err error) {
	if token == "" {
		return "", refuse(protocol.ErrResumeFailed, ErrMalformed, "no resume token")
	}
	var rc jwt.RegisteredClaims
	tok, err := s.resume.ParseWithClaims(token, &rc, s.key)
	if err := s.check(protocol.ErrResumeFailed, AudienceResume, tok, &rc, err); err != nil {
		return "", err
	}
	if rc.Subject == "" {
		return "", refuse(protocol.ErrResumeFailed, ErrClaims, "no session")
	}
	return rc.Subject, nil
}

func (s *Signer) sign(claims jwt.Claims) (string, error) {
	t, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.secret)
	if err != nil {
		return "", fmt.Errorf("auth: signing: %w", err)
	}
	return t, nil
}

// key hands the parser the secret for HS256 tokens only. Checking the method
// here, not by name in a list, is what stops "none" and the RS/ES confusion
// attack (an RS256 token whose "public key" would be our secret).
func (s *Signer) key(t *jwt.Token) (any, error) {
	if t.Method != jwt.SigningMethodHS256 {
		return nil, ErrAlgorithm
	}
	return s.secret, nil
}

// check turns the parser's verdict into a coded refusal with a reason. Past
// the signature the claims are known to be ours, so they are inspected
// directly to say exactly what is wrong, the kind of token first.
func (s *Signer) check(coded *domain.Error, aud string, tok *jwt.Token, rc *jwt.RegisteredClaims, err error) error {
	if err != nil && !errors.Is(err, jwt.ErrTokenInvalidClaims) {
		switch {
		case errors.Is(err, ErrAlgorithm), errors.Is(err, jwt.ErrTokenUnverifiable):
			if tok == nil || tok.Header["alg"] == nil {
				return refuse(coded, ErrAlgorithm, "no signing algorithm (alg) in the header; only HS256 is accepted")
			}
			return refuse(coded, ErrAlgorithm, "signed with %v; only HS256 is accepted", tok.Header["alg"])
		case errors.Is(err, jwt.ErrTokenSignatureInvalid):
			return refuse(coded, ErrSignature, "the signature does not match (another secret, or a modified token)")
		default:
			return refuse(coded, ErrMalformed, "%v", err)
		}
	}
	now := s.clock()
	switch {
	case len(rc.Audience) != 1 || rc.Audience[0] != aud:
		return refuse(coded, ErrAudience, "audience %q, want exactly [%q]", []string(rc.Audience), aud)
	case rc.Issuer != Issuer:
		return refuse(coded, ErrIssuer, "issuer %q, want %q", rc.Issuer, Issuer)
	case rc.ExpiresAt == nil:
		return refuse(coded, ErrClaims, "no expiry (exp)")
	case errors.Is(err, jwt.ErrTokenExpired):
		return refuse(coded, ErrExpired, "expired at %s (now %s)", stamp(rc.ExpiresAt.Time), stamp(now))
	case errors.Is(err, jwt.ErrTokenNotValidYet) && rc.NotBefore != nil:
		return refuse(coded, ErrNotYetValid, "not valid before %s (now %s)", stamp(rc.NotBefore.Time), stamp(now))
	case err != nil:
		return refuse(coded, ErrClaims, "%v", err)
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// GenerateSecret returns MinSecretLen random bytes, for a dev setup. They are
// not printable: to pass them through ROOMLOG_SECRET, hex-encode them and use
// the 64-character hex string itself as the secret (both programs take the
// string's bytes as they are).
func GenerateSecret() ([]byte, error) {
	b := make([]byte, MinSecretLen)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("auth: generating a secret: %w", err)
	}
	return b, nil
}
