package diskstore

import (
	"fmt"
	"time"

	"github.com/aspen-db/aspen/core/storage"
)

// pendingBytesMax bounds the records held for the state writer before Apply
// syncs the log itself.
const pendingBytesMax = 16 << 20

// pendingRecord is a record in the log whose state Badger does not hold yet.
type pendingRecord struct {
	seq   uint64
	ops   []storage.Op // its ops outside the log prefix, aliasing the record
	bytes int          // the record's size
}

// The state writer puts synced records' state into Badger on a goroutine of
// its own, so the node loop does not wait for Badger's write (a transaction
// handed to Badger's own writer goroutine: 55-75 µs per Ready at one client,
// 150-250 µs under 64) between one round and the next. It writes at most
// once per stateWriteEvery: the records synced meanwhile go together, and
// each key they touch is written once (a put's client session record, the
// applied index and the hard state are rewritten by nearly every record).
// A Sync, which waits for Badger, cuts the wait short.
const stateWriteEvery = 20 * time.Millisecond

func (s *Store) startWriter() {
	s.kick = make(chan struct{}, 1)
	s.hurry = make(chan struct{}, 1)
	s.writerDone = make(chan struct{})
	go func() {
		defer close(s.writerDone)
		pace := time.NewTimer(0)
		for range s.kick {
			select {
			case <-pace.C:
			case <-s.hurry:
			}
			s.writeSynced()
			pace.Reset(stateWriteEvery)
		}
	}()
}

func (s *Store) kickWriter() {
	select {
	case s.kick <- struct{}{}:
	default: // a wake-up is already due, and it takes everything synced
	}
}

// hurryWriter ends the writer's pause: someone waits for Badger.
func (s *Store) hurryWriter() {
	select {
	case s.hurry <- struct{}{}:
	default:
	}
}

// stopWriter stops the writer once it has written what it was woken for.
func (s *Store) stopWriter() {
	close(s.hurry)
	close(s.kick)
	<-s.writerDone
}

// writeSynced writes the state of every pending record the log has synced.
func (s *Store) writeSynced() {
	s.mu.Lock()
	n := 0
	for n < len(s.pending) && s.pending[n].seq <= s.synced {
		n++
	}
	if n == 0 || s.broken != nil {
		s.mu.Unlock()
		return
	}
	recs := make([]pendingRecord, n)
	copy(recs, s.pending)
	for _, r := range recs {
		s.pendingBytes -= r.bytes
	}
	s.pending = append(s.pending[:0], s.pending[n:]...)
	s.mu.Unlock()

	t0 := time.Now()
	err := s.writeState(recs)
	if s.onStateWrite != nil {
		s.onStateWrite(time.Since(t0))
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.flushed = recs[n-1].seq
		err = s.dropSegments()
	}
	if err != nil && s.broken == nil {
		s.broken = fmt.Errorf("diskstore: %w", err)
	}
	s.flushedCond.Broadcast()
}

// dropSegments removes the oldest log segments while none of their log keys
// is current and Badger holds their state on disk; the newest always stays.
// Badger is synced first when it may not hold that state yet, without mu
// held meanwhile: a Badger sync takes milliseconds, which the node loop's
// next Apply need not wait out. Callers hold mu.
func (s *Store) dropSegments() error {
	for len(s.wal.segs) > 1 && s.wal.segs[0].live == 0 && s.wal.segs[0].last <= s.flushed {
		if s.wal.segs[0].last > s.durable {
			target := s.flushed
			s.mu.Unlock()
			err := s.db.Sync()
			s.mu.Lock()
			if err != nil {
				return fmt.Errorf("badger: %w", err)
			}
			s.durable = max(s.durable, target)
			continue // the segments may have moved meanwhile: look again
		}
		if err := s.wal.dropFront(); err != nil {
			return err
		}
	}
	return nil
}
