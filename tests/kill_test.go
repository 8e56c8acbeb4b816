package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/netcut"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/protocol"
)

// buildRoomd builds the roomd binary once for the tests that run processes.
var buildRoomd = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "roomd-bin-*")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "roomd")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/roomlog/roomlog/cmd/roomd").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// process is a roomd running as its own process.
type process struct {
	cmd  *exec.Cmd
	out  *strings.Builder
	http string
}

func startProcess(t *testing.T, name string, args ...string) *process {
	t.Helper()
	bin, err := buildRoomd()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{out: &strings.Builder{}}
	p.cmd = exec.Command(bin, args...)
	var mu sync.Mutex
	p.cmd.Stdout, p.cmd.Stderr = lockedWriter{&mu, p.out}, lockedWriter{&mu, p.out}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		if t.Failed() {
			mu.Lock()
			t.Logf("%s output:\n%s", name, p.out.String())
			mu.Unlock()
		}
	})
	return p
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// waitReady polls addr's /readyz until it answers.
func waitReady(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never became ready: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two roomd processes share one JetStream. One is killed (SIGKILL) while it
// holds sessions: the survivor times each of them out once, at its heartbeat
// timeout, and the members it serves see them go.
func TestKilledNodesSessionsTimeOutOnTheSurvivor(t *testing.T) {
	const secret = "kill-test-secret-0123456789abcdef"
	natsAddr := freePort(t)
	const password = "kill-test-nats-password"
	startProcess(t, "nats", "-role", "nats", "-nats-listen", natsAddr, "-nats-password", password, "-data", t.TempDir())
	natsURL := "nats://" + natsAddr
	waitNATS(t, natsURL, password)
	// Generous: a loaded machine must not stall carol, alive on the
	// survivor, past her timeout.
	timeout := 5 * time.Second
	node := func(name string) *process {
		addr := freePort(t)
		p := startProcess(t, name, "-nats-url", natsURL, "-nats-password", password, "-secret", secret, "-http", addr,
			"-heartbeat", "1s", "-heartbeat-timeout", timeout.String(), "-multi-room", "true")
		p.http = addr
		waitReady(t, p.http)
		return p
	}
	a, b := node("node A"), node("node B")
	signer, err := auth.NewSigner(auth.Config{Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	tok := func(u string) string {
		s, err := signer.Mint(auth.Claims{App: "dev", User: u, AllRooms: true, Publish: true, ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	alice, bob, carol := wire.Dial(t, a.http), wire.Dial(t, a.http), wire.Dial(t, b.http)
	for _, c := range []*wire.Conn{alice, bob, carol} {
		go c.Heartbeat(ctx, 200*time.Millisecond)
	}
	alice.Login("stage", "alice", tok("alice"))
	bob.Login("stage", "bob", tok("bob"))
	if snap := carol.Login("stage", "carol", tok("carol")); len(snap.Users) != 3 {
		t.Fatalf("carol sees %v in the room", snap.Users)
	}
	killed := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	gone := map[string]bool{}
	deadline := time.Now().Add(timeout + 30*time.Second) // generous: a loaded machine
	for len(gone) < 2 {
		f, err := carol.TryNext(time.Until(deadline))
		if err != nil {
			t.Fatalf("carol heard of %v leaving, then nothing: %v", gone, err)
		}
		if f.Event == protocol.EvRoomUserUpdate && strings.Contains(string(f.Data), "DELETE") {
			for _, u := range []string{"alice", "bob"} {
				if strings.Contains(string(f.Data), `"`+u+`"`) {
					gone[u] = true
				}
			}
		}
	}
	noticed := time.Since(killed)
	// The log records each timeout once, the timeout after the session's last
	// heartbeat (not before; the upper bound only catches one that never
	// waited for it, generous for a loaded machine).
	log := estest.Must(t, eventstore.Config{URL: natsURL, Password: password, Logger: estest.Logger(t)})
	timeouts := map[domain.SessionID]int{}
	_, err = log.Read(estest.Ctx(t), []string{log.Prefix() + ".>"}, 1, func(rec eventstore.Record) error {
		events, err := domain.DecodeEvents(rec.Data)
		if err != nil {
			return err
		}
		for _, e := range events {
			d, ok := e.Data.(*domain.SessionTimedOutData)
			if !ok {
				continue
			}
			timeouts[domain.SessionID(e.AggregateID)]++
			if late := e.Time.Sub(d.LastSeen); late < timeout || late > timeout+10*time.Second {
				t.Errorf("session %s timed out %v after its last heartbeat, want %v", e.AggregateID, late, timeout)
			}
			if d.LastSeen.After(killed) || killed.Sub(d.LastSeen) > 5*time.Second {
				t.Errorf("session %s last seen %v, killed at %v", e.AggregateID, d.LastSeen, killed)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*wire.Conn{alice, bob} {
		if n := timeouts[domain.SessionID(c.Hello.Session)]; n != 1 {
			t.Errorf("session %s timed out %d times, want once", c.Hello.Session, n)
		}
	}
	if n := timeouts[domain.SessionID(carol.Hello.Session)]; n != 0 {
		t.Errorf("carol, alive on the survivor, was timed out")
	}
	t.Logf("the survivor recorded both timeouts %v after the kill (heartbeat timeout %v)", noticed.Round(time.Millisecond), timeout)
}

// waitNATS waits until a NATS server answers at url with its stream.
func waitNATS(t *testing.T, url, password string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		log, err := eventstore.Open(ctx, eventstore.Config{URL: url, Password: password, Logger: estest.Logger(t)})
		cancel()
		if err == nil {
			log.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("NATS at %s never answered: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Requests in flight when their node is SIGKILLed: alice's SDK sends five
// broadcasts through a load balancer to node A, which stores them all but
// whose replies never reach her; A is killed, the balancer sends her to
// node B, and the SDK resumes there and sends the five requests again with
// their idempotency keys. B has never seen those keys (A's memory of them
// died with it); its engine finds them in the log. Every call succeeds with
// the ID of the message stored first, each message is stored and delivered
// once.
func TestRequestsInFlightWhenTheirNodeIsKilledTakeEffectOnce(t *testing.T) {
	const secret = "kill-test-secret-0123456789abcdef"
	natsAddr := freePort(t)
	const password = "kill-test-nats-password"
	startProcess(t, "nats", "-role", "nats", "-nats-listen", natsAddr, "-nats-password", password, "-data", t.TempDir())
	natsURL := "nats://" + natsAddr
	waitNATS(t, natsURL, password)
	node := func(name string) *process {
		addr := freePort(t)
		p := startProcess(t, name, "-nats-url", natsURL, "-nats-password", password, "-secret", secret, "-http", addr,
			"-multi-room", "true")
		p.http = addr
		waitReady(t, p.http)
		return p
	}
	a, b := node("node A"), node("node B")
	signer, err := auth.NewSigner(auth.Config{Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	tok := func(u string) string {
		s, err := signer.Mint(auth.Claims{App: "dev", User: u, AllRooms: true, Publish: true, ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	bob := wire.Dial(t, b.http)
	bob.Login("stage", "bob", tok("bob"))
	balancer := netcut.Start(t, a.http)
	rec := clienttest.NewRecorder(t, "alice")
	rec.AllowReconnects()
	alice := clienttest.Dial(t, clienttest.URL(balancer.Addr()), rec, func(o *client.Options) {
		o.RequestTimeout = time.Minute // generous: the retry goes out after the reconnect
		o.BackoffMin, o.BackoffMax = 20*time.Millisecond, 200*time.Millisecond
	})
	if _, err := alice.LoginRoom(estest.Ctx(t), "stage", clienttest.User("alice"), client.LoginOptions{Token: tok("alice")}); err != nil {
		t.Fatal(err)
	}
	bob.Until(func(f protocol.Frame) bool { return f.Event == protocol.EvRoomUserUpdate })

	const n = 5
	balancer.MuteServer() // A hears alice; she hears nothing more from it
	type sent struct {
		body string
		res  client.MessageResult
		err  error
	}
	results := make(chan sent, n)
	for i := range n {
		body := fmt.Sprint("in flight ", i)
		go func() {
			res, err := alice.SendBroadcastMessage(estest.Ctx(t), "stage", body)
			results <- sent{body, res, err}
		}()
	}
	// Bob hears each once A has stored it.
	delivered := map[string]string{} // body: message ID
	var delivery []string
	collect := func(until func() bool, d time.Duration) {
		deadline := time.Now().Add(d)
		for !until() {
			f, err := bob.TryNext(time.Until(deadline))
			if err != nil {
				return
			}
			var m protocol.Message
			if f.Event != protocol.EvBroadcastMessage || json.Unmarshal(f.Data, &m) != nil {
				continue
			}
			delivery = append(delivery, m.Message)
			delivered[m.Message] = m.MessageID
		}
	}
	collect(func() bool { return len(delivered) == n }, 30*time.Second)
	if len(delivered) != n {
		t.Fatalf("bob heard %d of the %d broadcasts before the kill", len(delivered), n)
	}
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	balancer.Retarget(b.http)
	balancer.Cut() // the kill, as alice sees it

	for range n {
		s := <-results
		if s.err != nil {
			t.Errorf("%q: %v", s.body, s.err)
			continue
		}
		if s.res.ID != delivered[s.body] {
			t.Errorf("%q answered message %s; the one stored is %s", s.body, s.res.ID, delivered[s.body])
		}
	}
	// A last broadcast marks the end: anything stored twice arrived before it.
	if _, err := alice.SendBroadcastMessage(estest.Ctx(t), "stage", "the end"); err != nil {
		t.Fatal(err)
	}
	collect(func() bool { return slices.Contains(delivery, "the end") }, 30*time.Second)
	if len(delivery) != n+1 {
		t.Errorf("bob heard %d broadcasts, want %d once each: %q", len(delivery), n+1, delivery)
	}

	log := estest.Must(t, eventstore.Config{URL: natsURL, Password: password, Logger: estest.Logger(t)})
	stored := map[string]int{}
	_, err = log.Read(estest.Ctx(t), []string{log.Prefix() + ".>"}, 1, func(rec eventstore.Record) error {
		events, err := domain.DecodeEvents(rec.Data)
		for _, e := range events {
			if d, ok := e.Data.(*domain.BroadcastSentData); ok {
				stored[d.Body]++
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for body := range delivered {
		if stored[body] != 1 {
			t.Errorf("%q stored %d times", body, stored[body])
		}
	}
}
