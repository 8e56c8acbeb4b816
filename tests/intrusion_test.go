package tests

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections/audit"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/protocol"
)

// Someone with the NATS credentials publishes garbage onto a room's subject
// (`nats pub roomlog.<app>.room.r1 junk`). The node reports and skips it: it
// stays ready, the room goes on, the next start rebuilds, and an audit of
// the log flags exactly that message.
func TestGarbageOnARoomSubjectIsSkippedNotWedging(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := node.Config{Log: eventstore.Config{DataDir: dir, Listen: "127.0.0.1:0", Password: estest.Password},
		Policy: domain.Config{Default: domain.DefaultPolicy()}, Secret: clienttest.Secret, HTTPListen: "127.0.0.1:0",
		Logger: estest.Logger(t)}
	start := func() *node.Node {
		n, err := node.Start(estest.Ctx(t), cfg)
		if err != nil {
			t.Fatalf("start: %v", err)
		}
		return n
	}
	n := start()
	defer func() { n.Close() }()
	alice, bob := wire.Dial(t, n.HTTPAddr()), wire.Dial(t, n.HTTPAddr())
	alice.Login("r1", "alice", clienttest.Token(t, n, "alice"))
	bob.Login("r1", "bob", clienttest.Token(t, n, "bob"))

	nc, err := nats.Connect(n.Log.ClientURL(), nats.UserInfo(eventstore.DefaultUser, estest.Password))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subject := n.Log.Subject(clienttest.App, "room", "r1")
	if err := nc.Publish(subject, []byte("junk")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	estest.Eventually(t, "the node reports the skipped message and stays ready", func() bool {
		code, body := get(t, "http://"+n.HTTPAddr()+"/readyz")
		if code != http.StatusOK {
			t.Fatalf("readyz %d: %s", code, body)
		}
		return strings.Contains(body, "1 unreadable log messages skipped")
	})

	// The room goes on: a broadcast after the garbage reaches bob.
	alice.Do("after", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "after the junk"})
	bob.Until(func(f protocol.Frame) bool {
		return f.Type == protocol.TypeEvent && f.Event == protocol.EvBroadcastMessage && strings.Contains(string(f.Data), "after the junk")
	})

	// The next start rebuilds past it.
	alice.WS.CloseNow()
	bob.WS.CloseNow()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = start()
	if s := n.Live.Skipped(); s.Count != 1 {
		t.Fatalf("after a restart: skipped %+v, want 1", s)
	}
	if code, body := get(t, "http://"+n.HTTPAddr()+"/readyz"); code != http.StatusOK {
		t.Fatalf("readyz after a restart %d: %s", code, body)
	}
	// And the audit flags that message, and nothing else: the room's chain
	// goes on from the event before it.
	a := audit.New(n.Log.Prefix(), func(domain.AppID) domain.Policy { return domain.DefaultPolicy() })
	if _, err := n.Log.Read(estest.Ctx(t), allFilter(n.Log), 1, a.Apply); err != nil {
		t.Fatal(err)
	}
	v := a.Violations()
	if len(v) != 1 || !strings.Contains(v[0], "unreadable message") || !strings.Contains(v[0], subject) {
		t.Fatalf("audit: %q, want the junk message alone", v)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}
