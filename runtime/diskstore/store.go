// Package diskstore is the runtime's storage.Store: a write-ahead log of its
// own for durability and for raft's log, and Badger v4 for the rest.
//
// Every batch is first appended to the write-ahead log (wal.go) as one
// checksummed record. Sync syncs the log (one fdatasync of a preallocated
// file), then writes what the batch holds outside the log prefix (the
// replicated state) into Badger, unsynced, with the sequence number of the
// last record it reflects. Keys under the log prefix (raft's entries) live
// only in the log: an index in memory says where each one's value lies. So
// Badger never sees an entry that is written once and deleted a snapshot
// later, nor syncs per batch; it is synced only before the log segment
// holding records it may not have on disk is removed.
//
// A crash leaves the log's records up to the last synced one, perhaps more;
// Open replays the records past the sequence number Badger holds into
// Badger, so every batch is in the store whole or not at all, and every
// batch that was synced is there.
//
// Keys starting with 0x00 are reserved for the store itself, and "!badger!"
// for Badger: Apply rejects a batch that uses one, Get and Scan reject them,
// and a Scan over every key skips them.
package diskstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/aspen-db/aspen/core/storage"
)

// ErrReservedKey marks a key in the prefix reserved for the store itself or Badger.
var ErrReservedKey = errors.New("diskstore: reserved key")

// ErrClosed is returned by every method of a closed Store.
var ErrClosed = errors.New("diskstore: store is closed")

// Store is a storage.Store in a write-ahead log and a Badger database. Its
// methods may be called from several goroutines, except Close, which must
// follow every other call.
type Store struct {
	db  *badger.DB
	dir string

	logPrefix []byte // keys kept in the write-ahead log alone

	// mu guards what follows; the state writer (writer.go) holds it only
	// to take records and to record what it wrote.
	mu           sync.Mutex
	flushedCond  *sync.Cond // on mu: flushed moved, or the store broke
	closed       bool
	broken       error // set when a write failed part way; reopening repairs it
	wal          *wal
	log          map[string]logLoc // where the value of each log key lies
	pending      []pendingRecord   // records whose state Badger does not hold, oldest first
	pendingBytes int
	synced       uint64 // seq of the last record the log has synced
	flushed      uint64 // seq of the last record Badger reflects
	durable      uint64 // flushed, as of Badger's last Sync

	kick         chan struct{} // wakes the state writer
	hurry        chan struct{} // ends its pause between writes
	writerDone   chan struct{}
	onStateWrite func(time.Duration)

	gc    *collector            // rewrites value log files mostly dead (vlog.go)
	gcErr atomic.Pointer[error] // the last value log rewrite that failed, for Close to report
}

var _ storage.Store = (*Store)(nil)

// Open opens (creating if needed) the store in dir and brings Badger up to
// the last record of the write-ahead log.
func Open(dir string, opts Options) (*Store, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	db, err := badger.Open(opts.badgerOptions(dir))
	if err != nil {
		return nil, fmt.Errorf("diskstore: open %s: %w", dir, err)
	}
	s := &Store{db: db, dir: dir, logPrefix: opts.LogPrefix, log: make(map[string]logLoc), onStateWrite: opts.OnStateWrite}
	s.flushedCond = sync.NewCond(&s.mu)
	if err := s.load(opts.SegmentBytes); err != nil {
		if s.wal != nil {
			err = errors.Join(err, s.wal.close())
		}
		return nil, errors.Join(err, s.closeDB())
	}
	s.startWriter()
	s.startCollector()
	return s, nil
}

// Close syncs every batch applied and closes the store.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.stopCollector()
	var errs []error
	if s.broken == nil {
		errs = append(errs, s.syncLocked())
	}
	s.mu.Unlock()
	s.stopWriter() // it takes mu to record what it wrote
	if p := s.gcErr.Load(); p != nil {
		errs = append(errs, fmt.Errorf("diskstore: value log rewrite: %w", *p))
	}
	errs = append(errs, s.wal.close(), s.closeDB())
	return errors.Join(errs...)
}

func (s *Store) closeDB() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("diskstore: close %s: %w", s.dir, err)
	}
	return nil
}

// Sync makes every batch applied so far durable and waits until Badger
// holds their state.
func (s *Store) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableLocked(); err != nil {
		return err
	}
	return s.syncLocked()
}

// SyncLog makes every batch applied so far durable, as Sync does, and leaves
// their state to the state writer: the node loop sends what waits on
// durability while Badger is written.
func (s *Store) SyncLog() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableLocked(); err != nil {
		return err
	}
	return s.syncLogLocked()
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
