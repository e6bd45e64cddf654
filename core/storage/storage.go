// Package storage defines the one abstract, ordered key-value store a replica
// persists to, and the checksummed record codec used for everything written to it.
//
// The core never performs I/O: it hands batches to its driver (the simulator's
// in-memory disk or the runtime's Badger), which applies them atomically and syncs
// them before acting on anything that depends on them. At restart the core reads
// the store back through Reader, verifying every record's checksum.
package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Op is one write in a batch: a put, or a delete when Delete is set.
type Op struct {
	Key    []byte
	Value  []byte
	Delete bool
}

// Batch is a group of writes that must become visible, and durable, all together.
type Batch struct {
	Ops []Op
}

// Put appends a put of a sealed (checksummed) copy of value.
func (b *Batch) Put(key, value []byte) {
	b.Ops = append(b.Ops, Op{Key: key, Value: Seal(value)})
}

// Delete appends a delete of key.
func (b *Batch) Delete(key []byte) {
	b.Ops = append(b.Ops, Op{Key: key, Delete: true})
}

// Empty reports whether the batch holds no writes.
func (b *Batch) Empty() bool { return len(b.Ops) == 0 }

// Reader reads a store back. Scan visits keys with the prefix in ascending order
// and stops at the first error fn returns.
type Reader interface {
	Get(key []byte) (value []byte, ok bool, err error)
	Scan(prefix []byte, fn func(key, value []byte) error) error
}

// Store is what a driver provides: atomic batches, and Sync, after which every
// applied batch survives a crash.
type Store interface {
	Reader
	Apply(b Batch) error
	Sync() error
}

// ErrCorrupt marks a record whose checksum does not match its contents.
var ErrCorrupt = errors.New("storage: corrupt record")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Seal returns value prefixed with its CRC-32C, as every record is stored.
func Seal(value []byte) []byte {
	out := make([]byte, 4+len(value))
	binary.BigEndian.PutUint32(out, crc32.Checksum(value, castagnoli))
	copy(out[4:], value)
	return out
}

// Open verifies a sealed record and returns its payload (aliasing sealed).
func Open(key, sealed []byte) ([]byte, error) {
	if len(sealed) < 4 {
		return nil, fmt.Errorf("%w: key %q: %d bytes is shorter than a checksum", ErrCorrupt, key, len(sealed))
	}
	want := binary.BigEndian.Uint32(sealed)
	if got := crc32.Checksum(sealed[4:], castagnoli); got != want {
		return nil, fmt.Errorf("%w: key %q: checksum %08x, want %08x", ErrCorrupt, key, got, want)
	}
	return sealed[4:], nil
}
