package media

import (
	"errors"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/domain"
)

const (
	video = webrtc.RTPCodecTypeVideo
	audio = webrtc.RTPCodecTypeAudio
	// quiet is how long nothing must arrive for a flow to count as stopped.
	quiet = 600 * time.Millisecond
	long  = 15 * time.Second
)

// A publisher's VP8 and Opus reach a player in its room and one in another
// room (cross-room co-hosting); sessions the fold does not allow are refused
// with their codes.
func TestForwardsByTheFold(t *testing.T) {
	w := newWorld(t)
	s, st := startSFU(t, w, "n1", nil)
	w.join("r1", "alice", "s-alice")
	w.join("r1", "bob", "s-bob")
	w.join("r2", "carol", "s-carol")
	w.publish("r1", "alice", "s-alice", "cam", "n1")
	w.play("r1", "bob", "s-bob", "cam")
	w.play("r2", "carol", "s-carol", "cam")

	if _, err := publishMedia(t, s, "s-bob", "cam"); !errors.Is(err, ErrNotPublishing) {
		t.Fatalf("bob publishing alice's stream: %v, want %v", err, ErrNotPublishing)
	}
	w.join("r2", "dave", "s-dave")
	if _, err := playMedia(t, s, "s-dave", "cam"); !errors.Is(err, ErrNotPlaying) {
		t.Fatalf("dave playing without a play: %v, want %v", err, ErrNotPlaying)
	}
	if _, err := publishMedia(t, s, "s-alice", "cam"); err != nil {
		t.Fatal(err)
	}
	st.wait(t, "s-alice", "cam", Publishing)
	for _, sid := range []domain.SessionID{"s-bob", "s-carol"} {
		p, err := playMedia(t, s, sid, "cam")
		if err != nil {
			t.Fatal(err)
		}
		if !p.sink.WaitMore(video, 20, long) || !p.sink.WaitMore(audio, 10, long) {
			t.Fatalf("%s received video %d, audio %d", sid, p.sink.Count(video), p.sink.Count(audio))
		}
		if got := p.sink.Mime(video); got != webrtc.MimeTypeVP8 {
			t.Errorf("%s: video arrives as %q", sid, got)
		}
		st.wait(t, sid, "cam", Playing)
	}
	if got := s.Stats(); got.Publishers != 1 || got.Players != 2 || got.Streams != 1 {
		t.Errorf("stats %+v", got)
	}
}
