//go:build !aspenbugs

package hooks

import "github.com/aspen-db/aspen/core/module"

// Seams where tests plant defects (planted_bugs.go, built only with -tags
// aspenbugs); here they hand back what they are given and hold nothing.

type planted struct{}

func plantedKinds() []byte                                  { return nil }
func (m *Module) plantApply(*module.Env, byte, []byte) bool { return false }
func (m *Module) plantMatched(*hook, *Delivery) bool        { return true }
func (m *Module) plantDropWhenFull() bool                   { return false }
func (m *Module) plantDue(module.Leader) []module.Command   { return nil }
