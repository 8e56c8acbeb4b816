package admin

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/checkpoint"
	"github.com/roomlog/roomlog/projections/timeline"
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
	a.mux.HandleFunc("GET /admin/v1/apps/{app}/rooms/{room}/history", a.authed(a.history))
	a.mux.HandleFunc("GET /admin/v1/apps/{app}/rooms/{room}/state", a.authed(a.stateAt))
	a.mux.HandleFunc("GET /admin/v1/apps/{app}/rooms/{room}/diff", a.authed(a.diff))
}

// replayError maps an error of timeline.Replay to the coded answer.
func replayError(err error) error {
	switch {
	case errors.Is(err, timeline.ErrNoHistory):
		return domain.ErrRoomNotExist.With("%v", err)
	case errors.Is(err, timeline.ErrTruncated):
		// The message is ErrTruncated's; the detail names the room and
		// its first kept event.
		return protocol.ErrHistoryRemoved.With("%s", strings.Replace(err.Error(), timeline.ErrTruncated.Error()+": ", "", 1))
	}
	return readError(err)
}

// readError maps an error reading a room's history: a broken chain is
// final (HTTP 500, history_broken), a read that ran out of time a timeout
// (504), anything else the log's unavailability (503).
func readError(err error) error {
	switch {
	case errors.Is(err, domain.ErrBrokenChain):
		return protocol.ErrHistoryBroken.With("%v", err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, domain.ErrTimeout):
		return domain.ErrTimeout.With("reading the room's history: %v", err)
	}
	return domain.ErrUnavailable.With("%v", err)
}

// pastEnd is the answer for a room sequence after the room's last event.
func pastEnd(r *http.Request, seq, last uint64) error {
	return protocol.ErrNotFound.With("room %q has no event with seq %d: its last event is seq %d", r.PathValue("room"), seq, last)
}

// History paging.
const (
	defaultHistoryLimit = 100
	maxHistoryLimit     = 1000
)

// HistoryPage is one page of a room's history.
type HistoryPage struct {
	Events []timeline.Entry `json:"events"`
	// Next is the after_seq that asks for the next page (the last event's
	// room sequence; the request's own when the page is empty).
	Next uint64 `json:"next_after_seq"`
	// More says whether the history went on past this page when it was read.
	More bool `json:"more"`
}

// history serves a room's events, oldest first, after a room sequence
// (after_seq) or from a time (since), limit at a time.
func (a *API) history(w http.ResponseWriter, r *http.Request) (any, error) {
	if a.cfg.Log == nil {
		return nil, protocol.ErrNotFound.With("this node serves no history")
	}
	q := r.URL.Query()
	var afterSeq uint64
	var since time.Time
	limit := defaultHistoryLimit
	var err error
	if v := q.Get("after_seq"); v != "" {
		if afterSeq, err = strconv.ParseUint(v, 10, 64); err != nil {
			return nil, domain.ErrInvalidArgument.With("after_seq: %v", err)
		}
	}
	if v := q.Get("since"); v != "" {
		if afterSeq != 0 {
			return nil, domain.ErrInvalidArgument.With("give after_seq or since, not both")
		}
		if since, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return nil, domain.ErrInvalidArgument.With("since: want an RFC 3339 time: %v", err)
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxHistoryLimit {
			return nil, domain.ErrInvalidArgument.With("limit: want 1 to %d", maxHistoryLimit)
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
	defer cancel()
	entries, more, err := timeline.Page(ctx, a.cfg.Log, domain.AppID(r.PathValue("app")), domain.RoomID(r.PathValue("room")),
		afterSeq, since, limit)
	if err != nil {
		return nil, readError(err)
	}
	if len(entries) == 0 && afterSeq > 0 {
		// The end of paging (after_seq the last event's), or a sequence
		// the room never reached: one of the cursor's stream sequence,
		// say, which the page shows beside it. A room with no event kept
		// (none ever, or retention removed them all) has no end to be
		// past: an empty page, as for any page of it.
		last, ok, err := timeline.LastSeq(ctx, a.cfg.Log, domain.AppID(r.PathValue("app")), domain.RoomID(r.PathValue("room")))
		if err != nil {
			return nil, readError(err)
		}
		if ok && afterSeq > last {
			return nil, pastEnd(r, afterSeq, last)
		}
	}
	page := HistoryPage{Events: entries, Next: afterSeq, More: more}
	if page.Events == nil {
		page.Events = []timeline.Entry{}
	}
	if n := len(entries); n > 0 {
		page.Next = entries[n-1].Seq
	}
	return page, nil
}

// stateAt serves a room's state after the event with sequence seq, or after
// the last event at or before time at, replayed from the log; neither: now.
func (a *API) stateAt(w http.ResponseWriter, r *http.Request) (any, error) {
	if a.cfg.Log == nil {
		return nil, protocol.ErrNotFound.With("this node serves no history")
	}
	q := r.URL.Query()
	var p timeline.Point
	var err error
	if v := q.Get("seq"); v != "" {
		if p.Seq, err = strconv.ParseUint(v, 10, 64); err != nil || p.Seq == 0 {
			return nil, domain.ErrInvalidArgument.With("seq: want a room sequence from 1")
		}
	}
	if v := q.Get("at"); v != "" {
		if p.Seq != 0 {
			return nil, domain.ErrInvalidArgument.With("give seq or at, not both")
		}
		if p.Time, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return nil, domain.ErrInvalidArgument.With("at: want an RFC 3339 time: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
	defer cancel()
	room, err := timeline.Replay(ctx, a.cfg.Log, domain.AppID(r.PathValue("app")), domain.RoomID(r.PathValue("room")), p, nil, nil)
	if err != nil {
		return nil, replayError(err)
	}
	if p.Seq > room.Seq {
		// The replay ran to the end without reaching seq.
		return nil, pastEnd(r, p.Seq, room.Seq)
	}
	return room, nil
}

// checkpoint signs every chain head that changed since the last round, now.
func (a *API) checkpoint(w http.ResponseWriter, r *http.Request) (any, error) {
	if a.cfg.Checkpoints == nil {
		return nil, protocol.ErrNotFound.With("this node signs no checkpoints (no -checkpoint-key)")
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
	defer cancel()
	round, err := a.cfg.Checkpoints.Sign(ctx)
	switch {
	case errors.Is(err, checkpoint.ErrTampered):
		return nil, domain.ErrInternal.With("%v", err) // final: retrying signs nothing
	case err != nil:
		return nil, domain.ErrUnavailable.With("%v", err)
	}
	return round, nil
}

// RoomDiff is what changed in a room between two points of its history.
type RoomDiff struct {
	FromSeq uint64            `json:"from_seq"`
	ToSeq   uint64            `json:"to_seq"`
	Changes []timeline.Change `json:"changes"`
}

// diff serves what changed in a room from point from (a room sequence or an
// RFC 3339 time) to point to (the same; omitted: the end).
func (a *API) diff(w http.ResponseWriter, r *http.Request) (any, error) {
	if a.cfg.Log == nil {
		return nil, protocol.ErrNotFound.With("this node serves no history")
	}
	q := r.URL.Query()
	from, err := timeline.ParsePoint(q.Get("from"))
	if err != nil {
		return nil, domain.ErrInvalidArgument.With("from: %v", err)
	}
	var to timeline.Point
	if v := q.Get("to"); v != "" {
		if to, err = timeline.ParsePoint(v); err != nil {
			return nil, domain.ErrInvalidArgument.With("to: %v", err)
		}
	}
	reversed := func() error {
		return domain.ErrInvalidArgument.With("from (%s) is after to (%s): give the earlier point as from", from, to)
	}
	// Points of one kind are compared before anything is read.
	if from.Beyond(to) {
		return nil, reversed()
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
	defer cancel()
	app, room := domain.AppID(r.PathValue("app")), domain.RoomID(r.PathValue("room"))
	before, after, err := timeline.ReplayAt(ctx, a.cfg.Log, app, room, from, to, nil)
	if errors.Is(err, timeline.ErrNoHistory) && from.Seq != 0 && !to.Time.IsZero() {
		// to is a time before the room's first event: a from sequence of
		// a room that has events comes after it.
		first, _, perr := timeline.Page(ctx, a.cfg.Log, app, room, 0, time.Time{}, 1)
		if perr == nil && len(first) > 0 {
			return nil, reversed()
		}
	}
	if err != nil {
		return nil, replayError(err)
	}
	switch {
	case to.Seq > after.Seq:
		return nil, pastEnd(r, to.Seq, after.Seq)
	case from.Seq > after.Seq && to.IsEnd():
		return nil, pastEnd(r, from.Seq, after.Seq)
	case from.Seq > after.Seq:
		return nil, reversed() // to is a time, from a later sequence
	case !from.Time.IsZero() && to.Seq != 0:
		// from is a time, to a sequence: from comes after to if the
		// event after to is at or before from.
		next, _, err := timeline.Page(ctx, a.cfg.Log, app, room, after.Seq, time.Time{}, 1)
		if err != nil {
			return nil, readError(err)
		}
		if len(next) > 0 && !from.After(next[0]) {
			return nil, reversed()
		}
	}
	d := RoomDiff{ToSeq: after.Seq, Changes: timeline.Diff(before, after)}
	if before != nil {
		d.FromSeq = before.Seq
	}
	if d.Changes == nil {
		d.Changes = []timeline.Change{}
	}
	return d, nil
}
