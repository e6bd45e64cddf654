package diskstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/aspen-db/aspen/core/storage"
)

// errFound stops a scan at its first key.
var errFound = errors.New("found")

// load replays the write-ahead log: it indexes the log keys of every record
// and writes the state ops of the records Badger does not reflect into it.
func (s *Store) load(segBytes int64) error {
	applied, err := s.readApplied()
	if err != nil {
		return err
	}
	var redo []pendingRecord
	s.wal, err = openWAL(filepath.Join(s.dir, walDirName), segBytes, func(r replayed) error {
		p := pendingRecord{seq: r.seq}
		err := s.take(r.seg, r.at, r.payload, func(op storage.Op) { p.ops = append(p.ops, op) })
		if err != nil {
			return fmt.Errorf("write-ahead log record %d: %w", r.seq, err)
		}
		if r.seq > applied {
			redo = append(redo, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("diskstore: open %s: %w", s.dir, err)
	}
	last := s.wal.next - 1
	switch {
	case last < applied:
		return fmt.Errorf("diskstore: open %s: %w: Badger reflects write-ahead log records up to %d, the log ends at %d",
			s.dir, storage.ErrCorrupt, applied, last)
	case s.wal.segs[0].first > applied+1:
		return fmt.Errorf("diskstore: open %s: %w: write-ahead log records %d to %d are missing",
			s.dir, storage.ErrCorrupt, applied+1, s.wal.segs[0].first-1)
	}
	s.synced, s.flushed, s.durable = last, last, applied
	if len(redo) == 0 {
		return nil
	}
	if err := s.writeState(redo); err != nil {
		return fmt.Errorf("diskstore: open %s: replay the write-ahead log: %w", s.dir, err)
	}
	return nil
}

// readApplied returns the seq Badger reflects, checking Badger holds no key
// it should not: none of the log's (they were kept in Badger before the
// write-ahead log) and no reserved key but its own.
func (s *Store) readApplied() (uint64, error) {
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	err := iterate(txn, s.logPrefix, s.logPrefix, func(key, _ []byte) error { return errFound })
	if errors.Is(err, errFound) {
		return 0, fmt.Errorf("diskstore: open %s: raft's log is in Badger: the directory was written by an Aspen older than its write-ahead log; restore a backup into a new directory", s.dir)
	}
	if err != nil {
		return 0, err
	}
	var applied uint64
	err = iterate(txn, reservedPrefix, reservedPrefix, func(key, value []byte) error {
		if string(key) != string(appliedKey) || len(value) != 8 {
			return fmt.Errorf("diskstore: open %s: %w: unexpected reserved key %q", s.dir, storage.ErrCorrupt, key)
		}
		applied = binary.BigEndian.Uint64(value)
		return nil
	})
	return applied, err
}
