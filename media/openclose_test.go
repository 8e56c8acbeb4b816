package media

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
)

// camRouter returns the router of stream cam (kept by a player of it).
func camRouter(t *testing.T, s *SFU) *router {
	t.Helper()
	s.mu.Lock()
	r := s.routers[routeKey{app, "cam"}]
	s.mu.Unlock()
	if r == nil {
		t.Fatal("no router for cam")
	}
	return r
}

// routerCounts returns how many players the router of stream cam holds and
// how many downtracks its publisher's tracks write to.
func routerCounts(t *testing.T, s *SFU) (players, downs int) {
	t.Helper()
	r := camRouter(t, s)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range r.ups {
		u.mu.Lock()
		downs += len(u.downs)
		u.mu.Unlock()
	}
	return len(r.players), downs
}

// endBeforeRoute has the SFU run end while k's offer is being answered,
// after the fold allowed the peer and before it enters its router, and
// wait until the peer's close has done what it does at once (it is out of
// the router and the SFU). The offer is answered on the test's goroutine,
// so the hook runs there.
func endBeforeRoute(t *testing.T, s *SFU, k peerKey, end func()) {
	s.beforeRoute = func(p *peer) {
		if p.key != k {
			return
		}
		end()
		deadline := time.Now().Add(long)
		for s.peer(k) == p {
			if time.Now().After(deadline) {
				t.Fatal("the ended peer was not closed")
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// A player whose peer ends while its offer is being answered (a media_close,
// or the fold stopping its play or removing it from the room) leaves nothing
// in the stream's router: before, the closed peer was added after its close
// had removed it, and stayed in every track's fan-out (every later publisher
// attaching it again), and in a data race with the close.
func TestAPlayerEndedWhileItsOfferIsAnsweredLeavesTheRouter(t *testing.T) {
	ends := map[string]func(s *SFU, w *world){
		"media_close": func(s *SFU, _ *world) {
			s.Handle(context.Background(), Signal{App: app, Session: "s-carol", Stream: "cam", Kind: Play, Op: OpClose})
		},
		"play stopped": func(_ *SFU, w *world) {
			w.apply(w.room("r1"), &domain.PlayStoppedData{Stream: "cam", User: "carol", Session: "s-carol"})
		},
		"kicked": func(_ *SFU, w *world) {
			w.apply(w.room("r1"), &domain.MemberLeftData{User: "carol", Session: "s-carol",
				Reason: domain.ReasonKickedByBackend})
		},
	}
	for name, end := range ends {
		t.Run(name, func(t *testing.T) {
			w, s, _, _, bob := setup(t) // bob plays cam: one player, two downtracks
			if !bob.sink.WaitMore(audio, 5, long) {
				t.Fatal("no audio reached the player") // both tracks are in the router
			}
			w.join("r1", "carol", "s-carol")
			w.play("r1", "carol", "s-carol", "cam")
			endBeforeRoute(t, s, peerKey{app: app, session: "s-carol", stream: "cam", kind: Play},
				func() { end(s, w) })
			if _, err := playMedia(t, s, "s-carol", "cam"); !errors.Is(err, ErrNotPlaying) {
				t.Fatalf("carol's offer: %v, want %v", err, ErrNotPlaying)
			}
			if players, downs := routerCounts(t, s); players != 1 || downs != 2 || s.Stats().Players != 1 {
				t.Fatalf("the router holds %d players and its tracks %d downtracks (SFU stats %+v); want bob's only (1, 2)",
					players, downs, s.Stats())
			}
		})
	}
}

// A publisher whose peer ends while its offer is being answered (a
// media_close, or the fold stopping its stream) is not left the stream's
// publisher: before, its close found nothing to remove, and the offer then
// made the closed peer the publisher of a router its players keep.
func TestAPublisherEndedWhileItsOfferIsAnsweredLeavesTheRouter(t *testing.T) {
	ends := map[string]func(s *SFU, w *world){
		"media_close": func(s *SFU, _ *world) {
			s.Handle(context.Background(), Signal{App: app, Session: "s-alice", Stream: "cam", Kind: Publish, Op: OpClose})
		},
		"stream stopped": func(_ *SFU, w *world) {
			w.apply(w.room("r1"), &domain.StreamStoppedData{Stream: "cam", User: "alice", Session: "s-alice",
				Reason: domain.ReasonStopped})
		},
	}
	for name, end := range ends {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t)
			s, _ := startSFU(t, w, "n1", nil)
			w.aliceCamToBob()
			// bob's player keeps the stream's router.
			if _, err := playMedia(t, s, "s-bob", "cam"); err != nil {
				t.Fatal(err)
			}
			endBeforeRoute(t, s, peerKey{app: app, session: "s-alice", stream: "cam", kind: Publish},
				func() { end(s, w) })
			if _, err := publishMedia(t, s, "s-alice", "cam"); !errors.Is(err, ErrNotPublishing) {
				t.Fatalf("alice's offer: %v, want %v", err, ErrNotPublishing)
			}
			r := camRouter(t, s)
			r.mu.Lock()
			pub, ups := r.pub != nil, len(r.ups)
			r.mu.Unlock()
			if pub || ups != 0 || s.Stats().Publishers != 0 {
				t.Fatalf("the router keeps a publisher: %v, with %d tracks (SFU stats %+v); want none (its peer is closed)",
					pub, ups, s.Stats())
			}
		})
	}
}

// A media_check that arrives while the connection's offer is still being
// answered (a client that resumed at that moment) gets the requesting state
// the offer is in, one of the four documented, not an empty one.
func TestACheckWhileTheOfferIsAnsweredSaysRequesting(t *testing.T) {
	w := newWorld(t)
	s, _ := startSFU(t, w, "n1", nil)
	w.aliceCamToBob()
	var got []State
	s.beforeRoute = func(p *peer) {
		a, err := s.Handle(context.Background(), Signal{App: app, Session: p.key.session, Stream: "cam",
			Kind: p.key.kind, Op: OpCheck})
		if err != nil {
			t.Errorf("check during the %s offer: %v", p.key.kind, err)
		}
		got = append(got, a.State)
	}
	if _, err := publishMedia(t, s, "s-alice", "cam"); err != nil {
		t.Fatal(err)
	}
	if _, err := playMedia(t, s, "s-bob", "cam"); err != nil {
		t.Fatal(err)
	}
	if want := []State{PublishRequesting, PlayRequesting}; !slices.Equal(got, want) {
		t.Errorf("checks while the offers were answered said %q, want %q", got, want)
	}
}
