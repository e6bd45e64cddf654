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
