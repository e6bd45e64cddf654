// Package linearize holds what the simulator's and faultcheck's
// linearizability checks (porcupine) share.
package linearize

import (
	"cmp"
	"maps"
	"slices"

	"github.com/anishathalye/porcupine"
)

// PartitionBy returns a porcupine Partition function that splits a history
// by key, one partition per key, in ascending key order: the order would
// otherwise come from map iteration, and reports and visualizations must come
// out the same way each time. Each partition keeps the history's order.
// Partitioning is sound only when no operation's outcome depends on another
// key's operations.
func PartitionBy[K cmp.Ordered](key func(porcupine.Operation) K) func([]porcupine.Operation) [][]porcupine.Operation {
	return func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[K][]porcupine.Operation{}
		for _, op := range history {
			k := key(op)
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(byKey))
		for _, k := range slices.Sorted(maps.Keys(byKey)) {
			out = append(out, byKey[k])
		}
		return out
	}
}
