// Package diskstore is the runtime's storage.Store, on Badger v4.
//
// Every batch is applied atomically, even one larger than Badger's
// per-transaction limit (a snapshot install rewrites every key): such a batch
// is first journaled under reserved keys, then applied, then its journal is
// deleted, and Open finishes or discards a journal a crash left behind.
//
// Keys starting with 0x00 are reserved for that journal. Core keys never start
// with 0x00; Apply rejects a batch that uses one, Get and Scan reject them, and
// a Scan over every key skips them. Badger reserves keys starting with
// "!badger!", which Apply rejects too.
//
// Writes are not synced as they are applied: Sync makes every applied batch
// durable, and the node loop calls it before acting on anything that depends
// on a batch.
package diskstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"

	"github.com/aspen-db/aspen/core/storage"
)

// ErrReservedKey marks a key in the prefix reserved for the store's journal or Badger.
var ErrReservedKey = errors.New("diskstore: reserved key")

// ErrClosed is returned by every method of a closed Store.
var ErrClosed = errors.New("diskstore: store is closed")

// Store is a storage.Store in a Badger database. Its methods may be called from
// several goroutines, except Close, which must follow every other call.
type Store struct {
	db  *badger.DB
	dir string

	// mu is held for writing across each Apply, so that a journaled batch
	// applied over several Badger transactions is never half-visible: readers
	// hold it only while taking their Badger snapshot.
	mu          sync.RWMutex
	closed      bool
	broken      error  // set when a journaled Apply failed part way; reopening repairs it
	lastJournal uint64 // sequence number of the last journal written since Open

	gc    *collector            // rewrites value log files mostly dead (vlog.go)
	gcErr atomic.Pointer[error] // the last value log rewrite that failed, for Close to report
}

var _ storage.Store = (*Store)(nil)

// Open opens (creating if needed) the store in dir and finishes or discards any
// batch journal a crash left behind.
func Open(dir string, opts Options) (*Store, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	db, err := badger.Open(opts.badgerOptions(dir))
	if err != nil {
		return nil, fmt.Errorf("diskstore: open %s: %w", dir, err)
	}
	s := &Store{db: db, dir: dir}
	if err := s.recover(); err != nil {
		return nil, errors.Join(err, s.closeDB())
	}
	s.startCollector()
	return s, nil
}

// Close closes the store. Batches applied since the last Sync are flushed by a
// clean Close, but only Sync promises they survive a crash.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	s.stopCollector()
	var gcErr error
	if p := s.gcErr.Load(); p != nil {
		gcErr = fmt.Errorf("diskstore: value log rewrite: %w", *p)
	}
	return errors.Join(gcErr, s.closeDB())
}

func (s *Store) closeDB() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("diskstore: close %s: %w", s.dir, err)
	}
	return nil
}

// Sync makes every batch applied so far durable.
func (s *Store) Sync() error {
	if err := s.usable(); err != nil {
		return err
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("diskstore: sync: %w", err)
	}
	return nil
}

// Size returns the disk space taken by the store's table files (lsm) and value
// log files (vlog). It counts allocated blocks where the system reports them:
// Badger maps the open value log file at twice its size limit, sparsely.
func (s *Store) Size() (lsm, vlog int64) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, 0 // Size feeds metrics only; a vanished directory reads as empty.
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue // Compaction deleted the file after it was listed.
		}
		switch filepath.Ext(e.Name()) {
		case ".sst":
			lsm += diskBytes(info)
		case ".vlog":
			vlog += diskBytes(info)
		}
	}
	return lsm, vlog
}

// usableLocked reports why the store cannot be used, or nil. Callers hold mu.
func (s *Store) usableLocked() error {
	if s.closed {
		return ErrClosed
	}
	if s.broken != nil {
		return fmt.Errorf("diskstore: reopen to recover from a failed batch: %w", s.broken)
	}
	return nil
}

// usable is usableLocked for callers that do not hold mu.
func (s *Store) usable() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.usableLocked()
}
