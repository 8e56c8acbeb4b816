package tests

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/media/mediatest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/netcut"
	"github.com/roomlog/roomlog/transport/admin"
	"github.com/roomlog/roomlog/transport/client"
)

// Every way a stream or a play ends in the log closes its media within a
// bounded time, each tested on its own: alice publishes alice-cam in stage,
// bob plays it there, then one ending happens.
func TestEveryEndingClosesMedia(t *testing.T) {
	type stage struct {
		n          *nodeT
		alice, bob *mediaUser
	}
	cases := []struct {
		name string
		end  func(t *testing.T, s stage)
		// ended is whose media ends: the publisher's, the player's, or both.
		publisher, player bool
	}{
		{"stop_publish", func(t *testing.T, s stage) {
			if err := s.alice.c.StopPublishingStream(clienttest.Ctx(t), "alice-cam"); err != nil {
				t.Fatal(err)
			}
		}, true, false},
		{"stop_play", func(t *testing.T, s stage) {
			if err := s.bob.c.StopPlayingStream(clienttest.Ctx(t), "alice-cam", ""); err != nil {
				t.Fatal(err)
			}
		}, false, true},
		{"logout of the room (player)", func(t *testing.T, s stage) {
			if err := s.bob.c.LogoutRoom(clienttest.Ctx(t), "stage"); err != nil {
				t.Fatal(err)
			}
		}, false, true},
		{"logout of every room (publisher)", func(t *testing.T, s stage) {
			if _, err := s.alice.c.LogoutAllRooms(clienttest.Ctx(t)); err != nil {
				t.Fatal(err)
			}
		}, true, false},
		{"leave_room (ZIM)", func(t *testing.T, s stage) {
			if err := s.bob.c.LeaveRoom(clienttest.Ctx(t), "stage"); err != nil {
				t.Fatal(err)
			}
		}, false, true},
		{"switch_room (publisher)", func(t *testing.T, s stage) {
			if _, err := s.alice.c.SwitchRoom(clienttest.Ctx(t), "stage", "backstage",
				client.SwitchOptions{Token: clienttest.Token(t, s.n.Node, "alice")}); err != nil {
				t.Fatal(err)
			}
		}, true, false},
		{"backend kick", func(t *testing.T, s stage) {
			if code := adminCall(t, s.n.Node, "POST", roomPath("stage")+"/kick", admin.KickRequest{User: "bob"}, nil); code != http.StatusOK {
				t.Fatalf("kick: HTTP %d", code)
			}
		}, false, true},
		{"duplicate-login kick", func(t *testing.T, s stage) {
			s.bob.r.AllowReconnects()
			again := dialMedia(t, s.n.Node, clienttest.URL(s.n.HTTPAddr()), "bob", nil)
			again.login("stage")
		}, false, true},
		{"room destroyed (no stream_stopped is logged)", func(t *testing.T, s stage) {
			if code := adminCall(t, s.n.Node, "DELETE", roomPath("stage"), admin.DestroyRequest{Reason: "show over"}, nil); code != http.StatusOK {
				t.Fatalf("destroy: HTTP %d", code)
			}
		}, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := &nodeT{clienttest.StartNode(t, clienttest.NodeOptions{})}
			url := clienttest.URL(n.HTTPAddr())
			s := stage{n: n, alice: dialMedia(t, n.Node, url, "alice", nil), bob: dialMedia(t, n.Node, url, "bob", nil)}
			s.alice.login("stage")
			s.bob.login("stage")
			s.alice.publish("alice-cam", "stage")
			_, sink := s.bob.play("alice-cam", "stage")
			c.end(t, s)
			stopped(t, "bob", sink)
			if c.publisher {
				if e := s.alice.states.wait(t, "alice-cam", client.NoPublish); e.Reason != "ended" || e.Code != 0 {
					t.Errorf("alice's media ended with %+v", e)
				}
			}
			if c.player {
				if e := s.bob.states.wait(t, "alice-cam", client.NoPlay); e.Reason != "ended" {
					t.Errorf("bob's media ended with %+v", e)
				}
			}
			if !c.publisher {
				if _, ok := s.alice.states.find("alice-cam", client.NoPublish); ok {
					t.Error("the publisher's media ended too")
				}
			}
			want := 0
			if !c.publisher {
				want = 1
			}
			waitFor(t, "the SFU's publishers", func() bool { return n.SFU.Stats().Publishers == want })
			if c.player {
				waitFor(t, "the SFU's players", func() bool { return n.SFU.Stats().Players == 0 })
			}
		})
	}
}

type nodeT struct{ *node.Node }

// A heartbeat timeout (on the node's fake clock) ends the silent player's
// media.
func TestHeartbeatTimeoutClosesMedia(t *testing.T) {
	clock := estest.NewClock(time.Now())
	n := clienttest.StartNode(t, clienttest.NodeOptions{Clock: clock})
	p := netcut.Start(t, n.HTTPAddr())
	aliceClock := estest.NewClock(time.Now())
	alice := dialMedia(t, n, clienttest.URL(n.HTTPAddr()), "alice", func(o *client.Options) {
		o.Clock = clienttest.ClientClock(aliceClock)
	})
	aliceBeats := beating{c: alice.c, clock: aliceClock}
	bob := dialMedia(t, n, clienttest.URL(p.Addr()), "bob", quickRetry)
	bob.r.AllowReconnects()
	alice.login("stage")
	bob.login("stage")
	alice.publish("alice-cam", "stage")
	_, sink := bob.play("alice-cam", "stage")
	waitHeard(t, n, clock, bob.c)
	p.Refuse(true)
	p.Drop()
	advance(t, n, clock, 60*time.Second, aliceBeats)
	flowing(t, "bob, within the timeout", sink) // a dropped WebSocket is not the end of media
	advance(t, n, clock, 31*time.Second, aliceBeats)
	stopped(t, "bob, timed out", sink)
	waitFor(t, "the SFU's players", func() bool { return n.SFU.Stats().Players == 0 })
	if n.SFU.Stats().Publishers != 1 {
		t.Errorf("alice's media ended too: %+v", n.SFU.Stats())
	}
}

// A WebSocket that drops and resumes does not touch media: the peer
// connections belong to the media node, not to the socket.
func TestResumeKeepsMedia(t *testing.T) {
	n := clienttest.StartNode(t, clienttest.NodeOptions{})
	p := netcut.Start(t, n.HTTPAddr())
	alice := dialMedia(t, n, clienttest.URL(p.Addr()), "alice", quickRetry)
	bob := dialMedia(t, n, clienttest.URL(p.Addr()), "bob", quickRetry)
	alice.r.AllowReconnects()
	bob.r.AllowReconnects()
	alice.login("stage")
	bob.login("stage")
	alice.publish("alice-cam", "stage")
	_, sink := bob.play("alice-cam", "stage")
	session := bob.c.Session()
	p.Cut()
	bob.r.WaitState("stage", client.StateReconnecting)
	bob.r.WaitState("stage", client.StateReconnected)
	alice.r.WaitState("stage", client.StateReconnected)
	if bob.c.Session() != session {
		t.Fatalf("bob's session changed: it was not resumed")
	}
	flowing(t, "bob, after the resume", sink)
	for _, u := range []*mediaUser{alice, bob} {
		for _, st := range []client.MediaState{client.NoPublish, client.NoPlay} {
			if e, ok := u.states.find("alice-cam", st); ok {
				t.Errorf("%s: %+v after a resume", u.id, e)
			}
		}
	}
}

// A player whose WebSocket is down while its stream moves to another media
// node misses the state event that says so (state events are not in the
// log): once it resumes, the SDK asks after its peer connection
// (media_check), learns that the server has none, and follows the stream.
func TestAPlayerFollowsAStreamThatMovedWhileItsConnectionWasDown(t *testing.T) {
	nodeA := clienttest.StartNode(t, clienttest.NodeOptions{NATSListen: "127.0.0.1:0"})
	nodeB := clienttest.StartNode(t, clienttest.NodeOptions{Join: nodeA})
	p := netcut.Start(t, nodeB.HTTPAddr())
	alice := dialMedia(t, nodeA, clienttest.URL(nodeA.HTTPAddr()), "alice", nil)
	carol := dialMedia(t, nodeB, clienttest.URL(p.Addr()), "carol", quickRetry)
	carol.r.AllowReconnects()
	alice.login("stage")
	carol.login("stage")

	// carol plays before anything is published: her peer is on node B.
	if _, err := carol.c.StartPlayingStream(clienttest.Ctx(t), "alice-cam", "stage"); err != nil {
		t.Fatal(err)
	}
	sink := mediatest.NewSink()
	if _, err := carol.c.PlayMedia(clienttest.Ctx(t), "alice-cam", sink.OnTrack, client.MediaOptions{API: mediatest.API()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "carol's peer on node B", func() bool { return nodeB.SFU.Stats().Players == 1 })
	session := carol.c.Session()

	// carol's WebSocket drops; while it is down, alice publishes on node A,
	// and node B closes carol's peer there (play_media_moved), telling nobody.
	p.Refuse(true)
	p.Cut()
	carol.r.WaitState("stage", client.StateReconnecting)
	alice.publish("alice-cam", "stage")
	waitFor(t, "carol's peer on node B to be moved off", func() bool { return nodeB.SFU.Stats().Players == 0 })
	p.Refuse(false)
	carol.r.WaitState("stage", client.StateReconnected)
	if carol.c.Session() != session {
		t.Fatal("carol's session was not resumed")
	}
	if !sink.WaitMore(videoKind, 10, mediaBound) {
		t.Fatalf("after the resume carol receives no media of alice-cam (node A players %d)", nodeA.SFU.Stats().Players)
	}
	if got := nodeA.SFU.Stats().Players; got != 1 {
		t.Errorf("node A has %d players, want carol's", got)
	}
}

// A player waiting for a stream nobody publishes yet holds its peer on the
// node it signalled through. Resumed through another node, its check goes to
// the node that answered its offer, which still has the peer: the player is
// left alone, and gets the stream once it is published.
func TestAPlayerResumedThroughAnotherNodeKeepsItsWaitingPeer(t *testing.T) {
	nodeA := clienttest.StartNode(t, clienttest.NodeOptions{NATSListen: "127.0.0.1:0"})
	nodeB := clienttest.StartNode(t, clienttest.NodeOptions{Join: nodeA})
	p := netcut.Start(t, nodeB.HTTPAddr())
	carol := dialMedia(t, nodeB, clienttest.URL(p.Addr()), "carol", quickRetry)
	carol.r.AllowReconnects()
	carol.login("stage")
	if _, err := carol.c.StartPlayingStream(clienttest.Ctx(t), "dave-cam", "stage"); err != nil {
		t.Fatal(err)
	}
	sink := mediatest.NewSink()
	if _, err := carol.c.PlayMedia(clienttest.Ctx(t), "dave-cam", sink.OnTrack, client.MediaOptions{API: mediatest.API()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "carol's peer on node B", func() bool { return nodeB.SFU.Stats().Players == 1 })
	session := carol.c.Session()

	p.Refuse(true)
	p.Cut()
	carol.r.WaitState("stage", client.StateReconnecting)
	p.Retarget(nodeA.HTTPAddr()) // she comes back through node A
	p.Refuse(false)
	carol.r.WaitState("stage", client.StateReconnected)
	if carol.c.Session() != session {
		t.Fatal("carol's session was not resumed")
	}
	dave := dialMedia(t, nodeB, clienttest.URL(nodeB.HTTPAddr()), "dave", nil)
	dave.login("stage")
	dave.publish("dave-cam", "stage") // hosted on node B, where carol's peer waits
	if !sink.WaitMore(videoKind, 10, mediaBound) {
		t.Fatalf("carol receives no media of dave-cam (node A players %d, node B players %d)",
			nodeA.SFU.Stats().Players, nodeB.SFU.Stats().Players)
	}
	if e, ok := carol.states.find("dave-cam", client.NoPlay); ok {
		t.Errorf("carol's waiting player was ended: %+v", e)
	}
	if got := nodeA.SFU.Stats().Players; got != 0 {
		t.Errorf("node A has %d players: the check took carol's live peer on node B for gone", got)
	}
}

// A player on node B of a stream hosted on node A holds its peer on A, and
// when the stream stops, waits there for it to come back. Its ICE restart and
// its close go to A, which holds the peer, not to B (the stream has no host
// now): the restart is answered, and the close ends the peer at once.
func TestAWaitingPlayersRequestsGoToTheNodeThatHoldsIt(t *testing.T) {
	nodeA := clienttest.StartNode(t, clienttest.NodeOptions{NATSListen: "127.0.0.1:0"})
	nodeB := clienttest.StartNode(t, clienttest.NodeOptions{Join: nodeA})
	alice := dialMedia(t, nodeA, clienttest.URL(nodeA.HTTPAddr()), "alice", nil)
	bob := dialMedia(t, nodeB, clienttest.URL(nodeB.HTTPAddr()), "bob", nil)
	alice.login("stage")
	bob.login("stage")
	alice.publish("alice-cam", "stage")
	player, sink := bob.play("alice-cam", "stage")
	if got := nodeA.SFU.Stats().Players; got != 1 {
		t.Fatalf("node A holds %d players, want bob's", got)
	}
	if err := alice.c.StopPublishingStream(clienttest.Ctx(t), "alice-cam"); err != nil {
		t.Fatal(err)
	}
	stopped(t, "bob", sink)
	if got := nodeA.SFU.Stats().Players; got != 1 {
		t.Fatalf("node A holds %d players: bob's should wait there", got)
	}

	if err := player.RestartICE(clienttest.Ctx(t)); err != nil {
		t.Errorf("bob's ICE restart while waiting: %v", err)
	}
	if err := player.Close(clienttest.Ctx(t)); err != nil {
		t.Errorf("bob's media_close: %v", err)
	}
	waitFor(t, "bob's peer on node A to close", func() bool { return nodeA.SFU.Stats().Players == 0 })
	if e := bob.states.wait(t, "alice-cam", client.NoPlay); e.Reason != "closed" {
		t.Errorf("bob's player ended with %+v, want reason closed", e)
	}
}

// The same waiting player, after its connection blips and it resumes: on
// the same node B, or through node C, which never saw its offer (the SDK's
// media_check after the resume names node A, and C learns it from the
// answer). Either way its ICE restart still reaches node A and is
// answered. A resume used to forget where the offer was answered, and the
// restart went to the stream's host, none now, so to the resuming node's
// own media plane: 1907003, media_peer_not_found.
func TestAWaitingPlayersRequestsGoToTheNodeThatHoldsItAfterAResume(t *testing.T) {
	for _, through := range []string{"the same node", "another node"} {
		t.Run(through, func(t *testing.T) {
			nodeA := clienttest.StartNode(t, clienttest.NodeOptions{NATSListen: "127.0.0.1:0"})
			nodeB := clienttest.StartNode(t, clienttest.NodeOptions{Join: nodeA})
			nodeC := clienttest.StartNode(t, clienttest.NodeOptions{Join: nodeA})
			p := netcut.Start(t, nodeB.HTTPAddr())
			alice := dialMedia(t, nodeA, clienttest.URL(nodeA.HTTPAddr()), "alice", nil)
			bob := dialMedia(t, nodeB, clienttest.URL(p.Addr()), "bob", quickRetry)
			bob.r.AllowReconnects()
			alice.login("stage")
			bob.login("stage")
			alice.publish("alice-cam", "stage")
			player, sink := bob.play("alice-cam", "stage")
			if err := alice.c.StopPublishingStream(clienttest.Ctx(t), "alice-cam"); err != nil {
				t.Fatal(err)
			}
			stopped(t, "bob", sink)
			if got := nodeA.SFU.Stats().Players; got != 1 {
				t.Fatalf("node A holds %d players: bob's should wait there", got)
			}
			session := bob.c.Session()
			p.Refuse(true)
			p.Cut()
			bob.r.WaitState("stage", client.StateReconnecting)
			if through == "another node" {
				p.Retarget(nodeC.HTTPAddr())
			}
			p.Refuse(false)
			bob.r.WaitState("stage", client.StateReconnected)
			if bob.c.Session() != session {
				t.Fatal("bob's session was not resumed")
			}
			if got := nodeA.SFU.Stats().Players; got != 1 {
				t.Fatalf("node A holds %d players after the resume, want bob's waiting one", got)
			}
			if through == "another node" {
				// The SDK checks its media after the resume on its own:
				// the restart comes after that check, as a real one would.
				waitFor(t, "node C to answer bob's media_check", func() bool {
					return strings.Contains(clienttest.Metrics(t, nodeC), `roomlog_gateway_request_duration_seconds_count{op="media_check"} 1`)
				})
			}
			if err := player.RestartICE(clienttest.Ctx(t)); err != nil {
				t.Errorf("bob's ICE restart after the resume: %v", err)
			}
		})
	}
}

// A multi-room session that leaves one room loses only that room's media.
func TestLeavingOneRoomKeepsTheOthersMedia(t *testing.T) {
	n := clienttest.StartNode(t, clienttest.NodeOptions{})
	url := clienttest.URL(n.HTTPAddr())
	alice, carol, bob := dialMedia(t, n, url, "alice", nil), dialMedia(t, n, url, "carol", nil), dialMedia(t, n, url, "bob", nil)
	if err := bob.c.SetRoomMode(clienttest.Ctx(t), client.MultiRoom); err != nil {
		t.Fatal(err)
	}
	alice.login("stage")
	carol.login("hall")
	bob.login("stage")
	bob.login("hall")
	alice.publish("alice-cam", "stage")
	carol.publish("carol-cam", "hall")
	_, fromStage := bob.play("alice-cam", "stage")
	_, fromHall := bob.play("carol-cam", "hall")
	if err := bob.c.LogoutRoom(clienttest.Ctx(t), "stage"); err != nil {
		t.Fatal(err)
	}
	stopped(t, "bob's stage play", fromStage)
	bob.states.wait(t, "alice-cam", client.NoPlay)
	flowing(t, "bob's hall play", fromHall)
	if _, ok := bob.states.find("carol-cam", client.NoPlay); ok {
		t.Error("the hall play ended")
	}
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(clienttest.Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not in time", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A player waiting on a media node for its stream to be published again
// (the publisher stopped; the play is still in the log) is told when that
// node dies (SIGKILL, a roomd process of its own): the node hosted no
// published stream, so no stream's stop tells anyone, but the gateway that
// knows bob's connection is there ends it (NO_PLAY 1004004, node_lost), as
// for the players of a dead node's streams; or, if bob's SDK restarts ICE
// before the node is found dead, the restart and the new offer find it
// unreachable (1907002). Bob plays again, on the surviving media node, and
// receives alice's stream once she publishes again. Before, bob was told
// nothing and waited on a dead node for good.
func TestAPlayerWaitingOnAMediaNodeThatDiesIsTold(t *testing.T) {
	// Real time: the timeout is generous enough that a stall on a loaded
	// machine never declares the live media node dead before it is killed.
	quick := func(c *node.Config) { c.MediaNodeBeat, c.MediaNodeTimeout = time.Second, 8*time.Second }
	g := clienttest.StartNode(t, clienttest.NodeOptions{NATSListen: "127.0.0.1:0", Edit: func(c *node.Config) {
		quick(c)
		c.NoMedia = true
	}})
	lc := g.Log.ClientConfig()
	m1 := startProcess(t, "media node m1", "-role", "media", "-nats-url", lc.URL, "-nats-password", estest.Password,
		"-data", t.TempDir(), "-http", freePort(t), "-log-level", "warn")
	waitFor(t, "the gateway to see m1", func() bool { return len(g.MediaNodes.Alive()) == 1 })
	m1Name := g.MediaNodes.Alive()[0]

	alice := dialMedia(t, g, clienttest.URL(g.HTTPAddr()), "alice", nil)
	bob := dialMedia(t, g, clienttest.URL(g.HTTPAddr()), "bob", nil)
	alice.login("stage")
	bob.login("stage")
	alice.publish("alice-cam", "stage")
	_, sink := bob.play("alice-cam", "stage")
	if err := alice.c.StopPublishingStream(clienttest.Ctx(t), "alice-cam"); err != nil {
		t.Fatal(err)
	}
	stopped(t, "bob", sink)
	bob.states.wait(t, "alice-cam", client.PlayRequesting)

	m2 := clienttest.StartNode(t, clienttest.NodeOptions{Join: g, Edit: func(c *node.Config) {
		quick(c)
		c.NoGateway = true
	}})
	waitFor(t, "the gateway to see m2", func() bool { return len(g.MediaNodes.Alive()) == 2 })
	if err := m1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if e := bob.states.wait(t, "alice-cam", client.NoPlay); e.Code != domain.ErrMediaPlayNodeLost.Code &&
		e.Code != domain.ErrMediaNodeUnreachable.Code {
		t.Fatalf("bob's player on the dead node m1 (%s) ended with %+v, want play_media_node_lost or "+
			"media_node_unreachable", m1Name, e)
	}
	alice.publish("alice-cam", "stage")
	bob.play("alice-cam", "stage") // receives it, from m2
	if m2.SFU.Stats().Players != 1 {
		t.Errorf("m2 serves %+v, want bob's player", m2.SFU.Stats())
	}
}
