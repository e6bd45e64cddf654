package kv

import (
	"bytes"
	"encoding/binary"
)

// snapshotMagic opens every snapshot; its last byte is the format version, so a
// later format can be told apart instead of being misread.
const snapshotMagic = "akv\x01"

// Snapshot encodes the whole state: the magic, the revision, the number of
// keys, then each key and its record in ascending key order. The same state
// always yields the same bytes.
func (m *Machine) Snapshot() []byte {
	n := len(snapshotMagic) + 2*binary.MaxVarintLen64
	m.tree.Ascend(func(it item) bool {
		n += len(it.kv) + 8*binary.MaxVarintLen64
		return true
	})
	b := make([]byte, 0, n)
	b = append(b, snapshotMagic...)
	b = binary.AppendUvarint(b, uint64(m.rev))
	b = binary.AppendUvarint(b, uint64(m.tree.Len()))
	m.tree.Ascend(func(it item) bool {
		b = appendBytes(b, it.key())
		b = appendRecord(b, it.record())
		return true
	})
	return b
}

// Restore replaces the state with the one data encodes. On malformed data,
// including keys out of order, it returns an error and leaves m unchanged.
func (m *Machine) Restore(data []byte) error {
	if !bytes.HasPrefix(data, []byte(snapshotMagic)) {
		return decodeError("snapshot", "missing magic")
	}
	d := decoder{b: data[len(snapshotMagic):]}
	rev := d.uvarint()
	if rev > 1<<63-1 {
		d.fail("revision out of range")
	}
	restored := New()
	var prev []byte
	for i, n := 0, d.count(keyValueBytesMin); i < n && d.err == nil; i++ {
		key := d.bytes()
		rec := d.record()
		// Strict order rules out duplicate keys, which would make the restored
		// length and digest disagree with the snapshotted state.
		if i > 0 && bytes.Compare(prev, key) >= 0 {
			d.fail("keys out of order")
			break
		}
		restored.Load(key, rec)
		prev = key
	}
	if err := d.finish("snapshot"); err != nil {
		return err
	}
	restored.rev, restored.Bugs = int64(rev), m.Bugs
	*m = *restored
	return nil
}
