// Package session remembers, per client, the last write it applied and the answer
// it gave, so that a write a client retries (because an answer was lost or a node
// died) takes effect once.
//
// The table is part of the replicated state: every replica applies the same
// entries in the same order, so every replica's table is the same.
package session

import (
	"encoding/binary"
	"errors"
	"hash/fnv"
	"sort"
)

// Verdict says what to do with an incoming write.
type Verdict uint8

const (
	// Fresh: apply the write.
	Fresh Verdict = iota + 1
	// Duplicate: the write was applied already; answer with the saved response.
	Duplicate
	// Stale: the client has since moved on to a later sequence number, so this
	// copy is a leftover retry; it must not be applied.
	Stale
)

// Entry is what the table keeps for one client.
type Entry struct {
	Seq      uint64
	Index    uint64 // raft index that last touched the session, for eviction order
	Response []byte
}

// Table maps client ids to their last applied write. It holds at most Max
// clients; the one idle longest (lowest Index) is evicted to make room, after
// which a very late retry from that client would apply again.
type Table struct {
	max     int
	entries map[uint64]Entry
	hash    uint64
}

// NewTable returns an empty table holding at most max clients.
func NewTable(max int) *Table {
	return &Table{max: max, entries: make(map[uint64]Entry)}
}

// Check classifies a write from client with sequence number seq.
func (t *Table) Check(client, seq uint64) (Verdict, []byte) {
	e, ok := t.entries[client]
	switch {
	case !ok || seq > e.Seq:
		return Fresh, nil
	case seq == e.Seq:
		return Duplicate, e.Response
	default:
		return Stale, nil
	}
}

// Record stores the outcome of an applied write. It returns the client evicted
// to make room, if any, so the caller can delete its persisted record.
func (t *Table) Record(client, seq, index uint64, resp []byte) (evicted uint64, ok bool) {
	if _, exists := t.entries[client]; !exists && len(t.entries) >= t.max {
		evicted = t.oldest()
		t.remove(evicted)
		ok = true
	}
	t.Load(client, Entry{Seq: seq, Index: index, Response: resp})
	return evicted, ok
}

// Load installs an entry, replacing any previous one for the client.
func (t *Table) Load(client uint64, e Entry) {
	t.remove(client)
	t.entries[client] = e
	t.hash ^= entryHash(client, e)
}

// Len is the number of clients remembered.
func (t *Table) Len() int { return len(t.entries) }

// Hash digests the whole table independently of insertion order.
func (t *Table) Hash() uint64 { return t.hash }

// Clients returns the client ids in ascending order.
func (t *Table) Clients() []uint64 {
	ids := make([]uint64, 0, len(t.entries))
	for id := range t.entries {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// Get returns the entry for a client.
func (t *Table) Get(client uint64) (Entry, bool) {
	e, ok := t.entries[client]
	return e, ok
}

func (t *Table) remove(client uint64) {
	if e, ok := t.entries[client]; ok {
		t.hash ^= entryHash(client, e)
		delete(t.entries, client)
	}
}

// oldest picks the eviction victim: lowest Index, ties to the lowest id, so the
// choice never depends on map order.
func (t *Table) oldest() uint64 {
	var victim uint64
	var best Entry
	first := true
	for id, e := range t.entries {
		if first || e.Index < best.Index || (e.Index == best.Index && id < victim) {
			victim, best, first = id, e, false
		}
	}
	return victim
}

func entryHash(client uint64, e Entry) uint64 {
	h := fnv.New64a()
	var b [24]byte
	binary.BigEndian.PutUint64(b[0:], client)
	binary.BigEndian.PutUint64(b[8:], e.Seq)
	binary.BigEndian.PutUint64(b[16:], e.Index)
	h.Write(b[:])
	h.Write(e.Response)
	return h.Sum64()
}

// ErrMalformed reports an entry or snapshot that does not decode.
var ErrMalformed = errors.New("session: malformed encoding")

// EncodeEntry encodes one entry for storage.
func EncodeEntry(e Entry) []byte {
	return AppendEntry(make([]byte, 0, EntrySizeMax(e)), e)
}

// EntrySizeMax bounds the size of e's encoding.
func EntrySizeMax(e Entry) int { return 2*binary.MaxVarintLen64 + len(e.Response) }

// AppendEntry appends EncodeEntry's encoding of e to b.
func AppendEntry(b []byte, e Entry) []byte {
	b = binary.AppendUvarint(b, e.Seq)
	b = binary.AppendUvarint(b, e.Index)
	return append(b, e.Response...)
}

// DecodeEntry is the inverse of EncodeEntry.
func DecodeEntry(b []byte) (Entry, error) {
	seq, n := binary.Uvarint(b)
	if n <= 0 {
		return Entry{}, ErrMalformed
	}
	idx, m := binary.Uvarint(b[n:])
	if m <= 0 {
		return Entry{}, ErrMalformed
	}
	resp := append([]byte(nil), b[n+m:]...)
	return Entry{Seq: seq, Index: idx, Response: resp}, nil
}

// Snapshot encodes the whole table in client order.
func (t *Table) Snapshot() []byte {
	var b []byte
	ids := t.Clients()
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		enc := EncodeEntry(t.entries[id])
		b = binary.AppendUvarint(b, id)
		b = binary.AppendUvarint(b, uint64(len(enc)))
		b = append(b, enc...)
	}
	return b
}

// Restore replaces the table's contents with a decoded snapshot.
func (t *Table) Restore(b []byte) error {
	fresh := NewTable(t.max)
	count, n := binary.Uvarint(b)
	if n <= 0 {
		return ErrMalformed
	}
	b = b[n:]
	for i := uint64(0); i < count; i++ {
		id, n1 := binary.Uvarint(b)
		if n1 <= 0 {
			return ErrMalformed
		}
		size, n2 := binary.Uvarint(b[n1:])
		if n2 <= 0 || uint64(len(b[n1+n2:])) < size {
			return ErrMalformed
		}
		e, err := DecodeEntry(b[n1+n2 : n1+n2+int(size)])
		if err != nil {
			return err
		}
		fresh.Load(id, e)
		b = b[n1+n2+int(size):]
	}
	*t = *fresh
	return nil
}
