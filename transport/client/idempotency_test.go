package client_test

import (
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/netcut"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/gateway"
)

// A broadcast runs on the server but its reply is lost with the connection.
// The SDK resumes the session and sends the request again with the same
// idempotency key; the gateway answers with the original outcome. The call
// succeeds, with the original message ID, and the message is stored and
// delivered once.
func TestRequestWhoseReplyWasLostTakesEffectOnce(t *testing.T) {
	t.Parallel()
	n := startNode(t, gateway.Config{})
	p := netcut.Start(t, n.HTTPAddr())
	ra, rb := newRec(t, "alice"), newRec(t, "bob")
	ra.AllowReconnects()
	a := dial(t, clienttest.URL(p.Addr()), ra, fastRetry)
	b := dial(t, wsURL(n), rb, nil)
	login(t, n, a, ra, "r1", "alice")
	login(t, n, b, rb, "r1", "bob")

	p.MuteServer()
	type sent struct {
		res client.MessageResult
		err error
	}
	done := make(chan sent, 1)
	go func() {
		res, err := a.SendBroadcastMessage(ctx(t), "r1", "once")
		done <- sent{res, err}
	}()
	got := rb.WaitFor("the broadcast", func(e ev) bool { return e.Kind == "broadcast" && e.Msgs[0].Message == "once" })
	p.Cut() // the reply, muted, is lost with the connection
	s := <-done
	if s.err != nil {
		t.Fatalf("broadcast whose reply was lost: %v", s.err)
	}
	if s.res.ID != got.Msgs[0].MessageID {
		t.Errorf("the retry answered message %q, the broadcast was %q", s.res.ID, got.Msgs[0].MessageID)
	}

	var stored int
	log := n.Log
	_, err := log.Read(ctx(t), []string{log.Subject(clienttest.App, string(domain.KindRoom), "r1")}, 1,
		func(rec eventstore.Record) error {
			evs, err := domain.DecodeEvents(rec.Data)
			for _, e := range evs {
				if b, ok := e.Data.(*domain.BroadcastSentData); ok && b.Body == "once" {
					stored++
				}
			}
			return err
		})
	if err != nil {
		t.Fatal(err)
	}
	if stored != 1 {
		t.Fatalf("broadcast stored %d times, want once", stored)
	}
}
