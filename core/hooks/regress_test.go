package hooks

import (
	"testing"

	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
)

// Findings of the simulator's hooks scenario (sim/hookscheck.go), each
// kept as the smallest apply that shows it.

func regressModule(t *testing.T, limits Limits, d Def) (*Module, *jobs.Module) {
	t.Helper()
	q := jobs.NewModule(jobs.DefaultLimits())
	m := NewModule(limits, q)
	m.Report(true)
	if a := m.Apply(regressEnv(1), CmdCreate, Create(d).Body); a.Outcome != module.OK {
		t.Fatalf("create: %v %s", a.Outcome, a.Detail)
	}
	m.TakeReport()
	return m, q
}

func regressEnv(index uint64) *module.Env {
	return &module.Env{Index: index, NowNs: int64(index) * 1e6, Batch: &storage.Batch{}}
}

func regressDef(name string) Def {
	return Def{Name: name, Pattern: "k/", Events: OnPut, Handler: Handler{Kind: HandlerJob, JobType: "work"},
		Mode: Ordered, AttemptsMax: 1, TimeoutNs: 1e9}
}

func queued(report any) []Delivery {
	var out []Delivery
	cs, _ := report.([]Change)
	for _, c := range cs {
		if c.Queued != nil {
			out = append(out, *c.Queued)
		}
	}
	return out
}

// A txn that writes a new key twice leaves it at version 2: the put still
// created the key (its create revision is the txn's), so a hook on created
// keys fires and one on updated keys does not. Matching by version 1 got
// both wrong (hooks seed 1).
func TestCreatedIsTheCreateRevision(t *testing.T) {
	for _, c := range []struct {
		filter uint8
		rec    kv.Record
		want   int
	}{
		{FilterCreated, kv.Record{CreateRev: 7, ModRev: 7, Version: 2}, 1}, // new key written twice in one txn
		{FilterUpdated, kv.Record{CreateRev: 7, ModRev: 7, Version: 2}, 0},
		{FilterCreated, kv.Record{CreateRev: 3, ModRev: 7, Version: 2}, 0}, // an update
		{FilterUpdated, kv.Record{CreateRev: 3, ModRev: 7, Version: 2}, 1},
		{FilterCreated, kv.Record{CreateRev: 7, ModRev: 7, Version: 1}, 1}, // a plain create
	} {
		d := regressDef("h")
		d.Filter = c.filter
		m, _ := regressModule(t, DefaultLimits(), d)
		m.Changed(regressEnv(2), &kv.Event{Revision: 7, Key: []byte("k/a"), Record: c.rec})
		if got := len(queued(m.TakeReport())); got != c.want {
			t.Errorf("filter %d, record %+v: got %d deliveries, want %d", c.filter, c.rec, got, c.want)
		}
	}
}

// A trigger on a hook whose backlog is full used to pass into the lag as
// revision 0, so the lag's range ended at 0 and the synthetic event was
// lost (hooks seed 1). It is refused instead, and the lag stays whole.
func TestTriggerRefusedWhenBacklogFull(t *testing.T) {
	limits := DefaultLimits()
	limits.BacklogMax = 1
	m, _ := regressModule(t, limits, regressDef("h"))
	put := func(index uint64, rev int64) {
		m.Changed(regressEnv(index), &kv.Event{Revision: rev, Key: []byte("k/a"), Record: kv.Record{CreateRev: 1, ModRev: rev, Version: 2}})
	}
	put(2, 10) // handed to the queue
	put(3, 11) // waits in the backlog
	put(4, 12) // lets pass: the hook lags
	m.TakeReport()
	a := m.Apply(regressEnv(5), CmdTrigger, Trigger("h", []byte("t"), nil).Body)
	if a.Outcome != module.Conflict {
		t.Fatalf("trigger into a full backlog: got %v, want %v", a.Outcome, module.Conflict)
	}
	h := m.hooks["h"]
	if !h.lagging || h.lagFrom != 12 || h.lagTo != 12 || len(h.backlog) != 1 {
		t.Fatalf("after the refused trigger: lagging %v over [%d, %d], backlog %d; want lagging over [12, 12], backlog 1",
			h.lagging, h.lagFrom, h.lagTo, len(h.backlog))
	}
}

// A txn whose changes at one revision met a full backlog, a finished
// delivery making room between them, ended the lag in the middle of the
// revision and began another over the same revision: two resyncs [12, 12]
// with one idempotency key, and the job queue took the second for the
// first (hooks seed 8). A lag now ends in a later entry only.
func TestLagEndsBetweenEntries(t *testing.T) {
	limits := DefaultLimits()
	limits.BacklogMax = 1
	m, q := regressModule(t, limits, regressDef("h"))
	put := func(index uint64, rev int64, key string) {
		m.Changed(regressEnv(index), &kv.Event{Revision: rev, Key: []byte(key), Record: kv.Record{CreateRev: 1, ModRev: rev, Version: 2}})
	}
	var resyncs []Delivery
	take := func() {
		for _, d := range queued(m.TakeReport()) {
			if d.Kind == KindResync {
				resyncs = append(resyncs, d)
			}
		}
	}
	put(2, 10, "k/a") // handed to the queue
	put(3, 11, "k/a") // waits in the backlog
	jobCmd := func(index uint64, c module.Command) module.Answer {
		t.Helper()
		a := q.Apply(regressEnv(index), c.Kind, c.Body)
		if a.Outcome != module.OK {
			t.Fatalf("job command at %d: %v %s", index, a.Outcome, a.Detail)
		}
		return a
	}
	leased := jobCmd(4, jobs.Lease("w", []string{"work"}, 1)).Value.(jobs.Answer)
	jobCmd(5, jobs.Complete(leased.Jobs[0].ID, leased.Jobs[0].Token, jobs.Result{}))
	take()
	put(6, 12, "k/a") // passes; the pump then reaps the finished job and makes room
	put(6, 12, "k/b") // the same revision: must join the same lag
	take()
	if len(resyncs) != 0 {
		t.Fatalf("a resync made in the entry that let revision 12 pass: %+v", resyncs)
	}
	if a := m.Apply(regressEnv(7), CmdPump, pumpBody("h")); a.Outcome != module.OK {
		t.Fatalf("pump: %v", a.Outcome)
	}
	take()
	if len(resyncs) != 1 || resyncs[0].FromRev != 12 || resyncs[0].ToRev != 12 {
		t.Fatalf("got resyncs %+v, want one over [12, 12]", resyncs)
	}
	if got := m.hooks["h"].stats.Lagged; got != 2 {
		t.Fatalf("got %d changes lagged, want 2", got)
	}
}

func pumpBody(names ...string) []byte {
	b := []byte{byte(len(names))}
	for _, n := range names {
		b = module.AppendBytes(b, []byte(n))
	}
	return b
}
