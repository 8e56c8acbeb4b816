package gateway

import (
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/media"
)

// What the gateway keeps of an away session's media peers goes once no
// resume can come: twice the heartbeat timeout after the connection went.
// A session kicked (or whose rooms were destroyed) while away times out
// with no session_timed_out event (it is in no room), so before, its entry
// stayed for the life of the node. One away for less is kept.
func TestAwayMediaGoesWhenNoResumeCanCome(t *testing.T) {
	clock := estest.NewClock(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	s := &Server{cfg: Config{Clock: clock, HeartbeatTimeout: 90 * time.Second}}
	peers := mediaCarry{at: map[mediaConn]mediaPeer{{"cam", media.Publish}: {node: "M", peer: "p1"}}}
	s.awayMedia = map[domain.SessionID]awayPeers{"kicked-while-away": {peers, clock.Now()}}
	clock.Advance(100 * time.Second)
	s.awayMedia["away-a-while"] = awayPeers{peers, clock.Now()}
	s.sweepAway()
	if len(s.awayMedia) != 2 {
		t.Fatalf("swept within the heartbeat timeout: %v", s.awayMedia)
	}
	clock.Advance(81 * time.Second) // 181 s after the first went
	s.sweepAway()
	if _, ok := s.awayMedia["kicked-while-away"]; ok {
		t.Error("the media peers of a session away for over twice the heartbeat timeout are still kept")
	}
	if _, ok := s.awayMedia["away-a-while"]; !ok {
		t.Error("the media peers of a session away for 81 s were dropped: it may still resume")
	}
}
