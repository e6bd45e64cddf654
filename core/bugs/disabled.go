//go:build !aspenbugs

package bugs

// Enabled is false: planted defects compile to nothing in this build.
const Enabled = false
