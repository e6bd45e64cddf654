package diskstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"

	"github.com/aspen-db/aspen/core/storage"
)

// journal is what a crash left of one journal.
type journal struct {
	chunks [][]byte
	marker []byte // nil when the batch was never committed
}

// recover finishes every committed journal, in the order written, and discards
// every uncommitted one.
func (s *Store) recover() error {
	journals, err := s.readJournals()
	if err != nil {
		return fmt.Errorf("diskstore: recover: %w", err)
	}
	seqs := make([]uint64, 0, len(journals))
	for seq := range journals {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	for _, seq := range seqs {
		if err := s.recoverJournal(seq, journals[seq]); err != nil {
			return fmt.Errorf("diskstore: recover journal %d: %w", seq, err)
		}
		s.lastJournal = seq
	}
	return nil
}

func (s *Store) recoverJournal(seq uint64, j *journal) error {
	if j.marker == nil {
		return s.dropJournal(seq)
	}
	enc, err := j.assemble()
	if err != nil {
		return err
	}
	ops, err := decodeOps(enc)
	if err != nil {
		return err
	}
	// Redoing the ops is idempotent: no batch was applied after this one, since
	// a journaled Apply deletes its journal before returning.
	return s.finishJournal(seq, ops)
}

// readJournals reads every reserved key, failing on any outside the journal layout.
func (s *Store) readJournals() (map[uint64]*journal, error) {
	journals := make(map[uint64]*journal)
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	err := iterate(txn, reservedPrefix, reservedPrefix, func(key, value []byte) error {
		seq, n, isMarker, err := parseJournalKey(key)
		if err != nil {
			return err
		}
		j := journals[seq]
		if j == nil {
			j = &journal{}
			journals[seq] = j
		}
		if isMarker {
			j.marker = value
			return nil
		}
		if n != uint64(len(j.chunks)) {
			return fmt.Errorf("%w: journal %d: chunk %d follows %d chunks", storage.ErrCorrupt, seq, n, len(j.chunks))
		}
		j.chunks = append(j.chunks, value)
		return nil
	})
	return journals, err
}

// parseJournalKey returns the journal and chunk a reserved key belongs to.
func parseJournalKey(key []byte) (seq, n uint64, isMarker bool, err error) {
	rest, ok := bytes.CutPrefix(key, journalPrefix)
	if !ok || len(rest) < 8 {
		return 0, 0, false, fmt.Errorf("%w: reserved key %q is not a journal key", storage.ErrCorrupt, key)
	}
	seq, rest = binary.BigEndian.Uint64(rest), rest[8:]
	if string(rest) == markerTag {
		return seq, 0, true, nil
	}
	rest, ok = bytes.CutPrefix(rest, []byte(chunkTag))
	if !ok || len(rest) != 8 {
		return 0, 0, false, fmt.Errorf("%w: reserved key %q is not a journal key", storage.ErrCorrupt, key)
	}
	return seq, binary.BigEndian.Uint64(rest), false, nil
}

// assemble joins a committed journal's chunks, checking them against its marker.
func (j *journal) assemble() ([]byte, error) {
	chunks, length, sum, err := decodeMarker(j.marker)
	if err != nil {
		return nil, err
	}
	if chunks != uint64(len(j.chunks)) {
		return nil, fmt.Errorf("%w: marker counts %d chunks, found %d", storage.ErrCorrupt, chunks, len(j.chunks))
	}
	enc := bytes.Join(j.chunks, nil)
	if uint64(len(enc)) != length {
		return nil, fmt.Errorf("%w: marker says %d bytes, chunks hold %d", storage.ErrCorrupt, length, len(enc))
	}
	if got := crc32.Checksum(enc, castagnoli); got != sum {
		return nil, fmt.Errorf("%w: journal checksum %08x, want %08x", storage.ErrCorrupt, got, sum)
	}
	return enc, nil
}
