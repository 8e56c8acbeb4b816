package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/roomlog/roomlog/transport/auth"
)

// adminFlags are the flags of the commands that call the admin API.
type adminFlags struct {
	http, secret, app string
}

func (f *adminFlags) register(fs *flag.FlagSet) {
	def := os.Getenv("ROOMLOG_HTTP")
	if def == "" {
		def = "127.0.0.1:7070"
	}
	fs.StringVar(&f.http, "http", def, "roomd's HTTP address, as host:port or a URL (http://host:port, https://...) (ROOMLOG_HTTP)")
	fs.StringVar(&f.secret, "secret", "", "the server's secret, to sign an admin token (default $"+auth.SecretEnv+")")
	fs.StringVar(&f.app, "app", "dev", "app ID")
}

// adminClient follows no redirect: Go's client turns a DELETE or POST
// that meets a 301, 302 or 303 into a GET, so a destroy or kick sent
// through a front that redirects (to https, say) would read the room and
// be reported done. A redirect is an error that names where it points.
var adminClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// call signs a short-lived admin token and calls the admin API.
func (f *adminFlags) call(ctx context.Context, method, path string, body any, out io.Writer) error {
	base, err := baseURL(f.http)
	if err != nil {
		return exitError{2, err.Error()}
	}
	secret := f.secret
	if secret == "" {
		secret = os.Getenv(auth.SecretEnv)
	}
	if secret == "" {
		return exitError{2, "no secret: pass -secret or set " + auth.SecretEnv}
	}
	signer, err := auth.NewSigner(auth.Config{Secret: []byte(secret)})
	if err != nil {
		return exitError{2, err.Error()}
	}
	tok, err := signer.MintAdmin("roomctl", time.Minute)
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+"/admin/v1/apps/"+segment(f.app)+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := adminClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if loc := res.Header.Get("Location"); res.StatusCode/100 == 3 {
		return exitError{1, fmt.Sprintf("%s answered %s, to %q: give roomd's own address as -http", base, res.Status, loc)}
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		var e struct {
			Code    int    `json:"code"`
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &e) == nil && e.Code != 0 {
			return exitError{1, fmt.Sprintf("%s (%d): %s", e.Error, e.Code, e.Message)}
		}
		return exitError{1, fmt.Sprintf("%s: %s", res.Status, b)}
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, b, "", "  ") == nil {
		b = append(pretty.Bytes(), '\n')
	}
	_, err = out.Write(b)
	return err
}

// segment escapes an ID as one segment of a URL path. "." and ".." are
// valid room IDs that url.PathEscape leaves as they are, and that the
// server's router would clean away (rooms -room . listing every room).
func segment(id string) string {
	if id == "." || id == ".." {
		return strings.Repeat("%2E", len(id))
	}
	return url.PathEscape(id)
}

// baseURL turns -http, a host:port or a URL (http or https, with a path
// prefix when roomd sits behind a proxy), into the URL the admin paths
// follow.
func baseURL(addr string) (string, error) {
	full := addr
	if !strings.Contains(addr, "://") {
		full = "http://" + addr
	}
	// The refusals never echo the address: it may hold a password.
	u, err := url.Parse(full)
	if err != nil {
		return "", errors.New("-http: not a host:port nor a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("-http %q: want host:port or an http(s) URL (http://host:port), with no user, query or fragment",
			u.Redacted())
	}
	return strings.TrimSuffix(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"), nil
}

const kickUsage = `usage: roomctl kick -room R -user U [-reason TEXT] [-app A] [-http ADDR]

Kicks a user out of a room through roomd's admin API (POST
/admin/v1/apps/A/rooms/R/kick), with a one-minute admin token signed with the
server's secret; the room's history records the kick and the reason.

flags:
`

const destroyUsage = `usage: roomctl destroy -room R [-reason TEXT] [-app A] [-http ADDR]

Destroys a room through roomd's admin API (DELETE /admin/v1/apps/A/rooms/R),
with a one-minute admin token signed with the server's secret: every member is
removed and the room's history records its end.

flags:
`

const roomsUsage = `usage: roomctl rooms [-room R] [-app A] [-http ADDR]

Lists the rooms of an app, or shows one room's members, streams, extra info
and attributes, through roomd's admin API (GET /admin/v1/apps/A/rooms[/R]),
with a one-minute admin token signed with the server's secret.

flags:
`

func kick(ctx context.Context, args []string, out, _ io.Writer) error {
	fs := flag.NewFlagSet("kick", flag.ContinueOnError)
	withUsage(fs, kickUsage)
	var af adminFlags
	af.register(fs)
	room := fs.String("room", "", "room ID (required)")
	user := fs.String("user", "", "user ID (required)")
	reason := fs.String("reason", "", "why, for the room's history")
	if err := parseFlags(fs, args, out); err != nil {
		return err
	}
	if *room == "" || *user == "" {
		return exitError{2, "kick: -room and -user are required"}
	}
	return af.call(ctx, http.MethodPost, "/rooms/"+segment(*room)+"/kick",
		map[string]string{"user": *user, "reason": *reason}, out)
}

func destroy(ctx context.Context, args []string, out, _ io.Writer) error {
	fs := flag.NewFlagSet("destroy", flag.ContinueOnError)
	withUsage(fs, destroyUsage)
	var af adminFlags
	af.register(fs)
	room := fs.String("room", "", "room ID (required)")
	reason := fs.String("reason", "", "why, for the room's history")
	if err := parseFlags(fs, args, out); err != nil {
		return err
	}
	if *room == "" {
		return exitError{2, "destroy: -room is required"}
	}
	return af.call(ctx, http.MethodDelete, "/rooms/"+segment(*room), map[string]string{"reason": *reason}, out)
}

func rooms(ctx context.Context, args []string, out, _ io.Writer) error {
	fs := flag.NewFlagSet("rooms", flag.ContinueOnError)
	withUsage(fs, roomsUsage)
	var af adminFlags
	af.register(fs)
	room := fs.String("room", "", "one room's members, streams, extra info and attributes")
	if err := parseFlags(fs, args, out); err != nil {
		return err
	}
	path := "/rooms"
	if *room != "" {
		path += "/" + segment(*room)
	}
	return af.call(ctx, http.MethodGet, path, nil, out)
}
