package diskstore

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/aspen-db/aspen/core/storage"
)

// logLoc is where a log key's current value lies in the write-ahead log.
type logLoc struct {
	seg *segment
	at  int64
	n   int
}

// take indexes the log ops of a record's payload, which starts at offset at
// of seg, and hands every other op to state, in order.
func (s *Store) take(seg *segment, at int64, payload []byte, state func(storage.Op)) error {
	return walkOps(payload, func(op storage.Op, valueAt int) {
		if !bytes.HasPrefix(op.Key, s.logPrefix) {
			state(op)
			return
		}
		if old, ok := s.log[string(op.Key)]; ok {
			old.seg.live--
			if op.Delete {
				delete(s.log, string(op.Key))
			}
		}
		if !op.Delete {
			s.log[string(op.Key)] = logLoc{seg: seg, at: at + int64(valueAt), n: len(op.Value)}
			seg.live++
		}
	})
}

func (s *Store) isLog(key []byte) bool { return bytes.HasPrefix(key, s.logPrefix) }

// readLog returns a copy of a log key's value. Callers hold mu.
func (s *Store) readLog(key []byte) ([]byte, bool, error) {
	loc, ok := s.log[string(key)]
	if !ok {
		return nil, false, nil
	}
	value := make([]byte, loc.n) // non-nil even when empty: present
	if _, err := loc.seg.f.ReadAt(value, loc.at); err != nil {
		return nil, false, fmt.Errorf("diskstore: get %q: read the write-ahead log: %w", key, err)
	}
	return value, true, nil
}

// keyValue is one entry a Scan returns.
type keyValue struct{ key, value []byte }

// scanLog returns copies of the log keys with prefix and their values, in key
// order. Callers hold mu.
func (s *Store) scanLog(prefix []byte) ([]keyValue, error) {
	if !bytes.HasPrefix(prefix, s.logPrefix) && !bytes.HasPrefix(s.logPrefix, prefix) {
		return nil, nil
	}
	var keys []string
	for k := range s.log {
		if strings.HasPrefix(k, string(prefix)) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	out := make([]keyValue, 0, len(keys))
	for _, k := range keys {
		value, _, err := s.readLog([]byte(k))
		if err != nil {
			return nil, err
		}
		out = append(out, keyValue{key: []byte(k), value: value})
	}
	return out, nil
}
