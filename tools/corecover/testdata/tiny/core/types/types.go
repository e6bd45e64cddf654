// Package types declares and never runs: the profile need not hold it.
package types

// Pair is two ints.
type Pair struct{ A, B int }
