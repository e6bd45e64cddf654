package sched

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
)

const second = int64(1e9)

// rig is a schedule table over a real job queue, applying at chosen stamps.
type rig struct {
	t      failer
	q      *jobs.Module
	m      *Module
	index  uint64
	writes []*storage.Batch // every env's batch, in order
}

// failer is what a rig needs of a test: *testing.T, *testing.B, *rapid.T.
type failer interface {
	Helper()
	Fatalf(format string, args ...any)
}

func newRig(t failer) *rig {
	q := jobs.NewModule(jobs.DefaultLimits())
	return &rig{t: t, q: q, m: NewModule(DefaultLimits(), q)}
}

func (r *rig) env(nowNs int64) *module.Env {
	r.index++
	b := &storage.Batch{}
	r.writes = append(r.writes, b)
	return &module.Env{Index: r.index, NowNs: nowNs, Batch: b}
}

func def(name, spec string, overlap Overlap, catchUp CatchUp, runAll int) Def {
	return Def{Name: name, Spec: spec, Overlap: overlap, CatchUp: catchUp, RunAllMax: runAll,
		Job: jobs.Spec{Type: "shell", Payload: []byte("true"), AttemptsMax: 1, TimeoutNs: second}}
}

// apply applies a client command and fails the test unless it answers want.
func (r *rig) apply(nowNs int64, c module.Command, want module.Outcome) Answer {
	r.t.Helper()
	if v := r.m.Validate(c.Kind, c.Body); v.Outcome != module.OK {
		if v.Outcome != want {
			r.t.Fatalf("validate %d: got %v (%s), want %v", c.Kind, v.Outcome, v.Detail, want)
		}
		return Answer{}
	}
	a := r.m.Apply(r.env(nowNs), c.Kind, c.Body)
	if a.Outcome != want {
		r.t.Fatalf("apply %d: got %v (%s), want %v", c.Kind, a.Outcome, a.Detail, want)
	}
	v, _ := a.Value.(Answer)
	return v
}

func (r *rig) fire(nowNs int64, name string, tickNs int64) {
	c := fireCommand([]fireRef{{name, tickNs}})
	r.m.Apply(r.env(nowNs), c.Kind, c.Body)
}

func (r *rig) get(name string) (Schedule, []Fire) {
	s, h, ok := r.m.t.Get(name)
	if !ok {
		r.t.Fatalf("schedule %q gone", name)
	}
	return s, h
}

// keys lists the idempotency keys of every job in the queue, by id.
func (r *rig) keys() []string {
	var out []string
	for st := jobs.Pending; st <= jobs.Cancelled; st++ {
		js, _ := r.q.Table().List(st, 0, 1000)
		for _, j := range js {
			out = append(out, fmt.Sprintf("%d:%s", j.ID, j.Key))
		}
	}
	return out
}

func (r *rig) end(id jobs.ID) {
	r.t.Helper()
	c := jobs.Cancel(id)
	if a := r.q.Apply(r.env(0), c.Kind, c.Body); a.Outcome != module.OK {
		r.t.Fatalf("cancel %d: %s", id, a.Detail)
	}
}

func TestFireCreatesOneJobPerTick(t *testing.T) {
	r := newRig(t)
	r.apply(second/2, Add(def("s", "every 1s", OverlapAllow, CatchUpSkip, 0)), module.OK)
	r.fire(second, "s", second)
	r.fire(second, "s", second)              // applied twice
	r.fire(3*second/2, "s", second)          // proposed again by the next leader
	r.fire(second, "s", 2*second)            // not due at the stamp
	r.fire(3*second, "s", 2*second+second/2) // not a tick
	if got := r.q.Table().Len(); got != 1 {
		t.Fatalf("jobs: got %d (%v), want 1", got, r.keys())
	}
	j, _ := r.q.Table().Get(1)
	if j.Key != "s@1970-01-01T00:00:01Z" {
		t.Fatalf("job key: got %q, want s@1970-01-01T00:00:01Z", j.Key)
	}
	s, h := r.get("s")
	if s.Fired != 1 || s.LastTickNs != second || s.NextTickNs != 2*second || s.LastJob != 1 || len(h) != 1 || h[0].Outcome != FireCreated {
		t.Fatalf("schedule: got %+v, history %+v", s, h)
	}
	r.fire(2*second, "s", 2*second)
	if got := r.q.Table().Len(); got != 2 {
		t.Fatalf("after the second tick: got %d jobs, want 2", got)
	}
}

func TestOverlapPolicies(t *testing.T) {
	r := newRig(t)
	for _, d := range []Def{
		def("skip", "every 1s", OverlapSkip, CatchUpSkip, 0),
		def("buf", "every 1s", OverlapBufferOne, CatchUpSkip, 0),
		def("allow", "every 1s", OverlapAllow, CatchUpSkip, 0),
	} {
		r.apply(0, Add(d), module.OK)
	}
	for tick := int64(1); tick <= 3; tick++ {
		for _, n := range []string{"skip", "buf", "allow"} {
			r.fire(tick*second, n, tick*second)
		}
	}
	if s, _ := r.get("skip"); s.Fired != 1 || s.Skipped != 2 {
		t.Errorf("skip: got fired %d skipped %d, want 1 and 2", s.Fired, s.Skipped)
	}
	if s, _ := r.get("allow"); s.Fired != 3 || s.Skipped != 0 {
		t.Errorf("allow: got fired %d skipped %d, want 3 and 0", s.Fired, s.Skipped)
	}
	s, h := r.get("buf")
	if s.Fired != 1 || s.Skipped != 1 || s.BufferedNs != 2*second {
		t.Fatalf("buffer-one: got %+v, want 1 fired, tick 2 buffered, tick 3 skipped", s)
	}
	if got := fmt.Sprint([]FireOutcome{h[0].Outcome, h[1].Outcome, h[2].Outcome}); got != "[created buffered skipped]" {
		t.Fatalf("buffer-one history: got %v", got)
	}
	// The buffered tick waits while the first job runs, then goes.
	r.fire(4*second, "buf", 2*second)
	if s, _ := r.get("buf"); s.Fired != 1 {
		t.Fatalf("buffered tick released while the job runs: %+v", s)
	}
	r.end(s.LastJob)
	r.fire(4*second, "buf", 2*second)
	r.fire(4*second, "buf", 2*second) // twice: once
	s, _ = r.get("buf")
	j, _ := r.q.Table().Get(s.LastJob)
	if s.Fired != 2 || s.BufferedNs != 0 || j.Key != JobKey("buf", 2*second) {
		t.Fatalf("after release: got %+v, job %q, want tick 2's job", s, j.Key)
	}
	// Skip creates again once the previous job ended.
	sk, _ := r.get("skip")
	r.end(sk.LastJob)
	r.fire(4*second, "skip", 4*second)
	if s, _ := r.get("skip"); s.Fired != 2 {
		t.Fatalf("skip after the job ended: got %+v", s)
	}
}

// A tick that finds a buffered tick free to go creates that first, so jobs
// come in tick order.
func TestBufferedTickGoesFirst(t *testing.T) {
	r := newRig(t)
	r.apply(0, Add(def("b", "every 1s", OverlapBufferOne, CatchUpSkip, 0)), module.OK)
	r.fire(second, "b", second)
	r.fire(2*second, "b", 2*second)
	s, _ := r.get("b")
	r.end(s.LastJob)
	r.fire(3*second, "b", 3*second)
	s, _ = r.get("b")
	j, _ := r.q.Table().Get(s.LastJob)
	if s.Fired != 2 || s.BufferedNs != 3*second || j.Key != JobKey("b", 2*second) {
		t.Fatalf("got %+v, last job %q, want tick 2 created and tick 3 buffered", s, j.Key)
	}
}

func TestCatchUpAfterALongGap(t *testing.T) {
	cases := []struct {
		policy CatchUp
		runAll int
		jobs   int
		missed uint64
	}{
		{CatchUpSkip, 0, 1, 999},
		{CatchUpRunOnce, 0, 2, 998},
		{CatchUpRunAll, 10, 10, 990},
	}
	for _, c := range cases {
		r := newRig(t)
		r.apply(0, Add(def("s", "every 1s", OverlapAllow, c.policy, c.runAll)), module.OK)
		r.fire(1000*second+5, "s", 1000*second)
		s, h := r.get("s")
		if got := r.q.Table().Len(); got != c.jobs || s.Missed != c.missed || s.Fired != uint64(c.jobs) {
			t.Errorf("%v: got %d jobs, %d missed, want %d and %d", c.policy, got, s.Missed, c.jobs, c.missed)
		}
		if h[0].Outcome != FireMissed || h[0].Missed != c.missed {
			t.Errorf("%v: history opens with %+v, want the missed ticks", c.policy, h[0])
		}
		r.fire(1000*second+5, "s", 1000*second)
		if got := r.q.Table().Len(); got != c.jobs {
			t.Errorf("%v: the fire again made %d jobs", c.policy, got)
		}
	}
}

func TestPauseResumeRemove(t *testing.T) {
	r := newRig(t)
	r.apply(0, Add(def("s", "*/1 * * * * *", OverlapAllow, CatchUpRunAll, 100)), module.OK)
	r.fire(second, "s", second)
	r.apply(second, Pause("s"), module.OK)
	r.fire(2*second, "s", 2*second)
	if s, _ := r.get("s"); s.Fired != 1 || !s.Paused || s.NextTickNs != 0 {
		t.Fatalf("paused: got %+v", s)
	}
	a := r.apply(50*second+1, Resume("s"), module.OK)
	if a.Schedule.Paused || a.Schedule.NextTickNs != 51*second {
		t.Fatalf("resumed: got %+v, want next tick 51 s", a.Schedule)
	}
	r.fire(50*second+1, "s", 50*second) // fell while paused
	r.fire(51*second, "s", 51*second)
	if s, _ := r.get("s"); s.Fired != 2 || s.Missed != 0 {
		t.Fatalf("after resume: got %+v, want 2 fired and none missed", s)
	}
	r.apply(52*second, Remove("s"), module.OK)
	r.fire(52*second, "s", 52*second)
	r.apply(52*second, Remove("s"), module.NotFound)
	r.apply(52*second, Pause("s"), module.NotFound)
	if got := r.q.Table().Len(); got != 2 || r.m.t.Len() != 0 || r.m.t.Hash() != 0 {
		t.Fatalf("after remove: %d jobs (want 2 kept), %d schedules", got, r.m.t.Len())
	}
}

func TestHistoryIsBounded(t *testing.T) {
	r := newRig(t)
	r.apply(0, Add(def("s", "every 1s", OverlapAllow, CatchUpSkip, 0)), module.OK)
	for tick := int64(1); tick <= HistoryMax+8; tick++ {
		r.fire(tick*second, "s", tick*second)
	}
	_, h := r.get("s")
	if len(h) != HistoryMax || h[0].TickNs != 9*second || h[HistoryMax-1].TickNs != (HistoryMax+8)*second {
		t.Fatalf("history: %d entries from %d to %d, want %d from 9 s", len(h), h[0].TickNs, h[len(h)-1].TickNs, HistoryMax)
	}
}

func TestValidateRefuses(t *testing.T) {
	r := newRig(t)
	r.apply(0, Add(def("s", "every 1s", OverlapAllow, CatchUpSkip, 0)), module.OK)
	noType := def("t", "every 1s", OverlapAllow, CatchUpSkip, 0)
	noType.Job.Type = ""
	big := def("t", "every 1s", OverlapAllow, CatchUpSkip, 0)
	big.Job.Payload = make([]byte, 64<<10+1)
	cases := []struct {
		name string
		cmd  module.Command
		want module.Outcome
	}{
		{"bad spec", Add(def("t", "61 * * * *", OverlapAllow, CatchUpSkip, 0)), module.Invalid},
		{"bad zone", Add(Def{Name: "t", Spec: "@daily", Zone: "Mars/Olympus", Job: def("", "", 0, 0, 0).Job, Overlap: OverlapAllow, CatchUp: CatchUpSkip}), module.Invalid},
		{"unknown overlap", Add(def("t", "every 1s", 9, CatchUpSkip, 0)), module.Invalid},
		{"unknown catch-up", Add(def("t", "every 1s", OverlapAllow, 0, 0)), module.Invalid},
		{"run-all without a bound", Add(def("t", "every 1s", OverlapAllow, CatchUpRunAll, 0)), module.Invalid},
		{"run-all over its bound", Add(def("t", "every 1s", OverlapAllow, CatchUpRunAll, RunAllMax+1)), module.Invalid},
		{"no job type", Add(noType), module.Invalid},
		{"payload too large", Add(big), module.TooLarge},
		{"name too long", Add(def(strings.Repeat("n", 129), "every 1s", OverlapAllow, CatchUpSkip, 0)), module.TooLarge},
		{"empty name", Add(def("", "every 1s", OverlapAllow, CatchUpSkip, 0)), module.Invalid},
		{"name with @", Add(def("a@b", "every 1s", OverlapAllow, CatchUpSkip, 0)), module.Invalid},
		{"duplicate", Add(def("s", "every 2s", OverlapAllow, CatchUpSkip, 0)), module.Conflict},
		{"unknown", Resume("nope"), module.NotFound},
		{"the leader's fire", fireCommand([]fireRef{{"s", second}}), module.Invalid},
		{"garbage", module.Command{Kind: CmdAdd, Body: []byte{0xff}}, module.Invalid},
	}
	hash, n := r.m.Hash(), r.q.Table().Len()
	for _, c := range cases {
		a := r.m.Validate(c.cmd.Kind, c.cmd.Body)
		if a.Outcome == module.OK {
			a = r.m.Apply(r.env(second), c.cmd.Kind, c.cmd.Body)
		}
		if a.Outcome != c.want || a.Detail == "" {
			t.Errorf("%s: got %v (%s), want %v with a reason", c.name, a.Outcome, a.Detail, c.want)
		}
	}
	if r.m.Hash() != hash || r.q.Table().Len() != n || r.m.t.Len() != 1 {
		t.Fatal("refusals changed the state")
	}
}

// The replica's totals count every tick missed or skipped, and stay when the
// schedule that counted them is removed or the table is reloaded. Lag is how
// long the oldest due tick of an unpaused schedule has waited unfired.
func TestCountersAndLag(t *testing.T) {
	r := newRig(t)
	r.apply(0, Add(def("skip", "every 1s", OverlapSkip, CatchUpSkip, 0)), module.OK)
	r.apply(0, Add(def("idle", "every 10s", OverlapAllow, CatchUpSkip, 0)), module.OK)
	if got := r.m.t.LagNs(second / 2); got != 0 {
		t.Fatalf("lag before any tick is due: got %d, want 0", got)
	}
	if got := r.m.t.LagNs(2*second + 300); got != second+300 {
		t.Fatalf("lag with tick 1s unfired at 2s+300ns: got %d, want %d", got, second+300)
	}
	r.fire(1*second, "skip", 1*second) // creates job 1, which stays pending
	r.fire(2*second, "skip", 2*second) // skipped: job 1 still pending
	r.fire(5*second, "skip", 5*second) // ticks 3 and 4 missed, tick 5 skipped
	want := Counters{Missed: 2, Skipped: 2}
	if got := r.m.t.Counters(); got != want {
		t.Fatalf("counters: got %+v, want %+v", got, want)
	}
	if got := r.m.t.LagNs(5*second + 7); got != 0 {
		t.Fatalf("lag with every due tick fired: got %d, want 0", got)
	}
	if got := r.m.t.LagNs(10*second + 7); got != 4*second+7 {
		t.Fatalf("lag at 10s+7ns, ticks due at 6s (skip) and 10s (idle): got %d, want %d", got, 4*second+7)
	}
	r.apply(6*second, Pause("skip"), module.OK)
	if got := r.m.t.LagNs(10*second + 7); got != 7 {
		t.Fatalf("lag with skip paused: got %d, want 7 (idle's tick at 10s)", got)
	}
	r.apply(6*second, Remove("skip"), module.OK)
	if got := r.m.t.Counters(); got != want {
		t.Fatalf("counters after the schedule went: got %+v, want %+v", got, want)
	}
	enc := r.m.t.Encode()
	if err := r.m.Restore(enc); err != nil || r.m.t.Counters() != want {
		t.Fatalf("counters after a restore: got %+v (%v), want %+v", r.m.t.Counters(), err, want)
	}
	fresh := NewModule(DefaultLimits(), r.q)
	if err := fresh.Restore(enc); err != nil || fresh.t.Counters() != (Counters{}) {
		t.Fatalf("counters of a replica that applied nothing: got %+v (%v), want none", fresh.t.Counters(), err)
	}
}
