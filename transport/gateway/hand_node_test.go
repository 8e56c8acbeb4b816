package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/engine"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/eventstore/presence"
	"github.com/roomlog/roomlog/projections"
	"github.com/roomlog/roomlog/transport/auth"
	"github.com/roomlog/roomlog/transport/gateway"
)

// handNode is one node's parts wired by hand (real embedded NATS, engine,
// projection, presence, bus, signer), for tests that put something between
// them: a projection the test feeds, a slow presence, a hooked bus. Nothing
// is faked; the test only stands in the way.
type handNode struct {
	log      *eventstore.Log
	live     *projections.Live
	engine   *engine.Engine
	presence *presence.Presence
	bus      *eventstore.Bus
	signer   *auth.Signer
	name     string // the node's name, in presence and on the bus
}

// newHandNode builds the parts; clock (may be nil) is the engine's,
// presence's and signer's.
func newHandNode(t *testing.T, clock *estest.Clock) *handNode {
	t.Helper()
	return newHandNodeOn(t, clock, nil)
}

// newHandNodeOn is newHandNode whose engine loads what it has not cached
// through source(the projection) (nil: the projection itself).
func newHandNodeOn(t *testing.T, clock *estest.Clock, source func(*projections.Live) engine.Source) *handNode {
	t.Helper()
	return buildHandNode(t, estest.Open(t, nil), "A", clock, source)
}

// buildHandNode is newHandNodeOn for a node named name on log.
func buildHandNode(t *testing.T, log *eventstore.Log, name string, clock *estest.Clock,
	source func(*projections.Live) engine.Source) *handNode {
	t.Helper()
	h := &handNode{log: log, live: projections.NewLive(projections.NewModel()), name: name}
	var ec engine.Clock
	pcfg := presence.Config{Timeout: 90 * time.Second, Node: name, Logger: estest.Logger(t)}
	acfg := auth.Config{Secret: secret}
	if clock != nil {
		ec, pcfg.Clock, acfg.Clock, acfg.Leeway = clock, clock, clock.Now, 5*time.Second
	}
	var src engine.Source = h.live
	if source != nil {
		src = source(h.live)
	}
	h.engine = estest.Engine(t, h.log, src, ec)
	records, err := h.log.OpenRecords(estest.Ctx(t), eventstore.RecordsConfig{Bucket: presence.DefaultBucket})
	if err != nil {
		t.Fatal(err)
	}
	pcfg.Records, pcfg.Engine = records, h.engine
	if h.presence, err = presence.New(pcfg); err != nil {
		t.Fatal(err)
	}
	if h.bus, err = h.log.OpenBus("hand-bus"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.bus.Close() })
	if h.signer, err = auth.NewSigner(acfg); err != nil {
		t.Fatal(err)
	}
	return h
}

// serve runs presence and a gateway on a loopback HTTP server until the
// test ends, and returns its address. gc is completed with the parts; a Bus
// or Presence it already has stands in front of the node's. unblock, if
// set, runs first when the test ends (to let go of what the test held).
func (h *handNode) serve(t *testing.T, gc gateway.Config, unblock func()) string {
	t.Helper()
	if gc.Bus == nil {
		gc.Bus = h.bus
	}
	if gc.Presence == nil {
		gc.Presence = h.presence
	}
	gc.Engine, gc.Live, gc.Log, gc.Signer, gc.Node = h.engine, h.live, h.log, h.signer, h.name
	gc.Policy = func(domain.AppID) domain.Policy { return estest.Policy() }
	gc.Logger = estest.Logger(t)
	gw, err := gateway.New(gc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.presence.Run(ctx) }()
	<-h.presence.Ready()
	mux := http.NewServeMux()
	mux.Handle("GET /ws", gw)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		if unblock != nil {
			unblock()
		}
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		gw.Shutdown(sctx)
		scancel()
		srv.Close()
		cancel()
		<-done
	})
	return strings.TrimPrefix(srv.URL, "http://")
}
