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

// BenchmarkIdleRSS reports resident memory (in MB) around a store with the
// default options: opened empty, and reopened idle after taking 100k writes of
// 256 bytes. anon is the process's own memory; file is Badger's mapped tables.
// Run it once: go test ./runtime/diskstore -run '^$' -bench IdleRSS -benchtime 1x
func BenchmarkIdleRSS(b *testing.B) {
	for b.Loop() {
		s := openStore(b, b.TempDir(), DefaultOptions())
		reportRSS(b, "open")
		value := make([]byte, 256)
		for i := range 1000 {
			var batch storage.Batch
			for j := range 100 {
				batch.Ops = append(batch.Ops, storage.Op{Key: fmt.Appendf(nil, "key/%010d", i*100+j), Value: value})
			}
			apply(b, s, batch.Ops...)
		}
		if err := s.Sync(); err != nil {
			b.Fatalf("Sync: %v", err)
		}
		reportRSS(b, "loaded")
		s = reopen(b, s, DefaultOptions())
		runtime.GC()
		debug.FreeOSMemory()
		reportRSS(b, "reopened")
	}
}

// reportRSS reports this process's resident set from /proc/self/status.
func reportRSS(b *testing.B, when string) {
	b.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		name, value, _ := strings.Cut(line, ":")
		var kb float64
		if _, err := fmt.Sscanf(strings.TrimSpace(value), "%f kB", &kb); err != nil {
			continue
		}
		switch name {
		case "RssAnon":
			b.ReportMetric(kb/1024, when+"_anon_MB")
		case "RssFile":
			b.ReportMetric(kb/1024, when+"_file_MB")
		}
	}
}
