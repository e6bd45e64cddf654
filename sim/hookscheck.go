package sim

import (
	"bytes"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/aspen-db/aspen/core/hooks"
	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/node"
)

// hooksChecker follows the hooks through the changes replicas report
// (hooks.Change in node.Applied.Reports) and the committed KV history (the
// change events of each index, split by node.Applied.Revision), read once
// per index with the job changes (jobRecords), from the first replica to
// apply it; every other replica must report the same changes at the same
// index. It matches every committed change against the hooks enabled at its
// index with a matcher of its own, and checks:
//
//   - exactly once: each committed change matching an enabled hook has one
//     delivery record (queued) or one pass into a lag (passed), made in the
//     change's own apply; none other, and no delivery names a change that
//     was never committed (nor does any job of a hook's type);
//   - no gap: a resync delivery covers exactly the revisions its hook let
//     pass since the last one, and nothing is delivered one by one while
//     earlier changes wait in a lag;
//   - order and bounds: deliveries are numbered in order and handed to the
//     queue in that order (revisions never going back), each as the job the
//     queue made at that index with the delivery's idempotency key, with at
//     most one job unfinished for an ordered hook and Parallel for a
//     parallel one;
//   - at the end: the table as the history says, no enabled hook stuck with
//     room to start a delivery or to end a lag, and every delivery whose job
//     succeeded or failed run by a worker (the handler saw its key).
type hooksChecker struct {
	changes   map[uint64][]hooks.Change // the first report at each index
	hooks     map[string]*hookTrack
	keys      map[string]bool        // keys that exist, by the events so far
	committed map[changeID]uint64    // each committed change -> its index
	delivered map[deliveryID]int     // deliveries and passes per hook and change
	jobHook   map[jobs.ID]*hookTrack // delivery jobs -> their hook
	made      map[jobs.ID]string     // jobs the entry being read submitted -> their key
	ran       map[string]int         // idempotency key -> runs the workers finished (jobs.go)
	classes   map[string]int         // violations reported, per kind
}

type changeID struct {
	rev int64
	key string
}

type deliveryID struct {
	hook string
	rev  int64
	key  string
}

// expected is a delivery a committed change calls for.
type expected struct {
	id   deliveryID
	kind string
}

type hookTrack struct {
	def       hooks.Def
	disabled  bool
	nextSeq   uint64                     // the sequence number the next delivery must carry
	submitSeq uint64                     // the next one to be handed to the queue
	queued    map[uint64]*hooks.Delivery // made, not yet handed over
	lastRev   int64                      // revision of the last change or resync handed over
	flights   map[jobs.ID]bool           // handed over, job not yet finished
	passFrom  int64                      // the first revision let pass since the last resync (0: none)
	passTo    int64
	roomNs    int64 // replicated time it last gained room: a submit, a finish, a resync
	jobs      []jobs.ID
}

// Bounds of the hooks checker.
const (
	hookViolationsPerKind = 3     // a broken rule repeats at every change; the first few explain it
	hookSettleNs          = 4.5e9 // with room, a hook starts a delivery or ends a lag within this (an election, a pump retry, a token)
)

func (w *World) newHooksChecker() {
	w.hc = &hooksChecker{changes: map[uint64][]hooks.Change{}, hooks: map[string]*hookTrack{}, keys: map[string]bool{},
		committed: map[changeID]uint64{}, delivered: map[deliveryID]int{}, jobHook: map[jobs.ID]*hookTrack{},
		made: map[jobs.ID]string{}, ran: map[string]int{}, classes: map[string]int{}}
}

// fail reports a violation of kind, up to hookViolationsPerKind of each.
func (w *World) hookFail(kind, format string, args ...any) {
	if w.hc.classes[kind]++; w.hc.classes[kind] <= hookViolationsPerKind {
		w.check.fail(format, args...)
	}
}

func hookChangesOf(a *node.Applied) []hooks.Change {
	for _, r := range a.Reports {
		if c, ok := r.([]hooks.Change); ok {
			return c
		}
	}
	return nil
}

// hooksReplayed compares a replica's report at an index read already with
// the first one.
func (w *World) hooksReplayed(sn *simNode, a *node.Applied) {
	cs := hookChangesOf(a)
	if first := w.hc.changes[a.Index]; !reflect.DeepEqual(first, cs) && len(first)+len(cs) > 0 {
		w.hookFail("replicas", "replicas report hook changes differently at index %d: node %d %+v, the first to apply it %+v", a.Index, sn.id, cs, first)
	}
}

// hooksApplied reads an entry's committed changes and hook changes, before
// its job changes (so the job table is as the entry found it).
func (w *World) hooksApplied(a *node.Applied, events []node.Event, jcs []jobs.Change) {
	hc := w.hc
	want := w.hookExpected(a.Index, events)
	cs := hookChangesOf(a)
	if len(cs) > 0 {
		hc.changes[a.Index] = cs
	}
	clear(hc.made)
	for _, c := range cs {
		t := hc.hooks[c.Hook]
		switch {
		case c.State != nil || t == nil:
			w.hookState(a.Index, c)
		case c.Queued != nil:
			want = w.hookQueued(a, t, c.Queued, want)
		case c.Passed != nil:
			want = w.hookPassed(a, t, c.Passed, want)
		case c.Submitted != nil:
			w.hookSubmitted(a, t, c.Submitted, c.Job)
		}
	}
	for _, e := range want {
		w.hookFail("gap", "hook %q: committed change %s of %q at revision %d (index %d) has no delivery and no place in a lag: a gap",
			e.id.hook, e.kind, e.id.key, e.id.rev, a.Index)
	}
	w.hookJobsMade(a.Index, jcs)
}

// hookExpected records the entry's committed changes and returns the
// deliveries they call for from the hooks enabled now.
func (w *World) hookExpected(index uint64, events []node.Event) []expected {
	hc := w.hc
	var want []expected
	for _, e := range events {
		// Created: the key was absent before the change, or the txn
		// deleted and wrote it again (a new create revision).
		created := !e.Deleted && (!hc.keys[string(e.Key)] || e.Record.CreateRev == e.Revision)
		if e.Deleted {
			delete(hc.keys, string(e.Key))
		} else {
			hc.keys[string(e.Key)] = true
		}
		hc.committed[changeID{e.Revision, string(e.Key)}] = index
		kind, kindName := hooks.OnPut, hooks.KindPut
		switch {
		case e.Deleted && e.Expired:
			kind, kindName = hooks.OnExpire, hooks.KindExpire
		case e.Deleted:
			kind, kindName = hooks.OnDelete, hooks.KindDelete
		}
		for _, name := range slices.Sorted(maps.Keys(hc.hooks)) {
			if t := hc.hooks[name]; !t.disabled && hookMatches(&t.def, e.Key, kind, created) {
				want = append(want, expected{id: deliveryID{name, e.Revision, string(e.Key)}, kind: kindName})
			}
		}
	}
	return want
}

// hookState follows a command's effect on a hook.
func (w *World) hookState(index uint64, c hooks.Change) {
	hc := w.hc
	t := hc.hooks[c.Hook]
	switch {
	case c.State == nil && t == nil:
		w.hookFail("state", "hook %q changed at index %d before any state was reported: %+v", c.Hook, index, c)
	case c.State == nil:
		delete(hc.hooks, c.Hook) // the workload deletes none; a delete would end the checks of the hook
	case t == nil:
		hc.hooks[c.Hook] = &hookTrack{def: c.State.Def, disabled: c.State.Disabled, queued: map[uint64]*hooks.Delivery{}, flights: map[jobs.ID]bool{}}
	default:
		t.disabled = c.State.Disabled
		if c.State.Backlog != len(t.queued) || c.State.Lagging != (t.passFrom != 0) {
			w.hookFail("state", "hook %q at index %d: backlog %d, lagging %v; its history says %d and %v",
				c.Hook, index, c.State.Backlog, c.State.Lagging, len(t.queued), t.passFrom != 0)
		}
	}
}

// hookAccount finds a change's delivery or pass among those the entry's
// changes call for, and counts it.
func (w *World) hookAccount(a *node.Applied, what string, d *hooks.Delivery, id deliveryID, want []expected) []expected {
	hc := w.hc
	if hc.delivered[id]++; hc.delivered[id] > 1 {
		w.hookFail("twice", "hook %q: change of %q at revision %d delivered twice (the second %s at index %d)", id.hook, id.key, id.rev, what, a.Index)
	}
	i := slices.IndexFunc(want, func(e expected) bool { return e.id == id && e.kind == d.Kind })
	if i >= 0 {
		return slices.Delete(want, i, i+1)
	}
	at, ok := hc.committed[changeID{id.rev, id.key}]
	switch {
	case !ok:
		w.hookFail("uncommitted", "hook %q: %s at index %d for %s of %q at revision %d, a change never committed", id.hook, what, a.Index, d.Kind, id.key, id.rev)
	case at != a.Index:
		w.hookFail("elsewhere", "hook %q: %s at index %d for %s of %q at revision %d, committed at index %d: not in the change's own apply",
			id.hook, what, a.Index, d.Kind, id.key, id.rev, at)
	default:
		w.hookFail("unmatched", "hook %q: %s at index %d for %s of %q at revision %d, which the hook does not match", id.hook, what, a.Index, d.Kind, id.key, id.rev)
	}
	return want
}

func (w *World) hookQueued(a *node.Applied, t *hookTrack, d *hooks.Delivery, want []expected) []expected {
	name := t.def.Name
	if d.Seq != t.nextSeq {
		w.hookFail("seq", "hook %q: delivery %d made at index %d, want number %d", name, d.Seq, a.Index, t.nextSeq)
	}
	t.nextSeq = d.Seq + 1
	cp := *d
	t.queued[d.Seq] = &cp
	switch d.Kind {
	case hooks.KindResync:
		if t.passFrom == 0 || d.FromRev != t.passFrom || d.ToRev != t.passTo {
			w.hookFail("resync", "hook %q: resync [%d, %d] at index %d, but the revisions let pass since the last resync are [%d, %d]: a gap",
				name, d.FromRev, d.ToRev, a.Index, t.passFrom, t.passTo)
		}
		t.passFrom, t.passTo, t.roomNs = 0, 0, a.TimeNs
	case hooks.KindTrigger:
	default:
		if t.passFrom != 0 {
			w.hookFail("order", "hook %q: change at revision %d delivered at index %d while revisions [%d, %d] wait for a resync",
				name, d.Revision, a.Index, t.passFrom, t.passTo)
		}
		want = w.hookAccount(a, "delivery", d, deliveryID{name, d.Revision, string(d.Key)}, want)
	}
	return want
}

func (w *World) hookPassed(a *node.Applied, t *hookTrack, d *hooks.Delivery, want []expected) []expected {
	name := t.def.Name
	if d.Revision < t.passTo {
		w.hookFail("order", "hook %q: revision %d let pass at index %d after revision %d", name, d.Revision, a.Index, t.passTo)
	}
	if t.passFrom == 0 {
		t.passFrom = d.Revision
	}
	t.passTo = d.Revision
	return w.hookAccount(a, "pass", d, deliveryID{name, d.Revision, string(d.Key)}, want)
}

func (w *World) hookSubmitted(a *node.Applied, t *hookTrack, d *hooks.Delivery, id jobs.ID) {
	hc, name := w.hc, t.def.Name
	if _, ok := t.queued[d.Seq]; !ok || d.Seq != t.submitSeq {
		w.hookFail("order", "hook %q: delivery %d handed to the queue at index %d (made: %v), want delivery %d next", name, d.Seq, a.Index, ok, t.submitSeq)
	}
	delete(t.queued, d.Seq)
	t.submitSeq = d.Seq + 1
	if d.Kind != hooks.KindTrigger {
		if d.Revision < t.lastRev {
			w.hookFail("order", "hook %q: delivery of revision %d handed to the queue at index %d after revision %d", name, d.Revision, a.Index, t.lastRev)
		}
		t.lastRev = max(t.lastRev, d.Revision)
	}
	if bound := hookInFlight(&t.def); len(t.flights) >= bound {
		var states []string
		for _, f := range slices.Sorted(maps.Keys(t.flights)) {
			if jt := w.jc.jobs[f]; jt != nil {
				states = append(states, fmt.Sprintf("%d %v %q", f, jt.last.State, jt.last.Key))
			}
		}
		w.hookFail("bound", "hook %q (%s): job %d handed over at index %d while %d jobs are unfinished %v, at most %d at once",
			name, t.def.Mode, id, a.Index, len(t.flights), states, bound)
	}
	if jt := w.jc.jobs[id]; jt != nil {
		w.hookFail("existing", "hook %q: delivery %d handed over at index %d as job %d, which existed already with key %q: the queue took it for an earlier delivery",
			name, d.Seq, a.Index, id, jt.last.Key)
	}
	t.flights[id], t.roomNs = true, a.TimeNs
	t.jobs = append(t.jobs, id)
	hc.jobHook[id] = t
	hc.made[id] = d.IdemKey(name)
}

func hookInFlight(d *hooks.Def) int {
	if d.Mode == hooks.Parallel {
		return int(d.Parallel)
	}
	return 1
}

// hookJobsMade checks the jobs the entry made: each job of a hook's type
// is the one a delivery was handed over as, with its key, and every
// delivery handed over made its job.
func (w *World) hookJobsMade(index uint64, jcs []jobs.Change) {
	hc := w.hc
	for _, c := range jcs {
		j := c.Job
		if c.Gone || w.jc.jobs[j.ID] != nil || !isHookJobType(j.Type) {
			continue
		}
		key, ok := hc.made[j.ID]
		switch {
		case !ok:
			what := "a change the hook matches"
			if id, parsed := parseIdemKey(j.Key); !parsed {
				what = "no change"
			} else if _, committed := hc.committed[changeID{id.rev, id.key}]; !committed {
				what = "a change never committed"
			}
			w.hookFail("stray: "+what, "job %d of hook type %s with key %q made at index %d by no hook delivery; its key names %s", j.ID, j.Type, j.Key, index, what)
		case key != j.Key:
			w.hookFail("stray", "job %d made at index %d with key %q, its delivery's key is %q", j.ID, index, j.Key, key)
		}
		delete(hc.made, j.ID)
	}
	for _, id := range slices.Sorted(maps.Keys(hc.made)) {
		if t := w.jc.jobs[id]; t == nil || t.last.Key != hc.made[id] {
			w.hookFail("stray", "a delivery handed over at index %d as job %d, which the queue does not hold with key %q", index, id, hc.made[id])
		}
	}
}

// parseIdemKey reads hook:revision:key.
func parseIdemKey(s string) (deliveryID, bool) {
	name, rest, ok := strings.Cut(s, ":")
	revText, key, ok2 := strings.Cut(rest, ":")
	rev, err := strconv.ParseInt(revText, 10, 64)
	return deliveryID{name, rev, key}, ok && ok2 && err == nil
}

// hookJobChanged notes a delivery job's first finish: its hook has room.
func (w *World) hookJobChanged(c jobs.Change, atNs int64) {
	t := w.hc.jobHook[c.Job.ID]
	if t == nil || !t.flights[c.Job.ID] {
		return
	}
	switch c.Job.State {
	case jobs.Pending, jobs.Leased:
		if !c.Gone {
			return
		}
	}
	delete(t.flights, c.Job.ID)
	t.roomNs = atNs
}

// checkHooksAtEnd compares a converged replica's hooks with the history and
// checks that every enabled hook drained what it had room for and that the
// workers ran every delivery whose job a worker finished.
func (w *World) checkHooksAtEnd(sn *simNode) {
	hc := w.hc
	table := map[string]hooks.Hook{}
	for _, h := range sn.n.Hosted("hooks").(*hooks.Module).Hooks() {
		table[h.Name] = h
	}
	for _, name := range slices.Sorted(maps.Keys(hc.hooks)) {
		t := hc.hooks[name]
		got, ok := table[name]
		if !ok || got.Backlog != len(t.queued) || got.Lagging != (t.passFrom != 0) || got.Disabled != t.disabled {
			w.hookFail("end", "hook %q on node %d is %+v (found %v); the history says backlog %d, lagging %v, disabled %v",
				name, sn.id, got, ok, len(t.queued), t.passFrom != 0, t.disabled)
		}
		w.res.HookDeliveries += len(t.jobs)
		w.res.HookResyncs += int(got.Stats.Resyncs)
		idle := w.jc.lastNs - t.roomNs
		roomy := len(t.flights) < hookInFlight(&t.def)
		switch {
		case t.disabled || idle <= hookSettleNs+w.hookTokenNs(t):
		case len(t.queued) > 0 && roomy:
			w.hookFail("stuck", "hook %q holds %d deliveries with room to start one, and started none for %.3fs", name, len(t.queued), float64(idle)/1e9)
		case t.passFrom != 0 && len(t.queued) < w.hookBacklogMax():
			w.hookFail("stuck", "hook %q still lags over [%d, %d] with room in its backlog for %.3fs: the resync never came", name, t.passFrom, t.passTo, float64(idle)/1e9)
		}
		for _, id := range t.jobs {
			jt := w.jc.jobs[id]
			if jt == nil || jt.gone {
				continue
			}
			key := jt.last.Key
			if s := jt.last.State; (s == jobs.Succeeded || s == jobs.Failed) && hc.ran[key] == 0 {
				w.hookFail("ran", "hook %q: delivery job %d (key %q) %v, but no worker ran it", name, id, key, s)
			}
		}
	}
}

// hookTokenNs is how long a hook's bucket may hold its next delivery back.
func (w *World) hookTokenNs(t *hookTrack) int64 {
	if t.def.RatePerSec == 0 {
		return 0
	}
	return 1e9 / t.def.RatePerSec
}

func (w *World) hookBacklogMax() int {
	if w.sc.Hooks.BacklogMax > 0 {
		return w.sc.Hooks.BacklogMax
	}
	return hooks.DefaultLimits().BacklogMax
}

// hookMatches is the checker's own reading of a hook's definition: events,
// the put filter, and the pattern (hookPattern).
func hookMatches(d *hooks.Def, key []byte, kind uint8, created bool) bool {
	events := d.Events
	if events == 0 {
		events = hooks.OnPut | hooks.OnDelete
	}
	switch {
	case events&kind == 0:
		return false
	case kind == hooks.OnPut && d.Filter == hooks.FilterCreated && !created:
		return false
	case kind == hooks.OnPut && d.Filter == hooks.FilterUpdated && created:
		return false
	}
	return hookPattern(d.Pattern, key)
}

// hookPattern matches a key against a pattern: a prefix without '*', else
// a glob over '/'-separated segments ("*" one segment, or any bytes within
// one; "**" a whole segment standing for any number of them).
func hookPattern(p string, key []byte) bool {
	if !strings.Contains(p, "*") {
		return bytes.HasPrefix(key, []byte(p))
	}
	return globSegs(strings.Split(p, "/"), strings.Split(string(key), "/"))
}

func globSegs(ps, ks []string) bool {
	if ps[0] == "**" {
		if len(ps) == 1 {
			return true
		}
		for i := range ks {
			if globSegs(ps[1:], ks[i:]) {
				return true
			}
		}
		return false
	}
	if !globSeg(ps[0], ks[0]) || (len(ps) == 1) != (len(ks) == 1) {
		return false
	}
	return len(ps) == 1 || globSegs(ps[1:], ks[1:])
}

// globSeg matches one segment, '*' standing for any run of bytes.
func globSeg(p, s string) bool {
	head, tail, star := strings.Cut(p, "*")
	if !star {
		return p == s
	}
	if !strings.HasPrefix(s, head) {
		return false
	}
	for i := len(head); i <= len(s); i++ {
		if globSeg(tail, s[i:]) {
			return true
		}
	}
	return false
}
