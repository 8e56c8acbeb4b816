// Package web serves what a browser needs from roomd: the browser SDK
// (/sdk/roomlog.js, an ES module, and its TypeScript declarations
// /sdk/roomlog.d.ts), the demo page at /, and, in development mode only,
// POST /dev/token, which mints the demo's client tokens.
//
// Everything is embedded in the binary: no CDN, no bundler, nothing to
// install. docs/sdk-js.md documents the SDK.
package web

import (
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"regexp"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/protocol"
)

//go:embed assets
var assets embed.FS

// Config configures the web handler.
type Config struct {
	// DevTokens serves POST /dev/token, which mints a client token for any
	// user who asks: development mode only (roomd without -secret). In
	// production it is not served at all, and the demo page asks for a token.
	DevTokens bool
	// Signer mints the development tokens (required with DevTokens).
	Signer *auth.Signer
	// App is the app of the development tokens (default "dev").
	App string
	// TokenTTL is how long a development token lasts (default 24 h).
	TokenTTL time.Duration
	// Clock is the time source of the tokens (default time.Now).
	Clock  func() time.Time
	Logger *slog.Logger
}

// Server is the web handler.
type Server struct {
	cfg Config
	mux *http.ServeMux
}

// New builds the handler.
func New(cfg Config) (*Server, error) {
	if cfg.App == "" {
		cfg.App = "dev"
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = 24 * time.Hour
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DevTokens && cfg.Signer == nil {
		return nil, errors.New("web: DevTokens needs a Signer")
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	sdk, _ := fs.Sub(assets, "assets/sdk")
	demo, _ := fs.Sub(assets, "assets/demo")
	s.mux.Handle("GET /sdk/", http.StripPrefix("/sdk/", public(static(sdk))))
	s.mux.Handle("GET /demo/", http.StripPrefix("/demo/", static(demo)))
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, demo, "index.html")
	})
	s.mux.HandleFunc("GET /dev/config", s.devConfig)
	if cfg.DevTokens {
		s.mux.HandleFunc("POST /dev/token", s.devToken)
	}
	return s, nil
}

// static serves embedded files; browsers revalidate them (no-cache) so that
// a new roomd's SDK is picked up at once.
func static(fsys fs.FS) http.Handler {
	files := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if len(r.URL.Path) > 5 && r.URL.Path[len(r.URL.Path)-5:] == ".d.ts" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		}
		files.ServeHTTP(w, r)
	})
}

// public lets pages of any origin load the files (an app's page, served
// from its own site, imports the SDK from its roomd: a module script from
// another origin needs CORS). They are public code, fetched without
// credentials; who may connect is the WebSocket's -origins to decide.
func public(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		h.ServeHTTP(w, r)
	})
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// devConfig tells the demo page whether it can get tokens by itself.
func (s *Server) devConfig(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"dev_tokens": s.cfg.DevTokens, "app": s.cfg.App})
}

// TokenRequest asks POST /dev/token for a token.
type TokenRequest struct {
	User string `json:"user"`
	Name string `json:"name,omitempty"`
}

// TokenReply is its answer.
type TokenReply struct {
	Token     string `json:"token"`
	App       string `json:"app"`
	ExpiresAt int64  `json:"expires_at"` // Unix milliseconds
}

// userID is what a demo user ID may look like (the domain checks it again at
// login).
var userID = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,64}$`)

// devToken mints a client token for the demo: the asked user, every room,
// may publish.
func (s *Server) devToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, domain.ErrInvalidArgument, "the body must be {\"user\": \"...\"}")
		return
	}
	if !userID.MatchString(req.User) {
		writeError(w, http.StatusBadRequest, domain.ErrInvalidArgument, "user: 1 to 64 letters, digits or _.@-")
		return
	}
	exp := s.cfg.Clock().Add(s.cfg.TokenTTL)
	tok, err := s.cfg.Signer.Mint(auth.Claims{App: s.cfg.App, User: req.User, Name: req.Name, AllRooms: true,
		Publish: true, ExpiresAt: exp})
	if errors.Is(err, domain.ErrInvalidArgument) {
		// The claims were refused (a name over the limit, not UTF-8): the
		// asker's to fix, and every login with them would be refused too.
		writeError(w, http.StatusBadRequest, domain.ErrInvalidArgument, err.Error())
		return
	}
	if err != nil {
		s.cfg.Logger.Error("web: cannot mint a development token", "err", err)
		writeError(w, http.StatusInternalServerError, domain.ErrInternal, "")
		return
	}
	writeJSON(w, http.StatusOK, TokenReply{Token: tok, App: s.cfg.App, ExpiresAt: exp.UnixMilli()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeError answers with the protocol's coded error shape.
func writeError(w http.ResponseWriter, status int, e *domain.Error, detail string) {
	err := error(e)
	if detail != "" {
		err = e.With("%s", detail)
	}
	writeJSON(w, status, protocol.ReplyTo("", nil, err))
}
