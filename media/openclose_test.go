package media

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
)

// routerCounts returns how many players the router of stream cam holds and
// how many downtracks its publisher's tracks write to.
func routerCounts(s *SFU) (players, downs int) {
	s.mu.Lock()
	r := s.routers[routeKey{app, "cam"}]
	s.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range r.ups {
		u.mu.Lock()
		downs += len(u.downs)
		u.mu.Unlock()
	}
	return len(r.players), downs
}

// endOnSight runs end as soon as the SFU registers k's peer: while its
// offer is being answered.
func endOnSight(ctx context.Context, s *SFU, k peerKey, end func()) {
	go func() {
		for ctx.Err() == nil {
			if s.peer(k) != nil {
				end()
				return
			}
			time.Sleep(10 * time.Microsecond)
		}
	}()
}

// A player whose peer ends while its offer is being answered (a media_close,
// or the fold stopping its play) leaves nothing in the stream's router:
// before, the closed peer could be added after its close had removed it,
// and stayed in every track's fan-out, and in a data race with the close.
func TestAPlayerEndedWhileItsOfferIsAnsweredLeavesTheRouter(t *testing.T) {
	ends := map[string]func(s *SFU, w *world){
		"media_close": func(s *SFU, _ *world) {
			s.Handle(context.Background(), Signal{App: app, Session: "s-carol", Stream: "cam", Kind: Play, Op: OpClose})
		},
		"play stopped": func(_ *SFU, w *world) {
			w.apply(w.room("r1"), &domain.PlayStoppedData{Stream: "cam", User: "carol", Session: "s-carol"})
		},
	}
	for name, end := range ends {
		t.Run(name, func(t *testing.T) {
			w, s, _, _, _ := setup(t) // bob plays cam: one player, two downtracks
			w.join("r1", "carol", "s-carol")
			w.play("r1", "carol", "s-carol", "cam")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			endOnSight(ctx, s, peerKey{app: app, session: "s-carol", stream: "cam", kind: Play}, func() { end(s, w) })
			if _, err := playMedia(t, s, "s-carol", "cam"); err != nil && !errors.Is(err, ErrNotPlaying) {
				t.Fatal(err)
			}
			// carol's peer is closed (now or once her offer is answered):
			// only bob's remains.
			deadline := time.Now().Add(10 * time.Second)
			for {
				players, downs := routerCounts(s)
				if players == 1 && downs == 2 && s.Stats().Players == 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the router holds %d players and its tracks %d downtracks (SFU stats %+v); want bob's only (1, 2)",
						players, downs, s.Stats())
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}
