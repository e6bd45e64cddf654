package diskstore

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/aspen-db/aspen/core/storage"
)

// BenchmarkApply measures a node's usual write: a 10-op batch of 256-byte
// values, alone and followed by the Sync the node loop needs before acting.
func BenchmarkApply(b *testing.B) {
	for _, synced := range []bool{false, true} {
		name := "apply"
		if synced {
			name = "apply+sync"
		}
		b.Run(name, func(b *testing.B) { benchmarkApply(b, synced) })
	}
}

func benchmarkApply(b *testing.B, synced bool) {
	s := openStore(b, b.TempDir(), DefaultOptions())
	value := make([]byte, 256)
	n := 0
	for b.Loop() {
		var batch storage.Batch
		for range 10 {
			batch.Ops = append(batch.Ops, storage.Op{Key: fmt.Appendf(nil, "key/%010d", n), Value: value})
			n++
		}
		if err := s.Apply(batch); err != nil {
			b.Fatalf("Apply: %v", err)
		}
		if !synced {
			continue
		}
		if err := s.Sync(); err != nil {
			b.Fatalf("Sync: %v", err)
		}
	}
}

// TestIdleRSS logs the process's resident memory around a store with the
// default options: opened empty, and reopened idle after taking 100k writes.
func TestIdleRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("writes about 30 MB")
	}
	before := rss(t)
	s := openStore(t, t.TempDir(), DefaultOptions())
	t.Logf("before Open: %s; after Open: %s", before, rss(t))
	value := make([]byte, 256)
	for i := range 1000 {
		var batch storage.Batch
		for j := range 100 {
			batch.Ops = append(batch.Ops, storage.Op{Key: fmt.Appendf(nil, "key/%010d", i*100+j), Value: value})
		}
		apply(t, s, batch.Ops...)
	}
	if err := s.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	t.Logf("after 100k writes of 256 bytes: %s", rss(t))
	s = reopen(t, s, DefaultOptions())
	runtime.GC()
	debug.FreeOSMemory()
	lsm, vlog := s.Size()
	t.Logf("reopened and idle: %s; Size: lsm %d MB, vlog %d MB", rss(t), lsm>>20, vlog>>20)
}

// rss reads this process's resident set from /proc/self/status: in all, in
// anonymous memory (heaps, memtables, caches) and in mapped files (tables).
func rss(t *testing.T) string {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	var fields []string
	for _, line := range strings.Split(string(status), "\n") {
		name, value, _ := strings.Cut(line, ":")
		switch name {
		case "VmRSS", "RssAnon", "RssFile":
			fields = append(fields, name+" "+strings.Join(strings.Fields(value), " "))
		}
	}
	if len(fields) == 0 {
		t.Fatalf("no VmRSS line in /proc/self/status")
	}
	return strings.Join(fields, ", ")
}
