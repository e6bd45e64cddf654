package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"testing"
)

// BenchmarkKVListing lists a prefix of n keys (16-byte keys, 18-byte
// values) from a one-node cluster over HTTP and reads the whole answer:
// keys/s, and allocations and bytes allocated per key listed (server and
// client together).
func BenchmarkKVListing(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		c := startCluster(b, 1)
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("bench/key/%06d", i)
		}
		putAll(b, c, 0, keys)
		for _, mode := range []string{"keys", "recurse"} {
			b.Run(fmt.Sprintf("%s/%d", mode, n), func(b *testing.B) {
				benchListing(b, c.url(0, "/v1/kv/bench/?"+mode), n)
			})
		}
	}
}

func benchListing(b *testing.B, url string, n int) {
	var got []json.RawMessage
	if code, _, body := do(b, "GET", url, ""); code != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil || len(got) != n {
		b.Fatalf("GET %s: %d, %d entries, want 200 and %d", url, code, len(got), n)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for b.Loop() {
		resp, err := http.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	runtime.ReadMemStats(&after)
	listed := float64(n) * float64(b.N)
	b.ReportMetric(listed/b.Elapsed().Seconds(), "keys/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/listed, "allocs/key")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/listed, "B/key")
}
