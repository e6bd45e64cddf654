package sim

import (
	"bytes"
	"fmt"

	"github.com/anishathalye/porcupine"
	"github.com/aspen-db/aspen/core/kv"
)

// Cold keys are written once, early, and never again (workload.cold_keys).
// Hot keys are rewritten within milliseconds, which hides a record a restart
// or snapshot install lost or left stale; cold keys stay put across every
// snapshot and crash of the run, and at the end every acknowledged one must be
// on every node with its value.

const (
	coldPrefix     = "cold/"
	coldBatchKeys  = 16  // keys per cold write
	coldValueBytes = 100 // so that snapshots carry some weight
	coldKeysMax    = 100_000
)

// kColdPut writes a batch of cold keys; it never enters the porcupine history
// (it touches no group), only the cold-key and revision checks.
const kColdPut opKind = 100

func coldKey(i int) string { return fmt.Sprintf("%s%06d", coldPrefix, i) }

func coldValue(i int) string {
	v := fmt.Sprintf("cold-%06d-", i)
	return v + string(bytes.Repeat([]byte{'.'}, coldValueBytes-len(v)))
}

// nextCold claims the next batch of cold keys for a client's operation.
func (w *World) nextCold() (opInput, bool) {
	if w.coldNext >= w.sc.Workload.ColdKeys {
		return opInput{}, false
	}
	in := opInput{Kind: kColdPut, Key: w.coldNext}
	w.coldNext = min(w.coldNext+coldBatchKeys, w.sc.Workload.ColdKeys)
	return in, true
}

func (w *World) coldCount(in opInput) int {
	return min(coldBatchKeys, w.sc.Workload.ColdKeys-in.Key)
}

func (w *World) coldTxn(in opInput) kv.Txn {
	var t kv.Txn
	for i := in.Key; i < in.Key+w.coldCount(in); i++ {
		t.Then = append(t.Then, kv.Op{Type: kv.OpPut, Key: []byte(coldKey(i)), Value: []byte(coldValue(i))})
	}
	return t
}

// allWrites is the history's operations and the cold writes.
func (w *World) allWrites() []porcupine.Operation {
	out := make([]porcupine.Operation, 0, len(w.history)+len(w.coldOps))
	return append(append(out, w.history...), w.coldOps...)
}

// checkColdKeys requires every node up to hold every acknowledged cold key
// with its value, and no cold key with another value.
func (w *World) checkColdKeys() {
	acked := make([]bool, w.sc.Workload.ColdKeys)
	for _, op := range w.coldOps {
		if in := op.Input.(opInput); !op.Output.(opOutput).Unknown {
			for i := in.Key; i < in.Key+w.coldCount(in); i++ {
				acked[i] = true
			}
		}
	}
	for _, sn := range w.nodes {
		if sn.gone || sn.n == nil {
			continue
		}
		present := make([]bool, len(acked))
		sn.n.Dump(func(key []byte, r kv.Record) bool {
			var i int
			if _, err := fmt.Sscanf(string(key), coldPrefix+"%06d", &i); err != nil || i < 0 || i >= len(acked) {
				return true
			}
			present[i] = true
			if string(r.Value) != coldValue(i) || r.Version != 1 {
				w.check.fail("node %d: cold key %s holds %q at version %d, want its one write", sn.id, key, r.Value, r.Version)
			}
			return true
		})
		for i, ok := range acked {
			if ok && !present[i] {
				w.check.fail("node %d: acknowledged cold key %s is missing", sn.id, coldKey(i))
				break
			}
		}
	}
}
