package admin

import (
	"context"
	"net/http"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/checkpoint"
	"github.com/roomlog/roomlog/transport/protocol"
)

// Checkpointer signs the log's chain heads (checkpoint.Checkpointer).
type Checkpointer interface {
	Sign(ctx context.Context) (checkpoint.Round, error)
}

// historyRoutes registers what auditors use: on-demand checkpoints, a
// room's history and its state at a point.
func (a *API) historyRoutes() {
	a.mux.HandleFunc("POST /admin/v1/checkpoints", a.authed(a.checkpoint))
}

// checkpoint signs every chain head that changed since the last round, now.
func (a *API) checkpoint(w http.ResponseWriter, r *http.Request) (any, error) {
	if a.cfg.Checkpoints == nil {
		return nil, protocol.ErrNotFound.With("this node signs no checkpoints (no -checkpoint-key)")
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
	defer cancel()
	round, err := a.cfg.Checkpoints.Sign(ctx)
	if err != nil {
		return nil, domain.ErrUnavailable.With("%v", err)
	}
	return round, nil
}
