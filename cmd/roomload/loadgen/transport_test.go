package loadgen_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/cmd/roomload/loadgen"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/gateway"
)

// startGateway starts a node tuned as roomload tunes it: the app's message
// rate limits and the per-connection request limit out of the way (they
// are what a load test would hit first, not what it measures).
func startGateway(tb testing.TB) (*node.Node, func(string) string) {
	p := loadgen.Policy()
	n := clienttest.StartNode(tb, clienttest.NodeOptions{Policy: &p, Gateway: gateway.Config{
		HeartbeatInterval: 30 * time.Second, RequestsPerSecond: 1e6, RequestBurst: 1e6, QueueSize: 8192}})
	token := func(user string) string {
		return clienttest.Mint(tb, n, auth.Claims{App: string(loadgen.App), User: user, AllRooms: true, Publish: true,
			ExpiresAt: time.Now().Add(time.Hour)})
	}
	return n, token
}

// startRawBroadcast starts the raw WebSocket baseline on loopback.
func startRawBroadcast(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: loadgen.NewRawBroadcastServer()}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// The transport measurements count what happened: every login is timed to
// its Logined, and every broadcast reaches every other member once, on
// roomlog and on the raw baseline alike.
func TestTransportMeasurementsCountWhatHappened(t *testing.T) {
	n, token := startGateway(t)
	ctx := context.Background()
	lat, err := loadgen.LoginLatency(ctx, n.HTTPAddr(), token, 20, 200, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if all := lat.All; all.N < 20 || all.P50 <= 0 || all.P99 < all.P50 || all.Max < all.P99 {
		t.Errorf("login latencies %v: want at least one login per session, ordered percentiles", all)
	}
	if lat.First.N != 20 || lat.First.N+lat.Later.N != lat.All.N {
		t.Errorf("%d first and %d later logins of %d: want one first login per session, the rest later",
			lat.First.N, lat.Later.N, lat.All.N)
	}
	raw := startRawBroadcast(t)
	for name, addr := range map[string]string{"roomlog": n.HTTPAddr(), "raw": raw} {
		f, err := loadgen.RoomFanOut(ctx, addr, token, 10, 4, 0, 200*time.Millisecond)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if f.Deliveries == 0 || f.Deliveries%9 != 0 || int(f.Deliveries) != f.Latency.N {
			t.Errorf("%s: %d deliveries, %d timed, to 9 members: want every broadcast to each, timed", name,
				f.Deliveries, f.Latency.N)
		}
	}
}

// BenchmarkLoginVsRawPublish reports login → Logined latency with 1,000
// connected sessions logging in and out at 500 logins/s, next to the latency
// of raw JetStream appends at the same rate in the same run. roomload login
// does the same with medians of rounds.
func BenchmarkLoginVsRawPublish(b *testing.B) {
	n, token := startGateway(b)
	ctx := context.Background()
	var raw loadgen.Latencies
	var login loadgen.Logins
	for b.Loop() {
		var err error
		if raw, err = loadgen.PublishLatency(ctx, n.Log, 1000, 500, 3*time.Second); err != nil {
			b.Fatal(err)
		}
		if login, err = loadgen.LoginLatency(ctx, n.HTTPAddr(), token, 1000, 500, 3*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(raw.P50), "raw-p50-ms")
	b.ReportMetric(ms(raw.P99), "raw-p99-ms")
	b.ReportMetric(ms(login.All.P50), "login-p50-ms")
	b.ReportMetric(ms(login.All.P99), "login-p99-ms")
	b.ReportMetric(ms(login.First.P99), "first-login-p99-ms")
}

// BenchmarkFanOutVsRawWebSocket reports broadcast deliveries/s to a
// 1,000-member room, saturated (8 broadcasts in flight), and its ratio to a
// raw WebSocket broadcast server measured in the same run.
func BenchmarkFanOutVsRawWebSocket(b *testing.B) {
	n, token := startGateway(b)
	raw := startRawBroadcast(b)
	ctx := context.Background()
	var base, rl loadgen.FanOut
	for b.Loop() {
		var err error
		if base, err = loadgen.RoomFanOut(ctx, raw, token, 1000, 8, 0, 3*time.Second); err != nil {
			b.Fatal(err)
		}
		if rl, err = loadgen.RoomFanOut(ctx, n.HTTPAddr(), token, 1000, 8, 0, 3*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(base.Rate(), "raw-deliveries/s")
	b.ReportMetric(rl.Rate(), "roomlog-deliveries/s")
	b.ReportMetric(rl.Rate()/base.Rate(), "roomlog/raw")
}
