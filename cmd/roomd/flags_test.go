package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/tests/wire"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// -sync always asks for every acknowledged append to be fsynced. With
// -nats-url the external server's fsync policy applies: roomd says so
// rather than drop the flag without a word (which would let the operator
// believe in a durability the node does not have), and still starts, since
// one environment (ROOMLOG_SYNC=always) may serve a whole fleet, meant for
// its -role nats server.
func TestSyncAlwaysWithAnExternalServerIsWarnedOf(t *testing.T) {
	for _, args := range [][]string{{"-sync", "always"}, nil} {
		var buf bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&buf, nil))
		o, err := parse(append([]string{"-data", t.TempDir(), "-role", "gateway", "-nats-url", "nats://127.0.0.1:4222",
			"-secret", "0123456789abcdef0123456789abcdef", "-nats-password", "production-password-1"}, args...),
			env(map[string]string{"ROOMLOG_SYNC": "always"}), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := config(o, logger); err != nil {
			t.Errorf("a -nats-url node with -sync always (%v): refused: %v", args, err)
		}
		if !strings.Contains(buf.String(), "-sync always does not reach an external server") {
			t.Errorf("a -nats-url node with -sync always (%v): no warning; log: %s", args, buf.String())
		}
	}
}

// A negative -heartbeat is refused: advertised to every client in its hello
// (heartbeat_ms < 0), it would make the Go SDK send no heartbeat at all.
func TestANegativeHeartbeatIsRefused(t *testing.T) {
	o, err := parse([]string{"-data", t.TempDir(), "-heartbeat", "-30s", "-nats-listen", "off", "-no-media",
		"-http", "127.0.0.1:0"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config(o, discardLogger())
	if err != nil {
		return // refused: good
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := node.Start(ctx, cfg)
	if err != nil {
		return // refused at start: good
	}
	defer n.Close()
	c := wire.Dial(t, n.HTTPAddr())
	t.Errorf("roomd -heartbeat -30s started, and advertises heartbeat_ms %d in hello", c.Hello.HeartbeatMS)
}

// -retention and -checkpoint-every take durations; a negative one is no
// period at all and is refused, not taken silently as "0" (keep history
// forever, never sign), which the operator did not ask for.
func TestNegativeDurationsAreRefused(t *testing.T) {
	for _, flag := range []string{"-retention", "-checkpoint-every", "-shutdown-grace"} {
		o, err := parse([]string{"-data", t.TempDir(), "-nats-listen", "off", flag, "-24h"}, env(nil), io.Discard)
		if err != nil {
			continue
		}
		if _, _, err := config(o, discardLogger()); err == nil {
			t.Errorf("%s -24h was accepted without a word", flag)
		}
	}
}

// A retention limit shorter than the log's de-duplication window is refused
// with the flag's name, not passed on to JetStream, which refused it with
// "duplicates window can not be larger then max age".
func TestARetentionBelowTheDuplicateWindowIsRefused(t *testing.T) {
	o, err := parse([]string{"-data", t.TempDir(), "-nats-listen", "off", "-retention", "60s"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = config(o, discardLogger())
	if err == nil || !strings.Contains(err.Error(), "-retention 1m0s") || !strings.Contains(err.Error(), "at least 2m0s") {
		t.Fatalf("roomd -retention 60s: %v, want a refusal naming -retention and the 2m0s minimum", err)
	}
}

// -shutdown-grace is "how long shutdown waits for clients to go", however
// long: a request in flight for 11 s is answered before roomd exits with a
// grace of 30 s (node.Shutdown once capped every grace at 10 s). The
// request is a CPU profile, on the profiler's listener, which shuts down
// within the same grace as the clients' one.
func TestAShutdownGraceAbove10sIsHonoured(t *testing.T) {
	addr, pprofAddr := freeAddr(t), freeAddr(t)
	o, err := parse([]string{"-data", t.TempDir(), "-nats-listen", "off", "-no-media", "-http", addr, "-pprof", pprofAddr,
		"-shutdown-grace", "30s"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- run(ctx, o, discardLogger(), io.Discard) }()
	waitHTTP(t, addr)
	// A request that takes 11 s: a CPU profile.
	// What the client got: the whole profile, or why not.
	answered := make(chan error, 1)
	go func() {
		res, err := http.Get("http://" + pprofAddr + "/debug/pprof/profile?seconds=11")
		if err == nil {
			var n int64
			n, err = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if err == nil && (res.StatusCode != http.StatusOK || n == 0) {
				err = fmt.Errorf("status %d, %d bytes", res.StatusCode, n)
			}
		}
		answered <- err
	}()
	// Stop once roomd runs the request (its handler is on a goroutine's
	// stack: roomd runs in this process), not after a guess at how long a
	// loaded machine takes to get there.
	for deadline := time.Now().Add(30 * time.Second); !running("net/http/pprof.Profile("); time.Sleep(10 * time.Millisecond) {
		select {
		case <-answered:
			t.Fatal("the profile request was answered before it ran")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the profile request never ran")
		}
	}
	stop() // SIGTERM
	select {
	case <-done:
	case <-time.After(40 * time.Second):
		t.Fatal("roomd did not stop within 40 s")
	}
	// The client reads the answer after roomd has written it, perhaps after
	// roomd has returned: what matters is that it got all of it.
	select {
	case err := <-answered:
		if err != nil {
			t.Errorf("roomd (-shutdown-grace 30s) cut its in-flight request short: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("the in-flight request was never answered")
	}
}

// running reports whether a goroutine of this process is in fn.
func running(fn string) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Contains(buf[:n], []byte(fn))
		}
		buf = make([]byte, 2*len(buf))
	}
}

func waitHTTP(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			res.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("roomd did not listen on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// -checkpoint-every 0 signs nothing: a -checkpoint-key given with it (a
// fleet's shared ROOMLOG_CHECKPOINT_KEY, say) is warned of, not read by
// nobody without a word.
func TestACheckpointKeyWithCheckpointEvery0IsWarnedOf(t *testing.T) {
	var buf bytes.Buffer
	o, err := parse([]string{"-data", t.TempDir(), "-secret", "0123456789abcdef0123456789abcdef", "-nats-listen", "off",
		"-checkpoint-every", "0", "-checkpoint-key", "/nonexistent/checkpoint.pem"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := config(o, slog.New(slog.NewTextHandler(&buf, nil))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "signs nothing") {
		t.Errorf("-checkpoint-key with -checkpoint-every 0: no warning; log: %s", buf.String())
	}
}

// -media-public-ips takes addresses, or public/private pairs (pion's 1:1
// NAT mapping for a host with several private addresses); anything else is
// refused.
func TestMediaPublicIPsTakeAddressesAndPairs(t *testing.T) {
	for value, ok := range map[string]bool{"203.0.113.5": true, "203.0.113.5/10.0.0.5": true,
		"media.example.com": false, "203.0.113.5/nat": false} {
		o, err := parse([]string{"-data", t.TempDir(), "-nats-listen", "off", "-media-public-ips", value}, env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := config(o, discardLogger()); (err == nil) != ok {
			t.Errorf("-media-public-ips %s: %v, want accepted %v", value, err, ok)
		}
	}
}

// -role nats (the server that creates the stream with its retention) checks
// its durations too.
func TestTheNATSRoleRefusesANegativeRetention(t *testing.T) {
	o, err := parse([]string{"-data", t.TempDir(), "-role", "nats", "-retention", "-24h"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), o, discardLogger(), io.Discard); err == nil || !strings.Contains(err.Error(), "-retention") {
		t.Errorf("roomd -role nats -retention -24h: %v", err)
	}
}

// -media-ips takes addresses; one that is not an IP address (a host name, a
// typo) is refused: the SFU's filter would drop it silently and offer no
// candidate at all, and no client's media would ever connect.
func TestMediaIPsThatAreNotAddressesAreRefused(t *testing.T) {
	o, err := parse([]string{"-data", t.TempDir(), "-nats-listen", "off", "-http", "127.0.0.1:0",
		"-media-ips", "media.example.com"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config(o, discardLogger())
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := node.Start(ctx, cfg)
	if err != nil {
		return
	}
	n.Close()
	t.Error("roomd -media-ips media.example.com started: the SFU offers no address")
}

// A -secret too short to sign tokens is refused by config, before the
// embedded JetStream starts and writes its stream into the data folder.
func TestAShortSecretIsRefusedBeforeAnythingStarts(t *testing.T) {
	dir := t.TempDir()
	o, err := parse([]string{"-data", dir, "-secret", "too-short", "-nats-listen", "off"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := config(o, discardLogger()); err == nil {
		t.Error("-secret too-short (9 bytes): accepted by config")
	}
}
