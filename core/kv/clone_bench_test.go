package kv_test

import (
	"fmt"
	"testing"

	"github.com/aspen-db/aspen/core/kv"
)

// BenchmarkApplyPutAfterClone is what a clone (a snapshot's, a long
// listing's) costs the writes after it: each put in a store of 10^5 keys,
// with no clone, after a clone every 10 puts, and after a clone every put.
// The first write under a shared tree node copies it.
func BenchmarkApplyPutAfterClone(b *testing.B) {
	const keys = 100_000
	for _, every := range []int{0, 10, 1} {
		b.Run(fmt.Sprintf("clone-every-%d", every), func(b *testing.B) {
			m, txns := storeOf(keys)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if every > 0 && i%every == 0 {
					m.Clone()
				}
				m.Apply(txns[(i*7919)%keys]) // spread over the tree
				i++
			}
		})
	}
}

// storeOf returns a store of n keys with 100-byte values, and the puts
// that wrote them, to overwrite them with.
func storeOf(n int) (*kv.Machine, []kv.Txn) {
	txns := make([]kv.Txn, n)
	for i := range txns {
		txns[i] = then(kv.Op{Type: kv.OpPut, Key: fmt.Appendf(nil, "key/%08d", i), Value: make([]byte, 100)})
	}
	m := kv.New()
	for _, t := range txns {
		m.Apply(t)
	}
	return m, txns
}
