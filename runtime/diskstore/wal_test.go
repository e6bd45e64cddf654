package diskstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aspen-db/aspen/core/storage"
)

// badgerLogKeys counts the log keys in Badger itself.
func badgerLogKeys(t testing.TB, s *Store) int {
	t.Helper()
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	n := 0
	if err := iterate(txn, s.logPrefix, s.logPrefix, func(_, _ []byte) error { n++; return nil }); err != nil {
		t.Fatalf("iterate: %v", err)
	}
	return n
}

// crash leaves s as a kill -9 would: what was written to files stays there
// (Badger's Close persists what it was given, as the kernel would), nothing
// more is synced, and nothing pending is written into Badger.
func crash(t testing.TB, s *Store) {
	t.Helper()
	s.mu.Lock()
	s.closed = true
	s.stopCollector()
	s.mu.Unlock()
	s.stopWriter()
	if err := errors.Join(s.wal.close(), s.closeDB()); err != nil {
		t.Fatalf("crash: %v", err)
	}
}

// reopenAfter crashes s and opens its directory again.
func reopenAfter(t testing.TB, s *Store, opts Options) *Store {
	t.Helper()
	crash(t, s)
	return openStore(t, s.dir, opts)
}

// segmentFiles returns the paths of the log's segments, oldest first.
func segmentFiles(t testing.TB, s *Store) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(s.dir, walDirName, "*"+segmentExt))
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

func logKey(i int) string { return fmt.Sprintf("l/%08d", i) }

func TestLogKeysStayOutOfBadger(t *testing.T) {
	opts := testOptions()
	s := openStore(t, t.TempDir(), opts)
	want := map[string]string{}
	var ops []storage.Op
	for i := range 50 {
		ops = append(ops, put(logKey(i), strings.Repeat("e", i*10)))
		want[logKey(i)] = strings.Repeat("e", i*10)
	}
	for _, k := range []string{"k/a", "m/hardstate", "a", "z", "l", "l0"} {
		ops = append(ops, put(k, "v"+k))
		want[k] = "v" + k
	}
	apply(t, s, ops...)
	apply(t, s, del(logKey(3)), put(logKey(4), "again"))
	delete(want, logKey(3))
	want[logKey(4)] = "again"
	checkContents(t, s, want) // a Scan of every key merges the log's keys in order
	if got := contents(t, s, "l/"); len(got) != 49 {
		t.Errorf("Scan(l/) found %d keys, want 49", len(got))
	}
	if got := contents(t, s, "l"); len(got) != 51 {
		t.Errorf("Scan(l) found %d keys, want 51", len(got))
	}
	s = reopen(t, s, opts)
	checkContents(t, s, want)
	checkContents(t, reopenAfter(t, s, opts), want)
}

// A crash after the log is synced, with Badger holding none, part or all of
// a batch's state, must find the whole batch after Open.
func TestOpenReplaysTheLog(t *testing.T) {
	for _, inBadger := range []int{0, 1000, 2000} {
		t.Run(fmt.Sprint(inBadger), func(t *testing.T) {
			opts := testOptions()
			s := openStore(t, t.TempDir(), opts)
			base := seed(t, s)
			b, want := bigBatch(t, s, 2000, "crash", base)
			b.Ops = append(b.Ops, put(logKey(1), "entry"))
			want[logKey(1)] = "entry"
			apply(t, s, b.Ops...)
			if err := s.wal.sync(); err != nil {
				t.Fatal(err)
			}
			var state []storage.Op
			for _, r := range s.pending {
				state = append(state, r.ops...)
			}
			if err := s.writeOps(state[:inBadger]); err != nil {
				t.Fatal(err)
			}
			checkContents(t, reopenAfter(t, s, opts), want)
		})
	}
}

// A batch applied but not synced survives a process crash: its record is in
// the kernel's hands.
func TestUnsyncedBatchSurvivesProcessCrash(t *testing.T) {
	opts := testOptions()
	s := openStore(t, t.TempDir(), opts)
	apply(t, s, put("a", "1"), put(logKey(1), "e1"))
	checkContents(t, reopenAfter(t, s, opts), map[string]string{"a": "1", logKey(1): "e1"})
}

// tearLast flips the last byte of the log's last record, as a write a power
// loss cut short would leave it.
func tearLast(t *testing.T, s *Store) {
	t.Helper()
	seg := s.wal.segs[len(s.wal.segs)-1]
	flipByte(t, filepath.Join(s.dir, walDirName, segmentName(seg.first)), seg.size-1)
}

func TestTornRecordEndsTheLog(t *testing.T) {
	opts := testOptions()
	s := openStore(t, t.TempDir(), opts)
	apply(t, s, put("a", "1"), put(logKey(1), "e1"))
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	apply(t, s, put("a", "2"), put(logKey(2), "e2"))
	tearLast(t, s)
	s = reopenAfter(t, s, opts)
	want := map[string]string{"a": "1", logKey(1): "e1"}
	checkContents(t, s, want)
	// The next record goes where the torn one was, and is read back.
	apply(t, s, put("b", "3"))
	want["b"] = "3"
	checkContents(t, reopenAfter(t, s, opts), want)
}

// fillSegments applies log entries until the log has at least n segments.
func fillSegments(t testing.TB, s *Store, n int) {
	t.Helper()
	for i := 0; len(s.wal.segs) < n; i++ {
		apply(t, s, put(logKey(i), strings.Repeat("e", 500)), put(fmt.Sprintf("k/%d", i%7), "v"))
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

// A damaged log anywhere but at its end fails the open: a flipped byte in
// the oldest segment, or a segment gone from the middle.
func TestDamagedLogFailsOpen(t *testing.T) {
	damage := map[string]func(t *testing.T, segments []string){
		"flipped byte in the first segment": func(t *testing.T, segments []string) { flipByte(t, segments[0], 100) },
		"middle segment removed": func(t *testing.T, segments []string) {
			if err := os.Remove(segments[1]); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, harm := range damage {
		t.Run(name, func(t *testing.T) {
			opts := testOptions()
			s := openStore(t, t.TempDir(), opts)
			fillSegments(t, s, 3)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			harm(t, segmentFiles(t, s))
			if _, err := Open(s.dir, opts); !errors.Is(err, storage.ErrCorrupt) {
				t.Errorf("Open = %v, want %v", err, storage.ErrCorrupt)
			}
		})
	}
}

// Segments whose log keys were all deleted are removed; the rest stay.
func TestDeadSegmentsAreRemoved(t *testing.T) {
	opts := testOptions()
	s := openStore(t, t.TempDir(), opts)
	fillSegments(t, s, 6)
	n := len(s.log)
	before := len(segmentFiles(t, s))
	var deletes []storage.Op
	for i := range n / 2 {
		deletes = append(deletes, del(logKey(i)))
	}
	apply(t, s, deletes...)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	after := len(segmentFiles(t, s))
	if after >= before-1 {
		t.Errorf("%d segments before deleting half the log keys, %d after; want at least 2 fewer", before, after)
	}
	want := contents(t, s, "")
	if len(contents(t, s, "l/")) != n-n/2 {
		t.Errorf("got %d log keys, want %d", len(contents(t, s, "l/")), n-n/2)
	}
	checkContents(t, reopenAfter(t, s, opts), want)
}

func TestOldLayoutRefused(t *testing.T) {
	opts := testOptions()
	s := openStore(t, t.TempDir(), opts)
	if err := s.writeOps([]storage.Op{put(logKey(1), "in badger")}); err != nil {
		t.Fatal(err)
	}
	crash(t, s)
	_, err := Open(s.dir, opts)
	if err == nil || !strings.Contains(err.Error(), "older") {
		t.Errorf("Open with raft's log in Badger = %v, want an error naming an older Aspen", err)
	}
}

// Batches that are never synced (a node that only applies) are not all held
// in memory for the state writer: past pendingBytesMax, Apply syncs the log.
func TestUnsyncedBatchesAreBounded(t *testing.T) {
	s := openStore(t, t.TempDir(), testOptions())
	value := strings.Repeat("v", 64<<10)
	for i := range 2 * pendingBytesMax / len(value) {
		apply(t, s, put(fmt.Sprintf("k/%d", i%10), value))
	}
	s.mu.Lock()
	synced, held := s.synced, s.pendingBytes
	s.mu.Unlock()
	if synced == 0 || held > pendingBytesMax+len(value)+recordHeaderBytes+64 {
		t.Errorf("after %d MB applied unsynced: log synced to record %d, %d bytes held; want a sync and at most %d held",
			2*pendingBytesMax>>20, synced, held, pendingBytesMax)
	}
}
