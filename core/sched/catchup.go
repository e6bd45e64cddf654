package sched

import (
	"fmt"
	"time"

	"github.com/aspen-db/aspen/core/assert"
)

// CatchUp says what a schedule does with ticks that came due while no leader
// fired them (downtime, a long election). In steady state one tick is due at a
// time and every policy fires it.
type CatchUp uint8

const (
	// CatchUpSkip fires only the latest due tick; the earlier ones are missed.
	CatchUpSkip CatchUp = iota + 1
	// CatchUpRunOnce runs the backlog once, as its earliest tick, then the latest
	// due tick; the ticks between are missed.
	CatchUpRunOnce
	// CatchUpRunAll fires every due tick, at most RunAllMax of them (the latest);
	// older ones are missed.
	CatchUpRunAll
)

func (c CatchUp) String() string {
	switch c {
	case CatchUpSkip:
		return "skip"
	case CatchUpRunOnce:
		return "run-once"
	case CatchUpRunAll:
		return "run-all"
	}
	return fmt.Sprintf("catch-up(%d)", uint8(c))
}

// Overlap says what a schedule does when a tick fires while its previous job is
// still running. The schedules module applies it; sched only names it.
type Overlap uint8

const (
	// OverlapSkip drops the new tick (counted as skipped).
	OverlapSkip Overlap = iota + 1
	// OverlapBufferOne keeps at most one tick waiting for the running job.
	OverlapBufferOne
	// OverlapAllow starts the new job alongside the running one.
	OverlapAllow
)

func (o Overlap) String() string {
	switch o {
	case OverlapSkip:
		return "skip"
	case OverlapBufferOne:
		return "buffer-one"
	case OverlapAllow:
		return "allow"
	}
	return fmt.Sprintf("overlap(%d)", uint8(o))
}

// Bounds on catch-up work.
const (
	// RunAllMax is the most ticks CatchUpRunAll fires at once.
	RunAllMax = 1000
	// dueCountMax bounds counting a cron spec's missed ticks one by one; past it,
	// Catch.MissedCapped is set and Missed is a lower bound.
	dueCountMax = 1 << 16
	// windowStepsMax bounds the widening windows latestDue searches (×4 from a
	// minute: 4^24 minutes is far beyond any downtime).
	windowStepsMax = 24
)

// Catch is what to do now: the ticks to fire (oldest first) and how many due
// ticks were not fired.
type Catch struct {
	Fire         []time.Time
	Missed       uint64
	MissedCapped bool
}

// Due returns what to fire at now when last was the last tick fired (or the
// schedule's start): due ticks are those in (last, now]. runAllMax (1 to
// RunAllMax) bounds CatchUpRunAll and is ignored otherwise.
func Due(s Spec, last, now time.Time, policy CatchUp, runAllMax int) (Catch, error) {
	switch policy {
	case CatchUpSkip, CatchUpRunOnce:
	case CatchUpRunAll:
		if runAllMax < 1 || runAllMax > RunAllMax {
			return Catch{}, fmt.Errorf("run-all bound %d: want 1 to %d", runAllMax, RunAllMax)
		}
	default:
		return Catch{}, fmt.Errorf("unknown catch-up policy %d", policy)
	}
	first := s.Next(last)
	if first.After(now) {
		return Catch{}, nil
	}
	due, capped := countDue(s, last, now)
	var fire []time.Time
	switch policy {
	case CatchUpSkip:
		fire = latestDue(s, last, now, 1)
	case CatchUpRunOnce:
		fire = latestDue(s, last, now, 1)
		if !fire[0].Equal(first) {
			fire = []time.Time{first, fire[0]}
		}
	case CatchUpRunAll:
		fire = latestDue(s, last, now, runAllMax)
	}
	assert.That(uint64(len(fire)) <= due, "fired %d of %d due ticks", len(fire), due)
	return Catch{Fire: fire, Missed: due - uint64(len(fire)), MissedCapped: capped}, nil
}

// countDue counts the ticks in (last, now]: by arithmetic for intervals, one by one
// up to dueCountMax for cron specs.
func countDue(s Spec, last, now time.Time) (uint64, bool) {
	if s.kind == KindInterval {
		every := int64(s.every / time.Second)
		n := floorDiv(now.Unix()-s.anchorSec, every) - floorDiv(last.Unix()-s.anchorSec, every)
		return uint64(max(n, 0)), false
	}
	n := uint64(0)
	for t := s.Next(last); !t.After(now); t = s.Next(t) {
		if n == dueCountMax {
			return n, true
		}
		n++
	}
	return n, false
}

// latestDue returns the last k ticks in (last, now], oldest first, searching
// windows that end at now and widen fourfold from a minute, so the work follows
// k rather than the length of the downtime.
func latestDue(s Spec, last, now time.Time, k int) []time.Time {
	window := time.Minute
	for range windowStepsMax {
		from := now.Add(-window)
		if !from.After(last) {
			from = last
		}
		ring, n := make([]time.Time, k), 0
		for t := s.Next(from); !t.After(now); t = s.Next(t) {
			ring[n%k] = t
			n++
		}
		if n >= k || from.Equal(last) {
			kept := min(n, k)
			out := make([]time.Time, 0, kept)
			for i := n - kept; i < n; i++ {
				out = append(out, ring[i%k])
			}
			return out
		}
		window *= 4
	}
	assert.That(false, "no window of %d steps holds %d ticks of %q before %s", windowStepsMax, k, s.text, now)
	return nil
}
