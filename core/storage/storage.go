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

// PutRecord appends a put of rec, a record NewRecord began and the caller
// appended the payload to, sealing it in place: one allocation where
// encoding a value and Put's sealed copy of it make two.
func (b *Batch) PutRecord(key, rec []byte) {
	b.Ops = append(b.Ops, Op{Key: key, Value: sealInPlace(rec)})
}

// Delete appends a delete of key.
func (b *Batch) Delete(key []byte) {
	b.Ops = append(b.Ops, Op{Key: key, Delete: true})
}

// Empty reports whether the batch holds no writes.
func (b *Batch) Empty() bool { return len(b.Ops) == 0 }

// LogPrefix starts the keys of raft's log entries: each written once and
// deleted after a later snapshot, so a store may keep them apart from the rest.
var LogPrefix = []byte("l/")

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

// sealBytes is the size of the checksum every record starts with.
const sealBytes = 4

// Seal returns value prefixed with its CRC-32C, as every record is stored.
func Seal(value []byte) []byte {
	return sealInPlace(append(NewRecord(len(value)), value...))
}

// NewRecord returns an unsealed record with room for a payload of n bytes
// (more may be appended): the checksum's place, zeroed, and nothing after.
func NewRecord(n int) []byte { return make([]byte, sealBytes, sealBytes+n) }

// sealInPlace writes the checksum of rec's payload at its start.
func sealInPlace(rec []byte) []byte {
	if len(rec) < sealBytes {
		panic(fmt.Sprintf("storage: a record of %d bytes has no room for its checksum", len(rec)))
	}
	binary.BigEndian.PutUint32(rec, crc32.Checksum(rec[sealBytes:], castagnoli))
	return rec
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
