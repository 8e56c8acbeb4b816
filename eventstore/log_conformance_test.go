package eventstore_test

import (
	"testing"

	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/conformance"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// TestLogConformance runs the event store's contract (eventstore/conformance)
// against every way of reaching the embedded JetStream log: in-process, over
// TCP in external mode, and with fsync always.
func TestLogConformance(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		conformance.Run(t, func(t *testing.T) conformance.Log { return estest.Open(t, nil) })
	})
	t.Run("external-tcp", func(t *testing.T) {
		conformance.Run(t, func(t *testing.T) conformance.Log {
			_, ext := estest.Shared(t)
			return ext
		})
	})
	t.Run("sync-always", func(t *testing.T) {
		conformance.Run(t, func(t *testing.T) conformance.Log {
			return estest.Open(t, func(c *eventstore.Config) { c.Sync = eventstore.SyncModeAlways })
		})
	})
}
