package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/auth"
)

// adminSecret is the secret of the nodes adminNode starts.
const adminSecret = "roomctl-test-secret-0123456789abcdef"

// adminNode starts a node whose admin API roomctl calls with adminSecret.
func adminNode(t *testing.T) *node.Node {
	t.Helper()
	n, err := node.Start(estest.Ctx(t), node.Config{Log: eventstore.Config{DataDir: t.TempDir()},
		Policy: domain.Config{Default: domain.DefaultPolicy()}, Secret: []byte(adminSecret), HTTPListen: "127.0.0.1:0",
		Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// The steps run for an ordinary room and for rooms "." and "..", valid
// IDs that a path left unescaped loses to the router's cleaning: "rooms
// -room ." used to list every room, and kick and destroy answered
// not_found.
func TestKickDestroyAndRoomsThroughTheAdminAPI(t *testing.T) {
	for _, room := range []string{"lobby", ".", ".."} {
		t.Run(room, func(t *testing.T) { kickDestroyAndRooms(t, room) })
	}
}

func kickDestroyAndRooms(t *testing.T, room string) {
	const secret = adminSecret
	n := adminNode(t)
	for _, u := range []string{"alice", "bob"} {
		tok, _ := n.Signer.Mint(auth.Claims{App: "dev", User: u, AllRooms: true, ExpiresAt: time.Now().Add(time.Hour)})
		wire.Dial(t, n.HTTPAddr()).Login(room, u, tok)
	}
	flags := []string{"-http", n.HTTPAddr(), "-secret", secret, "-app", "dev"}
	out, code := roomctl(t, append([]string{"rooms"}, flags...)...)
	if code != 0 || !strings.Contains(out, `"id": "`+room+`"`) || !strings.Contains(out, `"members": 2`) {
		t.Fatalf("rooms: exit %d\n%s", code, out)
	}
	out, code = roomctl(t, append([]string{"rooms", "-room", room}, flags...)...)
	if code != 0 || !strings.Contains(out, `"id": "`+room+`"`) || !strings.Contains(out, `"alice"`) {
		t.Fatalf("rooms -room %s: exit %d\n%s", room, code, out)
	}
	if out, code := roomctl(t, append([]string{"kick", "-room", room, "-user", "alice"}, flags...)...); code != 0 {
		t.Fatalf("kick: exit %d\n%s", code, out)
	}
	out, _ = roomctl(t, append([]string{"rooms", "-room", room}, flags...)...)
	if strings.Contains(out, `"alice"`) || !strings.Contains(out, `"bob"`) {
		t.Errorf("after the kick the room shows:\n%s", out)
	}
	if out, code := roomctl(t, append([]string{"kick", "-room", room, "-user", "alice"}, flags...)...); code != 1 ||
		!strings.Contains(out, "user_not_in_room") {
		t.Errorf("kicking her again: exit %d\n%s", code, out)
	}
	if out, code := roomctl(t, append([]string{"destroy", "-room", room}, flags...)...); code != 0 {
		t.Fatalf("destroy: exit %d\n%s", code, out)
	}
	if out, code := roomctl(t, append([]string{"rooms", "-room", room}, flags...)...); code != 1 || !strings.Contains(out, "room_not_exist") {
		t.Errorf("a destroyed room: exit %d\n%s", code, out)
	}
	t.Setenv("ROOMLOG_SECRET", "")
	if _, code := roomctl(t, "kick", "-http", n.HTTPAddr(), "-room", "x", "-user", "y"); code != 2 {
		t.Errorf("kick without a secret: exit %d, want 2", code)
	}
}

// A front that redirects with 301 (the usual "return 301 https://$host$request_uri"
// of a proxy that moved roomd to https) made Go's HTTP client follow it
// with GET instead of DELETE: "roomctl destroy" fetched the room, printed
// its detail and exited 0, and the room was not destroyed. A change must
// never be reported done when it was not made: roomctl follows no
// redirect, and says where it pointed.
func TestADestroyThroughARedirectIsNotReportedDone(t *testing.T) {
	n := adminNode(t)
	tok, _ := n.Signer.Mint(auth.Claims{App: "dev", User: "alice", AllRooms: true, ExpiresAt: time.Now().Add(time.Hour)})
	wire.Dial(t, n.HTTPAddr()).Login("lobby", "alice", tok)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+n.HTTPAddr()+r.URL.RequestURI(), http.StatusMovedPermanently)
	}))
	defer front.Close()

	out, errOut, code := roomctl2(t, "destroy", "-room", "lobby", "-reason", "class over",
		"-http", front.URL, "-secret", adminSecret, "-app", "dev")
	after, _, _ := roomctl2(t, "rooms", "-room", "lobby", "-http", n.HTTPAddr(), "-secret", adminSecret, "-app", "dev")
	if code == 0 && strings.Contains(after, `"id": "lobby"`) {
		t.Errorf("destroy exited 0 but the room still exists; destroy printed:\n%s%s", firstLines(out, 4), errOut)
	}
	if code != 1 || !strings.Contains(errOut, "301") || !strings.Contains(errOut, n.HTTPAddr()) {
		t.Errorf("destroy through a redirect: exit %d, %q; want exit 1 naming the redirect and where it points", code, errOut)
	}
}

func firstLines(s string, k int) string {
	ls := strings.SplitN(s, "\n", k+1)
	if len(ls) > k {
		ls = ls[:k]
	}
	return strings.Join(ls, "\n") + "\n..."
}
