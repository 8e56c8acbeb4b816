package domain

import (
	"encoding/json"
	"testing"
)

// A clone is equal to its original and shares nothing with it.
func TestCloneIsDeep(t *testing.T) {
	w := newWorld(t, multiPolicy())
	w.must(loginMulti("s1", "u1", "r1"), PublishStream{Session: "s1", Stream: "st", Room: "r1"},
		PlayStream{Session: "s1", Stream: "st", Room: "r1"}, SetRoomExtraInfo{Session: "s1", Room: "r1", Key: "k", Value: "v"},
		SetRoomAttributes{Session: "s1", Room: "r1", Set: map[string]string{"a": "1"}},
		SendCustomCommand{Session: "s1", Room: "r1", To: []UserID{"u1"}, Body: "x"})
	r, s, e := w.room("r1"), w.session("s1"), w.streamEntry("st")
	js := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	before := []string{js(r), js(s), js(e)}
	rc, sc, ec := r.Clone(), s.Clone(), e.Clone()
	if got := []string{js(rc), js(sc), js(ec)}; got[0] != before[0] || got[1] != before[1] || got[2] != before[2] {
		t.Fatalf("clones differ from their originals:\n%v\n%v", got, before)
	}
	// Change every map and pointer of the clones.
	rc.Members["u1"].Playing["other"] = true
	rc.Members["u1"].Publishing["other"] = true
	rc.Members["u1"].Role = Audience
	rc.Streams["st"].ExtraInfo = "changed"
	rc.Attributes["z"] = "1"
	rc.ExtraInfo["z"] = ExtraInfo{Value: "1"}
	rc.Rates.CommandToOne["u9"] = Window{Second: 1, Count: 1}
	rc.Voided = map[string]uint64{"session:x": 1}
	sc.Claims["r9"] = RoomClaim{Seq: 9}
	ec.Room = "elsewhere"
	if got := []string{js(r), js(s), js(e)}; got[0] != before[0] || got[1] != before[1] || got[2] != before[2] {
		t.Fatalf("changing a clone changed its original:\n%v\n%v", got, before)
	}
}
