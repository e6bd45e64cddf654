//go:build aspenbugs

package worker

import (
	"sync/atomic"
	"time"
)

// plantIgnoreDeadline, set by a planted test, makes the pool run a job on
// past a lease it could not renew (as if it trusted the lease to last).
var plantIgnoreDeadline atomic.Bool

func plantStopAt(at time.Time) time.Time {
	if plantIgnoreDeadline.Load() {
		return at.Add(time.Hour)
	}
	return at
}
