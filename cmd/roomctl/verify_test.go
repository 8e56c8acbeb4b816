package main

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/checkpoint"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// signedHistory writes history(t, false) and signs a checkpoint round over
// it with a fresh key, as roomd does; it returns the data folder and the
// public key's file.
func signedHistory(t *testing.T) (dir, pub string) {
	t.Helper()
	dir, _ = history(t, false)
	return dir, signLog(t, dir)
}

// signLog signs a checkpoint round over the log in dir with a fresh key, as
// roomd does, and returns the public key's file.
func signLog(t *testing.T, dir string) (pub string) {
	t.Helper()
	key, _, err := checkpoint.EnsureKey(filepath.Join(t.TempDir(), "checkpoint.key"))
	if err != nil {
		t.Fatal(err)
	}
	withLog(t, dir, func(log *eventstore.Log) {
		store, err := checkpoint.OpenStore(estest.Ctx(t), log, 1)
		if err != nil {
			t.Fatal(err)
		}
		c, err := checkpoint.New(checkpoint.Config{Log: log, Store: store, Key: key, Logger: estest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Sign(estest.Ctx(t)); err != nil {
			t.Fatal(err)
		}
	})
	pub = filepath.Join(t.TempDir(), "checkpoint.pub")
	if err := checkpoint.WritePublicKey(pub, key.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	return pub
}

func withLog(t *testing.T, dir string, fn func(*eventstore.Log)) {
	t.Helper()
	log, err := eventstore.Open(context.Background(), eventstore.Config{DataDir: dir, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	fn(log)
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
}

// rawMsg is a stored message as raw NATS sees it.
type rawMsg struct {
	Subject string
	Header  nats.Header
	Data    []byte
}

// forge copies the log in dir, through raw NATS only, into a new data
// folder, as someone who can write to the storage could: edit changes,
// drops or adds messages on the way, and every copied message carries
// consistent JetStream headers (message ID, expected last subject
// sequence), so that nothing but the events themselves and the signed
// checkpoints can tell. The checkpoint bucket is copied as it is.
func forge(t *testing.T, dir string, edit func([]rawMsg) []rawMsg) string {
	t.Helper()
	ctx := estest.Ctx(t)
	var msgs []rawMsg
	var kvs []jetstream.KeyValueEntry
	withLog(t, dir, func(log *eventstore.Log) {
		js, done := rawJS(t, log)
		defer done()
		s, err := js.Stream(ctx, log.StreamName())
		if err != nil {
			t.Fatal(err)
		}
		for seq := uint64(1); ; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if err != nil {
				break
			}
			msgs = append(msgs, rawMsg{m.Subject, m.Header, m.Data})
		}
		if kv, err := js.KeyValue(ctx, checkpoint.Bucket); err == nil {
			keys, _ := kv.Keys(ctx)
			for _, k := range keys {
				e, err := kv.Get(ctx, k)
				if err != nil {
					t.Fatal(err)
				}
				kvs = append(kvs, e)
			}
		}
	})
	msgs = edit(msgs)
	out := t.TempDir()
	withLog(t, out, func(log *eventstore.Log) {
		js, done := rawJS(t, log)
		defer done()
		last := map[string]uint64{}
		for _, m := range msgs {
			h := nats.Header{}
			h.Set(jetstream.MsgIDHeader, m.Header.Get(jetstream.MsgIDHeader))
			h.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(last[m.Subject], 10))
			ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: m.Subject, Header: h, Data: m.Data})
			if err != nil {
				t.Fatalf("forge %s: %v", m.Subject, err)
			}
			last[m.Subject] = ack.Sequence
		}
		if len(kvs) > 0 {
			kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: checkpoint.Bucket})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range kvs {
				if _, err := kv.Put(ctx, e.Key(), e.Value()); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
	return out
}

// rawJS opens a plain NATS connection to the log's server; close it before
// the log.
func rawJS(t *testing.T, log *eventstore.Log) (jetstream.JetStream, func()) {
	t.Helper()
	nc, err := log.NewConn("tamper")
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js, nc.Close
}

// roomMsgs returns the indexes of the messages of room "class 1.A".
func roomMsgs(msgs []rawMsg) []int {
	var idx []int
	for i, m := range msgs {
		if strings.HasSuffix(m.Subject, ".room."+eventstore.Token("class 1.A")) {
			idx = append(idx, i)
		}
	}
	return idx
}

// roomSeqs returns the room sequences of a room message's events.
func roomSeqs(t *testing.T, m rawMsg) []uint64 {
	t.Helper()
	events, err := domain.DecodeEvents(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, e := range events {
		seqs = append(seqs, e.Seq)
	}
	return seqs
}

func TestVerifyNamesWhatWasChanged(t *testing.T) {
	dir, pub := signedHistory(t)
	if out, code := roomctl(t, "verify", "-data", dir, "-pubkey", pub); code != 0 || !strings.Contains(out, "matches its signed head") {
		t.Fatalf("verify of the untouched log: exit %d\n%s", code, out)
	}
	// The room's history: [created 1, joined 2], [joined 3],
	// [extra_info_updated 4], [member_left 5].
	const room = "room:dev:class 1.A"
	without := func(msgs []rawMsg, i int) []rawMsg {
		return append(append([]rawMsg{}, msgs[:i]...), msgs[i+1:]...)
	}
	for _, c := range []struct {
		name string
		edit func(t *testing.T, msgs []rawMsg) []rawMsg
		want string
	}{
		{"an event altered in the middle", func(t *testing.T, msgs []rawMsg) []rawMsg {
			i := roomMsgs(msgs)[2]
			if s := roomSeqs(t, msgs[i]); len(s) != 1 || s[0] != 4 {
				t.Fatalf("the room's third message holds seqs %v, want [4]", s)
			}
			msgs[i].Data = []byte(strings.Replace(string(msgs[i].Data), "fractions", "algebra", 1))
			return msgs
		}, room + ": broken hash chain: seq 4 was altered"},
		{"an event altered at the end", func(t *testing.T, msgs []rawMsg) []rawMsg {
			i := roomMsgs(msgs)[3]
			msgs[i].Data = []byte(strings.Replace(string(msgs[i].Data), `"reason":"logout"`, `"reason":"kicked"`, 1))
			if !strings.Contains(string(msgs[i].Data), `"kicked"`) {
				t.Fatalf("no leave reason to alter in %s", msgs[i].Data)
			}
			return msgs
		}, room + ": seq 5 does not match the signed checkpoint of round 1"},
		{"an event removed in the middle", func(t *testing.T, msgs []rawMsg) []rawMsg {
			return without(msgs, roomMsgs(msgs)[2])
		}, room + ": seq 4 is missing"},
		{"an event removed at the end", func(t *testing.T, msgs []rawMsg) []rawMsg {
			return without(msgs, roomMsgs(msgs)[3])
		}, room + ": the signed checkpoint of round 1"},
		{"a history rewritten with a self-consistent chain", func(t *testing.T, msgs []rawMsg) []rawMsg {
			prev := ""
			for _, i := range roomMsgs(msgs) {
				events, err := domain.DecodeEvents(msgs[i].Data)
				if err != nil {
					t.Fatal(err)
				}
				for j := range events {
					if d, ok := events[j].Data.(*domain.ExtraInfoUpdatedData); ok {
						d.Value = "algebra"
					}
				}
				if msgs[i].Data, prev, err = domain.EncodeEvents(prev, events); err != nil {
					t.Fatal(err)
				}
			}
			return msgs
		}, room + ": seq 5 does not match the signed checkpoint of round 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			forged := forge(t, dir, func(m []rawMsg) []rawMsg { return c.edit(t, m) })
			out, code := roomctl(t, "verify", "-data", forged, "-pubkey", pub)
			if code != 1 || !strings.Contains(out, "VIOLATION") || !strings.Contains(out, c.want) {
				t.Fatalf("verify: exit %d, want 1 and a violation %q\n%s", code, c.want, out)
			}
			// Without the checkpoints, what the chain alone can tell.
			out, code = roomctl(t, "verify", "-data", forged)
			t.Logf("without -pubkey: exit %d\n%s", code, out)
		})
	}
	t.Run("a copy that changes nothing passes", func(t *testing.T) {
		forged := forge(t, dir, func(m []rawMsg) []rawMsg { return m })
		if out, code := roomctl(t, "verify", "-data", forged, "-pubkey", pub); code != 0 {
			t.Fatalf("verify of a faithful copy: exit %d\n%s", code, out)
		}
	})
}

// Messages deleted in place through raw NATS are listed by their stream
// sequences, even the last one of a history, which no chain can tell.
func TestVerifyListsMessagesDeletedInPlace(t *testing.T) {
	dir, pub := signedHistory(t)
	var last uint64
	withLog(t, dir, func(log *eventstore.Log) {
		js, done := rawJS(t, log)
		defer done()
		s, err := js.Stream(estest.Ctx(t), log.StreamName())
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.GetLastMsgForSubject(estest.Ctx(t), log.Subject("dev", "room", "class 1.A"))
		if err != nil {
			t.Fatal(err)
		}
		last = m.Sequence
		if err := s.DeleteMsg(estest.Ctx(t), last); err != nil {
			t.Fatal(err)
		}
	})
	out, code := roomctl(t, "verify", "-data", dir)
	if code != 1 || !strings.Contains(out, "1 messages were deleted from the log (stream sequences "+strconv.FormatUint(last, 10)+")") {
		t.Fatalf("verify after deleting stream sequence %d: exit %d\n%s", last, code, out)
	}
	out, _ = roomctl(t, "verify", "-data", dir, "-pubkey", pub)
	if !strings.Contains(out, "room:dev:class 1.A: the signed checkpoint of round 1") || !strings.Contains(out, "seq 5 is removed") {
		t.Fatalf("verify -pubkey after deleting the room's last message:\n%s", out)
	}
}
