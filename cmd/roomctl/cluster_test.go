package main

import (
	"context"
	"strings"
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// roomctl's readers against an R3 stream on a real cluster: each one binds
// to the stream as it is, and the stream keeps its three replicas (they used
// to open it with the default config and set it to one).
func TestReadersKeepTheClusterStreamsReplicas(t *testing.T) {
	c := estest.StartCluster(t, 3)
	log := estest.Must(t, eventstore.Config{URL: c.URL(), Replicas: 3, Logger: estest.Logger(t)})
	p := domain.DefaultPolicy()
	p.MultiRoom = true
	d, _ := domain.NewDecider(domain.Config{Default: p})
	e, _ := engine.New(engine.Config{Log: log, Decider: d, Logger: estest.Logger(t)})
	if _, err := e.Execute(context.Background(), domain.Meta{App: "dev"}, domain.JoinRoom{Session: "s1",
		User: domain.User{ID: "u1", Name: "U1"}, Mode: domain.MultiRoom, Room: "r1", Role: domain.Anchor,
		Grant: domain.Grant{User: "u1", AllRooms: true}, Create: domain.CreateIfMissing, Via: domain.ViaLogin}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"tail", "-nats", c.URL(), "-app", "dev"},
		{"verify", "-nats", c.URL()},
		{"replay", "-nats", c.URL(), "-room", "r1"},
	} {
		out, code := roomctl(t, args...)
		if code != 0 {
			t.Errorf("roomctl %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		if got := c.StreamReplicas(eventstore.DefaultStream); got != 3 {
			t.Fatalf("after roomctl %s the stream has %d replicas, want 3", args[0], got)
		}
	}
}
