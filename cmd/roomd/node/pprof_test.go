package node_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// get fetches url and returns its status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// Go's profiler is served on a listener of its own, never on the HTTP
// listener that clients reach (for the WebSocket): /debug/pprof/cmdline
// shows the process's flags, -secret included, and a CPU profile costs the
// node while it runs. Before, -pprof put it on the HTTP listener. The
// profiler's listener closes with the node.
func TestTheProfilerIsNotServedToClients(t *testing.T) {
	n, err := node.Start(estest.Ctx(t), node.Config{Log: eventstore.Config{DataDir: t.TempDir()},
		Policy: domain.Config{Default: domain.DefaultPolicy()}, Secret: []byte("0123456789abcdef0123456789abcdef"),
		HTTPListen: "127.0.0.1:0", PprofListen: "127.0.0.1:0", Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.PprofAddr() == "" || n.PprofAddr() == n.HTTPAddr() {
		t.Fatalf("profiler at %q, HTTP at %q: want a listener of its own", n.PprofAddr(), n.HTTPAddr())
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap"} {
		if code, _ := get(t, "http://"+n.HTTPAddr()+path); code != http.StatusNotFound {
			t.Errorf("the clients' listener answers %s with %d, want 404", path, code)
		}
	}
	if code, body := get(t, "http://"+n.PprofAddr()+"/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("the profiler's listener answers /debug/pprof/ with %d %.80q", code, body)
	}
	addr := n.PprofAddr()
	n.Close()
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Errorf("the profiler still listens on %s after the node closed", addr)
	}
}

// Profiling is off unless asked for: no listener of its own, nothing on
// the HTTP listener.
func TestTheProfilerIsOffUnlessAskedFor(t *testing.T) {
	n, err := node.Start(estest.Ctx(t), node.Config{Log: eventstore.Config{DataDir: t.TempDir()},
		Policy: domain.Config{Default: domain.DefaultPolicy()}, Secret: []byte("0123456789abcdef0123456789abcdef"),
		HTTPListen: "127.0.0.1:0", Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.PprofAddr() != "" {
		t.Errorf("a profiler at %s, not asked for", n.PprofAddr())
	}
	if code, _ := get(t, "http://"+n.HTTPAddr()+"/debug/pprof/goroutine?debug=1"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/goroutine answered %d, want 404", code)
	}
}
