package diskstore

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/aspen-db/aspen/core/storage"
)

// Options sizes a Store. The zero value is not usable: start from DefaultOptions.
type Options struct {
	// MemTableBytes is the size of one Badger memtable. It also fixes Badger's
	// per-transaction limit (15% of it), above which Sync writes a batch's
	// state over several transactions.
	MemTableBytes int64
	// CacheBytes is the size of each of Badger's block and index caches.
	CacheBytes int64
	// Logger receives Badger's warnings and errors; nil silences Badger.
	Logger *slog.Logger
	// SegmentBytes is the size of one write-ahead log file.
	SegmentBytes int64
	// LogPrefix starts the keys kept in the write-ahead log alone (raft's
	// entries: written once, deleted after a later snapshot).
	LogPrefix []byte
	// OnStateWrite, when set, is told how long each write of synced
	// batches' state into Badger took (for metrics).
	OnStateWrite func(time.Duration)

	// tune, when set, adjusts Badger's options last: tests use small value
	// log files and eager compactions to see files rewritten.
	tune func(*badger.Options)
}

const (
	memTablesMax       = 2
	valueThresholdByte = 1 << 10
	valueLogFileBytes  = 64 << 20
	compactors         = 2 // Badger rejects 1; 0 would disable compaction.

	// memTableBytesMin keeps Badger's per-transaction limit above its largest
	// key (65000 bytes) plus an inline value, so that every op a batch may hold
	// fits in a transaction of its own and a batch's state can always be written.
	memTableBytesMin = 512 << 10

	// segmentBytesDefault holds a few seconds of a busy node's batches; a
	// rotation takes a spare file made in the background.
	segmentBytesDefault = 8 << 20
	segmentBytesMin     = 4 << 10
)

// DefaultOptions returns options under which an idle node stays well under
// 100 MB RSS: Badger's own defaults grow to about 400 MB. Memtables of 4 MB
// rather than 8 halve Badger's two arenas and the level-0 table builder,
// which holds a memtable's worth (the heap after the bench-etcd rounds);
// topic publishes, whose batches pass the smaller transaction limit more
// often and are journaled, kept their rate (BenchmarkTopicPublish).
func DefaultOptions() Options {
	return Options{
		MemTableBytes: 4 << 20,
		CacheBytes:    8 << 20,
		SegmentBytes:  segmentBytesDefault,
		LogPrefix:     storage.LogPrefix,
	}
}

func (o Options) validate() error {
	if o.MemTableBytes < memTableBytesMin {
		return fmt.Errorf("diskstore: MemTableBytes %d is below the minimum %d", o.MemTableBytes, memTableBytesMin)
	}
	if o.SegmentBytes < segmentBytesMin {
		return fmt.Errorf("diskstore: SegmentBytes %d is below the minimum %d", o.SegmentBytes, segmentBytesMin)
	}
	if len(o.LogPrefix) == 0 {
		return fmt.Errorf("diskstore: LogPrefix is empty")
	}
	if o.CacheBytes < 0 {
		return fmt.Errorf("diskstore: CacheBytes %d is negative", o.CacheBytes)
	}
	return nil
}

// badgerOptions translates o into Badger's options for a database in dir.
func (o Options) badgerOptions(dir string) badger.Options {
	opts := badger.DefaultOptions(dir).
		WithMemTableSize(o.MemTableBytes).
		WithNumMemtables(memTablesMax).
		WithBlockCacheSize(o.CacheBytes).
		WithIndexCacheSize(o.CacheBytes).
		WithValueThreshold(valueThresholdByte).
		WithValueLogFileSize(valueLogFileBytes).
		WithNumCompactors(compactors).
		WithCompression(options.None).
		// Durability comes from the write-ahead log, which Badger's writes
		// follow; Badger is synced only before log segments are removed.
		WithSyncWrites(false).
		// One goroutine writes, so there are no conflicts to detect; skipping it
		// saves a hash set per transaction.
		WithDetectConflicts(false).
		// Size walks the directory itself; Badger's metrics are process-global
		// expvars refreshed once a minute.
		WithMetricsEnabled(false).
		// Badger drops a table block that fails to read or verify as if its keys
		// did not exist, on Get and on iteration alike. Verifying every table
		// when it is opened turns on-disk corruption into an Open error instead.
		WithChecksumVerificationMode(options.OnTableRead).
		// Values in the value log do return errors, when checked.
		WithVerifyValueChecksum(true).
		WithLogger(newLogger(o.Logger))
	if o.tune != nil {
		o.tune(&opts)
	}
	return opts
}

// newLogger adapts l to Badger's logger, or returns nil (silence) for a nil l.
func newLogger(l *slog.Logger) badger.Logger {
	if l == nil {
		return nil
	}
	return quietLogger{l: l}
}

// quietLogger forwards Badger's warnings and errors and drops its chatter:
// Badger logs every compaction and flush at info level.
type quietLogger struct{ l *slog.Logger }

func (q quietLogger) Errorf(format string, args ...any) {
	q.l.Error(fmt.Sprintf(format, args...), "component", "badger")
}

func (q quietLogger) Warningf(format string, args ...any) {
	q.l.Warn(fmt.Sprintf(format, args...), "component", "badger")
}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Debugf(string, ...any) {}
