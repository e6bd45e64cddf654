// Package calc holds one example of each rule the report applies.
package calc

import (
	"example.com/tiny/core/assert"
	planted "example.com/tiny/core/bugs"
)

// Add is a plain function.
func Add(a, b int) int {
	return a + b
}

// Never is another.
func Never() int {
	x := 1
	return x
}

// Check holds failure branches: an if body, a case and an assert.That(false).
func Check(x int) int {
	if x < 0 {
		panic("negative")
	}
	switch x {
	case 0:
		return 0
	default:
		panic("unknown")
	}
}

// Fail is one function whose whole body is a failure branch.
func Fail() { assert.That(false, "always") }

// Noisy panics after doing something else, so it counts.
func Noisy(x int) int {
	if x > 9 {
		x++
		panic("too big")
	}
	return x
}

// T has methods.
type T struct{ bugs planted.Set }

// Planted holds a planted-bug branch, and an || branch that is not one.
func (t *T) Planted(x int) int {
	if t.bugs.Has(planted.Off) && x > 0 {
		x--
	}
	if x > 5 || t.bugs.Has(planted.Off) {
		x = 5
	}
	return x
}
