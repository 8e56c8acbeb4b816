package admin

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/transport/protocol"
)

// A history read that ran out of the API's time is a timeout (504: the
// answer could not be made in time), not the log's unavailability (503:
// retry later), which a backend would retry for ever on a room too large to
// read in time. A broken chain stays final.
func TestReadErrorsAreClassified(t *testing.T) {
	for _, c := range []struct {
		err  error
		want domain.Code
	}{
		{fmt.Errorf("read room r1: %w", context.DeadlineExceeded), domain.ErrTimeout.Code},
		{fmt.Errorf("%w: read: %w", eventstore.ErrUnavailable, context.DeadlineExceeded), domain.ErrTimeout.Code},
		{fmt.Errorf("%w: read: no responders", eventstore.ErrUnavailable), domain.ErrUnavailable.Code},
		{fmt.Errorf("seq 7: %w", domain.ErrBrokenChain), protocol.ErrHistoryBroken.Code},
		{errors.New("eventstore: read: something"), domain.ErrUnavailable.Code},
	} {
		if code, _ := domain.CodeOf(readError(c.err)); code != c.want {
			t.Errorf("readError(%v) = %d, want %d", c.err, code, c.want)
		}
	}
}
