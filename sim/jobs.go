package sim

import (
	"fmt"

	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/node"
)

// Jobs in the workload ([jobs]). Submitters, workers and one dead-letter
// operator are clients of their own, each with its own session, after the
// lease holders. Submitters submit jobs of a few types (priority, max
// attempts and timeout drawn; sometimes an idempotency key used before),
// cancel one now and then, and send job requests the store must refuse.
// Workers lease jobs of the types they serve, run them for a drawn time
// while heartbeating every timeout/3, then complete or fail them (retryable
// or not); during the fault phase some hang (stop heartbeating), crash
// (forget the job, come back later) or lose contact (their requests are
// lost for a while). Workers lease until the end of the run, and from the
// moment clients stop they complete everything they run, so every job can
// finish. Nothing here draws from the world's stream unless the table is on.

const (
	jobActorsMax   = 64
	jobBackoffNs   = 50e6  // a job's backoff base
	jobBackoffMaxN = 500e6 // and cap
	jobIdleNsMin   = 50e6  // a worker that got nothing asks again after 50-150 ms
	jobUnknownID   = jobs.ID(1 << 40)
	jobAwayNsMax   = 4e9 // a crashed worker or one out of contact is away up to this long
)

type jobRole uint8

const (
	roleSubmitter jobRole = iota + 1
	roleWorker
	roleOperator
	roleScheduler // the schedule operator (schedules.go)
	roleHookOp    // the hook operator (hooks.go)
)

type jobOpKind uint8

const (
	jopSubmit jobOpKind = iota + 1
	jopCancel
	jopInvalid
	jopLease
	jopHeartbeat
	jopComplete
	jopFail
	jopDeadList
	jopDeadRetry
	jopDeadDrop
	jopSchedAdd
	jopSchedPause
	jopSchedResume
	jopSchedRemove
	jopHookCreate
	jopHookEnable
	jopHookDisable
	jopHookTrigger
)

type jobActor struct {
	idx, client int
	role        jobRole
	session     uint64
	seq         uint64
	op          *jobOp
	timer       int

	types     []string // a worker's
	run       *runJob  // the job a worker runs
	awayUntil int64    // crashed or out of contact until then
	lost      bool     // out of contact (requests are lost), else crashed

	submitted []jobs.ID // a submitter's jobs, for cancels
	keys      []string  // its idempotency keys so far

	scheds []*simSchedule // the schedule operator's schedules, by number
	hooks  []*simHook     // the hook operator's hooks, by number
}

// runJob is a worker's job as the worker knows it.
type runJob struct {
	id               jobs.ID
	token            uint64
	timeoutNs        int64
	doneAt, nextBeat int64
	hang             bool
	key              string // its idempotency key
	hook             bool   // a hook's delivery
}

type jobOp struct {
	kind     jobOpKind
	req      node.Request
	invalid  int
	key      string
	token    uint64
	start    int64
	deadline int64
	attempt  int
	sched    int  // a schedule command's schedule, by number
	batch    bool // a complete sent as a one-item batch complete
	hook     int  // a hook command's hook, by number
}

func (w *World) newJobActors() {
	j := &w.sc.Jobs
	base := len(w.clients) + 1 + len(w.holders)
	add := func(role jobRole) *jobActor {
		a := &jobActor{idx: len(w.jobActors), client: base + len(w.jobActors), role: role}
		a.session = uint64(clientIDBase + a.client)
		w.jobActors = append(w.jobActors, a)
		return a
	}
	for i := 0; i < j.Submitters; i++ {
		w.wakeJobActor(add(roleSubmitter), w.submitGap())
	}
	for i := 0; i < j.Workers; i++ {
		a := add(roleWorker)
		a.types = []string{jobType(i % j.Types), jobType((i + 1) % j.Types)}
		if w.sc.Hooks.on() {
			a.types = append(a.types, w.hookJobTypes()...)
		}
		w.wakeJobActor(a, w.now+jobIdleNsMin)
	}
	if j.DeadOpsMs > 0 {
		w.wakeJobActor(add(roleOperator), w.now+millis(j.DeadOpsMs))
	}
	if w.sc.Schedules.on() {
		w.newScheduleOperator(add)
	}
	if w.sc.Hooks.on() {
		w.newHookOperator(add)
	}
}

func jobType(i int) string { return fmt.Sprintf("t%d", i) }

func (w *World) submitGap() int64 {
	rate := w.sc.Jobs.SubmitsPerSecond / float64(max(1, w.sc.Jobs.Submitters))
	return w.now + int64(w.rng.ExpFloat64()/rate*1e9)
}

// jobActor returns the jobs client numbered client, or nil.
func (w *World) jobActor(client int) *jobActor {
	if i := client - len(w.clients) - 1 - len(w.holders); i >= 0 && i < len(w.jobActors) {
		return w.jobActors[i]
	}
	return nil
}

func (w *World) wakeJobActor(a *jobActor, at int64) {
	a.timer++
	w.schedule(event{at: at, kind: evJobs, node: -1, client: a.client, n: a.timer})
}

func (w *World) jobActorWake(e event) {
	if a := w.jobActor(e.client); a != nil && e.n == a.timer && a.op == nil {
		switch a.role {
		case roleSubmitter:
			w.submitterStep(a)
		case roleWorker:
			w.workerStep(a)
		case roleOperator:
			w.operatorStep(a)
		case roleScheduler:
			w.schedulerStep(a)
		case roleHookOp:
			w.hookOpStep(a)
		}
	}
}

func (w *World) submitterStep(a *jobActor) {
	j := &w.sc.Jobs
	if !w.clientsOn {
		return
	}
	switch r := w.rng.Float64(); {
	case r < j.InvalidProb:
		i := w.rng.IntN(len(invalidJobRequests))
		w.jobSend(a, &jobOp{kind: jopInvalid, invalid: i, req: invalidJobRequests[i].req(jobs.DefaultLimits())})
	case r < j.InvalidProb+j.CancelProb && len(a.submitted) > 0:
		id := a.submitted[w.rng.IntN(len(a.submitted))]
		w.jobSend(a, &jobOp{kind: jopCancel, req: node.Request{Call: call(jobs.Cancel(id))}})
	default:
		s := jobs.Spec{
			Type: jobType(w.rng.IntN(j.Types)), Priority: int64(w.rng.IntN(4)),
			AttemptsMax: 1 + w.rng.Int64N(j.AttemptsMax), TimeoutNs: millis(w.uniform(j.TimeoutMsMin, j.TimeoutMsMax)),
			BackoffBaseNs: jobBackoffNs, BackoffMaxNs: jobBackoffMaxN,
		}
		if len(a.keys) > 0 && w.rng.Float64() < j.ReuseKeyProb {
			s.Key = a.keys[w.rng.IntN(len(a.keys))]
		} else if w.rng.IntN(2) == 0 {
			s.Key = fmt.Sprintf("s%d-%d", a.idx, len(a.keys))
			a.keys = append(a.keys, s.Key)
		}
		w.jobSend(a, &jobOp{kind: jopSubmit, key: s.Key, req: node.Request{Call: call(jobs.Submit(s))}})
	}
}

// misbehave reports whether a worker's fault of probability p happens now:
// only in the fault phase.
func (w *World) misbehave(p float64) bool { return w.faultsOn && p > 0 && w.rng.Float64() < p }

func (w *World) workerStep(a *jobActor) {
	j := &w.sc.Jobs
	if w.now < a.awayUntil && !a.lost {
		w.wakeJobActor(a, a.awayUntil)
		return
	}
	r := a.run
	switch {
	case r == nil:
		w.jobSend(a, &jobOp{kind: jopLease, req: node.Request{Call: call(jobs.Lease(fmt.Sprintf("w%d", a.idx), a.types, 1))}})
	case r.hang && w.now >= r.doneAt:
		a.run = nil // a hung run is given up on; its lease expires
		w.workerStep(a)
	case r.hang:
		w.wakeJobActor(a, r.doneAt)
	case w.misbehave(j.CrashProb):
		a.run, a.lost, a.awayUntil = nil, false, w.now+int64(w.uniform(0, jobAwayNsMax))
		w.trace.note("job worker %d crashed", a.idx)
		w.wakeJobActor(a, a.awayUntil)
	case w.now >= r.doneAt:
		w.workerFinish(a, r)
	case w.now >= r.nextBeat:
		r.nextBeat = w.now + r.timeoutNs/3
		w.jobSend(a, &jobOp{kind: jopHeartbeat, token: r.token, req: node.Request{Call: call(jobs.Heartbeat(r.id, r.token))}})
	default:
		w.wakeJobActor(a, min(r.doneAt, r.nextBeat))
	}
}

// workerFinish completes or fails the run with a drawn outcome; once clients
// stop, every run completes.
func (w *World) workerFinish(a *jobActor, r *runJob) {
	j := &w.sc.Jobs
	if r.hook && w.hc != nil {
		w.hc.ran[r.key]++
	}
	if w.misbehave(j.LoseContactProb) {
		a.lost, a.awayUntil = true, w.now+int64(w.uniform(0, jobAwayNsMax))
		w.trace.note("job worker %d lost contact", a.idx)
	}
	switch x := w.rng.Float64(); {
	case w.clientsOn && x < j.FatalProb:
		w.jobSend(a, &jobOp{kind: jopFail, token: r.token, req: node.Request{Call: call(jobs.Fail(r.id, r.token, "exit 2", false))}})
	case w.clientsOn && x < j.FatalProb+j.FailProb:
		w.jobSend(a, &jobOp{kind: jopFail, token: r.token, req: node.Request{Call: call(jobs.Fail(r.id, r.token, "exit 1", true))}})
	default:
		res := jobs.Result{Output: []byte(fmt.Sprintf("job %d by w%d", r.id, a.idx))}
		op := &jobOp{kind: jopComplete, token: r.token, req: node.Request{Call: call(jobs.Complete(r.id, r.token, res))}}
		if j.BatchCompleteProb > 0 && w.rng.Float64() < j.BatchCompleteProb {
			op.batch, op.req.Call = true, call(jobs.CompleteBatch([]jobs.CompleteItem{{ID: r.id, Token: r.token, Result: res}}))
		}
		w.jobSend(a, op)
	}
}

func (w *World) operatorStep(a *jobActor) {
	if !w.clientsOn {
		return
	}
	w.jobSend(a, &jobOp{kind: jopDeadList, req: node.Request{Call: call(jobs.ListDead(0, 16))}})
}

func (w *World) jobSend(a *jobActor, op *jobOp) {
	op.start, op.deadline = w.numberRequest(&op.req, a.session, &a.seq, jobWrites(op))
	a.op = op
	w.jobAttempt(a)
}

func jobWrites(op *jobOp) bool {
	switch op.kind {
	case jopDeadList:
		return false
	case jopInvalid:
		return !invalidJobRequests[op.invalid].query
	}
	return true
}

func (w *World) jobAttempt(a *jobActor) {
	a.op.attempt++
	if w.now >= a.awayUntil || !a.lost {
		w.toNode(w.liveNode(), a.op.req)
	}
	w.timeAttempt(a.client, a.op.attempt)
}

func (w *World) jobTimeout(a *jobActor, attempt int) {
	if a.op != nil && a.op.attempt == attempt {
		w.jobRetry(a)
	}
}

// jobRetry sends the same request again, or gives up at the deadline: a
// worker then forgets its job (its lease, if any, expires).
func (w *World) jobRetry(a *jobActor) {
	if w.now < a.op.deadline {
		w.jobAttempt(a)
		return
	}
	if a.role == roleWorker && a.op.kind != jopHeartbeat {
		a.run = nil
	}
	if a.role == roleHookOp {
		w.hookGaveUp(a.op, a)
	}
	w.jobDone(a)
}

func (w *World) jobResponse(a *jobActor, e event) {
	op, r := a.op, e.resp
	if op == nil || r.Seq != op.req.Seq {
		return
	}
	if r.Outcome != node.OK && !r.Outcome.Refused() {
		w.jobRetry(a)
		return
	}
	ans, _ := r.Value.(jobs.Answer)
	switch op.kind {
	case jopSubmit:
		w.jc.submitted(w, a, op, r, ans)
		if r.Outcome == node.OK && !ans.Existing {
			a.submitted = append(a.submitted, ans.Job.ID)
		}
	case jopLease:
		if !w.leasedJobs(a, r, ans) {
			return // idle until the wake leasedJobs set: asking again at once would spin
		}
	case jopHeartbeat:
		if r.Outcome != node.OK {
			a.run = nil // the job is someone else's now
		}
	case jopComplete, jopFail:
		switch {
		case op.batch && r.Outcome == node.OK && len(ans.Items) != 1:
			w.check.fail("job worker %d: a batch complete of one item answered %d items", a.idx, len(ans.Items))
		case op.batch && r.Outcome == node.OK && ans.Items[0].Outcome == node.OK:
			w.jc.finishAcked(w, a, op, ans.Items[0].Job)
		case !op.batch && r.Outcome == node.OK:
			w.jc.finishAcked(w, a, op, ans.Job)
		}
		a.run = nil
	case jopDeadList:
		w.deadListed(a, r, ans)
		return
	case jopSchedAdd, jopSchedPause, jopSchedResume, jopSchedRemove:
		w.scheduleAnswered(a, op, r)
	case jopHookCreate, jopHookEnable, jopHookDisable, jopHookTrigger:
		w.hookAnswered(a, op, r)
	case jopInvalid:
		if want := invalidJobRequests[op.invalid]; r.Outcome != want.outcome {
			w.check.fail("jobs client %d: %s answered %v, want %v", a.idx, want.name, r.Err(), want.outcome)
		}
	}
	w.jobDone(a)
}

// leasedJobs starts the run of a leased job and reports true; a worker that
// got nothing waits 50-150 ms (it reports false, and jobResponse must not
// step it again at once: that would ask again on the answer's heels, and
// idle workers would fill the log with empty leases, hundreds a second).
func (w *World) leasedJobs(a *jobActor, r node.Response, ans jobs.Answer) bool {
	if r.Outcome != node.OK || len(ans.Jobs) == 0 {
		a.op = nil
		w.wakeJobActor(a, w.now+jobIdleNsMin+int64(w.uniform(0, 2*jobIdleNsMin)))
		return false
	}
	j := &w.sc.Jobs
	got := ans.Jobs[0]
	run := &runJob{id: got.ID, token: got.Token, timeoutNs: got.TimeoutNs}
	run.doneAt = w.now + millis(w.uniform(j.RunMsMin, j.RunMsMax))
	run.nextBeat = w.now + got.TimeoutNs/3
	if w.misbehave(j.HangProb) {
		run.hang, run.doneAt = true, w.now+2*got.TimeoutNs
	}
	if isHookJobType(got.Type) && w.sc.Hooks.on() {
		run.key, run.hook = got.Key, true
		if !run.hang && w.rng.Float64() < w.sc.Hooks.SlowProb {
			run.doneAt = w.now + int64(w.uniform(1, hookSlowMax)*float64(got.TimeoutNs))
		}
	}
	a.run = run
	return true
}

// deadListed retries or drops one dead letter of the page, or none.
func (w *World) deadListed(a *jobActor, r node.Response, ans jobs.Answer) {
	a.op = nil
	if r.Outcome == node.OK && len(ans.Jobs) > 0 && w.clientsOn {
		id := ans.Jobs[w.rng.IntN(len(ans.Jobs))].ID
		if w.rng.IntN(2) == 0 {
			w.jobSend(a, &jobOp{kind: jopDeadRetry, req: node.Request{Call: call(jobs.RetryDead(id))}})
		} else {
			w.jobSend(a, &jobOp{kind: jopDeadDrop, req: node.Request{Call: call(jobs.DropDead(id))}})
		}
		return
	}
	w.wakeJobActor(a, w.now+millis(w.sc.Jobs.DeadOpsMs))
}

func (w *World) jobDone(a *jobActor) {
	a.op = nil
	switch a.role {
	case roleSubmitter:
		w.wakeJobActor(a, w.submitGap())
	case roleOperator:
		w.wakeJobActor(a, w.now+millis(w.sc.Jobs.DeadOpsMs))
	case roleScheduler:
		w.wakeJobActor(a, w.now+millis(w.uniform(0.5, 1.5)*w.sc.Schedules.OpsMs))
	case roleHookOp:
		w.wakeJobActor(a, w.hookOpGap(a))
	default:
		w.workerStep(a)
	}
}
