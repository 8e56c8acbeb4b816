package mediabench

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// Run re-executes this test binary as its forwarder process.
func TestMain(m *testing.M) {
	if Forwarding() {
		if err := ServeForwarder(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A short run of each mode works end to end: every player gets nearly
// every packet, and the forwarder process's CPU and heap are measured
// (the numbers themselves are for roomload media).
func TestRunDelivers(t *testing.T) {
	for _, sfu := range []bool{true, false} {
		cfg := Config{SFU: sfu, Publishers: 2, Players: 3, Duration: 500 * time.Millisecond, Rate: 200}
		res, err := Run(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if d := res.Delivered(cfg.Players); res.Sent < 150 || d < 0.95 {
			t.Errorf("sfu=%v: sent %d, delivered %.3f", sfu, res.Sent, d)
		}
		if res.CPU <= 0 || res.LoadCPU <= 0 || res.HeapPerPlayer <= 0 {
			t.Errorf("sfu=%v: forwarder CPU %v, load CPU %v, forwarder heap %.0f B/player", sfu, res.CPU, res.LoadCPU,
				res.HeapPerPlayer)
		}
	}
}

// go test ./media/mediabench -run '^$' -bench .
func BenchmarkForward(b *testing.B) {
	for _, players := range []int{1, 10, 50} {
		for _, sfu := range []bool{true, false} {
			name := "bare"
			if sfu {
				name = "sfu"
			}
			b.Run(fmt.Sprintf("%s/players=%d", name, players), func(b *testing.B) {
				for range b.N {
					res, err := Run(b.Context(), Config{SFU: sfu, Publishers: 1, Players: players, Duration: 2 * time.Second,
						Rate: 2000})
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(res.PerSecond(), "fwd_pkts/s")
					b.ReportMetric(float64(res.CPUPerPacket().Nanoseconds()), "fwd_cpu_ns/pkt")
					b.ReportMetric(res.PerCore(), "fwd_pkts/core_s")
					b.ReportMetric(res.HeapPerPlayer, "fwd_heap_B/player")
				}
			})
		}
	}
}
