package diskstore

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// reservedPrefix starts every key the store keeps for itself.
var reservedPrefix = []byte{0x00}

// appliedKey holds the seq of the last write-ahead log record Badger reflects.
var appliedKey = []byte("\x00wal/applied")

// firstUserKey is the smallest key outside reservedPrefix.
var firstUserKey = []byte{0x01}

// badgerPrefix starts the keys Badger keeps for itself; its transactions refuse them.
var badgerPrefix = []byte("!badger!")

// keyBytesMax is Badger's largest key.
const keyBytesMax = 65000

// checkKey rejects a key a caller may not read or write.
func checkKey(key []byte) error {
	switch {
	case len(key) == 0:
		return errors.New("empty key")
	case len(key) > keyBytesMax:
		return fmt.Errorf("key of %d bytes is longer than %d", len(key), keyBytesMax)
	case bytes.HasPrefix(key, reservedPrefix), bytes.HasPrefix(key, badgerPrefix):
		return fmt.Errorf("%w %q", ErrReservedKey, key)
	}
	return nil
}

// Get returns a copy of the value stored under key.
func (s *Store) Get(key []byte) ([]byte, bool, error) {
	if err := checkKey(key); err != nil {
		return nil, false, fmt.Errorf("diskstore: get: %w", err)
	}
	s.mu.Lock()
	if err := s.readable(); err != nil {
		s.mu.Unlock()
		return nil, false, err
	}
	if s.isLog(key) {
		defer s.mu.Unlock()
		return s.readLog(key)
	}
	txn := s.db.NewTransaction(false)
	s.mu.Unlock()
	defer txn.Discard()
	return getIn(txn, key)
}

// readable makes the store ready for a read: Badger must hold every batch
// applied, and may be written only once the log is synced. Reads happen when
// a node starts, so syncing for them costs nothing that matters. Callers hold mu.
func (s *Store) readable() error {
	if err := s.usableLocked(); err != nil {
		return err
	}
	return s.syncLocked()
}

// getIn reads key in txn, copying the value out of Badger's buffers.
func getIn(txn *badger.Txn, key []byte) ([]byte, bool, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("diskstore: get %q: %w", key, err)
	}
	// A present empty value is returned non-nil, so that it reads as present.
	value, err := item.ValueCopy(make([]byte, 0, item.ValueSize()))
	if err != nil {
		return nil, false, fmt.Errorf("diskstore: get %q: read value: %w", key, err)
	}
	return value, true, nil
}

// Scan calls fn with copies of every key with prefix and its value, in
// ascending key order, stopping at fn's first error and returning it. It reads
// one snapshot: batches applied while it runs are not seen.
func (s *Store) Scan(prefix []byte, fn func(key, value []byte) error) error {
	if bytes.HasPrefix(prefix, reservedPrefix) {
		return fmt.Errorf("%w: scan %q", ErrReservedKey, prefix)
	}
	s.mu.Lock()
	if err := s.readable(); err != nil {
		s.mu.Unlock()
		return err
	}
	logs, err := s.scanLog(prefix)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	txn := s.db.NewTransaction(false)
	s.mu.Unlock()
	defer txn.Discard()
	// Badger holds no log key, so the two never share one.
	i := 0
	err = scanIn(txn, prefix, func(key, value []byte) error {
		for ; i < len(logs) && bytes.Compare(logs[i].key, key) < 0; i++ {
			if err := fn(logs[i].key, logs[i].value); err != nil {
				return err
			}
		}
		return fn(key, value)
	})
	for ; err == nil && i < len(logs); i++ {
		err = fn(logs[i].key, logs[i].value)
	}
	return err
}

// scanIn is Scan within txn; an empty prefix starts past the reserved keys.
func scanIn(txn *badger.Txn, prefix []byte, fn func(key, value []byte) error) error {
	start := prefix
	if len(prefix) == 0 {
		start = firstUserKey
	}
	return iterate(txn, prefix, start, fn)
}

// iterate calls fn with copies of the keys with prefix from start onwards.
func iterate(txn *badger.Txn, prefix, start []byte, fn func(key, value []byte) error) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	opts.PrefetchValues = false // Values are copied one at a time below.
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(start); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		key := item.KeyCopy(nil)
		value, err := item.ValueCopy(make([]byte, 0, item.ValueSize()))
		if err != nil {
			return fmt.Errorf("diskstore: scan %q: read value of %q: %w", prefix, key, err)
		}
		if err := fn(key, value); err != nil {
			return err
		}
	}
	return nil
}
