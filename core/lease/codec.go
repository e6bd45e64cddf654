package lease

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The table's snapshot encoding, version 1:
//
//	version uvarint | last id varint | lease count uvarint |
//	per lease, by id: id varint | ttl varint | expiry varint | key count uvarint | keys (length-prefixed, in order)
const codecVersion = 1

// ErrCorrupt marks an encoding that does not decode.
var ErrCorrupt = errors.New("lease table does not decode")

// Encode returns the table's snapshot encoding; equal tables encode equally.
func (t *Table) Encode() []byte {
	b := binary.AppendUvarint(nil, codecVersion)
	b = binary.AppendVarint(b, int64(t.last))
	b = binary.AppendUvarint(b, uint64(len(t.leases)))
	for _, id := range t.ids() {
		e := t.leases[id]
		b = binary.AppendVarint(b, int64(id))
		b = binary.AppendVarint(b, e.ttl)
		b = binary.AppendVarint(b, e.expiry)
		keys := sortedKeys(e.keys)
		b = binary.AppendUvarint(b, uint64(len(keys)))
		for _, k := range keys {
			b = binary.AppendUvarint(b, uint64(len(k)))
			b = append(b, k...)
		}
	}
	return b
}

// Decode builds a table from Encode's output. Counts larger than the bytes
// left, duplicate ids or keys, and trailing bytes are errors.
func Decode(b []byte, limits Limits) (*Table, error) {
	d := &decoder{b: b}
	if v := d.uvarint(); d.err == nil && v != codecVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrCorrupt, v, codecVersion)
	}
	t := New(limits)
	last := ID(d.varint())
	for n := d.count(); n > 0 && d.err == nil; n-- {
		d.lease(t)
	}
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	t.last = max(t.last, last)
	return t, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) lease(t *Table) {
	id, ttl, expiry := ID(d.varint()), d.varint(), d.varint()
	if d.err == nil && (id <= 0 || t.leases[id] != nil) {
		d.fail("lease id %d repeated or not positive", id)
	}
	if d.err != nil {
		return
	}
	e := &entry{ttl: ttl, expiry: expiry, keys: map[string]struct{}{}}
	t.leases[id], t.last = e, max(t.last, id)
	t.order.ReplaceOrInsert(deadline{expiry, id})
	t.digest ^= leaseHash(id, e)
	for n := d.count(); n > 0 && d.err == nil; n-- {
		k := string(d.bytes())
		if _, taken := t.byKey[k]; taken && d.err == nil {
			d.fail("key %q attached twice", k)
		}
		if d.err == nil {
			e.keys[k], t.byKey[k] = struct{}{}, id
			t.digest ^= keyHash(id, k)
		}
	}
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("truncated number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("truncated number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a count, refusing one larger than the bytes left could hold.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("count %d exceeds the %d bytes left", n, len(d.b))
		return 0
	}
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.count()
	out := d.b[:n]
	d.b = d.b[n:]
	return out
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
