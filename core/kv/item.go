package kv

import (
	"bytes"
	"encoding/binary"
)

// item is one stored key. Its key, its record and its share of the state
// digest live in one allocation, kv, laid out as
//
//	key | value | lock fields | CreateRev | ModRev | Version | sum
//
// the last four 8 bytes each, little-endian. The lock fields (Flags and
// LockIndex, 8 bytes each, then Session) are there only when the record has
// them (Record.extended); lockLen is their length, 0 without them.
//
// An item is 32 bytes in the tree, where a Record by value made it 112: a
// tree node holds up to 63 items, and the first write under a node shared
// with a clone (a snapshot's, a long listing's) copies the whole node, so
// the clone held until the next snapshot kept a second copy of most nodes.
// sum caches the item's share of the digest, so that overwriting or deleting
// a large value need not hash it again.
//
// A lookup's probe (probe) holds the key alone: only key may be read from it.
type item struct {
	kv      []byte
	keyLen  uint32
	lockLen uint32
}

// numsBytes is the fixed tail of kv: CreateRev, ModRev, Version and sum.
const numsBytes = 4 * 8

// lockFixedBytes is the fixed part of the lock fields: Flags and LockIndex.
const lockFixedBytes = 2 * 8

// probe is an item to look key up by.
func probe(key []byte) item { return item{kv: key, keyLen: uint32(len(key))} }

// newItem stores a copy of key and r in one fresh allocation, so an
// overwritten value never stays reachable through its key.
func newItem(key []byte, r *Record) item {
	lockLen := 0
	if r.extended() {
		lockLen = lockFixedBytes + len(r.Session)
	}
	b := make([]byte, 0, len(key)+len(r.Value)+lockLen+numsBytes)
	b = append(append(b, key...), r.Value...)
	if lockLen > 0 {
		b = binary.LittleEndian.AppendUint64(b, r.Flags)
		b = binary.LittleEndian.AppendUint64(b, r.LockIndex)
		b = append(b, r.Session...)
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(r.CreateRev))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.ModRev))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.Version))
	b = binary.LittleEndian.AppendUint64(b, recordHash(key, r))
	return item{kv: b, keyLen: uint32(len(key)), lockLen: uint32(lockLen)}
}

func itemLess(a, b item) bool { return bytes.Compare(a.key(), b.key()) < 0 }

// key and value alias kv, capped so that an append by a caller cannot reach
// the next field. Empty ones are nil, as a Record decoded from disk has them.
func (it item) key() []byte { return capped(it.kv[:it.keyLen]) }

func (it item) value() []byte { return capped(it.kv[it.keyLen:it.valueEnd()]) }

func (it item) valueEnd() int { return len(it.kv) - numsBytes - int(it.lockLen) }

func capped(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b[:len(b):len(b)]
}

// num reads the i-th number of the tail: 0 CreateRev, 1 ModRev, 2 Version, 3 sum.
func (it item) num(i int) uint64 {
	return binary.LittleEndian.Uint64(it.kv[len(it.kv)-numsBytes+8*i:])
}

func (it item) createRev() int64 { return int64(it.num(0)) }
func (it item) modRev() int64    { return int64(it.num(1)) }
func (it item) version() int64   { return int64(it.num(2)) }
func (it item) sum() uint64      { return it.num(3) }

// lockNums reads Flags and LockIndex, zero when the record has no lock fields.
func (it item) lockNums() (flags, lockIndex uint64) {
	if it.lockLen == 0 {
		return 0, 0
	}
	at := it.valueEnd()
	return binary.LittleEndian.Uint64(it.kv[at:]), binary.LittleEndian.Uint64(it.kv[at+8:])
}

// session is the session holding the key's lock, nil when none; it aliases kv.
func (it item) session() []byte {
	if it.lockLen <= lockFixedBytes {
		return nil
	}
	at := it.valueEnd() + lockFixedBytes
	return capped(it.kv[at : at+int(it.lockLen)-lockFixedBytes])
}

// record returns the item's record; Value aliases kv. Only a held lock costs
// an allocation (Session's string).
func (it item) record() Record {
	flags, lockIndex := it.lockNums()
	return Record{
		Value:     it.value(),
		CreateRev: it.createRev(),
		ModRev:    it.modRev(),
		Version:   it.version(),
		Flags:     flags,
		LockIndex: lockIndex,
		Session:   string(it.session()),
	}
}
