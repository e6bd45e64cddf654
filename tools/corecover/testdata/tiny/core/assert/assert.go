// Package assert stands in for Aspen's core/assert.
package assert

// That panics when cond is false.
func That(cond bool, msg string) {
	if !cond {
		panic(msg)
	}
}
