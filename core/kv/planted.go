//go:build !aspenbugs

package kv

// Seams where tests plant defects (planted_bugs.go, built only with -tags
// aspenbugs); here they hand back what they are given.

func (m *Machine) plantContains(_ span, _ []byte, in bool) bool   { return in }
func (m *Machine) plantCreateRev(kept, _ int64) int64             { return kept }
func (k *Module) plantApplied(resp Response, _ []Change) Response { return resp }
func (k *Module) plantEventRevision(rev, _ int64) int64           { return rev }
func (m *Machine) plantHolder(holder string) string               { return holder }
func (m *Machine) plantLockable(_ string, ok bool) bool           { return ok }
func (k *Module) plantReleaseLocks(ops []Op) []Op                 { return ops }
