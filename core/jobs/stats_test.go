package jobs

import (
	"testing"

	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
	"github.com/aspen-db/aspen/sim/disk"
)

// statsRig applies commands to a module as the host would, keeping every
// batch on a simulated disk.
type statsRig struct {
	t     *testing.T
	m     *Module
	d     *disk.Disk
	index uint64
}

func (r *statsRig) apply(nowNs int64, c module.Command) Answer {
	r.t.Helper()
	r.index++
	b := &storage.Batch{}
	a := r.m.Apply(&module.Env{Index: r.index, NowNs: nowNs, Batch: b}, c.Kind, c.Body)
	if a.Outcome != module.OK {
		r.t.Fatalf("command %d: %v %s", c.Kind, a.Outcome, a.Detail)
	}
	if err := r.d.Apply(*b); err != nil {
		r.t.Fatal(err)
	}
	if a.Value == nil {
		return Answer{}
	}
	return a.Value.(Answer)
}

func (r *statsRig) stats() Stats {
	r.t.Helper()
	a := r.m.Query(QueryStats, StatsQuery().Body, 0)
	if a.Outcome != module.OK {
		r.t.Fatalf("stats: %v %s", a.Outcome, a.Detail)
	}
	return a.Value.(Stats)
}

// A job's life shows in the stats query: counts per state as the table
// holds them, and what this replica saw happen (an expiry, a retry, a dead
// letter). Loading the records or restoring a snapshot gives the same
// counts and keeps the counters, which count what this replica applied.
func TestStatsFollowTransitionsLoadAndRestore(t *testing.T) {
	r := &statsRig{t: t, m: NewModule(testLimits()), d: disk.New()}
	flaky := spec("x", 1) // two attempts, timeout 100
	flaky.BackoffBaseNs, flaky.BackoffMaxNs = 0, 0
	a := r.apply(0, Submit(flaky)).Job
	b := r.apply(0, Submit(spec("x", 0))).Job
	r.apply(0, Submit(spec("y", 0)))
	c := r.apply(0, Submit(spec("z", 0))).Job
	r.apply(1, Cancel(c.ID))

	l := r.apply(2, Lease("w", []string{"x"}, 2)).Jobs // a and b
	r.apply(3, Complete(b.ID, l[1].Token, Result{}))
	ex := r.m.Due(module.Leader{Term: 1, NowNs: 200, GraceNs: 0}) // the leader's grace first
	for _, cmd := range ex {
		r.apply(200, cmd)
	}
	for _, cmd := range r.m.Due(module.Leader{Term: 1, NowNs: 200}) {
		r.apply(200, cmd) // a's lease expires: pending again, attempt 1 of 2 used
	}
	again := r.apply(201, Lease("w", []string{"x"}, 1)).Jobs // a's second attempt: a retry
	r.apply(202, Fail(a.ID, again[0].Token, "boom", true))   // out of attempts: dead

	want := Stats{
		Counts:   Counts{Pending: 1, Succeeded: 1, Dead: 1, Cancelled: 1},
		Counters: Counters{LeaseExpiries: 1, Retries: 1, DeadLetters: 1},
	}
	if got := r.stats(); got != want {
		t.Fatalf("stats: got %+v, want %+v", got, want)
	}

	loaded := NewModule(testLimits())
	if err := loaded.Load(r.d); err != nil {
		t.Fatal(err)
	}
	if got := loaded.Table().Counts(); got != want.Counts {
		t.Fatalf("counts after a load of the records: got %+v, want %+v", got, want.Counts)
	}
	if got := loaded.Table().Counters(); got != (Counters{}) {
		t.Fatalf("counters of a replica that applied nothing: got %+v, want none", got)
	}
	snap := r.m.Table().Encode()
	for _, restore := range []func() error{func() error { return r.m.Load(r.d) }, func() error { return r.m.Restore(snap) }} {
		if err := restore(); err != nil {
			t.Fatal(err)
		}
		if got := r.stats(); got != want {
			t.Fatalf("stats after a load or restore: got %+v, want %+v", got, want)
		}
	}
	r.apply(300, DropDead(a.ID))
	if err := r.m.Restore(nil); err != nil {
		t.Fatal(err)
	}
	if got := r.stats(); got.Counts != (Counts{}) || got.Counters != want.Counters {
		t.Fatalf("stats after a restore of an empty table: got %+v, want no jobs and the counters kept", got)
	}
	if a := r.m.Query(QueryStats, []byte{1}, 0); a.Outcome != module.Invalid {
		t.Fatalf("stats query with a body: got %v, want invalid", a.Outcome)
	}
}
