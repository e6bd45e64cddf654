//go:build aspenbugs

package groups

import "github.com/aspen-db/aspen/core/bugs"

// The planted defects (core/bugs), each the mistake a contributor could make
// at that seam. Only builds with -tags aspenbugs hold this file; planted.go
// is the seams' production form.

// GroupStaleCommit: "the member owns the partition, so its commit is
// good": the generation it names is not compared, so a zombie incarnation
// (or a message delayed across a rebalance) commits over the live one.
func (m *Module) plantCommitGen(mem *member, gen uint64) uint64 {
	if m.Bugs.Has(bugs.GroupStaleCommit) {
		return mem.Epoch
	}
	return gen
}

// AssignmentMapOrder: a leaver's partitions go to the first least-loaded
// member in the members map's order, which Go randomizes: replicas
// applying the same leave disagree on the assignment.
func (m *Module) plantOrder(g *group) ([]string, bool) {
	if !m.Bugs.Has(bugs.AssignmentMapOrder) {
		return g.ids, true
	}
	order := make([]string, 0, len(g.members))
	for id := range g.members {
		order = append(order, id)
	}
	return order, false
}
