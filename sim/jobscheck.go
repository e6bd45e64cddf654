package sim

import (
	"reflect"
	"slices"

	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/node"
)

// jobsChecker follows the job table through the changes replicas report
// (jobs.Change in node.Applied.Reports), read once per index from the first
// replica to apply it; every other replica must report the same changes at
// the same index. On that history it checks fencing (a lease's token is its
// entry's index; a job succeeds only from a lease, and an acknowledged
// complete names that lease's token), attempts (counted by the checker's
// own count of leases, never above the job's max), dead letters (only jobs
// out of attempts) and idempotency keys (a held key never makes a second
// job); at the end, liveness and the dead-letter list.
type jobsChecker struct {
	seenMax uint64
	changes map[uint64][]jobs.Change
	jobs    map[jobs.ID]*jobTrack
	keys    map[string]jobs.ID
	lastNs  int64 // replicated time of the last entry read
}

// jobSettleNs is how long a job may stay pending or leased at the end after
// its last change: a lease's timeout, a retry's backoff and a run, with a
// second to spare; anything older has been left behind.
func (w *World) jobSettleNs() int64 {
	j := &w.sc.Jobs
	return millis(j.TimeoutMsMax+j.RunMsMax) + jobBackoffMaxN + 1e9
}

type jobTrack struct {
	last      jobs.Job
	leases    int64  // leases given since submit or the last dead-letter retry
	doneToken uint64 // the token it was leased under when it succeeded
	changedNs int64  // replicated time of its last change
	gone      bool
}

func (w *World) newJobsChecker() {
	w.jc = &jobsChecker{changes: map[uint64][]jobs.Change{}, jobs: map[jobs.ID]*jobTrack{}, keys: map[string]jobs.ID{}}
}

// jobRecords reads a replica's applied records, and the change events of
// the same Ready (for hooks).
func (w *World) jobRecords(sn *simNode, recs []node.Applied, events []node.Event) {
	jc := w.jc
	for i := range recs {
		a := &recs[i]
		var mine []node.Event
		mine, events = eventsUpTo(events, a.Revision)
		cs := reportOf[jobs.Change](a)
		if a.Index <= jc.seenMax {
			if first := jc.changes[a.Index]; !reflect.DeepEqual(first, cs) && len(first)+len(cs) > 0 {
				w.check.fail("replicas report job changes differently at index %d: node %d %+v, the first to apply it %+v", a.Index, sn.id, cs, first)
			}
			if w.schc != nil {
				w.scheduleReplayed(sn, a)
			}
			if w.hc != nil {
				w.hooksReplayed(sn, a)
			}
			continue
		}
		jc.seenMax = a.Index
		if len(cs) > 0 {
			jc.changes[a.Index] = cs
		}
		jc.lastNs = a.TimeNs
		if w.schc != nil {
			w.scheduleApplied(a)
		}
		if w.hc != nil {
			w.hooksApplied(a, mine, cs)
		}
		for _, c := range cs {
			w.jobChanged(a.Index, c)
			if t := jc.jobs[c.Job.ID]; t != nil {
				t.changedNs = a.TimeNs
			}
			if w.hc != nil {
				w.hookJobChanged(c, a.TimeNs)
			}
		}
		if w.schc != nil {
			w.scheduleJobsMade(a.Index)
		}
	}
}

func (w *World) jobChanged(index uint64, c jobs.Change) {
	jc, j := w.jc, c.Job
	t := jc.jobs[j.ID]
	if c.Gone {
		if t != nil {
			t.gone = true
			if t.last.Key != "" && jc.keys[t.last.Key] == j.ID {
				delete(jc.keys, t.last.Key)
			}
		}
		return
	}
	if t == nil {
		if held, ok := jc.keys[j.Key]; ok && j.Key != "" {
			w.check.fail("idempotency key %q made job %d at index %d while job %d holds it", j.Key, j.ID, index, held)
		}
		if j.Key != "" {
			jc.keys[j.Key] = j.ID
		}
		t = &jobTrack{last: jobs.Job{ID: j.ID, State: jobs.Pending}}
		jc.jobs[j.ID] = t
	}
	prev := t.last
	if prev.State == jobs.Dead && j.State == jobs.Pending {
		t.leases = 0 // a dead-letter retry starts over
	}
	if j.State == jobs.Leased && (prev.State != jobs.Leased || prev.Token != j.Token) {
		t.leases++
		w.res.JobLeases++
		if j.Token != index {
			w.check.fail("job %d leased at index %d under token %d", j.ID, index, j.Token)
		}
		if t.leases > j.AttemptsMax {
			w.check.fail("job %d given %d leases, max attempts %d", j.ID, t.leases, j.AttemptsMax)
		}
	}
	if j.Attempts != t.leases {
		w.check.fail("job %d counts %d attempts after %d leases (index %d, %v)", j.ID, j.Attempts, t.leases, index, j.State)
	}
	if j.State == jobs.Succeeded && prev.State != jobs.Succeeded {
		if prev.State != jobs.Leased {
			w.check.fail("job %d succeeded at index %d from %v, not from a lease", j.ID, index, prev.State)
		}
		t.doneToken = prev.Token
	}
	if j.State == jobs.Dead && prev.State != jobs.Dead && t.leases < j.AttemptsMax {
		w.check.fail("job %d dead at index %d after %d of %d attempts", j.ID, index, t.leases, j.AttemptsMax)
	}
	t.last = j
}

// submitted checks a submit's answer: a key held names the job made with it.
func (jc *jobsChecker) submitted(w *World, a *jobActor, op *jobOp, r node.Response, ans jobs.Answer) {
	if r.Outcome != node.OK || op.key == "" {
		return
	}
	if ans.Job.Key != op.key {
		w.check.fail("jobs client %d: submit with key %q answered job %d with key %q", a.idx, op.key, ans.Job.ID, ans.Job.Key)
	}
}

// finishAcked checks an acknowledged complete or fail against the history:
// a complete names the token of the lease the job succeeded from.
func (jc *jobsChecker) finishAcked(w *World, a *jobActor, op *jobOp, j jobs.Job) {
	if op.kind != jopComplete {
		return
	}
	t := jc.jobs[j.ID]
	switch {
	case t == nil || t.doneToken == 0:
		w.check.fail("job worker %d: complete of job %d acknowledged, but no replica shows it succeeded", a.idx, j.ID)
	case t.doneToken != op.token:
		w.check.fail("job worker %d: complete of job %d acknowledged under token %d, but the lease current when it succeeded was %d (stale token)", a.idx, j.ID, op.token, t.doneToken)
	}
}

// checkJobsAtEnd compares a converged replica's table with the history:
// every job finished (succeeded, failed, dead or cancelled), the same
// states, and the dead letters exactly the jobs out of attempts.
func (w *World) checkJobsAtEnd() {
	var sn *simNode
	for _, s := range w.nodes {
		if !s.gone && s.n != nil {
			sn = s
			break
		}
	}
	if sn == nil {
		return
	}
	if w.schc != nil {
		w.checkSchedulesAtEnd(sn)
	}
	if w.hc != nil {
		w.checkHooksAtEnd(sn)
	}
	table := sn.n.Hosted("jobs").(*jobs.Module).Table()
	ids := make([]jobs.ID, 0, len(w.jc.jobs))
	for id := range w.jc.jobs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var dead []jobs.ID
	for _, id := range ids {
		t := w.jc.jobs[id]
		if t.gone {
			continue
		}
		got, ok := table.Get(id)
		if !ok || got.State != t.last.State || got.Attempts != t.last.Attempts {
			w.check.fail("job %d on node %d is %v after %d attempts (found %v), the history says %v after %d", id, sn.id, got.State, got.Attempts, ok, t.last.State, t.last.Attempts)
		}
		s, idle := t.last.State, w.jc.lastNs-t.changedNs
		if (s == jobs.Pending || s == jobs.Leased) && w.sc.Jobs.Workers > 0 && idle > w.jobSettleNs() {
			g, _ := table.Get(id)
			w.check.fail("job %d still %v at the end, unchanged for %.3fs (%d attempts) %+v", id, s, float64(idle)/1e9, t.last.Attempts, g)
		}
		switch t.last.State {
		case jobs.Succeeded:
			w.res.JobsEnded[0]++
		case jobs.Failed:
			w.res.JobsEnded[1]++
		case jobs.Dead:
			w.res.JobsEnded[2]++
		case jobs.Cancelled:
			w.res.JobsEnded[3]++
		}
		if t.last.State == jobs.Dead {
			dead = append(dead, id)
		}
	}
	var listed []jobs.ID
	page, _ := table.List(jobs.Dead, 0, len(ids)+1)
	for _, j := range page {
		listed = append(listed, j.ID)
	}
	if !slices.Equal(listed, dead) {
		w.check.fail("dead letters on node %d are %v, the jobs out of attempts %v", sn.id, listed, dead)
	}
}
