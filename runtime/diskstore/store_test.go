package diskstore

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aspen-db/aspen/core/storage"
)

// testOptions keeps Badger's transaction limit small (about 77 KiB), so that
// a batch written over several transactions is cheap to build, and the log's
// segments small, so that tests move through several.
func testOptions() Options {
	o := DefaultOptions()
	o.MemTableBytes = memTableBytesMin
	o.SegmentBytes = segmentBytesMin
	return o
}

// openStore opens a store in dir and closes it when the test ends, unless the
// test closed it first.
func openStore(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// reopen closes s and opens its directory again.
func reopen(t testing.TB, s *Store, opts Options) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return openStore(t, s.dir, opts)
}

func put(key, value string) storage.Op {
	return storage.Op{Key: []byte(key), Value: []byte(value)}
}

func del(key string) storage.Op {
	return storage.Op{Key: []byte(key), Delete: true}
}

func apply(t testing.TB, s *Store, ops ...storage.Op) {
	t.Helper()
	if err := s.Apply(storage.Batch{Ops: ops}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// contents returns every user key and value, read through Scan.
func contents(t testing.TB, s *Store, prefix string) map[string]string {
	t.Helper()
	got := make(map[string]string)
	var last []byte
	err := s.Scan([]byte(prefix), func(key, value []byte) error {
		if last != nil && bytes.Compare(last, key) >= 0 {
			return fmt.Errorf("key %q after %q: not ascending", key, last)
		}
		last = key
		got[string(key)] = string(value)
		return nil
	})
	if err != nil {
		t.Fatalf("Scan(%q): %v", prefix, err)
	}
	return got
}

func checkContents(t testing.TB, s *Store, want map[string]string) {
	t.Helper()
	got := contents(t, s, "")
	if !maps.Equal(got, want) {
		t.Fatalf("store holds %d keys, want %d; first differences: %s", len(got), len(want), diff(got, want))
	}
	if n := badgerLogKeys(t, s); n != 0 {
		t.Fatalf("Badger holds %d log keys, want 0: they live in the write-ahead log", n)
	}
}

// diff describes up to three keys on which got and want disagree.
func diff(got, want map[string]string) string {
	keys := slices.Sorted(maps.Keys(got))
	keys = append(keys, slices.Sorted(maps.Keys(want))...)
	var out []string
	for _, k := range keys {
		g, gok := got[k]
		w, wok := want[k]
		if (g != w || gok != wok) && len(out) < 3 {
			out = append(out, fmt.Sprintf("%q: got %q (%v), want %q (%v)", k, trim(g), gok, trim(w), wok))
		}
	}
	return strings.Join(slices.Compact(out), "; ")
}

func trim(s string) string { return s[:min(len(s), 12)] }

func TestApplyGetScan(t *testing.T) {
	s := openStore(t, t.TempDir(), testOptions())
	apply(t, s, put("a", "1"), put("b/1", "2"), put("b/2", "3"), put("c", "4"), put("empty", ""))
	apply(t, s, del("c"), put("a", "old"), put("a", "new"), del("missing"), put("d", "x"), del("d"))

	gets := []struct {
		key    string
		want   string
		wantOK bool
	}{
		{"a", "new", true}, // the later op on a key wins
		{"b/1", "2", true},
		{"c", "", false},
		{"d", "", false},
		{"empty", "", true},
		{"missing", "", false},
	}
	for _, g := range gets {
		got, ok, err := s.Get([]byte(g.key))
		if err != nil || ok != g.wantOK || string(got) != g.want {
			t.Errorf("Get(%q) = %q, %v, %v; want %q, %v, nil", g.key, got, ok, err, g.want, g.wantOK)
		}
	}
	want := map[string]string{"a": "new", "b/1": "2", "b/2": "3", "empty": ""}
	checkContents(t, s, want)
	if got, want := contents(t, s, "b/"), map[string]string{"b/1": "2", "b/2": "3"}; !maps.Equal(got, want) {
		t.Errorf("Scan(b/) = %v, want %v", got, want)
	}
}

func TestReadsReturnCopies(t *testing.T) {
	s := openStore(t, t.TempDir(), testOptions())
	apply(t, s, put("k", "value"))
	got, _, _ := s.Get([]byte("k"))
	got[0] = 'X'
	err := s.Scan(nil, func(key, value []byte) error {
		key[0], value[0] = 'X', 'X'
		return nil
	})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if got, want := contents(t, s, ""), map[string]string{"k": "value"}; !maps.Equal(got, want) {
		t.Errorf("after changing returned slices, store holds %v, want %v", got, want)
	}
}

func TestScanStopsAtFirstError(t *testing.T) {
	s := openStore(t, t.TempDir(), testOptions())
	apply(t, s, put("a", "1"), put("b", "2"), put("c", "3"))
	stop := errors.New("stop")
	var seen []string
	err := s.Scan(nil, func(key, _ []byte) error {
		seen = append(seen, string(key))
		if len(seen) == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Errorf("Scan returned %v, want %v", err, stop)
	}
	if want := []string{"a", "b"}; !slices.Equal(seen, want) {
		t.Errorf("Scan visited %q, want %q", seen, want)
	}
}

func TestReservedKeysRejected(t *testing.T) {
	s := openStore(t, t.TempDir(), testOptions())
	for _, key := range []string{"\x00batch/x", "\x00", "!badger!head"} {
		err := s.Apply(storage.Batch{Ops: []storage.Op{put("ok", "1"), put(key, "v")}})
		if !errors.Is(err, ErrReservedKey) {
			t.Errorf("Apply(put %q) = %v, want %v", key, err, ErrReservedKey)
		}
		if _, _, err := s.Get([]byte(key)); !errors.Is(err, ErrReservedKey) {
			t.Errorf("Get(%q) = %v, want %v", key, err, ErrReservedKey)
		}
	}
	if err := s.Scan([]byte("\x00"), func(_, _ []byte) error { return nil }); !errors.Is(err, ErrReservedKey) {
		t.Errorf("Scan(\\x00) = %v, want %v", err, ErrReservedKey)
	}
	if err := s.Apply(storage.Batch{Ops: []storage.Op{put("", "v")}}); err == nil {
		t.Errorf("Apply(put empty key) = nil, want an error")
	}
	// A rejected batch writes nothing, not even its valid ops.
	checkContents(t, s, map[string]string{})
}

// bigBatch returns a batch over n keys too large for one Badger transaction in
// s, and what the store holds after it is applied over base.
func bigBatch(t testing.TB, s *Store, n int, tag string, base map[string]string) (storage.Batch, map[string]string) {
	t.Helper()
	after := maps.Clone(base)
	var b storage.Batch
	for i := range n {
		key := fmt.Sprintf("big/%05d", i)
		if i%10 == 0 {
			b.Ops = append(b.Ops, del(key))
			delete(after, key)
			continue
		}
		value := fmt.Sprintf("%s-%d-%s", tag, i, strings.Repeat("v", 256))
		b.Ops = append(b.Ops, put(key, value))
		after[key] = value
	}
	if size := len(appendOps(nil, b.Ops)); int64(size) <= s.db.MaxBatchSize() {
		t.Fatalf("batch of %d bytes fits Badger's %d-byte transaction limit; want it larger", size, s.db.MaxBatchSize())
	}
	return b, after
}

// seed applies and syncs a base state that a big batch partly overwrites.
func seed(t testing.TB, s *Store) map[string]string {
	t.Helper()
	base := map[string]string{"other": "kept"}
	ops := []storage.Op{put("other", "kept")}
	for i := 0; i < 2000; i += 7 {
		key := fmt.Sprintf("big/%05d", i)
		base[key] = "base"
		ops = append(ops, put(key, "base"))
	}
	apply(t, s, ops...)
	if err := s.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return base
}

func TestBatchOverTxnLimitAppliesAtomically(t *testing.T) {
	opts := testOptions()
	s := openStore(t, t.TempDir(), opts)
	base := seed(t, s)
	b, want := bigBatch(t, s, 2000, "one", base)
	if err := s.Apply(b); err != nil {
		t.Fatalf("Apply(%d ops): %v", len(b.Ops), err)
	}
	checkContents(t, s, want)
	if err := s.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	s = reopen(t, s, opts)
	checkContents(t, s, want)
}

func TestSyncCloseReopenKeepsData(t *testing.T) {
	opts := testOptions()
	s := openStore(t, t.TempDir(), opts)
	apply(t, s, put("a", "1"), put("b", strings.Repeat("v", 4096))) // b's value goes to the value log
	if err := s.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	s = reopen(t, s, opts)
	checkContents(t, s, map[string]string{"a": "1", "b": strings.Repeat("v", 4096)})
	if lsm, vlog := s.Size(); lsm == 0 || vlog == 0 {
		t.Errorf("Size() = %d, %d; want both above 0", lsm, vlog)
	}
}

func TestClosedStoreRefusesCalls(t *testing.T) {
	s := openStore(t, t.TempDir(), testOptions())
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Apply(storage.Batch{Ops: []storage.Op{put("a", "1")}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close = %v, want %v", err, ErrClosed)
	}
	if _, _, err := s.Get([]byte("a")); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close = %v, want %v", err, ErrClosed)
	}
	if err := s.Sync(); !errors.Is(err, ErrClosed) {
		t.Errorf("Sync after Close = %v, want %v", err, ErrClosed)
	}
}

func TestCorruptTableFailsOpen(t *testing.T) {
	opts := testOptions()
	s := openStore(t, t.TempDir(), opts)
	var ops []storage.Op
	for i := range 100 {
		ops = append(ops, put(fmt.Sprintf("k%03d", i), strings.Repeat("v", 100)))
	}
	apply(t, s, ops...)
	if err := s.Close(); err != nil { // Close flushes the memtable to a table file.
		t.Fatalf("Close: %v", err)
	}
	tables, _ := filepath.Glob(filepath.Join(s.dir, "*.sst"))
	if len(tables) == 0 {
		t.Fatalf("got no table files in %s, want at least one", s.dir)
	}
	flipByte(t, tables[0], 200)
	if s, err := Open(s.dir, opts); err == nil {
		s.Close()
		t.Fatalf("Open with a corrupt table = nil error, want one")
	}
}

func flipByte(t *testing.T, path string, offset int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, offset); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, offset); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}
