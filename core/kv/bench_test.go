package kv_test

import (
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
