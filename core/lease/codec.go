package lease

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/aspen-db/aspen/core/module"
)

// The table's snapshot encoding, version 1:
//
//	last id varint | grace term uvarint | lease count uvarint |
//	per lease, by id: id varint | ttl varint | expiry varint | key count uvarint | keys (length-prefixed, in order)
//
// The section's version is the module's (Module.Version).

// ErrCorrupt marks an encoding that does not decode.
var ErrCorrupt = errors.New("lease table does not decode")

// Encode returns the table's snapshot encoding; equal tables encode equally.
func (t *Table) Encode() []byte {
	b := binary.AppendVarint(nil, int64(t.last))
	b = binary.AppendUvarint(b, t.graceTerm)
	b = binary.AppendUvarint(b, uint64(len(t.leases)))
	for _, id := range t.ids() {
		e := t.leases[id]
		b = binary.AppendVarint(b, int64(id))
		b = binary.AppendVarint(b, e.ttl)
		b = binary.AppendVarint(b, e.expiry)
		keys := sortedKeys(e.keys)
		b = binary.AppendUvarint(b, uint64(len(keys)))
		for _, k := range keys {
			b = module.AppendBytes(b, []byte(k))
		}
	}
	return b
}

// Decode builds a table from Encode's output. Counts larger than the bytes
// left, duplicate ids or keys, and trailing bytes are errors.
func Decode(b []byte, limits Limits) (*Table, error) {
	r := &module.Reader{B: b}
	t := New(limits)
	last := ID(r.Varint())
	t.graceTerm = r.Uvarint()
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		decodeLease(r, t)
	}
	if err := r.Done("lease table"); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	t.last = max(t.last, last)
	return t, nil
}

func decodeLease(r *module.Reader, t *Table) {
	id, ttl, expiry := ID(r.Varint()), r.Varint(), r.Varint()
	if r.Err == nil && (id <= 0 || t.leases[id] != nil) {
		r.Fail("lease id %d repeated or not positive", id)
	}
	if r.Err != nil {
		return
	}
	t.insert(id, &entry{ttl: ttl, expiry: expiry, keys: map[string]struct{}{}})
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		k := r.String()
		if _, taken := t.byKey[k]; taken && r.Err == nil {
			r.Fail("key %q attached twice", k)
		}
		if r.Err == nil {
			t.attach(id, k)
		}
	}
}

// The digest is the XOR of one hash per lease and one per attachment, so
// it follows every change in O(1).
func leaseHash(id ID, e *entry) uint64 {
	return mix64(uint64(id)*0x9e3779b97f4a7c15 ^ mix64(uint64(e.ttl)) ^ mix64(uint64(e.expiry)+0x632be59bd9b4e019))
}

func keyHash(id ID, key string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	return mix64(h ^ mix64(uint64(id)+0xbf58476d1ce4e5b9))
}

// mix64 is MurmurHash3's finalizer: every input bit reaches every output bit.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb93fe53e1a87
	h ^= h >> 33
	return h
}
