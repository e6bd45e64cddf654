//go:build aspenbugs

package kv

import (
	"bytes"

	"github.com/aspen-db/aspen/core/bugs"
)

// RangeEndInclusive: an explicit range includes its end key.
func (m *Machine) plantContains(s span, key []byte, in bool) bool {
	return in || m.Bugs.Has(bugs.RangeEndInclusive) && s.kind == spanInterval && bytes.Equal(key, s.end)
}

// CreateRevReset: overwriting a key resets its create revision.
func (m *Machine) plantCreateRev(kept, rev int64) int64 {
	if m.Bugs.Has(bugs.CreateRevReset) {
		return rev
	}
	return kept
}

// NoopBump: every write takes a revision, changed or not.
func (k *Module) plantApplied(resp Response, changes []Change) Response {
	if k.M.Bugs.Has(bugs.NoopBump) && len(changes) == 0 {
		resp.Revision++
		k.M.SetRevision(resp.Revision)
	}
	return resp
}

// EventRevision: events stamped with the revision read before applying.
func (k *Module) plantEventRevision(rev, before int64) int64 {
	if k.M.Bugs.Has(bugs.EventRevision) {
		return before
	}
	return rev
}
