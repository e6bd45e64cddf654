package sim

import (
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/core/sched"
)

// schedChecker follows the schedules through the changes replicas report
// (sched.Change in node.Applied.Reports), read once per index with the job
// changes (jobRecords), from the first replica to apply it; every other
// replica must report the same changes at the same index. The checker
// computes each schedule's ticks itself (core/sched's Next on the spec as
// added) and checks every fire against them:
//
//   - a fire is recorded at its entry's stamp, names a real tick of the
//     spec, never one after the stamp, and never on a paused schedule;
//   - the ticks a fire moves past are accounted for exactly: each kept (a
//     job created, buffered, skipped or refused) or counted as missed, the
//     kept ones those the catch-up policy keeps (run-all misses none within
//     its bound), and the replicated counters move by as much;
//   - the overlap policy holds: no job is created while the schedule's
//     previous job is pending or leased unless the policy is allow;
//   - no tick makes two jobs: each key name@tick is created once, ever;
//   - after the heal (schedHealSettleNs), no tick is missed, and at the end
//     no unpaused schedule has a tick due longer than schedLateNs unfired.
type schedChecker struct {
	changes map[uint64][]sched.Change // the first report at each index
	scheds  map[string]*schedTrack
	keys    map[string]uint64 // name@tick -> the index whose fire created its job
	healNs  int64             // replicated time from which no tick may be missed (0: not reached)
	created []createdJob      // by the entry being read, checked against its job changes
}

// Bounds of the schedule checker.
const (
	schedHealSettleNs = 3e9     // after the heal, a leader has settled and fires every tick on time
	schedLateNs       = 1.5e9   // at the end, a due tick may wait this long (replicated time)
	schedTicksMax     = 1 << 16 // ticks one fire may move past (downtime is seconds)
)

type schedTrack struct {
	spec     sched.Spec
	last     sched.Schedule
	ticks    uint64  // ticks of the spec in the schedule's unpaused windows so far
	lastJob  jobs.ID // the job its latest created tick made
	buffered int64   // buffer-one: the tick waiting
	gone     bool
}

type createdJob struct {
	id  jobs.ID
	key string
}

func (w *World) newSchedChecker() {
	w.schc = &schedChecker{changes: map[uint64][]sched.Change{}, scheds: map[string]*schedTrack{}, keys: map[string]uint64{}}
}

func scheduleChangesOf(a *node.Applied) []sched.Change {
	for _, r := range a.Reports {
		if c, ok := r.([]sched.Change); ok {
			return c
		}
	}
	return nil
}

// scheduleReplayed compares a replica's report at an index read already
// with the first one.
func (w *World) scheduleReplayed(sn *simNode, a *node.Applied) {
	cs := scheduleChangesOf(a)
	if first := w.schc.changes[a.Index]; !reflect.DeepEqual(first, cs) && len(first)+len(cs) > 0 {
		w.check.fail("replicas report schedule fires differently at index %d: node %d %+v, the first to apply it %+v", a.Index, sn.id, cs, first)
	}
}

// scheduleApplied reads an entry's schedule changes, before its job changes
// (so the job table is as the fire found it).
func (w *World) scheduleApplied(a *node.Applied) {
	sc := w.schc
	if sc.healNs == 0 && w.now >= w.faultEnd+schedHealSettleNs {
		sc.healNs = a.TimeNs
	}
	cs := scheduleChangesOf(a)
	if len(cs) == 0 {
		return
	}
	sc.changes[a.Index] = cs
	sc.created = sc.created[:0]
	for _, c := range cs {
		w.scheduleChanged(a.Index, a.TimeNs, c)
	}
}

// scheduleJobsMade checks, after an entry's job changes, that each job its
// fires created carries the tick's key.
func (w *World) scheduleJobsMade(index uint64) {
	for _, c := range w.schc.created {
		if t := w.jc.jobs[c.id]; t == nil || t.last.Key != c.key {
			w.check.fail("schedule fire at index %d created job %d, which the job queue does not hold with key %q", index, c.id, c.key)
		}
	}
	w.schc.created = w.schc.created[:0]
}

func (w *World) scheduleChanged(index uint64, atNs int64, c sched.Change) {
	sc, s := w.schc, c.Schedule
	t := sc.scheds[s.Name]
	switch {
	case c.Gone:
		if t != nil {
			t.gone = true
		}
		if len(c.Fires) > 0 {
			w.check.fail("schedule %q removed at index %d with fires %+v", s.Name, index, c.Fires)
		}
		return
	case t == nil || t.gone:
		spec, err := sched.Parse(s.Spec, s.Zone, nil)
		if err != nil || s.CreatedNs != atNs || s.LastTickNs != atNs || len(c.Fires) > 0 || s.Fired+s.Missed+s.Skipped > 0 {
			w.check.fail("schedule %q added at index %d (stamp %d) as %+v, fires %+v (spec: %v)", s.Name, index, atNs, s, c.Fires, err)
			return
		}
		sc.scheds[s.Name] = &schedTrack{spec: spec.WithAnchor(time.Unix(0, atNs)), last: s}
		return
	}
	prev := t.last
	t.last = s
	w.scheduleFires(index, atNs, t, prev, c.Fires)
	if s.LastJob != t.lastJob || s.BufferedNs != t.buffered {
		w.check.fail("schedule %q at index %d: last job %d, buffered tick %d; its fires say %d and %d", s.Name, index, s.LastJob, s.BufferedNs, t.lastJob, t.buffered)
	}
}

// scheduleFires checks the fires one change recorded against the ticks it
// moved past, from prev to t.last.
func (w *World) scheduleFires(index uint64, atNs int64, t *schedTrack, prev sched.Schedule, fires []sched.Fire) {
	s := t.last
	var created, skipped, missed uint64
	for _, f := range fires {
		if f.AtNs != atNs {
			w.check.fail("schedule %q: fire of tick %s recorded at %d, its entry's stamp (index %d) is %d", s.Name, tickString(f.TickNs), f.AtNs, index, atNs)
		}
		switch f.Outcome {
		case sched.FireCreated:
			created++
		case sched.FireSkipped, sched.FireRefused:
			skipped++
		case sched.FireMissed:
			missed += f.Missed
		}
	}
	if s.Fired-prev.Fired != created || s.Skipped-prev.Skipped != skipped || s.Missed-prev.Missed != missed {
		w.check.fail("schedule %q at index %d: counters fired/skipped/missed went from %d/%d/%d to %d/%d/%d, its fires record %d/%d/%d",
			s.Name, index, prev.Fired, prev.Skipped, prev.Missed, s.Fired, s.Skipped, s.Missed, created, skipped, missed)
	}
	if len(fires) > 0 && prev.Paused {
		w.check.fail("schedule %q fired at index %d while paused: %+v", s.Name, index, fires)
		return
	}
	if len(fires) == 0 {
		resumed := prev.Paused && !s.Paused && s.LastTickNs == max(prev.LastTickNs, atNs)
		if s.LastTickNs != prev.LastTickNs && !resumed {
			w.check.fail("schedule %q at index %d: last tick moved from %s to %s without a fire", s.Name, index, tickString(prev.LastTickNs), tickString(s.LastTickNs))
		}
		return
	}
	due, ok := w.ticksBetween(t, prev.LastTickNs, s.LastTickNs, atNs, index)
	if !ok {
		return
	}
	t.ticks += uint64(len(due))
	var kept []int64
	missedHere := uint64(0)
	for _, f := range fires {
		switch {
		case f.Outcome == sched.FireMissed:
			missedHere += f.Missed
		case f.Outcome == sched.FireCreated && t.buffered != 0 && f.TickNs == t.buffered:
			t.buffered = 0 // the release of a tick buffered before
			w.scheduleJob(index, t, f)
		default:
			kept = append(kept, f.TickNs)
			w.scheduleOverlap(index, t, f)
		}
	}
	if uint64(len(kept))+missedHere != uint64(len(due)) {
		w.check.fail("schedule %q at index %d: %d ticks due in (%s, %s], %d kept and %d counted missed",
			s.Name, index, len(due), tickString(prev.LastTickNs), tickString(s.LastTickNs), len(kept), missedHere)
	}
	if want := keptByPolicy(due, s.CatchUp, s.RunAllMax); !slices.Equal(kept, want) {
		w.check.fail("schedule %q at index %d: catch-up %v (bound %d) over %d due ticks kept %v, want %v",
			s.Name, index, s.CatchUp, s.RunAllMax, len(due), ticksString(kept), ticksString(want))
	}
	if missedHere > 0 && w.schc.healNs != 0 && atNs >= w.schc.healNs {
		w.check.fail("schedule %q at index %d: %d ticks missed after the heal (stamp %d, healed by %d)", s.Name, index, missedHere, atNs, w.schc.healNs)
	}
}

// ticksBetween returns the spec's ticks in (from, to]; to must be a real
// tick, not after the fire's stamp.
func (w *World) ticksBetween(t *schedTrack, from, to, atNs int64, index uint64) ([]int64, bool) {
	name := t.last.Name
	switch {
	case to < from:
		w.check.fail("schedule %q at index %d: last tick went back from %s to %s", name, index, tickString(from), tickString(to))
		return nil, false
	case to > atNs:
		w.check.fail("schedule %q at index %d: tick %s fired before it was due (the entry's stamp is %s)", name, index, tickString(to), tickString(atNs))
		return nil, false
	case to > from && t.spec.Next(time.Unix(0, to-1)).UnixNano() != to:
		w.check.fail("schedule %q at index %d: %s is no tick of %q in %q", name, index, tickString(to), t.last.Spec, t.last.Zone)
		return nil, false
	}
	var due []int64
	for at := t.spec.Next(time.Unix(0, from)).UnixNano(); at <= to; at = t.spec.Next(time.Unix(0, at)).UnixNano() {
		if len(due) == schedTicksMax {
			w.check.fail("schedule %q at index %d: more than %d ticks in (%s, %s]", name, index, schedTicksMax, tickString(from), tickString(to))
			return nil, false
		}
		due = append(due, at)
	}
	return due, true
}

// keptByPolicy returns the due ticks a catch-up policy fires.
func keptByPolicy(due []int64, policy sched.CatchUp, runAllMax int) []int64 {
	n := len(due)
	switch {
	case n == 0:
		return nil
	case policy == sched.CatchUpRunAll:
		return due[n-min(n, runAllMax):]
	case policy == sched.CatchUpRunOnce && n > 1:
		return []int64{due[0], due[n-1]}
	}
	return due[n-1:]
}

// scheduleOverlap checks one kept tick against the overlap policy.
func (w *World) scheduleOverlap(index uint64, t *schedTrack, f sched.Fire) {
	s, busy := t.last, w.scheduleJobActive(t.lastJob)
	switch f.Outcome {
	case sched.FireCreated:
		if busy && s.Overlap != sched.OverlapAllow {
			w.check.fail("schedule %q (overlap %v): tick %s created job %d at index %d while job %d is still pending or leased",
				s.Name, s.Overlap, tickString(f.TickNs), f.Job, index, t.lastJob)
		}
		w.scheduleJob(index, t, f)
	case sched.FireBuffered:
		if !busy || s.Overlap != sched.OverlapBufferOne || t.buffered != 0 {
			w.check.fail("schedule %q (overlap %v): tick %s buffered at index %d (previous job %d busy: %v, tick %s buffered already)",
				s.Name, s.Overlap, tickString(f.TickNs), index, t.lastJob, busy, tickString(t.buffered))
		}
		t.buffered = f.TickNs
	case sched.FireSkipped:
		if !busy || s.Overlap == sched.OverlapAllow {
			w.check.fail("schedule %q (overlap %v): tick %s skipped at index %d, previous job %d busy: %v", s.Name, s.Overlap, tickString(f.TickNs), index, t.lastJob, busy)
		}
	}
}

// scheduleJob notes the job a tick created: its key must be new.
func (w *World) scheduleJob(index uint64, t *schedTrack, f sched.Fire) {
	key := sched.JobKey(t.last.Name, f.TickNs)
	if first, ok := w.schc.keys[key]; ok {
		w.check.fail("tick %s of schedule %q created a second job (job %d at index %d; the first at index %d)", tickString(f.TickNs), t.last.Name, f.Job, index, first)
	}
	w.schc.keys[key] = index
	w.schc.created = append(w.schc.created, createdJob{id: f.Job, key: key})
	t.lastJob = f.Job
	w.res.ScheduleJobs++
}

// scheduleJobActive reports whether job id is pending or leased as the
// entry being read found it: made by it, or so by the job history.
func (w *World) scheduleJobActive(id jobs.ID) bool {
	if id == 0 {
		return false
	}
	for _, c := range w.schc.created {
		if c.id == id {
			return true
		}
	}
	t := w.jc.jobs[id]
	return t != nil && !t.gone && (t.last.State == jobs.Pending || t.last.State == jobs.Leased)
}

// checkSchedulesAtEnd compares a converged replica's table with the
// history, checks that the counters account for every tick in the
// schedules' unpaused windows, and that no unpaused schedule has a tick
// left unfired.
func (w *World) checkSchedulesAtEnd(sn *simNode) {
	table := sn.n.Hosted("schedules").(*sched.Module).Table()
	for _, name := range slices.Sorted(maps.Keys(w.schc.scheds)) {
		t := w.schc.scheds[name]
		got, _, ok := table.Get(name)
		if t.gone {
			if ok {
				w.check.fail("schedule %q removed, but node %d holds it", name, sn.id)
			}
			continue
		}
		s := t.last
		if !ok || got.Fired != s.Fired || got.Missed != s.Missed || got.Skipped != s.Skipped || got.LastTickNs != s.LastTickNs {
			w.check.fail("schedule %q on node %d is %+v (found %v), the history says %+v", name, sn.id, got, ok, s)
			continue
		}
		buffered := uint64(0)
		if s.BufferedNs != 0 {
			buffered = 1
		}
		if acc := s.Fired + s.Missed + s.Skipped + buffered; acc != t.ticks {
			w.check.fail("schedule %q: %d ticks in its unpaused windows, its counters account for %d (fired %d, missed %d, skipped %d, buffered %d)",
				name, t.ticks, acc, s.Fired, s.Missed, s.Skipped, buffered)
		}
		w.res.ScheduleMissed += int(s.Missed)
		w.res.ScheduleSkipped += int(s.Skipped)
		if next := t.spec.Next(time.Unix(0, s.LastTickNs)).UnixNano(); !s.Paused && next < w.jc.lastNs-schedLateNs {
			w.check.fail("schedule %q: tick %s still unfired at the end, %.3fs late", name, tickString(next), float64(w.jc.lastNs-next)/1e9)
		}
	}
}

func tickString(ns int64) string { return time.Unix(0, ns).UTC().Format("15:04:05.000") }

func ticksString(ts []int64) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = tickString(t)
	}
	return out
}
