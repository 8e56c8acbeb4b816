package projections_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/projections"
)

// TestStoreConformance runs the snapshot store contract against every Store.
func TestStoreConformance(t *testing.T) {
	t.Run("MemStore", func(t *testing.T) {
		testStore(t, func(t *testing.T) projections.Store { return projections.NewMemStore() })
	})
	t.Run("BlobStore", func(t *testing.T) {
		testStore(t, func(t *testing.T) projections.Store {
			st, _ := blobStore(t, estest.Open(t, nil), "snapshots")
			return st
		})
	})
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// snapshotOf returns a well-formed snapshot of arbitrary bytes.
func snapshotOf(name string, cursor uint64, data []byte) projections.Snapshot {
	return projections.Snapshot{Name: name, Cursor: cursor, Hash: sum(data), Data: data}
}

// sampleModel folds a short real history.
func sampleModel(t *testing.T) *projections.Model {
	t.Helper()
	w := newWriter(t, multiPolicy())
	w.must(login("s1", "u1", "r1"), login("s2", "u2", "r1"),
		domain.PublishStream{Session: "s1", Stream: "cam", Room: "r1"},
		domain.SetRoomExtraInfo{Session: "s2", Room: "r1", Key: "k", Value: "v"},
		domain.KickUser{Room: "r1", User: "u2"})
	return fold(w.records())
}

// testStore is the contract of a snapshot store. newStore returns a fresh,
// empty store that lives until the test ends.
func testStore(t *testing.T, newStore func(t *testing.T) projections.Store) {
	t.Run("loading a name never saved is not ok and not an error", func(t *testing.T) {
		st := newStore(t)
		s, ok, err := st.Load(estest.Ctx(t), "proj.rooms.v1")
		if err != nil || ok {
			t.Fatalf("Load = %+v, ok %v, err %v; want ok false, no error", s, ok, err)
		}
	})

	t.Run("a saved snapshot loads back with its bytes, cursor and hash", func(t *testing.T) {
		st := newStore(t)
		want := snapshotOf("proj.rooms.v1", 42, []byte(`{"cursor":42}`))
		if err := st.Save(estest.Ctx(t), want); err != nil {
			t.Fatal(err)
		}
		got, ok, err := st.Load(estest.Ctx(t), "proj.rooms.v1")
		if err != nil || !ok {
			t.Fatalf("Load: ok %v, err %v", ok, err)
		}
		if got.Name != want.Name || got.Cursor != want.Cursor || got.Hash != want.Hash || !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("Load = %+v, want %+v", got, want)
		}
	})

	t.Run("the store keeps its own copy of the bytes", func(t *testing.T) {
		st := newStore(t)
		data := []byte(`{"cursor":7}`)
		if err := st.Save(estest.Ctx(t), snapshotOf("a", 7, data)); err != nil {
			t.Fatal(err)
		}
		data[2] = 'X' // the caller reuses its buffer
		got, _, err := st.Load(estest.Ctx(t), "a")
		if err != nil || string(got.Data) != `{"cursor":7}` {
			t.Fatalf("after the caller changed its buffer: %q, %v", got.Data, err)
		}
		got.Data[2] = 'Y' // the loader changes what it got
		again, _, err := st.Load(estest.Ctx(t), "a")
		if err != nil || string(again.Data) != `{"cursor":7}` {
			t.Fatalf("after a loader changed its copy: %q, %v", again.Data, err)
		}
	})

	t.Run("saving again under a name keeps only the newest", func(t *testing.T) {
		st := newStore(t)
		for i, data := range []string{`{"cursor":1}`, `{"cursor":2, "longer": "than the first"}`, `{"cursor":3}`} {
			if err := st.Save(estest.Ctx(t), snapshotOf("proj.rooms.v1", uint64(i+1), []byte(data))); err != nil {
				t.Fatal(err)
			}
		}
		got, ok, err := st.Load(estest.Ctx(t), "proj.rooms.v1")
		if err != nil || !ok || got.Cursor != 3 || string(got.Data) != `{"cursor":3}` || got.Hash != sum([]byte(`{"cursor":3}`)) {
			t.Fatalf("Load = %+v, ok %v, err %v; want the third snapshot", got, ok, err)
		}
	})

	t.Run("names are independent", func(t *testing.T) {
		st := newStore(t)
		names := []string{"proj.rooms.v1", "proj.rooms.v10", "proj.rooms.v2", "proj rooms/v1"}
		for i, n := range names {
			if err := st.Save(estest.Ctx(t), snapshotOf(n, uint64(i+1), []byte(n))); err != nil {
				t.Fatalf("Save(%q): %v", n, err)
			}
		}
		// Overwriting one leaves the others alone.
		if err := st.Save(estest.Ctx(t), snapshotOf(names[0], 100, []byte("newer"))); err != nil {
			t.Fatal(err)
		}
		for i, n := range names {
			want := snapshotOf(n, uint64(i+1), []byte(n))
			if i == 0 {
				want = snapshotOf(n, 100, []byte("newer"))
			}
			got, ok, err := st.Load(estest.Ctx(t), n)
			if err != nil || !ok || got.Cursor != want.Cursor || !bytes.Equal(got.Data, want.Data) || got.Hash != want.Hash {
				t.Errorf("Load(%q) = cursor %d %q, ok %v, err %v; want cursor %d %q", n, got.Cursor, got.Data, ok, err,
					want.Cursor, want.Data)
			}
		}
		if _, ok, err := st.Load(estest.Ctx(t), "proj.rooms"); ok || err != nil {
			t.Errorf("a prefix of saved names loads: ok %v, err %v", ok, err)
		}
	})

	t.Run("bytes that do not match their hash are a corrupt snapshot", func(t *testing.T) {
		st := newStore(t)
		s := snapshotOf("proj.rooms.v1", 5, []byte(`{"cursor":5}`))
		s.Data = []byte(`{"cursor":6}`) // tampered after hashing
		if err := st.Save(estest.Ctx(t), s); err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.Load(estest.Ctx(t), "proj.rooms.v1"); !errors.Is(err, projections.ErrCorruptSnapshot) {
			t.Fatalf("Load = %v, want ErrCorruptSnapshot", err)
		}
		if _, err := projections.Restore(estest.Ctx(t), st, "proj.rooms.v1"); !errors.Is(err, projections.ErrCorruptSnapshot) {
			t.Fatalf("Restore = %v, want ErrCorruptSnapshot", err)
		}
	})

	t.Run("a large snapshot round-trips", func(t *testing.T) {
		st := newStore(t)
		data := make([]byte, 5<<20+123)
		rnd := rand.NewChaCha8([32]byte{1, 2, 3})
		rnd.Read(data)
		want := snapshotOf("proj.rooms.v1", 1<<40, data)
		if err := st.Save(estest.Ctx(t), want); err != nil {
			t.Fatal(err)
		}
		got, ok, err := st.Load(estest.Ctx(t), "proj.rooms.v1")
		if err != nil || !ok || got.Cursor != want.Cursor || got.Hash != want.Hash || !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("Load: ok %v, err %v, cursor %d, %d bytes (want %d)", ok, err, got.Cursor, len(got.Data), len(data))
		}
	})

	t.Run("restoring a name never saved gives an empty model", func(t *testing.T) {
		st := newStore(t)
		m, err := projections.Restore(estest.Ctx(t), st, "proj.rooms.v1")
		if err != nil {
			t.Fatal(err)
		}
		if m.Cursor != 0 || len(m.Apps) != 0 || hashOf(t, m) != hashOf(t, projections.NewModel()) {
			t.Fatalf("Restore = cursor %d, %d apps; want an empty model", m.Cursor, len(m.Apps))
		}
	})

	t.Run("restoring a saved model gives a model with the same hash", func(t *testing.T) {
		st := newStore(t)
		m := sampleModel(t)
		snap, err := projections.TakeSnapshot("proj.rooms.v1", m)
		if err != nil {
			t.Fatal(err)
		}
		if snap.Hash != hashOf(t, m) || snap.Cursor != m.Cursor || snap.Name != "proj.rooms.v1" {
			t.Fatalf("TakeSnapshot = %s at %d, model %s at %d", snap.Hash, snap.Cursor, hashOf(t, m), m.Cursor)
		}
		if err := st.Save(estest.Ctx(t), snap); err != nil {
			t.Fatal(err)
		}
		got, err := projections.Restore(estest.Ctx(t), st, "proj.rooms.v1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Cursor != m.Cursor || hashOf(t, got) != hashOf(t, m) {
			t.Fatalf("restored cursor %d hash %s, want %d %s", got.Cursor, hashOf(t, got), m.Cursor, hashOf(t, m))
		}
		// The restored model is a model: it folds on.
		got.Apply(projections.Record{Seq: m.Cursor + 1})
		if got.Cursor != m.Cursor+1 {
			t.Fatalf("the restored model did not fold on")
		}
	})

	t.Run("restoring a snapshot whose recorded cursor is not the model's is a corrupt snapshot", func(t *testing.T) {
		st := newStore(t)
		snap, err := projections.TakeSnapshot("proj.rooms.v1", sampleModel(t))
		if err != nil {
			t.Fatal(err)
		}
		snap.Cursor++ // a well-hashed body saved under the wrong cursor
		if err := st.Save(estest.Ctx(t), snap); err != nil {
			t.Fatal(err)
		}
		if _, err := projections.Restore(estest.Ctx(t), st, "proj.rooms.v1"); !errors.Is(err, projections.ErrCorruptSnapshot) {
			t.Fatalf("Restore = %v, want ErrCorruptSnapshot", err)
		}
	})
}

func TestBlobStoreSnapshotsSurviveReopeningTheBucket(t *testing.T) {
	log := estest.Open(t, nil)
	first, _ := blobStore(t, log, "snapshots")
	want := snapshotOf("proj.rooms.v1", 9, []byte(`{"cursor":9}`))
	if err := first.Save(estest.Ctx(t), want); err != nil {
		t.Fatal(err)
	}
	second, _ := blobStore(t, log, "snapshots")
	got, ok, err := second.Load(estest.Ctx(t), "proj.rooms.v1")
	if err != nil || !ok || got.Cursor != 9 || !bytes.Equal(got.Data, want.Data) {
		t.Fatalf("Load through a second handle: %+v, ok %v, err %v", got, ok, err)
	}
	other, _ := blobStore(t, log, "other-snapshots")
	if _, ok, err := other.Load(estest.Ctx(t), "proj.rooms.v1"); ok || err != nil {
		t.Fatalf("another bucket sees the snapshot: ok %v, err %v", ok, err)
	}
}

func TestBlobStoreOverwriteFreesTheOldSnapshotsStorage(t *testing.T) {
	log := estest.Open(t, nil)
	st, blobs := blobStore(t, log, "snapshots")
	big := make([]byte, 3<<20)
	if err := st.Save(estest.Ctx(t), snapshotOf("proj.rooms.v1", 1, big)); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(estest.Ctx(t), snapshotOf("proj.rooms.v1", 2, []byte(`{"cursor":2}`))); err != nil {
		t.Fatal(err)
	}
	count, size, err := blobs.Stats(estest.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if size >= 1<<20 {
		t.Errorf("the bucket holds %d bytes after a 3 MiB snapshot was replaced by a tiny one", size)
	}
	if count != 1 {
		t.Errorf("the bucket lists %d objects, want 1", count)
	}
}

// blobStore opens a snapshot store on a blob bucket of log.
func blobStore(t *testing.T, log *eventstore.Log, bucket string) (*projections.BlobStore, *eventstore.Blobs) {
	t.Helper()
	blobs, err := log.OpenBlobs(estest.Ctx(t), eventstore.BlobsConfig{Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	return projections.NewBlobStore(blobs), blobs
}
