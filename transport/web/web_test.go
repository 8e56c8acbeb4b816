package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/web"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func serve(t *testing.T, cfg web.Config) (*httptest.Server, *auth.Signer) {
	t.Helper()
	signer, err := auth.NewSigner(auth.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Signer = signer
	s, err := web.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv, signer
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// The SDK, its declarations and the demo are served with types a browser
// accepts for an ES module.
func TestServesSDKAndDemo(t *testing.T) {
	srv, _ := serve(t, web.Config{})
	for _, c := range []struct{ path, ctype, contains string }{
		{"/sdk/roomlog.js", "text/javascript", "export class RoomlogEngine"},
		{"/sdk/roomlog.d.ts", "text/plain", "export declare class RoomlogEngine"},
		{"/", "text/html", "<script type=\"module\""},
		{"/demo/demo.js", "text/javascript", "/sdk/roomlog.js"},
		{"/demo/demo.css", "text/css", ""},
	} {
		res, body := get(t, srv.URL+c.path)
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), c.ctype) ||
			!strings.Contains(body, c.contains) {
			t.Errorf("GET %s: %d %s, contains %q: %v", c.path, res.StatusCode, res.Header.Get("Content-Type"),
				c.contains, strings.Contains(body, c.contains))
		}
	}
	if res, _ := get(t, srv.URL+"/sdk/missing.js"); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET a missing file: %d, want 404", res.StatusCode)
	}
}

// Development mode mints tokens for the demo; production mode does not serve
// the endpoint at all.
func TestDevTokensOnlyInDevelopment(t *testing.T) {
	dev, signer := serve(t, web.Config{DevTokens: true})
	res, err := http.Post(dev.URL+"/dev/token", "application/json", strings.NewReader(`{"user":"alice","name":"Alice"}`))
	if err != nil {
		t.Fatal(err)
	}
	var rep web.TokenReply
	json.NewDecoder(res.Body).Decode(&rep)
	res.Body.Close()
	c, err := signer.Verify(rep.Token)
	if err != nil {
		t.Fatalf("the development token does not verify: %v", err)
	}
	if c.App != "dev" || c.User != "alice" || !c.AllRooms || !c.Publish || time.Until(c.ExpiresAt) < 23*time.Hour {
		t.Errorf("development token claims %+v", c)
	}
	for _, body := range []string{`{"user":""}`, `{"user":"a b"}`, `not json`, `{"user":"` + strings.Repeat("x", 65) + `"}`,
		`{"user":"alice","name":"` + strings.Repeat("x", 257) + `"}`} {
		res, err := http.Post(dev.URL+"/dev/token", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Code  int    `json:"code"`
			Error string `json:"error"`
		}
		json.NewDecoder(res.Body).Decode(&e)
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest || e.Code != 1906001 || e.Error != "invalid_argument" {
			t.Errorf("POST %s: %d %+v, want 400 invalid_argument", body, res.StatusCode, e)
		}
	}

	prod, _ := serve(t, web.Config{})
	res, err = http.Post(prod.URL+"/dev/token", "application/json", strings.NewReader(`{"user":"alice"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode == http.StatusOK {
		t.Errorf("production mode minted a token")
	}
	_, body := get(t, prod.URL+"/dev/config")
	if !strings.Contains(body, `"dev_tokens":false`) {
		t.Errorf("production /dev/config = %s", body)
	}
	if _, err := web.New(web.Config{DevTokens: true}); err == nil {
		t.Error("DevTokens without a Signer was accepted")
	}
}

// Every code the browser SDK reports itself is in docs/protocol.md's table,
// with the same name, and in the declarations.
func TestSDKCodesAreDocumented(t *testing.T) {
	js, err := os.ReadFile(filepath.Join("assets", "sdk", "roomlog.js"))
	if err != nil {
		t.Fatal(err)
	}
	dts, err := os.ReadFile(filepath.Join("assets", "sdk", "roomlog.d.ts"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "protocol.md"))
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^\s+(\w+): \[(\d+), '(\w+)', `)
	all := line.FindAllStringSubmatch(string(js), -1)
	if len(all) < 8 {
		t.Fatalf("found %d codes in roomlog.js's ErrorCodes, want at least 8", len(all))
	}
	own := 0
	for _, m := range all {
		key, code, name := m[1], m[2], m[3]
		if !strings.Contains(string(doc), "| "+code+" | `"+name+"` |") {
			t.Errorf("%s %s (%s) is not in docs/protocol.md's codes table", code, name, key)
		}
		if !strings.Contains(string(dts), key+": readonly ["+code+", '"+name+"'") {
			t.Errorf("%s %s (%s) is not declared in roomlog.d.ts", code, name, key)
		}
		if code >= "1906090" && code <= "1906097" {
			own++
		}
	}
	if own == 0 {
		t.Error("no SDK code of the reserved range 1906090-1906097 found")
	}
}

// docs/sdk-js.md: an app imports the SDK from its roomd, from a page of its
// own site. A module script from another origin loads only with CORS: the
// SDK's files allow every origin (they are public code; the WebSocket's
// origins decide who connects). Without the header Chromium refused the
// import ("Failed to fetch dynamically imported module").
func TestTheSDKLoadsFromAnyOrigin(t *testing.T) {
	srv, _ := serve(t, web.Config{})
	for _, path := range []string{"/sdk/roomlog.js", "/sdk/roomlog.d.ts"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Origin", "https://app.example")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK || res.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("GET %s from another origin: %d, Access-Control-Allow-Origin %q", path, res.StatusCode,
				res.Header.Get("Access-Control-Allow-Origin"))
		}
	}
	if res, _ := get(t, srv.URL+"/"); res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("the demo page allows other origins too")
	}
}
