// Package assert holds the one helper through which broken invariants panic.
//
// Expected outcomes (a full queue, a bad request) are returned errors; a broken
// invariant means the replica's state can no longer be trusted, so it stops with a
// message that says what broke.
package assert

import "fmt"

// That panics with the formatted diagnosis when cond is false.
func That(cond bool, format string, args ...any) {
	if !cond {
		panic("aspen invariant broken: " + fmt.Sprintf(format, args...))
	}
}
