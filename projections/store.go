package projections

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
)

// Snapshot is a model saved at a cursor, so that a rebuild can start there
// instead of at the beginning of the log.
type Snapshot struct {
	// Name is versioned (proj.rooms.v3): a model whose shape changes is saved
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

// Blobs is where a BlobStore keeps its snapshots (eventstore.Blobs, a
// JetStream object store bucket next to the log).
type Blobs interface {
	// Put replaces the blob stored under name.
	Put(ctx context.Context, name string, data []byte, meta map[string]string) error
	// Get returns the blob stored under name; ok is false if there is none.
	Get(ctx context.Context, name string) (data []byte, meta map[string]string, ok bool, err error)
}

// BlobStore keeps snapshots in a blob bucket: snapshots can be far larger
// than a record.
type BlobStore struct {
	blobs Blobs
}

var _ Store = (*BlobStore)(nil)

// NewBlobStore returns a store that keeps snapshots in blobs.
func NewBlobStore(blobs Blobs) *BlobStore { return &BlobStore{blobs: blobs} }

// snapMetaKey is the metadata entry that holds a snapshot's cursor and hash.
const snapMetaKey = "roomlog-snapshot"

type snapMeta struct {
	Cursor uint64 `json:"cursor"`
	Hash   string `json:"hash"`
}

// Save implements Store.
func (s *BlobStore) Save(ctx context.Context, snap Snapshot) error {
	meta, err := json.Marshal(snapMeta{Cursor: snap.Cursor, Hash: snap.Hash})
	if err != nil {
		return err
	}
	err = s.blobs.Put(ctx, snap.Name, snap.Data,
		map[string]string{snapMetaKey: string(meta), "cursor": strconv.FormatUint(snap.Cursor, 10)})
	if err != nil {
		return fmt.Errorf("save snapshot %s: %w", snap.Name, err)
	}
	return nil
}

// Load implements Store.
func (s *BlobStore) Load(ctx context.Context, name string) (Snapshot, bool, error) {
	data, md, ok, err := s.blobs.Get(ctx, name)
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("load snapshot %s: %w", name, err)
	}
	if !ok {
		return Snapshot{}, false, nil
	}
	var meta snapMeta
	if err := json.Unmarshal([]byte(md[snapMetaKey]), &meta); err != nil {
		return Snapshot{}, false, fmt.Errorf("%w: %s: metadata: %v", ErrCorruptSnapshot, name, err)
	}
	snap := Snapshot{Name: name, Cursor: meta.Cursor, Hash: meta.Hash, Data: data}
	return snap, true, check(snap)
}
