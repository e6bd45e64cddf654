//go:build aspenbugs

package bugs

// Enabled is true: this build was made with -tags aspenbugs, for tests that
// plant defects.
const Enabled = true
