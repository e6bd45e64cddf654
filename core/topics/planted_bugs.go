//go:build aspenbugs

package topics

import "github.com/aspen-db/aspen/core/bugs"

// The planted defects (core/bugs), each the mistake a contributor could make
// at that seam. Only builds with -tags aspenbugs hold this file; planted.go
// is the seams' production form.

type planted struct{ set bugs.Set }

// PlantBugs plants set in the module.
func (m *Module) PlantBugs(set bugs.Set) { m.planted.set = set }

// TopicOffsetReuse: the partition is treated as an array, and a new message
// takes the count of messages it holds as its offset. That is right until
// retention drops the oldest: then the next publish reuses an offset a
// dropped message had (and a later one, still retained, may have).
func (m *Module) plantOffset(p *partition) uint64 {
	if m.planted.set.Has(bugs.TopicOffsetReuse) {
		return uint64(len(p.live()))
	}
	return p.end
}
