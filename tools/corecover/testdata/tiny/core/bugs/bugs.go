// Package bugs stands in for Aspen's core/bugs.
package bugs

// Bug is a planted defect.
type Bug uint8

// Off is the one defect.
const Off Bug = 0

// Set holds planted defects.
type Set uint8

// Has reports whether b is planted.
func (s Set) Has(b Bug) bool { return s&(1<<b) != 0 }
