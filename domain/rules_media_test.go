package domain

import "testing"

// A dead media node's streams are stopped in their rooms (reason
// media_node_lost), and only those; a second stop finds nothing left.
func TestStopNodeStreamsRules(t *testing.T) {
	runRules(t, []rule{
		{name: "the node's streams stop with media_node_lost; another node's stay",
			given: []Command{login("s1", "u1", "r1"), login("s2", "u2", "r1"),
				PublishStream{Session: "s1", Stream: "st1", Node: "n1"}, PublishStream{Session: "s2", Stream: "st2", Node: "n2"}},
			when: StopNodeStreams{Room: "r1", Node: "n1"},
			then: []ev{inRoom("r1", &StreamStoppedData{Stream: "st1", User: "u1", UserName: "name-u1", Session: "s1",
				Claim: 1, Reason: ReasonMediaNodeLost})}},
		{name: "stopping a node's streams twice stops them once",
			given: []Command{login("s1", "u1", "r1"), PublishStream{Session: "s1", Stream: "st1", Node: "n1"},
				StopNodeStreams{Room: "r1", Node: "n1"}},
			when: StopNodeStreams{Room: "r1", Node: "n1"}},
		{name: "a node name is required",
			given: []Command{login("s1", "u1", "r1")},
			when:  StopNodeStreams{Room: "r1"}, err: ErrInvalidArgument},
	})
}
