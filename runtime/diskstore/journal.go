package diskstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/aspen-db/aspen/core/storage"
)

// A journal holds one batch too large for a Badger transaction, under
//
//	0x00 "batch/" seq(8) "/chunk/" n(8)   the batch's encoding, in chunks
//	0x00 "batch/" seq(8) "/commit"        the marker: chunk count, length, CRC-32C
//
// with seq and n big-endian, so that chunks sort in order before their marker.
var journalPrefix = []byte("\x00batch/")

const (
	chunkTag  = "/chunk/"
	markerTag = "/commit"
	// markerBytes is the marker's value: chunk count, encoding length, checksum.
	markerBytes = 8 + 8 + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func journalKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(bytes.Clone(journalPrefix), seq)
}

func chunkKey(seq, n uint64) []byte {
	return binary.BigEndian.AppendUint64(append(journalKey(seq), chunkTag...), n)
}

func markerKey(seq uint64) []byte {
	return append(journalKey(seq), markerTag...)
}

// applyJournaled applies ops over several transactions so that a crash at any
// point leaves the batch either committed in its journal or not in the store.
func (s *Store) applyJournaled(ops []storage.Op) error {
	s.lastJournal++
	seq := s.lastJournal
	if err := s.writeJournal(seq, encodeOps(ops), true); err != nil {
		return fmt.Errorf("diskstore: apply: journal %d: %w", seq, err)
	}
	if err := s.finishJournal(seq, ops); err != nil {
		return fmt.Errorf("diskstore: apply: journal %d: %w", seq, err)
	}
	return nil
}

// writeJournal writes enc's chunks and, if commit is set, the marker after them.
// Each step is synced before the next because Badger's log is not synced as it
// is written: a marker that survived a crash its chunks did not would commit a
// batch that cannot be read back.
func (s *Store) writeJournal(seq uint64, enc []byte, commit bool) error {
	chunkBytesMax := int(s.db.MaxBatchSize() / 4)
	var puts []storage.Op
	for n := uint64(0); len(enc) > 0; n++ {
		size := min(len(enc), chunkBytesMax)
		puts = append(puts, storage.Op{Key: chunkKey(seq, n), Value: enc[:size]})
		enc = enc[size:]
	}
	if err := s.writeOps(puts); err != nil {
		return fmt.Errorf("write chunks: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("sync chunks: %w", err)
	}
	if !commit {
		return nil
	}
	length, sum := joinedValues(puts)
	marker := storage.Op{Key: markerKey(seq), Value: encodeMarker(uint64(len(puts)), length, sum)}
	if err := s.writeOps([]storage.Op{marker}); err != nil {
		return fmt.Errorf("write marker: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("sync marker: %w", err)
	}
	return nil
}

// finishJournal applies a committed journal's ops, then deletes the journal.
// Syncing between the two keeps a lost write of the ops from outliving the
// journal that would redo them, and syncing after keeps a later batch from
// being overwritten by a redo of this one.
func (s *Store) finishJournal(seq uint64, ops []storage.Op) error {
	if err := s.writeOps(ops); err != nil {
		return fmt.Errorf("write ops: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("sync ops: %w", err)
	}
	return s.dropJournal(seq)
}

// dropJournal deletes every key of journal seq and syncs the deletes.
func (s *Store) dropJournal(seq uint64) error {
	var deletes []storage.Op
	txn := s.db.NewTransaction(false)
	err := iterate(txn, journalKey(seq), journalKey(seq), func(key, _ []byte) error {
		deletes = append(deletes, storage.Op{Key: key, Delete: true})
		return nil
	})
	txn.Discard()
	if err != nil {
		return fmt.Errorf("list journal: %w", err)
	}
	if err := s.writeOps(deletes); err != nil {
		return fmt.Errorf("delete journal: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("sync journal delete: %w", err)
	}
	return nil
}

// joinedValues returns the length and CRC-32C of the puts' values, end to end.
func joinedValues(puts []storage.Op) (length uint64, sum uint32) {
	for _, p := range puts {
		length += uint64(len(p.Value))
		sum = crc32.Update(sum, castagnoli, p.Value)
	}
	return length, sum
}

func encodeMarker(chunks, length uint64, sum uint32) []byte {
	out := binary.BigEndian.AppendUint64(nil, chunks)
	out = binary.BigEndian.AppendUint64(out, length)
	return binary.BigEndian.AppendUint32(out, sum)
}

func decodeMarker(value []byte) (chunks, length uint64, sum uint32, err error) {
	if len(value) != markerBytes {
		return 0, 0, 0, fmt.Errorf("%w: journal marker of %d bytes, want %d", storage.ErrCorrupt, len(value), markerBytes)
	}
	return binary.BigEndian.Uint64(value), binary.BigEndian.Uint64(value[8:]), binary.BigEndian.Uint32(value[16:]), nil
}

// Op kinds in a batch encoding.
const (
	kindPut    byte = 1
	kindDelete byte = 2
)

// encodeOps encodes ops as, for each: kind, key length, key and, for a put,
// value length and value; lengths are uvarints.
func encodeOps(ops []storage.Op) []byte {
	var out []byte
	for _, op := range ops {
		if op.Delete {
			out = append(out, kindDelete)
			out = appendBytes(out, op.Key)
			continue
		}
		out = append(out, kindPut)
		out = appendBytes(appendBytes(out, op.Key), op.Value)
	}
	return out
}

func appendBytes(out, b []byte) []byte {
	return append(binary.AppendUvarint(out, uint64(len(b))), b...)
}

// decodeOps reverses encodeOps. The ops alias enc.
func decodeOps(enc []byte) ([]storage.Op, error) {
	var ops []storage.Op
	for len(enc) > 0 {
		kind := enc[0]
		key, rest, err := cutBytes(enc[1:])
		if err != nil {
			return nil, fmt.Errorf("op %d key: %w", len(ops), err)
		}
		switch kind {
		case kindDelete:
			ops = append(ops, storage.Op{Key: key, Delete: true})
		case kindPut:
			var value []byte
			if value, rest, err = cutBytes(rest); err != nil {
				return nil, fmt.Errorf("op %d value: %w", len(ops), err)
			}
			ops = append(ops, storage.Op{Key: key, Value: value})
		default:
			return nil, fmt.Errorf("%w: op %d has kind %d", storage.ErrCorrupt, len(ops), kind)
		}
		enc = rest
	}
	return ops, nil
}

// cutBytes splits a uvarint-length-prefixed byte string off the front of enc.
func cutBytes(enc []byte) (b, rest []byte, err error) {
	n, size := binary.Uvarint(enc)
	if size <= 0 || n > uint64(len(enc)-size) {
		return nil, nil, fmt.Errorf("%w: truncated length-prefixed bytes", storage.ErrCorrupt)
	}
	end := size + int(n)
	return enc[size:end:end], enc[end:], nil
}
