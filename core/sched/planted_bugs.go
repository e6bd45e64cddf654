//go:build aspenbugs

package sched

import "github.com/aspen-db/aspen/core/bugs"

// planted holds the defects a test plants and what they need: the replica's
// own clock, which production code never hands a module.
type planted struct {
	set     bugs.Set
	localNs func() int64
}

// PlantBugs plants set in the module; localNs reads the replica's own clock.
func (m *Module) PlantBugs(set bugs.Set, localNs func() int64) {
	m.planted = planted{set: set, localNs: localNs}
}

// TickLocalClock: a fire decides which ticks are due by the replica's own
// clock, not the stamp of the entry that carries it.
func (m *Module) plantFireNow(stampNs int64) int64 {
	if m.planted.set.Has(bugs.TickLocalClock) && m.planted.localNs != nil {
		return m.planted.localNs()
	}
	return stampNs
}
