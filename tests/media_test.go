package tests

import (
	"bytes"
	"errors"
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/client"
)

// A publisher's media reaches a player in its room and one in another room
// (cross-room co-hosting), through the Go SDK and a real node; none of the
// signalling is in the log.
func TestMediaFlowsToPlayersInAnyRoom(t *testing.T) {
	n := clienttest.StartNode(t, clienttest.NodeOptions{})
	url := clienttest.URL(n.HTTPAddr())
	alice, bob, carol := dialMedia(t, n, url, "alice", nil), dialMedia(t, n, url, "bob", nil), dialMedia(t, n, url, "carol", nil)
	alice.login("stage")
	bob.login("stage")
	carol.login("hall")
	alice.publish("alice-cam", "stage")
	_, bs := bob.play("alice-cam", "stage")
	_, cs := carol.play("alice-cam", "hall") // the play is in carol's room; the stream in alice's

	// A session that does not play the stream is refused its media.
	dave := dialMedia(t, n, url, "dave", nil)
	dave.login("hall")
	if _, err := dave.c.PlayMedia(clienttest.Ctx(t), "alice-cam", nil, client.MediaOptions{}); !errors.Is(err, domain.ErrMediaNotPlaying) {
		t.Errorf("dave's media without a play: %v, want %v", err, domain.ErrMediaNotPlaying)
	}
	if _, err := dave.c.PublishMedia(clienttest.Ctx(t), "alice-cam", nil, client.MediaOptions{}); !errors.Is(err, domain.ErrMediaNotPublishing) {
		t.Errorf("dave publishing alice's stream: %v, want %v", err, domain.ErrMediaNotPublishing)
	}
	flowing(t, "bob", bs)
	flowing(t, "carol", cs)

	// SDP and candidates hold ICE passwords and addresses: never stored.
	var scanned int
	if _, err := n.Log.Read(clienttest.Ctx(t), []string{n.Log.Prefix() + ".>"}, 1, func(rec eventstore.Record) error {
		scanned++
		for _, secret := range []string{"ice-pwd", "a=candidate", "ice-ufrag", "fingerprint"} {
			if bytes.Contains(rec.Data, []byte(secret)) {
				t.Errorf("the log holds %q at %d: %s", secret, rec.Seq, rec.Data)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if scanned < 10 {
		t.Fatalf("only %d log messages scanned", scanned)
	}
}
