package diskstore

import (
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
// A batch that fits one Badger transaction is committed as one. A larger one is
// journaled under reserved keys, committed by a marker, applied over several
// transactions, and its journal deleted; Open finishes a committed journal a
// crash interrupted and discards an uncommitted one. If a journaled Apply fails
// part way, the store refuses every call until it is reopened.
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
	err := s.applyInOneTxn(b.Ops)
	if !errors.Is(err, badger.ErrTxnTooBig) {
		return err
	}
	if err := s.applyJournaled(b.Ops); err != nil {
		s.broken = err
		return err
	}
	return nil
}

// checkBatch rejects, before anything is written, every op Badger would refuse,
// so that a journaled batch can always be applied once it is committed.
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

// applyInOneTxn commits ops as one transaction, or returns badger.ErrTxnTooBig
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
// not atomic: callers journal what must be.
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
