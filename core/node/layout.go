package node

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/aspen-db/aspen/core/storage"
	"go.etcd.io/raft/v3/raftpb"
)

// The store layout. Every value is sealed with a checksum by storage.Batch.Put.
var (
	keyHardState = []byte("m/hardstate")
	keySnapshot  = []byte("m/snapshot")
	keyApplied   = []byte("m/applied") // applied index, revision and conf state, written with the state they describe
	keyMembers   = []byte("m/members") // member addresses and removed ids
	keyRemoved   = []byte("m/removed") // present once this replica knows it was removed
	prefixLog    = storage.LogPrefix
	prefixKV     = []byte("k/")
	prefixClient = []byte("c/")
)

func logKey(index uint64) []byte {
	k := make([]byte, len(prefixLog)+8)
	copy(k, prefixLog)
	binary.BigEndian.PutUint64(k[len(prefixLog):], index)
	return k
}

func kvKey(key []byte) []byte {
	return append(append(make([]byte, 0, len(prefixKV)+len(key)), prefixKV...), key...)
}

func clientKey(id uint64) []byte {
	k := make([]byte, len(prefixClient)+8)
	copy(k, prefixClient)
	binary.BigEndian.PutUint64(k[len(prefixClient):], id)
	return k
}

// appliedMeta is what keyApplied holds.
type appliedMeta struct {
	Index    uint64
	Revision int64
	TimeNs   int64 // replicated time (time.go)
	Conf     raftpb.ConfState
}

// appliedV2 marks the layout with replicated time: 0, 2, index, revision,
// time, conf state. The first layout (index, revision, conf state) starts
// with the index, which is never 0, so the two cannot be confused.
var appliedV2 = []byte{0, 2}

func encodeApplied(m appliedMeta) []byte { return appendApplied(nil, m) }

// appliedRecord is keyApplied's record for m, for Batch.PutRecord: written
// at every Ready that applies entries, so it is built in one allocation.
func appliedRecord(m appliedMeta) []byte {
	return appendApplied(storage.NewRecord(len(appliedV2)+3*binary.MaxVarintLen64+m.Conf.Size()), m)
}

func appendApplied(b []byte, m appliedMeta) []byte {
	b = append(b, appliedV2...)
	b = binary.AppendUvarint(b, m.Index)
	b = binary.AppendVarint(b, m.Revision)
	b = binary.AppendVarint(b, m.TimeNs)
	size := m.Conf.Size()
	b = slices.Grow(b, size)
	conf := b[len(b) : len(b)+size]
	if _, err := m.Conf.MarshalToSizedBuffer(conf); err != nil {
		panic(fmt.Sprintf("marshal conf state: %v", err))
	}
	return b[:len(b)+size]
}

// logRecord is e's record, for Batch.PutRecord.
func logRecord(e *raftpb.Entry) []byte {
	size := e.Size()
	rec := storage.NewRecord(size)
	rec = rec[:len(rec)+size]
	if _, err := e.MarshalToSizedBuffer(rec[len(rec)-size:]); err != nil {
		panic(fmt.Sprintf("marshal entry %d: %v", e.Index, err))
	}
	return rec
}

// hardStateRecord is hs's record, for Batch.PutRecord.
func hardStateRecord(hs *raftpb.HardState) []byte {
	size := hs.Size()
	rec := storage.NewRecord(size)
	rec = rec[:len(rec)+size]
	if _, err := hs.MarshalToSizedBuffer(rec[len(rec)-size:]); err != nil {
		panic(fmt.Sprintf("marshal hard state: %v", err))
	}
	return rec
}

func decodeApplied(b []byte) (appliedMeta, error) {
	var m appliedMeta
	v2 := bytes.HasPrefix(b, appliedV2)
	if v2 {
		b = b[len(appliedV2):]
	}
	idx, n := binary.Uvarint(b)
	if n <= 0 {
		return m, fmt.Errorf("%w: applied index", storage.ErrCorrupt)
	}
	rev, k := binary.Varint(b[n:])
	if k <= 0 {
		return m, fmt.Errorf("%w: applied revision", storage.ErrCorrupt)
	}
	n += k
	if v2 {
		if m.TimeNs, k = binary.Varint(b[n:]); k <= 0 {
			return m, fmt.Errorf("%w: applied time", storage.ErrCorrupt)
		}
		n += k
	}
	m.Index, m.Revision = idx, rev
	if err := m.Conf.Unmarshal(b[n:]); err != nil {
		return m, fmt.Errorf("%w: applied conf state: %v", storage.ErrCorrupt, err)
	}
	return m, nil
}

// getSealed reads and verifies one record.
func getSealed(r storage.Reader, key []byte) ([]byte, bool, error) {
	v, ok, err := r.Get(key)
	if err != nil || !ok {
		return nil, ok, err
	}
	payload, err := storage.Open(key, v)
	return payload, err == nil, err
}
