//go:build !aspenbugs

package groups

// Seams where tests plant defects (planted_bugs.go, built only with -tags
// aspenbugs); here they hand back what they are given.

func (m *Module) plantCommitGen(_ *member, gen uint64) uint64 { return gen }
func (m *Module) plantOrder(g *group) ([]string, bool)        { return g.ids, true }
