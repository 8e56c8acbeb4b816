package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
)

// docs/operations.md: -http may be a URL with a path prefix, roomd behind a
// proxy (https://rooms.example.com/prefix). A real proxy strips the prefix.
func TestHTTPWithAPathPrefixReachesRoomd(t *testing.T) {
	n := adminNode(t)
	target, _ := url.Parse("http://" + n.HTTPAddr())
	proxy := httptest.NewServer(http.StripPrefix("/prefix", httputil.NewSingleHostReverseProxy(target)))
	defer proxy.Close()
	for _, addr := range []string{proxy.URL + "/prefix", proxy.URL + "/prefix/", strings.TrimPrefix(proxy.URL, "http://") + "/prefix"} {
		if out, errOut, code := roomctl2(t, "rooms", "-http", addr, "-secret", adminSecret); code != 0 || !strings.Contains(out, `"rooms"`) {
			t.Errorf("rooms -http %s: exit %d\n%s%s", addr, code, out, errOut)
		}
	}
}
