package sim

import (
	"fmt"
	"strings"

	"github.com/aspen-db/aspen/core/hooks"
	"github.com/aspen-db/aspen/core/node"
)

// Hooks in the workload ([hooks], with [jobs]). One hook operator, a jobs
// client after the others, creates the scenario's hooks at the start: job
// hooks (hooks.HandlerJob) of types hookjob-N on patterns over the KV
// workload's keys (keys.go: g<group>/<suffix>), some ordered, some parallel,
// one with a small rate, so that with a small backlog (backlog_max) it lags
// and resyncs. Every ops_ms or so the operator disables a hook for one step
// or triggers one. The [jobs] workers serve the hook job types too, with the
// same simulated faults (fail, fatal, hang, crash, lose contact) and one
// more: a slow run that takes one to three lease timeouts, heartbeating.
// Each run a worker finishes is recorded by the job's idempotency key, as a
// handler would see it (hookscheck.go). Once clients stop, the operator
// only enables what it left disabled. Nothing here draws from the world's
// stream unless the table is on.

// hookShape is a hook's definition apart from its name and handler.
type hookShape struct {
	pattern     string
	events      uint8
	filter      uint8
	mode        string
	parallel    int64
	rate, burst int64
}

const hookAllEvents = hooks.OnPut | hooks.OnDelete | hooks.OnExpire

// hookShapes are the hooks a scenario creates, in turn.
var hookShapes = []hookShape{
	{pattern: "g0/", mode: hooks.Ordered},                                                       // a prefix: puts and deletes, one at a time
	{pattern: "g1/*", events: hookAllEvents, mode: hooks.Parallel, parallel: 3},                 // one segment under g1 (not g1/a/b)
	{pattern: "g", events: hookAllEvents, mode: hooks.Parallel, parallel: 2, rate: 2, burst: 1}, // every key at 2/s: it lags
	{pattern: "**/b", events: hookAllEvents, mode: hooks.Ordered},                               // any key whose last segment is b
	{pattern: "g*/a*", events: hooks.OnPut, filter: hooks.FilterCreated, mode: hooks.Parallel, parallel: 4},
	{pattern: "g2/**", events: hooks.OnDelete | hooks.OnExpire, mode: hooks.Ordered},
}

// Every hook's deliveries: attempts, lease timeout and backoff.
const (
	hookAttemptsMax = 3
	hookTimeoutNs   = 1.5e9
	hookSlowMax     = 3.0 // a slow run takes up to this many lease timeouts
)

// simHook is a hook as its operator believes it stands.
type simHook struct {
	created, disabled bool
	triggers          int
}

func hookName(i int) string       { return fmt.Sprintf("hook%d", i) }
func hookJobType(i int) string    { return fmt.Sprintf("hookjob-%d", i) }
func isHookJobType(t string) bool { return strings.HasPrefix(t, "hookjob-") }

// hookDef is hook i's definition.
func hookDef(i int) hooks.Def {
	s := hookShapes[i]
	return hooks.Def{
		Name: hookName(i), Pattern: s.pattern, Events: s.events, Filter: s.filter,
		Handler: hooks.Handler{Kind: hooks.HandlerJob, JobType: hookJobType(i)},
		Mode:    s.mode, Parallel: s.parallel,
		AttemptsMax: hookAttemptsMax, TimeoutNs: hookTimeoutNs, BackoffBaseNs: jobBackoffNs, BackoffMaxNs: jobBackoffMaxN,
		RatePerSec: s.rate, Burst: s.burst,
	}
}

// hookJobTypes are the job types the workers serve on top of their own.
func (w *World) hookJobTypes() []string {
	var out []string
	for i := 0; i < w.sc.Hooks.Hooks; i++ {
		out = append(out, hookJobType(i))
	}
	return out
}

func (w *World) newHookOperator(add func(jobRole) *jobActor) {
	a := add(roleHookOp)
	a.hooks = make([]*simHook, w.sc.Hooks.Hooks)
	for i := range a.hooks {
		a.hooks[i] = &simHook{}
	}
	w.wakeJobActor(a, w.now+jobIdleNsMin)
}

func (w *World) hookOpStep(a *jobActor) {
	for i, h := range a.hooks {
		if !h.created {
			w.jobSend(a, &jobOp{kind: jopHookCreate, hook: i, req: node.Request{Call: call(hooks.Create(hookDef(i)))}})
			return
		}
	}
	for i, h := range a.hooks {
		if h.disabled {
			w.jobSend(a, &jobOp{kind: jopHookEnable, hook: i, req: node.Request{Call: call(hooks.Enable(hookName(i)))}})
			return
		}
	}
	if !w.clientsOn {
		return
	}
	s := &w.sc.Hooks
	switch i, r := w.rng.IntN(len(a.hooks)), w.rng.Float64(); {
	case r < s.DisableProb:
		w.jobSend(a, &jobOp{kind: jopHookDisable, hook: i, req: node.Request{Call: call(hooks.Disable(hookName(i)))}})
	case r < s.DisableProb+s.TriggerProb:
		h := a.hooks[i]
		h.triggers++
		key := fmt.Appendf(nil, "trigger/%d/%d", i, h.triggers)
		w.jobSend(a, &jobOp{kind: jopHookTrigger, hook: i, req: node.Request{Call: call(hooks.Trigger(hookName(i), key, []byte("synthetic")))}})
	default:
		w.jobDone(a)
	}
}

// hookOpGap is when the operator steps next: at once while it has hooks to
// create or enable, else after about ops_ms.
func (w *World) hookOpGap(a *jobActor) int64 {
	for _, h := range a.hooks {
		if !h.created || h.disabled {
			return w.now + jobIdleNsMin
		}
	}
	return w.now + millis(w.uniform(0.5, 1.5)*w.sc.Hooks.OpsMs)
}

// hookAnswered updates the operator's belief from an answer. A create
// refused as a conflict found the hook made by an earlier attempt; a
// trigger refused as a conflict found the hook disabled (by a disable whose
// answer was lost) or its backlog full, and enabling it again is harmless.
func (w *World) hookAnswered(a *jobActor, op *jobOp, r node.Response) {
	h := a.hooks[op.hook]
	if op.kind == jopHookCreate {
		h.created = true // made now or by an earlier attempt; a refusal is reported below
		if r.Outcome == node.Conflict {
			return
		}
	}
	switch {
	case op.kind == jopHookTrigger && r.Outcome == node.Conflict:
		h.disabled = true
	case r.Outcome != node.OK:
		w.check.fail("hook operator: %s of %s answered %v", hookOpNames[op.kind], hookName(op.hook), r.Err())
	case op.kind == jopHookDisable:
		h.disabled = true
	case op.kind == jopHookEnable:
		h.disabled = false
	}
}

// hookGaveUp: a disable whose answer never came may have applied, so the
// operator enables the hook again to be sure.
func (w *World) hookGaveUp(op *jobOp, a *jobActor) {
	if op.kind == jopHookDisable {
		a.hooks[op.hook].disabled = true
	}
}

var hookOpNames = map[jobOpKind]string{jopHookCreate: "create", jopHookEnable: "enable", jopHookDisable: "disable", jopHookTrigger: "trigger"}
