package projections

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// Snapshot is a model saved at a cursor, so that a rebuild can start there
// instead of at the beginning of the log.
type Snapshot struct {
	// Name is versioned (proj.rooms.v1): a model whose shape changes is saved
	// and rebuilt under a new name, never read from an old one.
	Name   string
	Cursor uint64
	// Hash is the model's Hash, checked on load.
	Hash string
	Data []byte
}

// ErrCorruptSnapshot is returned by Load when the stored bytes do not match
// the stored hash.
var ErrCorruptSnapshot = errors.New("corrupt snapshot")

// Store keeps snapshots by name.
type Store interface {
	// Save replaces the snapshot stored under s.Name.
	Save(ctx context.Context, s Snapshot) error
	// Load returns the snapshot stored under name; ok is false if there is
	// none. It returns ErrCorruptSnapshot if the data does not match its hash.
	Load(ctx context.Context, name string) (s Snapshot, ok bool, err error)
}

// TakeSnapshot captures m under name.
func TakeSnapshot(name string, m *Model) (Snapshot, error) {
	data, err := m.Marshal()
	if err != nil {
		return Snapshot{}, err
	}
	return Snapshot{Name: name, Cursor: m.Cursor, Hash: hashBytes(data), Data: data}, nil
}

// Restore loads the snapshot stored under name into a model; with no
// snapshot it returns an empty model.
func Restore(ctx context.Context, st Store, name string) (*Model, error) {
	s, ok, err := st.Load(ctx, name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return NewModel(), nil
	}
	m, err := Unmarshal(s.Data)
	if err != nil {
		return nil, err
	}
	if m.Cursor != s.Cursor {
		return nil, fmt.Errorf("%w: %s: cursor %d in the data, %d recorded", ErrCorruptSnapshot, name, m.Cursor, s.Cursor)
	}
	return m, nil
}

func hashBytes(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func check(s Snapshot) error {
	if got := hashBytes(s.Data); got != s.Hash {
		return fmt.Errorf("%w: %s at cursor %d: hash %s, recorded %s", ErrCorruptSnapshot, s.Name, s.Cursor, got, s.Hash)
	}
	return nil
}

// MemStore keeps snapshots in memory (tests, tools).
type MemStore struct {
	mu   sync.Mutex
	snap map[string]Snapshot
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{snap: map[string]Snapshot{}} }

// Save implements Store.
func (s *MemStore) Save(_ context.Context, snap Snapshot) error {
	snap.Data = bytes.Clone(snap.Data)
	s.mu.Lock()
	s.snap[snap.Name] = snap
	s.mu.Unlock()
	return nil
}

// Load implements Store.
func (s *MemStore) Load(_ context.Context, name string) (Snapshot, bool, error) {
	s.mu.Lock()
	snap, ok := s.snap[name]
	s.mu.Unlock()
	if !ok {
		return Snapshot{}, false, nil
	}
	snap.Data = bytes.Clone(snap.Data)
	return snap, true, check(snap)
}

// ObjectStore keeps snapshots in a JetStream object store bucket, next to the
// log: snapshots can be far larger than a KV value.
type ObjectStore struct {
	obs jetstream.ObjectStore
}

var _ Store = (*ObjectStore)(nil)

// NewObjectStore opens (creating if needed) the bucket.
func NewObjectStore(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (*ObjectStore, error) {
	if replicas <= 0 {
		replicas = 1
	}
	obs, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bucket, Replicas: replicas,
		Storage: jetstream.FileStorage, Description: "roomlog projection snapshots"})
	if err != nil {
		return nil, fmt.Errorf("snapshot bucket %s: %w", bucket, err)
	}
	return &ObjectStore{obs: obs}, nil
}

type snapMeta struct {
	Cursor uint64 `json:"cursor"`
	Hash   string `json:"hash"`
}

// Save implements Store.
func (s *ObjectStore) Save(ctx context.Context, snap Snapshot) error {
	meta, err := json.Marshal(snapMeta{Cursor: snap.Cursor, Hash: snap.Hash})
	if err != nil {
		return err
	}
	_, err = s.obs.Put(ctx, jetstream.ObjectMeta{Name: snap.Name,
		Metadata: map[string]string{"roomlog-snapshot": string(meta), "cursor": strconv.FormatUint(snap.Cursor, 10)}},
		bytes.NewReader(snap.Data))
	if err != nil {
		return fmt.Errorf("save snapshot %s: %w", snap.Name, err)
	}
	return nil
}

// Load implements Store.
func (s *ObjectStore) Load(ctx context.Context, name string) (Snapshot, bool, error) {
	r, err := s.obs.Get(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return Snapshot{}, false, nil
	}
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("load snapshot %s: %w", name, err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("load snapshot %s: %w", name, err)
	}
	info, err := r.Info()
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("load snapshot %s: %w", name, err)
	}
	var meta snapMeta
	if err := json.Unmarshal([]byte(info.Metadata["roomlog-snapshot"]), &meta); err != nil {
		return Snapshot{}, false, fmt.Errorf("%w: %s: metadata: %v", ErrCorruptSnapshot, name, err)
	}
	snap := Snapshot{Name: name, Cursor: meta.Cursor, Hash: meta.Hash, Data: data}
	return snap, true, check(snap)
}
