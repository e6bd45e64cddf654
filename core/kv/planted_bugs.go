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

// LockIgnoresHolder: an acquire judges the key as if nobody held it, so it
// takes a key another session holds (and a Lockable compare says it could).
func (m *Machine) plantHolder(holder string) string {
	if m.Bugs.Has(bugs.LockIgnoresHolder) {
		return ""
	}
	return holder
}

// LockDelayIgnored: an acquire asks only whether its session is live, not
// whether the key is still in the lock delay an invalidation left on it.
func (m *Machine) plantLockable(session string, ok bool) bool {
	if m.Bugs.Has(bugs.LockDelayIgnored) {
		return m.locks.Live(session)
	}
	return ok
}

// InvalidateKeepsLocks: a session's invalidation releases nothing, so its
// keys stay held by a session that no longer exists.
func (k *Module) plantReleaseLocks(ops []Op) []Op {
	if k.M.Bugs.Has(bugs.InvalidateKeepsLocks) {
		return nil
	}
	return ops
}
