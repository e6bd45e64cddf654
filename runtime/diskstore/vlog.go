package diskstore

import (
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Badger keeps values of valueThresholdByte or more (topic segments, large
// KV values, large log entries) in its value log, and never gives back the
// space of those later deleted or overwritten unless asked to: without this,
// a node publishing to a topic with retention grew its value log by every
// byte ever published.
const (
	// valueLogGCEvery is how often the store looks for a value log file
	// worth rewriting. Compactions tell Badger how much of each file is
	// dead; a rewrite copies the live rest to the head of the log.
	valueLogGCEvery = time.Minute
	// valueLogDiscardRatio is the dead share at which a file is rewritten:
	// half, so a rewrite copies at most as much as it frees.
	valueLogDiscardRatio = 0.5
	// valueLogRewritesMax bounds the files rewritten in one pass, so a pass
	// after a mass delete does not hold the disk for long.
	valueLogRewritesMax = 8
)

// collector runs collectValueLog every valueLogGCEvery until stopped.
type collector struct {
	stop chan struct{}
	done chan struct{}
}

func (s *Store) startCollector() {
	c := &collector{stop: make(chan struct{}), done: make(chan struct{})}
	s.gc = c
	go func() {
		defer close(c.done)
		t := time.NewTicker(valueLogGCEvery)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
				s.collectValueLog()
			}
		}
	}()
}

// stopCollector stops the collector and waits for a pass under way: Badger
// refuses a value log GC on a closed database, but Close must not race one.
func (s *Store) stopCollector() {
	if s.gc != nil {
		close(s.gc.stop)
		<-s.gc.done
		s.gc = nil
	}
}

// collectValueLog rewrites value log files whose dead share passed
// valueLogDiscardRatio, at most valueLogRewritesMax of them, and says how
// many it rewrote. Badger runs one such pass at a time and keeps live values
// readable throughout; a file being read is deleted once its readers finish.
//
// Badger deletes a rewritten file as soon as the live values are written
// to the head of the log, without syncing them (SyncWrites is off): a power
// loss before the next sync could find the file gone and the moved values
// not on disk. Syncing after each rewrite narrows that to the moment
// between Badger's unlink and this Sync, where it was up to the kernel's
// writeback delay (30 s) on an idle node.
func (s *Store) collectValueLog() int {
	n := 0
	for n < valueLogRewritesMax {
		err := s.db.RunValueLogGC(valueLogDiscardRatio)
		if err == nil {
			n++
			err = s.db.Sync()
		}
		if err != nil {
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				s.gcErr.Store(&err)
			}
			return n
		}
	}
	return n
}
