//go:build aspenbugs

package jobs

import "github.com/aspen-db/aspen/core/bugs"

// CompletionWithoutToken: a complete is accepted under whatever token the
// job is leased under now, not the one the worker names.
func (m *Module) plantCompleteToken(id ID, token uint64) uint64 {
	if j := m.t.jobs[id]; m.Bugs.Has(bugs.CompletionWithoutToken) && j != nil && j.State == Leased {
		return j.Token
	}
	return token
}

// ExpiryKeepsAttempt: an expired lease gives its attempt back.
func (m *Module) plantExpired(id ID) {
	if j := m.t.jobs[id]; m.Bugs.Has(bugs.ExpiryKeepsAttempt) && j != nil && j.Attempts > 0 {
		m.t.change(j, func(j *Job) { j.Attempts-- })
	}
}
