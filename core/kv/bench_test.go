package kv_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/aspen-db/aspen/core/kv"
)

// BenchmarkApplyPut overwrites keys in a store of 10^4 keys with 100-byte
// values, the steady state of a simulated workload.
func BenchmarkApplyPut(b *testing.B) {
	const keys = 10000
	m, txns := storeOf(keys)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.Apply(txns[i%keys])
		i++
	}
}

// BenchmarkEncodeDecodeTxn round-trips a typical conditional write.
func BenchmarkEncodeDecodeTxn(b *testing.B) {
	txn := kv.Txn{
		Compares: []kv.Compare{{Key: []byte("key/00000042"), Target: kv.TargetModRev, Result: kv.Equal, Rev: 12345}},
		Then:     []kv.Op{{Type: kv.OpPut, Key: []byte("key/00000042"), Value: make([]byte, 100)}},
		Else:     []kv.Op{{Type: kv.OpGet, Key: []byte("key/00000042")}},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kv.DecodeTxn(kv.EncodeTxn(txn)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoreHeap reports the heap a store holds per key (heap-B/key)
// for 100k keys of 14 bytes with 256-byte values, aspen bench's shape (270
// raw bytes a key): alone, and while a clone taken before 10k overwrites is
// held, as the runtime holds a snapshot's between snapshots.
func BenchmarkStoreHeap(b *testing.B) {
	const keys, overwrites = 100_000, 10_000
	for _, clone := range []bool{false, true} {
		b.Run(fmt.Sprintf("clone-%v", clone), func(b *testing.B) {
			var perKey float64
			for b.Loop() {
				before := heapBytes()
				m := kv.New()
				value := make([]byte, 256)
				for i := range keys {
					m.Apply(then(kv.Op{Type: kv.OpPut, Key: fmt.Appendf(nil, "bench/%08d", i), Value: value}))
				}
				var held *kv.Machine
				if clone {
					held = m.Clone()
					for i := range overwrites {
						m.Apply(then(kv.Op{Type: kv.OpPut, Key: fmt.Appendf(nil, "bench/%08d", i*7919%keys), Value: value}))
					}
				}
				perKey = float64(heapBytes()-before) / keys
				runtime.KeepAlive(m)
				runtime.KeepAlive(held)
			}
			b.ReportMetric(perKey, "heap-B/key")
		})
	}
}

func heapBytes() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
