package diskstore

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/aspen-db/aspen/core/storage"
)

// Values deleted or overwritten give their value log space back, and the
// values still live stay readable after their files are rewritten.
func TestValueLogIsCollected(t *testing.T) {
	o := DefaultOptions()
	o.tune = func(b *badger.Options) {
		b.ValueLogFileSize = 1 << 20
		b.NumLevelZeroTables = 1 // every flushed memtable is compacted into the levels
	}
	s := openStore(t, t.TempDir(), o)
	value := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 4<<10) } // over the value threshold
	const keys = 1500                                                           // 6 MB: several value log files
	key := func(i int) []byte { return fmt.Appendf(nil, "v/%05d", i) }
	for i := 0; i < keys; i += 50 {
		var b storage.Batch
		for j := i; j < i+50; j++ {
			b.Ops = append(b.Ops, storage.Op{Key: key(j), Value: value(j)})
		}
		apply(t, s, b.Ops...)
	}
	var b storage.Batch
	for i := range keys {
		if i%10 != 0 { // every tenth stays
			b.Ops = append(b.Ops, storage.Op{Key: key(i), Delete: true})
		}
	}
	// A clean close flushes the memtable (once with the values, once with
	// their deletes); compacting the tables into the levels is what tells
	// Badger which values died.
	s = reopen(t, s, o)
	apply(t, s, b.Ops...)
	s = reopen(t, s, o)
	if err := s.db.Flatten(2); err != nil {
		t.Fatalf("Flatten: %v", err)
	}
	_, before := s.Size()
	rewritten := s.collectValueLog()
	_, after := s.Size()
	if rewritten == 0 || after >= before {
		t.Fatalf("value log collection rewrote %d files, value log %d -> %d bytes: want files rewritten and space back", rewritten, before, after)
	}
	t.Logf("rewrote %d files: value log %d -> %d bytes", rewritten, before, after)
	s = reopen(t, s, o)
	for i := range keys {
		got, ok, err := s.Get(key(i))
		switch {
		case err != nil:
			t.Fatalf("Get %s: %v", key(i), err)
		case i%10 == 0 && (!ok || !bytes.Equal(got, value(i))):
			t.Fatalf("Get %s after the rewrite: %d bytes, found %v; want the value written", key(i), len(got), ok)
		case i%10 != 0 && ok:
			t.Fatalf("Get %s: found a deleted key", key(i))
		}
	}
}
