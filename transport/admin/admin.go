// Package admin is roomlog's HTTP admin API for backends: kick a user out of
// a room, destroy a room, list rooms, members and streams, and issue client
// tokens. Every request carries an admin token (Authorization: Bearer ...)
// signed with the server's secret; answers are JSON, errors carry the same
// numeric code and name as on the WebSocket.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/projections"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/protocol"
)

// Config configures the API.
type Config struct {
	Engine *engine.Engine
	Live   *projections.Live
	// Log, when set, makes every read wait until the projection has folded
	// the whole log as it was when the request arrived: a backend reads its
	// own writes (and anyone's acknowledged before), on any node.
	Log     *eventstore.Log
	Signer  *auth.Signer
	Clock   engine.Clock
	Timeout time.Duration // per command; default 10 s
	Logger  *slog.Logger
	// Checkpoints, when set, signs the log's chain heads on demand
	// (POST /admin/v1/checkpoints).
	Checkpoints Checkpointer
}

// API serves the admin routes under /admin/v1/.
type API struct {
	cfg Config
	mux *http.ServeMux
}

// New validates cfg and returns the API.
func New(cfg Config) (*API, error) {
	var errs []error
	if cfg.Engine == nil || cfg.Live == nil || cfg.Signer == nil {
		errs = append(errs, errors.New("admin: Engine, Live and Signer are required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = engine.SystemClock{}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &API{cfg: cfg, mux: http.NewServeMux()}
	a.mux.HandleFunc("POST /admin/v1/apps/{app}/tokens", a.authed(a.issueToken))
	a.mux.HandleFunc("GET /admin/v1/apps/{app}/rooms", a.authed(a.listRooms))
	a.mux.HandleFunc("GET /admin/v1/apps/{app}/rooms/{room}", a.authed(a.getRoom))
	a.mux.HandleFunc("GET /admin/v1/apps/{app}/rooms/{room}/members", a.authed(a.listMembers))
	a.mux.HandleFunc("GET /admin/v1/apps/{app}/rooms/{room}/streams", a.authed(a.listStreams))
	a.mux.HandleFunc("POST /admin/v1/apps/{app}/rooms/{room}/kick", a.authed(a.kick))
	a.mux.HandleFunc("DELETE /admin/v1/apps/{app}/rooms/{room}", a.authed(a.destroy))
	a.historyRoutes()
	a.mux.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, protocol.ErrNotFound.With("%s %s", r.Method, r.URL.Path))
	})
	return a, nil
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// bearer returns the token of an Authorization header of the Bearer
// scheme, whose name is case-insensitive (RFC 9110, section 11.1).
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimLeft(tok, " "), true
}

// authed checks the admin token before calling h.
func (a *API) authed(h func(http.ResponseWriter, *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			err := protocol.ErrUnauthorized.With("no bearer token")
			a.cfg.Logger.Info("admin request unauthorized", "method", r.Method, "path", r.URL.Path,
				"remote", r.RemoteAddr, "err", err)
			writeError(w, err)
			return
		}
		who, err := a.cfg.Signer.VerifyAdmin(tok)
		if err != nil {
			a.cfg.Logger.Info("admin request unauthorized", "method", r.Method, "path", r.URL.Path,
				"remote", r.RemoteAddr, "err", err)
			writeError(w, err)
			return
		}
		// Every ID in the path is checked before anything is read.
		if err := pathIDs(r); err != nil {
			a.refused(r, who, err)
			writeError(w, err)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody+1)
		r = r.WithContext(context.WithValue(r.Context(), adminKey{}, who))
		v, err := h(w, r)
		if err != nil {
			a.refused(r, who, err)
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
}

// adminKey holds, in a request's context, the subject of its admin token.
type adminKey struct{}

// adminOf returns the subject of r's admin token as the log records it with
// the changes it asks for: a subject no longer minted (over
// domain.MaxAdminBytes, or with control characters, from a token of an
// older roomd) is recorded cut short, its control characters replaced, and
// still works.
func adminOf(r *http.Request) string {
	who, _ := r.Context().Value(adminKey{}).(string)
	if domain.ValidateAdmin(who) == nil {
		return who
	}
	who = strings.Map(func(c rune) rune {
		if unicode.IsControl(c) {
			return utf8.RuneError
		}
		return c
	}, strings.ToValidUTF8(who, string(utf8.RuneError)))
	for len(who) > domain.MaxAdminBytes {
		_, size := utf8.DecodeLastRuneInString(who)
		who = who[:len(who)-size]
	}
	return who
}

// refused logs a refused request with the admin subject that sent it. The
// log's failures (5xx) are the server's, and are logged where they happen.
func (a *API) refused(r *http.Request, who string, err error) {
	if status(err) >= 500 {
		a.cfg.Logger.Warn("admin request failed", "admin", who, "method", r.Method, "path", r.URL.Path, "err", err)
		return
	}
	a.cfg.Logger.Info("admin request refused", "admin", who, "method", r.Method, "path", r.URL.Path, "err", err)
}

// pathIDs checks the app and room IDs of a request's path.
func pathIDs(r *http.Request) error {
	if app := r.PathValue("app"); app != "" {
		if err := domain.ValidateAppID(domain.AppID(app)); err != nil {
			return domain.ErrInvalidArgument.With("%v", err)
		}
	}
	if room := r.PathValue("room"); room != "" {
		if err := domain.ValidateRoomID(domain.RoomID(room)); err != nil {
			return domain.ErrInvalidArgument.With("%v", err)
		}
	}
	return nil
}

// errorBody is how every error is answered.
type errorBody struct {
	Code    domain.Code `json:"code"`
	Error   string      `json:"error"`
	Message string      `json:"message"`
}

func writeError(w http.ResponseWriter, err error) {
	r := protocol.ReplyTo("", nil, err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status(err))
	json.NewEncoder(w).Encode(errorBody{Code: r.Code, Error: r.Error, Message: r.Message})
}

// status maps a coded error to an HTTP status.
func status(err error) int {
	switch {
	case errors.Is(err, protocol.ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, protocol.ErrNotFound), errors.Is(err, domain.ErrRoomNotExist), errors.Is(err, domain.ErrUserNotInRoom):
		return http.StatusNotFound
	case errors.Is(err, protocol.ErrHistoryRemoved):
		return http.StatusGone
	case errors.Is(err, domain.ErrTimeout):
		return http.StatusGatewayTimeout
	case errors.Is(err, domain.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, domain.ErrRateLimited):
		return http.StatusTooManyRequests
	case errors.Is(err, domain.ErrInternal), errors.Is(err, protocol.ErrHistoryBroken):
		return http.StatusInternalServerError
	}
	var de *domain.Error
	if errors.As(err, &de) {
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func (a *API) exec(r *http.Request, c domain.Command) (engine.Result, error) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
	defer cancel()
	return a.cfg.Engine.Execute(ctx, domain.Meta{App: domain.AppID(r.PathValue("app"))}, c)
}

// caughtUp waits until the live projection has folded every message the
// log held when the request arrived.
func (a *API) caughtUp(r *http.Request) error {
	if a.cfg.Log == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
	defer cancel()
	last, err := a.cfg.Log.LastSeq(ctx)
	if err != nil {
		return domain.ErrUnavailable.With("%v", err)
	}
	if err := a.cfg.Live.WaitFor(ctx, last); err != nil {
		return domain.ErrTimeout.With("the projection did not catch up in time")
	}
	return nil
}

// room returns a copy of a room that exists, from the live projection.
func (a *API) room(r *http.Request) (*domain.Room, error) {
	if err := a.caughtUp(r); err != nil {
		return nil, err
	}
	app, id := domain.AppID(r.PathValue("app")), domain.RoomID(r.PathValue("room"))
	var room *domain.Room
	a.cfg.Live.Read(func(m *projections.Model) {
		if x := m.App(app); x != nil && x.Rooms[id] != nil && x.Rooms[id].Exists {
			room = x.Rooms[id].Clone()
		}
	})
	if room == nil {
		return nil, domain.ErrRoomNotExist.With("%q", id)
	}
	return room, nil
}

// TokenRequest asks for a client token.
type TokenRequest struct {
	User       string   `json:"user"`
	Name       string   `json:"name,omitempty"`
	Rooms      []string `json:"rooms,omitempty"` // default every room
	Publish    *bool    `json:"publish,omitempty"`
	TTLSeconds int      `json:"ttl_seconds,omitempty"` // default 86400
	// roomsNull: the request gave "rooms": null, refused as [] is.
	roomsNull bool
}

// UnmarshalJSON decodes r, telling "rooms": null (what a backend's empty
// selection encodes to in Go) from rooms left out.
func (r *TokenRequest) UnmarshalJSON(b []byte) error {
	type plain TokenRequest
	var p struct {
		plain
		Rooms json.RawMessage `json:"rooms"`
	}
	if err := strictUnmarshal(b, &p); err != nil {
		return err
	}
	*r = TokenRequest(p.plain)
	if r.roomsNull = string(p.Rooms) == "null"; len(p.Rooms) > 0 && !r.roomsNull {
		if jsonv2.Unmarshal(p.Rooms, &r.Rooms) != nil {
			return &bodyError{`field "rooms": want an array of room IDs (strings)`}
		}
	}
	return nil
}

// TokenReply is an issued token.
type TokenReply struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (a *API) issueToken(_ http.ResponseWriter, r *http.Request) (any, error) {
	var req TokenRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	if req.TTLSeconds == 0 {
		req.TTLSeconds = 86400
	}
	if req.TTLSeconds < 0 || req.TTLSeconds > int(auth.MaxTTL/time.Second) {
		return nil, domain.ErrInvalidArgument.With("ttl_seconds must be from 1 to %d (10 years)", int64(auth.MaxTTL/time.Second))
	}
	if req.roomsNull || req.Rooms != nil && len(req.Rooms) == 0 {
		// Only an absent field or "*" means every room: an empty list (or
		// null) is more likely a backend's empty selection than a grant of
		// all.
		return nil, domain.ErrInvalidArgument.With(`rooms is empty: name at least one room, or omit it (or give "*") for every room`)
	}
	c := auth.Claims{App: r.PathValue("app"), User: req.User, Name: req.Name, Rooms: req.Rooms,
		AllRooms: len(req.Rooms) == 0 || slices.Equal(req.Rooms, []string{"*"}), Publish: req.Publish == nil || *req.Publish,
		IssuedAt: a.cfg.Clock.Now(),
		// A token's exp has whole seconds: the reply says when it expires.
		ExpiresAt: a.cfg.Clock.Now().Add(time.Duration(req.TTLSeconds) * time.Second).Truncate(time.Second)}
	if c.AllRooms {
		c.Rooms = nil
	}
	// A list naming rooms and "*" is neither: Mint refuses it, as roomctl
	// token does (a backend's selection holding a room called "*" must not
	// grant every room).
	tok, err := a.cfg.Signer.Mint(c)
	if errors.Is(err, domain.ErrInvalidArgument) {
		return nil, err // the claims' problems, said once
	}
	if err != nil {
		return nil, domain.ErrInvalidArgument.With("%v", err)
	}
	return TokenReply{Token: tok, ExpiresAt: c.ExpiresAt.UTC()}, nil
}

// RoomSummary is a room in a list.
type RoomSummary struct {
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	Members   int       `json:"members"`
	Streams   int       `json:"streams"`
	Seq       uint64    `json:"seq"`
	CreatedAt time.Time `json:"created_at"`
}

func (a *API) listRooms(_ http.ResponseWriter, r *http.Request) (any, error) {
	if err := a.caughtUp(r); err != nil {
		return nil, err
	}
	app := domain.AppID(r.PathValue("app"))
	rooms := []RoomSummary{}
	a.cfg.Live.Read(func(m *projections.Model) {
		x := m.App(app)
		if x == nil {
			return
		}
		for id, room := range x.Rooms {
			if room.Exists {
				rooms = append(rooms, RoomSummary{ID: string(id), Name: room.Name, Members: len(room.Members),
					Streams: len(room.Streams), Seq: room.Seq, CreatedAt: room.CreatedAt})
			}
		}
	})
	slices.SortFunc(rooms, func(x, y RoomSummary) int { return strings.Compare(x.ID, y.ID) })
	return map[string]any{"rooms": rooms}, nil
}

// Member is a room member as the admin API shows it.
type Member struct {
	User       string    `json:"user"`
	Name       string    `json:"name,omitempty"`
	Session    string    `json:"session"`
	Role       string    `json:"role"`
	CanPublish bool      `json:"can_publish"`
	JoinedAt   time.Time `json:"joined_at"`
	Publishing []string  `json:"publishing,omitempty"`
	Playing    []string  `json:"playing,omitempty"`
	// Attributes are the member's room member attributes (ZIM).
	Attributes map[string]string `json:"attributes,omitempty"`
	// Quiet: the member logged in with user status notification off.
	Quiet bool `json:"quiet,omitempty"`
}

// Stream is a published stream as the admin API shows it.
type Stream struct {
	Stream      string    `json:"stream"`
	User        string    `json:"user"`
	Session     string    `json:"session"`
	ExtraInfo   string    `json:"extra_info,omitempty"`
	PublishedAt time.Time `json:"published_at"`
}

func members(room *domain.Room) []Member {
	out := []Member{}
	for _, m := range room.Members {
		mm := Member{User: string(m.User), Name: m.UserName, Session: string(m.Session), Role: string(m.Role),
			CanPublish: m.CanPublish, JoinedAt: m.JoinedAt, Attributes: m.Attributes, Quiet: m.Quiet}
		for s := range m.Publishing {
			mm.Publishing = append(mm.Publishing, string(s))
		}
		for s := range m.Playing {
			mm.Playing = append(mm.Playing, string(s))
		}
		slices.Sort(mm.Publishing)
		slices.Sort(mm.Playing)
		out = append(out, mm)
	}
	slices.SortFunc(out, func(x, y Member) int { return strings.Compare(x.User, y.User) })
	return out
}

func streams(room *domain.Room) []Stream {
	out := []Stream{}
	for id, s := range room.Streams {
		out = append(out, Stream{Stream: string(id), User: string(s.User), Session: string(s.Session),
			ExtraInfo: s.ExtraInfo, PublishedAt: s.PublishedAt})
	}
	slices.SortFunc(out, func(x, y Stream) int { return strings.Compare(x.Stream, y.Stream) })
	return out
}

// RoomDetail is one room as the admin API shows it.
type RoomDetail struct {
	RoomSummary
	Members      []Member                    `json:"members"`
	Streams      []Stream                    `json:"streams"`
	ExtraInfo    map[string]domain.ExtraInfo `json:"extra_info"`
	Attributes   map[string]string           `json:"attributes"`
	DestroyDelay int                         `json:"destroy_delay_s"`
	// AttributeDetails gives each attribute's owner and version.
	AttributeDetails []protocol.RoomAttribute `json:"attribute_details"`
	// MaxMemberCount is the room's capacity (0: none).
	MaxMemberCount int `json:"max_member_count"`
}

func (a *API) getRoom(_ http.ResponseWriter, r *http.Request) (any, error) {
	room, err := a.room(r)
	if err != nil {
		return nil, err
	}
	d := RoomDetail{RoomSummary: RoomSummary{ID: r.PathValue("room"), Name: room.Name, Members: len(room.Members),
		Streams: len(room.Streams), Seq: room.Seq, CreatedAt: room.CreatedAt}, Members: members(room),
		Streams: streams(room), ExtraInfo: room.ExtraInfo, Attributes: room.Attributes, DestroyDelay: room.DestroyDelay}
	if d.ExtraInfo == nil {
		d.ExtraInfo = map[string]domain.ExtraInfo{}
	}
	if d.Attributes == nil {
		d.Attributes = map[string]string{}
	}
	d.MaxMemberCount = room.MaxMembers
	d.AttributeDetails = []protocol.RoomAttribute{}
	for _, k := range slices.Sorted(maps.Keys(room.Attributes)) {
		meta := room.AttributeMeta[k]
		d.AttributeDetails = append(d.AttributeDetails, protocol.RoomAttribute{Key: k, Value: room.Attributes[k],
			Owner: string(meta.Owner), Version: meta.Version, DeleteAfterOwnerLeft: meta.DeleteAfterOwnerLeft})
	}
	return d, nil
}

func (a *API) listMembers(_ http.ResponseWriter, r *http.Request) (any, error) {
	room, err := a.room(r)
	if err != nil {
		return nil, err
	}
	return map[string]any{"members": members(room)}, nil
}

func (a *API) listStreams(_ http.ResponseWriter, r *http.Request) (any, error) {
	room, err := a.room(r)
	if err != nil {
		return nil, err
	}
	return map[string]any{"streams": streams(room)}, nil
}

// KickRequest names the user to kick.
type KickRequest struct {
	User   string `json:"user"`
	Reason string `json:"reason,omitempty"`
}

// Done acknowledges a change and says where it is in the room's history.
type Done struct {
	Seq uint64 `json:"seq"`
}

func done(res engine.Result) Done {
	var d Done
	for _, a := range res.Appended {
		if a.Key.Kind == domain.KindRoom {
			d.Seq = a.Events[len(a.Events)-1].Seq
		}
	}
	return d
}

func (a *API) kick(_ http.ResponseWriter, r *http.Request) (any, error) {
	var req KickRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	res, err := a.exec(r, domain.KickUser{Room: domain.RoomID(r.PathValue("room")), User: domain.UserID(req.User),
		Detail: req.Reason, Admin: adminOf(r)})
	if err != nil {
		return nil, err
	}
	return done(res), nil
}

// DestroyRequest optionally says why a room is destroyed.
type DestroyRequest struct {
	Reason string `json:"reason,omitempty"`
}

func (a *API) destroy(_ http.ResponseWriter, r *http.Request) (any, error) {
	var req DestroyRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	res, err := a.exec(r, domain.DestroyRoom{Room: domain.RoomID(r.PathValue("room")), Detail: req.Reason,
		Admin: adminOf(r)})
	if err != nil {
		return nil, err
	}
	return done(res), nil
}
