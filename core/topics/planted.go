//go:build !aspenbugs

package topics

import "github.com/aspen-db/aspen/core/bugs"

// Seams where tests plant defects (planted_bugs.go, built only with -tags
// aspenbugs); here they hand back what they are given and hold nothing.

type planted struct{}

// PlantBugs plants set in the module: nothing in this build.
func (m *Module) PlantBugs(bugs.Set) {}

func (m *Module) plantOffset(p *partition) uint64 { return p.end }
