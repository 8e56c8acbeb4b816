package browser

import (
	"encoding/json"
	"testing"

	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/client"
)

// Attributes written by a ZIM batch and members' attributes, set by another
// SDK, reach browser members with ZIM's callbacks: roomAttributesBatchUpdated
// and roomMemberAttributesUpdated. Before, both events were dropped, so a
// browser app's view of the room's attributes went wrong.
func TestBatchAndMemberAttributesReachTheBrowser(t *testing.T) {
	n := startNode(t, nil)
	p := openHarness(t, n)
	p.newEngine("a", clienttest.URL(n.HTTPAddr()), nil)
	p.Must("a", "loginRoom", "r1", clienttest.Token(t, n, "alice"), user{"alice", "Alice"})

	rc := clienttest.NewRecorder(t, "carol")
	c := clienttest.Dial(t, clienttest.URL(n.HTTPAddr()), rc, nil)
	clienttest.Login(t, n, c, rc, "r1", "carol")
	if _, err := c.BeginRoomAttributesBatch("r1", client.AttributeOptions{}).
		Set(map[string]string{"seat": "carol", "poll": "1"}).End(clienttest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.BeginRoomAttributesBatch("r1", client.AttributeOptions{}).Delete("poll").End(clienttest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	batches := []string{}
	p.Wait(0, `e => e.who === 'a' && e.event === 'roomAttributesBatchUpdated' && e.args[1].infos.some(i => i.action === 'Delete')`)
	for _, e := range p.Events("a", "roomAttributesBatchUpdated") {
		var d struct {
			RoomID string `json:"roomID"`
			Infos  []struct {
				Action         string            `json:"action"`
				RoomAttributes map[string]string `json:"roomAttributes"`
			} `json:"infos"`
		}
		if err := json.Unmarshal(e.Args[1], &d); err != nil || d.RoomID != "r1" {
			t.Fatalf("roomAttributesBatchUpdated %s (%v)", e.Args[1], err)
		}
		for _, i := range d.Infos {
			for k, v := range i.RoomAttributes {
				batches = append(batches, i.Action+" "+k+"="+v)
			}
		}
	}
	if want := []string{"Set poll=1", "Set seat=carol", "Delete poll="}; !sameItems(batches, want) {
		t.Errorf("a's roomAttributesBatchUpdated: %v, want %v", batches, want)
	}

	if _, err := c.SetRoomMembersAttributes(clienttest.Ctx(t), "r1", []string{"carol"}, map[string]string{"level": "3"}, nil); err != nil {
		t.Fatal(err)
	}
	e := p.Wait(0, `e => e.who === 'a' && e.event === 'roomMemberAttributesUpdated'`)
	var d struct {
		RoomID string `json:"roomID"`
		Infos  []struct {
			AttributesInfo struct {
				UserID     string            `json:"userID"`
				Attributes map[string]string `json:"attributes"`
			} `json:"attributesInfo"`
		} `json:"infos"`
		OperatedInfo struct {
			UserID string `json:"userID"`
		} `json:"operatedInfo"`
	}
	if err := json.Unmarshal(e.Args[1], &d); err != nil || d.RoomID != "r1" || len(d.Infos) != 1 ||
		d.Infos[0].AttributesInfo.UserID != "carol" || d.Infos[0].AttributesInfo.Attributes["level"] != "3" ||
		d.OperatedInfo.UserID != "carol" {
		t.Errorf("a's roomMemberAttributesUpdated: %s (%v), want carol's level=3 set by carol", e.Args[1], err)
	}
	p.noGaps()
}

// sameItems reports whether a and b hold the same strings, in any order.
func sameItems(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	count := map[string]int{}
	for _, s := range a {
		count[s]++
	}
	for _, s := range b {
		count[s]--
		if count[s] < 0 {
			return false
		}
	}
	return true
}
