package domain

import (
	"errors"
	"testing"
)

// Keys never names an aggregate an accepted decision does not read. (Keys is
// an optimisation: a key it misses is asked for by a NeedError anyway.)
func TestKeysAreAmongWhatDecisionsRead(t *testing.T) {
	w := newWorld(t, multiPolicy())
	w.must(loginMulti("s1", "u1", "r1"), loginMulti("s2", "u2", "r1"), PublishStream{Session: "s1", Stream: "st", Room: "r1"},
		PlayStream{Session: "s2", Stream: "st", Room: "r1"})
	for _, c := range []Command{
		SetRoomMode{Session: "s9", Mode: MultiRoom},
		loginMulti("s1", "u1", "r2"),
		SwitchRoom{Session: "s2", From: "r1", To: "r3", Grant: allRooms("u2"), Create: CreateIfMissing},
		PublishStream{Session: "s1", Stream: "st2", Room: "r1"},
		SetStreamExtraInfo{Session: "s1", Stream: "st", ExtraInfo: "x"},
		PlayStream{Session: "s1", Stream: "st2", Room: "r1"},
		StopPlaying{Session: "s1", Stream: "st2"},
		SendBroadcast{Session: "s1", Room: "r1", Body: "b"},
		SendBarrage{Session: "s1", Room: "r1", Body: "b"},
		SendCustomCommand{Session: "s1", Room: "r1", Body: "c"},
		SetRoomExtraInfo{Session: "s1", Room: "r1", Key: "k", Value: "v"},
		SetRoomAttributes{Session: "s1", Room: "r1", Set: map[string]string{"a": "b"}},
		StopPublishing{Session: "s1", Stream: "st"},
		LeaveRoom{Session: "s1", Room: "r2"},
		KickUser{Room: "r1", User: "u1"},
		ReleaseRoomClaim{Session: "s1", Room: "r1", Claim: 2, Reason: ReasonKickedByBackend},
		ReleaseStreamClaim{Stream: "st2", Claim: 1, Reason: ReasonStopped},
		KickSession{Session: "s2", BySession: "s1", Room: "r3", Claim: 1, At: w.now},
		TimeoutSession{Session: "s1"},
		ExpireRoom{Room: "r1"},
		LeaveRoom{Session: "s2"},
		DestroyRoom{Room: "r3"},
	} {
		asked := map[Key]bool{}
		v := NewView()
		for range 20 {
			_, err := w.d.Decide(v, Meta{App: "app", ID: "keys"}, c, w.now)
			var need *NeedError
			if !errors.As(err, &need) {
				break
			}
			for _, k := range need.Keys {
				asked[k] = true
			}
			w.view(need.Keys, v)
		}
		for _, k := range Keys("app", c) {
			if !asked[k] {
				t.Errorf("%s: Keys names %s, which the decision never reads", c.CommandName(), k)
			}
		}
		if _, err := w.try(c); err != nil {
			t.Logf("%s refused: %v", c.CommandName(), err)
		}
	}
}
