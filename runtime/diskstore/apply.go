package diskstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/aspen-db/aspen/core/storage"
)

// valueBytesMax bounds a value well inside one value log file, which Badger
// requires of every value.
const valueBytesMax = valueLogFileBytes / 2

// Apply makes every op in b visible at once, later ops on a key winning, and
// atomically with respect to crashes: after a crash and Open, either all of b
// is in the store or none of it is. Only Sync makes b durable.
//
// b is appended to the write-ahead log as one record; its log keys are
// indexed there, and its other ops wait for the log's sync, after which the
// state writer puts them into Badger.
// If the append fails, the store refuses every call until it is reopened.
func (s *Store) Apply(b storage.Batch) error {
	if err := checkBatch(b); err != nil {
		return fmt.Errorf("diskstore: apply: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableLocked(); err != nil {
		return err
	}
	if b.Empty() {
		return nil
	}
	seq := s.wal.next
	rec := encodeRecord(seq, b.Ops)
	seg, at, err := s.wal.append(rec)
	if err != nil {
		s.broken = fmt.Errorf("diskstore: apply: %w", err)
		return s.broken
	}
	// The pending ops alias rec, which nothing else holds: the caller may
	// reuse b's memory once Apply returns.
	p := pendingRecord{seq: seq, bytes: len(rec), ops: make([]storage.Op, 0, len(b.Ops))}
	if err := s.take(seg, at, rec[recordHeaderBytes:], func(op storage.Op) { p.ops = append(p.ops, op) }); err != nil {
		s.broken = fmt.Errorf("diskstore: apply: %w", err) // the record is written but not indexed
		return s.broken
	}
	s.pending = append(s.pending, p)
	s.pendingBytes += len(rec)
	if s.pendingBytes > pendingBytesMax {
		// A node whose batches need no sync for long (they only apply)
		// would otherwise hold them all in memory.
		return s.syncLogLocked()
	}
	return nil
}

// syncLogLocked syncs the write-ahead log and hands what it synced to the
// state writer. Callers hold mu.
func (s *Store) syncLogLocked() error {
	if err := s.wal.sync(); err != nil {
		s.broken = fmt.Errorf("diskstore: sync: %w", err)
		return s.broken
	}
	if s.synced != s.wal.next-1 {
		s.synced = s.wal.next - 1
		s.kickWriter()
	}
	return nil
}

// syncLocked syncs the write-ahead log and waits until Badger holds the
// state of every record in it. Callers hold mu.
func (s *Store) syncLocked() error {
	if err := s.syncLogLocked(); err != nil {
		return err
	}
	for s.flushed < s.synced && s.broken == nil {
		s.hurryWriter() // again after each write: it may have been woken for less
		s.flushedCond.Wait()
	}
	return s.broken
}

// writeState writes records' state ops into Badger, each key's last op
// only, and the seq of the last record, written last: in one transaction when
// they fit one, else over several. A crash part way leaves Badger's seq where
// it was, and Open replays the records after it; replaying a sequence of puts
// and deletes over a state that holds some of its keys' final values ends in
// the same state.
func (s *Store) writeState(recs []pendingRecord) error {
	n := 1
	for _, r := range recs {
		n += len(r.ops)
	}
	ops := make([]storage.Op, 0, n)
	at := make(map[string]int, n)
	for _, r := range recs {
		for _, op := range r.ops {
			if i, ok := at[string(op.Key)]; ok {
				ops[i] = op
				continue
			}
			at[string(op.Key)] = len(ops)
			ops = append(ops, op)
		}
	}
	last := recs[len(recs)-1].seq
	ops = append(ops, storage.Op{Key: appliedKey, Value: binary.BigEndian.AppendUint64(nil, last)})
	err := s.applyInOneTxn(ops)
	if errors.Is(err, badger.ErrTxnTooBig) {
		err = s.writeOps(ops)
	}
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// checkBatch rejects, before anything is written, every op Badger would refuse,
// so that a batch in the log can always be written into Badger.
func checkBatch(b storage.Batch) error {
	for i, op := range b.Ops {
		if err := checkKey(op.Key); err != nil {
			return fmt.Errorf("op %d: %w", i, err)
		}
		if !op.Delete && len(op.Value) > valueBytesMax {
			return fmt.Errorf("op %d: value of %d bytes is longer than %d", i, len(op.Value), valueBytesMax)
		}
	}
	return nil
}

// applyInOneTxn commits ops as one Badger transaction, or returns badger.ErrTxnTooBig
// having written nothing.
func (s *Store) applyInOneTxn(ops []storage.Op) error {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	for _, op := range ops {
		if err := setOp(txn, op); err != nil {
			return fmt.Errorf("diskstore: apply: %w", err)
		}
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("diskstore: apply: commit: %w", err)
	}
	return nil
}

// setOp adds op to txn. Badger keeps op's slices until the transaction ends.
func setOp(txn *badger.Txn, op storage.Op) error {
	if op.Delete {
		return txn.Delete(op.Key)
	}
	return txn.Set(op.Key, op.Value)
}

// writeOps applies ops in order over as many transactions as it takes. It is
// not atomic: the write-ahead log replays what a crash interrupted.
func (s *Store) writeOps(ops []storage.Op) error {
	w := &txnWriter{db: s.db, bytesMax: int(s.db.MaxBatchSize())}
	w.txn = s.db.NewTransaction(true)
	defer func() { w.txn.Discard() }()
	for i, op := range ops {
		if err := w.add(op); err != nil {
			return fmt.Errorf("op %d: %w", i, err)
		}
	}
	if err := w.txn.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// txnWriter fills transactions up to Badger's limit, and up to bytesMax of key
// and value bytes, because Badger counts a value-log value by its pointer alone.
type txnWriter struct {
	db       *badger.DB
	txn      *badger.Txn
	bytesMax int
	ops      int // in txn
	bytes    int // of keys and values in txn
}

// add adds op to the transaction, first committing it if op does not fit.
func (w *txnWriter) add(op storage.Op) error {
	opBytes := len(op.Key) + len(op.Value)
	if w.ops > 0 && w.bytes+opBytes > w.bytesMax {
		if err := w.next(); err != nil {
			return err
		}
	}
	err := setOp(w.txn, op)
	if errors.Is(err, badger.ErrTxnTooBig) && w.ops > 0 {
		if err := w.next(); err != nil {
			return err
		}
		err = setOp(w.txn, op)
	}
	if err != nil {
		return err
	}
	w.ops, w.bytes = w.ops+1, w.bytes+opBytes
	return nil
}

// next commits the transaction and starts another.
func (w *txnWriter) next() error {
	if err := w.txn.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	w.txn = w.db.NewTransaction(true)
	w.ops, w.bytes = 0, 0
	return nil
}
