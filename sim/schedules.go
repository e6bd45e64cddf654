package sim

import (
	"fmt"
	"slices"

	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/core/sched"
)

// Schedules in the workload ([schedules], with [jobs]). One schedule
// operator, a jobs client after the others, adds schedules (intervals of 1-3
// s and cron specs with seconds, in a few zones, one of them with daylight
// saving time; overlap and catch-up policies drawn), up to `schedules` at
// once, and pauses, resumes and removes some. Each schedule's jobs are of a
// type the scenario's workers serve, so the workers run them. The operator
// stops with the other clients; the schedules keep firing to the end.
// Nothing here draws from the world's stream unless the table is on.

// Bounds of the schedule operator.
const (
	schedulesMax        = 64
	schedAddsPerLiveMax = 2 // adds over the run, per live schedule allowed
	schedRunAllMax      = 8 // a run-all schedule's bound is drawn in 1..this
)

// The specs and zones schedules are drawn from.
var (
	schedSpecs = []string{"every 1s", "every 2s", "every 3s", "* * * * * *", "*/2 * * * * *", "*/3 * * * * *", "1-59/2 * * * * *"}
	schedZones = []string{"", "UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"}
)

// simSchedule is a schedule as its operator believes it stands.
type simSchedule struct {
	name         string
	jobType      int
	paused, gone bool
}

func (w *World) newScheduleOperator(add func(jobRole) *jobActor) {
	w.wakeJobActor(add(roleScheduler), w.now+millis(w.sc.Schedules.OpsMs))
}

func (w *World) schedulerStep(a *jobActor) {
	s := &w.sc.Schedules
	if !w.clientsOn {
		return
	}
	live := 0
	for _, sc := range a.scheds {
		if !sc.gone {
			live++
		}
	}
	if live < s.Schedules && len(a.scheds) < schedAddsPerLiveMax*s.Schedules {
		typ := w.scheduleJobType(a)
		w.jobSend(a, &jobOp{kind: jopSchedAdd, sched: len(a.scheds), req: node.Request{Call: call(sched.Add(w.drawSchedule(len(a.scheds), typ)))}})
		a.scheds = append(a.scheds, &simSchedule{name: schedName(len(a.scheds)), jobType: typ})
		return
	}
	i := w.rng.IntN(len(a.scheds))
	switch sc, r := a.scheds[i], w.rng.Float64(); {
	case sc.gone:
		w.jobDone(a)
	case sc.paused:
		w.jobSend(a, &jobOp{kind: jopSchedResume, sched: i, req: node.Request{Call: call(sched.Resume(sc.name))}})
	case r < s.RemoveProb:
		w.jobSend(a, &jobOp{kind: jopSchedRemove, sched: i, req: node.Request{Call: call(sched.Remove(sc.name))}})
	case r < s.RemoveProb+s.PauseProb:
		w.jobSend(a, &jobOp{kind: jopSchedPause, sched: i, req: node.Request{Call: call(sched.Pause(sc.name))}})
	default:
		w.jobDone(a)
	}
}

var schedOpNames = map[jobOpKind]string{jopSchedAdd: "add", jopSchedPause: "pause", jopSchedResume: "resume", jopSchedRemove: "remove"}

func schedName(i int) string { return fmt.Sprintf("sch%d", i) }

// scheduleJobType returns the job type for a new schedule: the one fewest
// live schedules have (the lowest on a tie). Drawn, every live schedule
// could land on one type (schedules seed 34: four schedules firing every
// second, all of t2, for the three workers that serve it), a backlog the
// workers never drain, which the jobs checker then rightly reports as jobs
// never leased. The operator acts one command at a time, so its belief of
// which schedules are gone is settled here.
func (w *World) scheduleJobType(a *jobActor) int {
	counts := make([]int, w.sc.Jobs.Types)
	for _, sc := range a.scheds {
		if !sc.gone {
			counts[sc.jobType]++
		}
	}
	return slices.Index(counts, slices.Min(counts))
}

// drawSchedule draws schedule i's definition, with jobs of type typ.
func (w *World) drawSchedule(i, typ int) sched.Def {
	j := &w.sc.Jobs
	d := sched.Def{
		Name: schedName(i),
		Spec: schedSpecs[w.rng.IntN(len(schedSpecs))],
		Zone: schedZones[w.rng.IntN(len(schedZones))],
		Job: jobs.Spec{
			Type: jobType(typ), AttemptsMax: 1 + w.rng.Int64N(j.AttemptsMax),
			TimeoutNs:     millis(w.uniform(j.TimeoutMsMin, j.TimeoutMsMax)),
			BackoffBaseNs: jobBackoffNs, BackoffMaxNs: jobBackoffMaxN,
		},
		Overlap: sched.Overlap(1 + w.rng.IntN(3)),
		CatchUp: sched.CatchUp(1 + w.rng.IntN(3)),
	}
	if d.CatchUp == sched.CatchUpRunAll {
		d.RunAllMax = 1 + w.rng.IntN(schedRunAllMax)
	}
	return d
}

// scheduleAnswered updates the operator's belief from an answer: a refusal
// means the schedule is gone (the only refusal a well-formed command gets).
func (w *World) scheduleAnswered(a *jobActor, op *jobOp, r node.Response) {
	sc := a.scheds[op.sched]
	switch {
	case r.Outcome == node.NotFound:
		sc.gone = true
	case r.Outcome != node.OK:
		w.check.fail("schedule operator: %s of %s answered %v", schedOpNames[op.kind], sc.name, r.Err())
	case op.kind == jopSchedPause:
		sc.paused = true
	case op.kind == jopSchedResume:
		sc.paused = false
	case op.kind == jopSchedRemove:
		sc.gone = true
	}
}
