package client_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/netcut"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/gateway"
)

// Close while reconnecting, with a request waiting for the connection,
// leaves no goroutine of the SDK behind (the reconnection loop, the
// waiting request, the dispatcher). Not parallel: it counts every
// goroutine of the process.
func TestCloseWhileReconnectingLeavesNoGoroutine(t *testing.T) {
	n := startNode(t, gateway.Config{})
	p := netcut.Start(t, n.HTTPAddr())
	ra := newRec(t, "alice")
	ra.AllowReconnects()
	a := dial(t, clienttest.URL(p.Addr()), ra, fastRetry)
	login(t, n, a, ra, "r1", "alice")
	p.Refuse(true)
	p.Cut()
	ra.WaitState("r1", client.StateReconnecting)
	waitRefused(t, p)
	go a.SendBroadcastMessage(context.Background(), "r1", "waiting") //nolint:errcheck
	a.Close()
	for deadline := time.Now().Add(wait); ; time.Sleep(20 * time.Millisecond) {
		buf := make([]byte, 1<<22)
		stacks := string(buf[:runtime.Stack(buf, true)])
		var left []string
		for _, g := range strings.Split(stacks, "\n\n") {
			if strings.Contains(g, "roomlog/transport/client.") && !strings.Contains(g, "testing.tRunner") {
				left = append(left, g)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d SDK goroutines left after Close:\n%s", len(left), strings.Join(left, "\n\n"))
		}
	}
}
