package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/protocol"
)

var (
	secret = []byte("0123456789abcdef0123456789abcdef-test")
	epoch  = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
)

// clock is a settable time for the Signer; tests move it instead of sleeping.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func newSigner(t testing.TB) (*Signer, *clock) {
	t.Helper()
	c := &clock{now: epoch}
	s, err := NewSigner(Config{Secret: secret, Clock: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// clientMap is a valid client token's claims, for tests to spoil one by one.
func clientMap() jwt.MapClaims {
	return jwt.MapClaims{"iss": Issuer, "aud": []string{AudienceClient}, "sub": "u1", "app": "dev",
		"rooms": []string{"r1"}, "pub": true, "iat": epoch.Unix(), "nbf": epoch.Unix(),
		"exp": epoch.Add(time.Hour).Unix()}
}

func adminMap() jwt.MapClaims {
	return jwt.MapClaims{"iss": Issuer, "aud": []string{AudienceAdmin}, "sub": "ops", "iat": epoch.Unix(),
		"exp": epoch.Add(time.Hour).Unix()}
}

func without(m jwt.MapClaims, keys ...string) jwt.MapClaims {
	for _, k := range keys {
		delete(m, k)
	}
	return m
}

func with(m jwt.MapClaims, k string, v any) jwt.MapClaims {
	m[k] = v
	return m
}

func sign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func hs256(t testing.TB, claims jwt.Claims) string {
	return sign(t, jwt.SigningMethodHS256, secret, claims)
}

// reasons are the sentinels a failure matches exactly one of.
var reasons = []error{ErrMalformed, ErrAlgorithm, ErrSignature, ErrIssuer, ErrAudience, ErrExpired,
	ErrNotYetValid, ErrClaims}

// refused checks that err is a coded refusal with a detail, matching coded and
// exactly the one reason want.
func refused(t *testing.T, err error, coded *domain.Error, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want %v", want)
	}
	if !errors.Is(err, coded) {
		t.Errorf("%v does not match %s", err, coded.Name)
	}
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != coded.Code || de.Detail == "" {
		t.Errorf("%v: want a *domain.Error with code %d and a detail", err, coded.Code)
	}
	for _, r := range reasons {
		if errors.Is(err, r) != (r == want) {
			t.Errorf("%v: errors.Is(%q) = %v", err, r, !(r == want))
		}
	}
}

func TestClientRoundTrip(t *testing.T) {
	s, _ := newSigner(t)
	for _, c := range []Claims{
		{App: "dev", User: "u1", Name: "Ann", Rooms: []string{"class 1.A", "r.*>"}, Publish: true,
			ExpiresAt: epoch.Add(24*time.Hour + 700*time.Millisecond)},
		{App: "dev", User: "u2", AllRooms: true, ExpiresAt: epoch.Add(time.Minute),
			IssuedAt: epoch.Add(-time.Minute)},
	} {
		tok, err := s.Mint(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Verify(tok)
		if err != nil {
			t.Fatal(err)
		}
		want := c
		// Whole seconds on the wire; the Clock's now when IssuedAt is zero.
		want.ExpiresAt = c.ExpiresAt.Truncate(time.Second)
		if want.IssuedAt.IsZero() {
			want.IssuedAt = epoch
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
		}
	}
}

func TestAdminRoundTrip(t *testing.T) {
	s, _ := newSigner(t)
	tok, err := s.MintAdmin("ops", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if sub, err := s.VerifyAdmin(tok); err != nil || sub != "ops" {
		t.Fatalf("VerifyAdmin = %q, %v", sub, err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	s, clk := newSigner(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good, err := s.Mint(Claims{App: "dev", User: "u1", Rooms: []string{"r1"}, ExpiresAt: epoch.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	// The same token with its payload swapped for one granting every room.
	var payload map[string]any
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	_ = json.Unmarshal(raw, &payload)
	payload["rooms"] = []string{"*"}
	forged, _ := json.Marshal(payload)
	admin, _ := s.MintAdmin("admin", time.Hour)
	future, _ := s.Mint(Claims{App: "dev", User: "u1", AllRooms: true, IssuedAt: epoch.Add(time.Minute),
		ExpiresAt: epoch.Add(time.Hour)})

	cases := []struct {
		name  string
		token string
		now   time.Time // zero: epoch
		want  error
	}{
		{"empty", "", time.Time{}, ErrMalformed},
		{"garbage", "not a token", time.Time{}, ErrMalformed},
		{"three dots", "a.b.c", time.Time{}, ErrMalformed},
		{"header not JSON", b64([]byte("{")) + "." + parts[1] + "." + parts[2], time.Time{}, ErrMalformed},
		{"two segments", parts[0] + "." + parts[1], time.Time{}, ErrMalformed},
		{"another secret", sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), clientMap()), time.Time{}, ErrSignature},
		{"modified payload", parts[0] + "." + b64(forged) + "." + parts[2], time.Time{}, ErrSignature},
		{"modified signature", parts[0] + "." + parts[1] + "." + b64(bytes.Repeat([]byte{7}, 32)), time.Time{}, ErrSignature},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, clientMap()), time.Time{}, ErrAlgorithm},
		{"alg none, empty signature", b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".", time.Time{}, ErrAlgorithm},
		{"alg missing", b64([]byte(`{"typ":"JWT"}`)) + "." + parts[1] + "." + parts[2], time.Time{}, ErrAlgorithm},
		{"alg unknown", b64([]byte(`{"alg":"XS1"}`)) + "." + parts[1] + "." + parts[2], time.Time{}, ErrAlgorithm},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, clientMap()), time.Time{}, ErrAlgorithm},
		{"ES256", sign(t, jwt.SigningMethodES256, ecKey, clientMap()), time.Time{}, ErrAlgorithm},
		{"HS512 with the secret", sign(t, jwt.SigningMethodHS512, secret, clientMap()), time.Time{}, ErrAlgorithm},
		{"expired", good, epoch.Add(2 * time.Hour), ErrExpired},
		{"at the expiry", good, epoch.Add(time.Hour), ErrExpired},
		{"not yet valid", future, time.Time{}, ErrNotYetValid},
		{"admin token", admin, time.Time{}, ErrAudience},
		{"both audiences", hs256(t, with(clientMap(), "aud", []string{AudienceClient, AudienceAdmin})), time.Time{}, ErrAudience},
		{"no audience", hs256(t, without(clientMap(), "aud")), time.Time{}, ErrAudience},
		{"audience precedes expiry", admin, epoch.Add(2 * time.Hour), ErrAudience},
		{"other issuer", hs256(t, with(clientMap(), "iss", "someone")), time.Time{}, ErrIssuer},
		{"no issuer", hs256(t, without(clientMap(), "iss")), time.Time{}, ErrIssuer},
		{"no sub", hs256(t, without(clientMap(), "sub")), time.Time{}, ErrClaims},
		{"no app", hs256(t, without(clientMap(), "app")), time.Time{}, ErrClaims},
		{"no exp", hs256(t, without(clientMap(), "exp")), time.Time{}, ErrClaims},
		{"no iat", hs256(t, without(clientMap(), "iat")), time.Time{}, ErrClaims},
		{"no rooms", hs256(t, without(clientMap(), "rooms")), time.Time{}, ErrClaims},
		{"empty rooms", hs256(t, with(clientMap(), "rooms", []string{})), time.Time{}, ErrClaims},
		{"star among rooms", hs256(t, with(clientMap(), "rooms", []string{"*", "r1"})), time.Time{}, ErrClaims},
		{"empty room ID", hs256(t, with(clientMap(), "rooms", []string{""})), time.Time{}, ErrClaims},
		{"rooms not a list", hs256(t, with(clientMap(), "rooms", "r1")), time.Time{}, ErrMalformed},
		{"exp not a number", hs256(t, with(clientMap(), "exp", "tomorrow")), time.Time{}, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk.now = epoch
			if !tc.now.IsZero() {
				clk.now = tc.now
			}
			c, err := s.Verify(tc.token)
			refused(t, err, ErrTokenInvalid, tc.want)
			if !reflect.DeepEqual(c, Claims{}) {
				t.Errorf("claims returned with the error: %+v", c)
			}
		})
	}
	clk.now = epoch
	if _, err := s.Verify(good); err != nil {
		t.Fatalf("the untouched token: %v", err)
	}
}

// The wire reply of a refused login carries 1002033 and says why.
func TestRefusalOnTheWire(t *testing.T) {
	s, clk := newSigner(t)
	tok, _ := s.Mint(Claims{App: "dev", User: "u1", AllRooms: true, ExpiresAt: epoch.Add(time.Hour)})
	clk.now = epoch.Add(2 * time.Hour)
	_, err := s.Verify(tok)
	r := protocol.ReplyTo("1", nil, err)
	if r.Code != 1002033 || r.Error != "token_invalid" || !strings.Contains(r.Message, "expired at 2026-11-21T13:00:00Z") {
		t.Fatalf("reply %+v", r)
	}
}

func TestVerifyAdminRefuses(t *testing.T) {
	s, clk := newSigner(t)
	client, _ := s.Mint(Claims{App: "dev", User: "admin", AllRooms: true, ExpiresAt: epoch.Add(time.Hour)})
	admin, _ := s.MintAdmin("ops", time.Hour)
	cases := []struct {
		name  string
		token string
		now   time.Time
		want  error
	}{
		{"garbage", "Bearer x", time.Time{}, ErrMalformed},
		{"client token", client, time.Time{}, ErrAudience},
		{"another secret", sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("y", 40)), adminMap()), time.Time{}, ErrSignature},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, adminMap()), time.Time{}, ErrAlgorithm},
		{"expired", admin, epoch.Add(time.Hour), ErrExpired},
		{"no sub", hs256(t, without(adminMap(), "sub")), time.Time{}, ErrClaims},
		{"no exp", hs256(t, without(adminMap(), "exp")), time.Time{}, ErrClaims},
		{"other issuer", hs256(t, with(adminMap(), "iss", "x")), time.Time{}, ErrIssuer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk.now = epoch
			if !tc.now.IsZero() {
				clk.now = tc.now
			}
			sub, err := s.VerifyAdmin(tc.token)
			refused(t, err, ErrAdminUnauthorized, tc.want)
			if errors.Is(err, domain.ErrTokenInvalid) || sub != "" {
				t.Errorf("admin refusal %v (subject %q) looks like a login refusal", err, sub)
			}
			if !errors.Is(err, protocol.ErrUnauthorized) {
				t.Errorf("%v does not match protocol.ErrUnauthorized", err)
			}
		})
	}
}

func TestLeeway(t *testing.T) {
	clk := &clock{now: epoch}
	s, err := NewSigner(Config{Secret: secret, Clock: clk.Now, Leeway: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := s.Mint(Claims{App: "dev", User: "u1", AllRooms: true, ExpiresAt: epoch.Add(time.Minute)})
	clk.now = epoch.Add(time.Minute + 5*time.Second)
	if _, err := s.Verify(tok); err != nil {
		t.Errorf("5 s past expiry with 10 s leeway: %v", err)
	}
	clk.now = epoch.Add(time.Minute + 11*time.Second)
	if _, err := s.Verify(tok); !errors.Is(err, ErrExpired) {
		t.Errorf("11 s past expiry with 10 s leeway: %v", err)
	}
}

func TestGrant(t *testing.T) {
	exp := epoch.Add(time.Hour)
	cases := []struct {
		name   string
		claims Claims
		want   domain.Grant
	}{
		{"every room", Claims{User: "u1", AllRooms: true, Publish: true, ExpiresAt: exp},
			domain.Grant{User: "u1", AllRooms: true, CanPublish: true, ExpiresAt: exp}},
		{"listed rooms, no publishing", Claims{User: "u2", Rooms: []string{"a", "b c"}, ExpiresAt: exp},
			domain.Grant{User: "u2", Rooms: []domain.RoomID{"a", "b c"}, ExpiresAt: exp}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.claims.Grant(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	// From a verified token: "*" on the wire becomes AllRooms.
	s, _ := newSigner(t)
	tok := hs256(t, with(clientMap(), "rooms", []string{"*"}))
	c, err := s.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	want := domain.Grant{User: "u1", AllRooms: true, CanPublish: true, ExpiresAt: epoch.Add(time.Hour)}
	if g := c.Grant(); !reflect.DeepEqual(g, want) {
		t.Errorf("grant of a verified token: got %+v, want %+v", g, want)
	}
}

func TestMintRefuses(t *testing.T) {
	s, _ := newSigner(t)
	ok := Claims{App: "dev", User: "u1", Rooms: []string{"r1"}, ExpiresAt: epoch.Add(time.Hour)}
	cases := []struct {
		name   string
		change func(*Claims)
	}{
		{"no app", func(c *Claims) { c.App = "" }},
		{"no user", func(c *Claims) { c.User = "" }},
		{"no expiry", func(c *Claims) { c.ExpiresAt = time.Time{} }},
		{"past expiry", func(c *Claims) { c.ExpiresAt = epoch.Add(-time.Second) }},
		{"expiry now", func(c *Claims) { c.ExpiresAt = epoch }},
		{"expiry within this second", func(c *Claims) { c.ExpiresAt = epoch.Add(500 * time.Millisecond) }},
		{"expiry before issue", func(c *Claims) { c.IssuedAt = epoch.Add(2 * time.Hour) }},
		{"no rooms", func(c *Claims) { c.Rooms = nil }},
		{"all rooms and a list", func(c *Claims) { c.AllRooms = true }},
		{"star in the list", func(c *Claims) { c.Rooms = []string{"*"} }},
		{"empty room ID", func(c *Claims) { c.Rooms = []string{"r1", ""} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.change(&c)
			tok, err := s.Mint(c)
			var de *domain.Error
			if !errors.Is(err, domain.ErrInvalidArgument) || !errors.As(err, &de) || de.Detail == "" || tok != "" {
				t.Errorf("Mint = %q, %v; want an invalid_argument with a detail", tok, err)
			}
		})
	}
	if _, err := s.Mint(ok); err != nil {
		t.Fatalf("the unchanged claims: %v", err)
	}
	for _, tc := range []struct {
		subject string
		ttl     time.Duration
	}{{"", time.Hour}, {"ops", 0}, {"ops", -time.Hour}, {"ops", 999 * time.Millisecond}} {
		if tok, err := s.MintAdmin(tc.subject, tc.ttl); !errors.Is(err, domain.ErrInvalidArgument) {
			t.Errorf("MintAdmin(%q, %s) = %q, %v", tc.subject, tc.ttl, tok, err)
		}
	}
}

func TestNewSigner(t *testing.T) {
	_, err := NewSigner(Config{Secret: []byte("short"), Leeway: -time.Second})
	if !errors.Is(err, ErrSecretTooShort) || !strings.Contains(err.Error(), "leeway") {
		t.Errorf("want both problems at once, got %v", err)
	}
	if _, err := NewSigner(Config{Secret: bytes.Repeat([]byte{1}, MinSecretLen-1)}); !errors.Is(err, ErrSecretTooShort) {
		t.Errorf("31 bytes: %v", err)
	}
	// The secret is copied: changing the caller's slice changes nothing.
	key := bytes.Clone(secret)
	s, err := NewSigner(Config{Secret: key}) // default clock: time.Now
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Mint(Claims{App: "dev", User: "u1", AllRooms: true, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	key[0] ^= 0xff
	if _, err := s.Verify(tok); err != nil {
		t.Errorf("after the caller changed its slice: %v", err)
	}
}

func TestGenerateSecret(t *testing.T) {
	a, err := GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != MinSecretLen || len(b) != MinSecretLen || bytes.Equal(a, b) {
		t.Fatalf("secrets %x and %x: want two different %d-byte values", a, b, MinSecretLen)
	}
	if _, err := NewSigner(Config{Secret: a}); err != nil {
		t.Errorf("a generated secret is refused: %v", err)
	}
}

// One Signer serves every connection of a node at once.
func TestConcurrentUse(t *testing.T) {
	s, _ := newSigner(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 50 {
				tok, err := s.Mint(Claims{App: "dev", User: string(rune('a' + i)), AllRooms: true,
					ExpiresAt: epoch.Add(time.Hour)})
				if err != nil {
					t.Error(err)
					return
				}
				if c, err := s.Verify(tok); err != nil || c.User != string(rune('a'+i)) {
					t.Error(c, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// Any string either verifies to claims that re-mint to themselves, or is
// refused with ErrTokenInvalid; it never panics.
func FuzzVerify(f *testing.F) {
	s, _ := newSigner(f)
	good, _ := s.Mint(Claims{App: "dev", User: "u1", Name: "Ann", Rooms: []string{"r1", "r 2"}, Publish: true,
		ExpiresAt: epoch.Add(time.Hour)})
	all, _ := s.Mint(Claims{App: "dev", User: "u1", AllRooms: true, ExpiresAt: epoch.Add(time.Hour)})
	admin, _ := s.MintAdmin("ops", time.Hour)
	for _, seed := range []string{good, all, admin, "", ".", "..", "a.b.c", good + "x", good[:len(good)-1],
		sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, clientMap()),
		hs256(f, with(clientMap(), "rooms", []string{"*", "x"}))} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := s.Verify(token)
		if err != nil {
			var de *domain.Error
			if !errors.Is(err, domain.ErrTokenInvalid) || !errors.As(err, &de) {
				t.Fatalf("refusal %v is not a token_invalid", err)
			}
			return
		}
		again, err := s.Mint(c)
		if err != nil {
			t.Fatalf("verified claims %+v do not re-mint: %v", c, err)
		}
		c2, err := s.Verify(again)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("re-minted claims differ:\n%+v\n%+v (%v)", c, c2, err)
		}
	})
}

func TestResumeTokens(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s, err := NewSigner(Config{Secret: []byte("0123456789abcdef0123456789abcdef"), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.MintResume("01SESSION", 20*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := s.VerifyResume(tok)
	if err != nil || sess != "01SESSION" {
		t.Fatalf("resume round trip: %q %v", sess, err)
	}
	// Other kinds of token are not resume tokens, nor the other way round.
	client, _ := s.Mint(Claims{App: "dev", User: "u", AllRooms: true, ExpiresAt: now.Add(time.Hour)})
	if _, err := s.VerifyResume(client); !errors.Is(err, protocol.ErrResumeFailed) || !errors.Is(err, ErrAudience) {
		t.Errorf("a client token as a resume token: %v", err)
	}
	if _, err := s.Verify(tok); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("a resume token as a client token: %v", err)
	}
	now = now.Add(21 * time.Minute)
	if _, err := s.VerifyResume(tok); !errors.Is(err, ErrExpired) {
		t.Errorf("an expired resume token: %v", err)
	}
}
