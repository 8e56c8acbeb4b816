package metrics_test

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/protocol"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// scrape reads /metrics into "name{labels}" → value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The node serves every series an operator needs on its HTTP listener, and
// they follow what happens: commands by type and outcome, append and fold
// latencies, what is live, the projection's subscribers' queues.
func TestMetricsServeTheNamedSeriesAndTheyMove(t *testing.T) {
	p := domain.DefaultPolicy()
	n, err := node.Start(estest.Ctx(t), node.Config{Log: eventstore.Config{DataDir: t.TempDir()},
		Policy: domain.Config{Default: p}, Secret: secret, HTTPListen: "127.0.0.1:0", Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })

	before := scrape(t, n.HTTPAddr())
	for _, name := range []string{
		`roomlog_live_sessions`, `roomlog_live_rooms`, `roomlog_live_connections`, `roomlog_projection_cursor`,
		`roomlog_projection_skipped_total`,
		`roomlog_projection_lag_messages`, `roomlog_gateway_connections`, `roomlog_gateway_sessions`,
		`roomlog_gateway_queued_frames`, `roomlog_gateway_slow_consumer_disconnects_total`,
		`roomlog_gateway_dropped_barrage_total`, `roomlog_reactor_retries_total`,
		`roomlog_reactor_consumer_recreated_total`, `roomlog_reactor_malformed_total`,
		`roomlog_append_duration_seconds_count`, `roomlog_fold_duration_seconds_count`,
		`roomlog_command_duration_seconds_count`, `roomlog_events_folded_total{type="session.timed_out"}`,
		`roomlog_subscriber_queue_depth{subscriber="gateway-hub"}`, `roomlog_subscriber_queue_depth{subscriber="timekeeper"}`,
		`roomlog_subscriber_overflows_total{subscriber="gateway-hub"}`,
		`go_goroutines`, `go_memstats_heap_inuse_bytes`, `process_resident_memory_bytes`,
	} {
		if _, ok := before[name]; !ok {
			t.Errorf("/metrics has no %s", name)
		}
	}

	tok, err := n.Signer.Mint(auth.Claims{App: "dev", User: "alice", AllRooms: true, Publish: true,
		ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	alice := wire.Dial(t, n.HTTPAddr())
	alice.Login("r1", "alice", tok)
	alice.Do("hi", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "hello"})
	alice.Send("nope", protocol.OpLogout, protocol.LogoutRequest{Room: "elsewhere"})
	if f := alice.Reply("nope"); f.Code == 0 {
		t.Fatalf("logout of a room alice is not in: %+v", f)
	}
	// The login's own reply does not wait for the fold: wait for it here.
	last, err := n.Log.LastSeq(estest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Live.WaitFor(estest.Ctx(t), last); err != nil {
		t.Fatal(err)
	}
	during := scrape(t, n.HTTPAddr())
	for name, want := range map[string]float64{
		`roomlog_live_sessions`: 1, `roomlog_live_rooms`: 1, `roomlog_live_connections`: 1,
		`roomlog_gateway_connections`: 1, `roomlog_gateway_sessions`: 1, `roomlog_projection_cursor`: float64(last),
	} {
		if got := during[name]; got != want {
			t.Errorf("with alice in r1: %s = %v, want %v", name, got, want)
		}
	}
	for _, name := range []string{
		`roomlog_commands_total{command="join_room",outcome="ok"}`,
		`roomlog_commands_total{command="send_broadcast",outcome="ok"}`,
		`roomlog_commands_total{command="leave_room",outcome="refused"}`,
		`roomlog_events_folded_total{type="room.member_joined"}`,
		`roomlog_events_folded_total{type="room.broadcast_sent"}`,
		`roomlog_append_duration_seconds_count`, `roomlog_fold_duration_seconds_count`,
		`roomlog_command_duration_seconds_count`,
		`roomlog_gateway_request_duration_seconds_count{op="login"}`,
	} {
		if during[name] <= before[name] {
			t.Errorf("%s did not move: %v before, %v after", name, before[name], during[name])
		}
	}

	alice.Do("bye", protocol.OpLogout, protocol.LogoutRequest{Room: "r1"})
	deadline := time.Now().Add(10 * time.Second)
	for {
		after := scrape(t, n.HTTPAddr())
		if after[`roomlog_live_sessions`] == 0 && after[`roomlog_live_rooms`] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice logged out of the only room: %v live sessions, %v live rooms",
				after[`roomlog_live_sessions`], after[`roomlog_live_rooms`])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An operator who removes the reactor's durable consumer (or a JetStream
// that loses it) sees the reactor subscribe again in
// roomlog_reactor_consumer_recreated_total. Before, only the reactor's own
// Recreated knew.
func TestTheReactorsRecreationsAreCounted(t *testing.T) {
	n, err := node.Start(estest.Ctx(t), node.Config{Log: eventstore.Config{DataDir: t.TempDir()},
		Policy: domain.Config{Default: domain.DefaultPolicy()}, Secret: secret, HTTPListen: "127.0.0.1:0", Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	const name = `roomlog_reactor_consumer_recreated_total`
	if got, ok := scrape(t, n.HTTPAddr())[name]; !ok || got != 0 {
		t.Fatalf("%s before anything happened: %v (served: %t), want 0", name, got, ok)
	}
	stream, err := estest.JetStream(t, n.Log).Stream(estest.Ctx(t), n.Log.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.DeleteConsumer(estest.Ctx(t), "reactor-followups-v1"); err != nil {
		t.Fatal(err)
	}
	estest.Eventually(t, name+" at 1", func() bool { return scrape(t, n.HTTPAddr())[name] == 1 })
}
