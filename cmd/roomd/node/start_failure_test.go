package node_test

import (
	"net"
	"strings"
	"testing"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/media"
)

// A start that fails late (here: the HTTP port is taken) gives back what it
// took. The media UDP port used to stay bound after node.Start returned its
// error, so a second Start in the same process (an embedder retrying, a
// test) failed with "media: UDP port ...: address already in use" although
// no node ran.
func TestAFailedStartGivesBackTheMediaUDPPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	probe, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := probe.LocalAddr().(*net.UDPAddr).Port
	probe.Close()
	cfg := node.Config{Log: eventstore.Config{DataDir: t.TempDir()}, Policy: domain.Config{Default: domain.DefaultPolicy()},
		Secret: []byte("0123456789abcdef0123456789abcdef"), HTTPListen: taken.Addr().String(), Logger: estest.Logger(t),
		Media: media.Config{IPs: []string{"127.0.0.1"}, UDPPort: port}}
	if n, err := node.Start(estest.Ctx(t), cfg); err == nil {
		n.Close()
		t.Fatal("a node started on a taken HTTP port")
	} else if !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("start on a taken HTTP port: %v", err)
	}
	again, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatalf("the failed start left the media UDP port %d bound: %v", port, err)
	}
	again.Close()
}
