package hooks

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
	"github.com/aspen-db/aspen/sim/disk"
	"pgregory.net/rapid"
)

// fakeJobs is a job queue the test finishes jobs in by hand.
type fakeJobs struct {
	specs  []jobs.Spec // job i+1
	states map[jobs.ID]jobs.State
	full   bool // refuse every submit, as a full table does
}

func newFakeJobs() *fakeJobs { return &fakeJobs{states: map[jobs.ID]jobs.State{}} }

func (f *fakeJobs) CheckSpec(jobs.Spec) error { return nil }

func (f *fakeJobs) SubmitFrom(_ *module.Env, s jobs.Spec) (jobs.ID, bool, error) {
	if f.full {
		return 0, false, &module.Error{Outcome: module.TooLarge, Detail: "job table full"}
	}
	for i := range f.specs {
		if f.specs[i].Key == s.Key {
			return jobs.ID(i + 1), true, nil
		}
	}
	f.specs = append(f.specs, s)
	id := jobs.ID(len(f.specs))
	f.states[id] = jobs.Pending
	return id, false, nil
}

func (f *fakeJobs) JobState(id jobs.ID) (jobs.State, bool) {
	s, ok := f.states[id]
	return s, ok
}

func (f *fakeJobs) JobAttempts(id jobs.ID) int64 {
	if _, ok := f.states[id]; ok {
		return 1
	}
	return 0
}

// rig drives the module alone: commands and KV changes applied at
// increasing indexes, their batches written to a simulated disk.
type rig struct {
	t     tester
	m     *Module
	q     *fakeJobs
	d     *disk.Disk
	lim   Limits
	index uint64
	now   int64
	rev   int64
}

// tester is what a rig needs of *testing.T and *rapid.T.
type tester interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

func newRig(t tester, lim Limits) *rig {
	q := newFakeJobs()
	return &rig{t: t, m: NewModule(lim, q), q: q, d: disk.New(), lim: lim, now: 1e12}
}

// in runs fn as the apply of the next index and writes its batch.
func (r *rig) in(fn func(env *module.Env)) {
	r.t.Helper()
	r.index++
	env := &module.Env{Index: r.index, NowNs: r.now, Batch: &storage.Batch{}}
	fn(env)
	if err := r.d.Apply(*env.Batch); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) apply(c module.Command) module.Answer {
	r.t.Helper()
	if a := r.m.Validate(c.Kind, c.Body); a.Outcome != module.OK && c.Kind != CmdPump {
		return a
	}
	var a module.Answer
	r.in(func(env *module.Env) { a = r.m.Apply(env, c.Kind, c.Body) })
	return a
}

func (r *rig) mustApply(c module.Command) Answer {
	r.t.Helper()
	a := r.apply(c)
	if a.Outcome != module.OK {
		r.t.Fatalf("command %d: got %v %s, want ok", c.Kind, a.Outcome, a.Detail)
	}
	v, _ := a.Value.(Answer)
	return v
}

// put applies a put of key at the next revision; version 1 creates the key
// (its create revision is this one), a later version updates it.
func (r *rig) put(key string, version int64) int64 {
	r.rev++
	createRev := r.rev
	if version > 1 {
		createRev = 1 // some earlier revision: what matters is that it is not this one
	}
	e := kv.Event{Revision: r.rev, Key: []byte(key), Record: kv.Record{Value: []byte("v" + key), CreateRev: createRev, ModRev: r.rev, Version: version}}
	r.in(func(env *module.Env) { r.m.Changed(env, &e) })
	return r.rev
}

func (r *rig) del(key string, expired bool) int64 {
	r.rev++
	e := kv.Event{Revision: r.rev, Key: []byte(key), Deleted: true, Expired: expired}
	r.in(func(env *module.Env) { r.m.Changed(env, &e) })
	return r.rev
}

// pump applies what the leader's Due proposes now, if anything.
func (r *rig) pump() bool {
	cmds := r.m.Due(module.Leader{Term: 1, NowNs: r.now})
	for _, c := range cmds {
		r.mustApply(c)
	}
	return len(cmds) > 0
}

func (r *rig) hook(name string) Hook {
	r.t.Helper()
	a := r.m.Query(QueryGet, Get(name).Body, r.now)
	if a.Outcome != module.OK {
		r.t.Fatalf("get %s: %v %s", name, a.Outcome, a.Detail)
	}
	return a.Value.(Answer).Hooks[0]
}

// reload checks that the table loaded from disk, and the one restored from
// a snapshot of it, are the table in memory.
func (r *rig) reload() {
	r.t.Helper()
	loaded := NewModule(r.lim, r.q)
	if err := loaded.Load(r.d.View()); err != nil {
		r.t.Fatalf("load: %v", err)
	}
	restored := NewModule(r.lim, r.q)
	if err := restored.Restore(r.m.Encode()); err != nil {
		r.t.Fatalf("restore: %v", err)
	}
	want := r.m.Encode()
	if got := loaded.Encode(); string(got) != string(want) || loaded.Hash() != r.m.Hash() {
		r.t.Fatalf("table loaded from disk differs from the one in memory (hash %x, want %x)", loaded.Hash(), r.m.Hash())
	}
	if restored.Hash() != r.m.Hash() {
		r.t.Fatalf("restored table hash %x, want %x", restored.Hash(), r.m.Hash())
	}
}

// jobKeys returns the idempotency keys of the jobs submitted, in order.
func (r *rig) jobKeys() []string {
	var keys []string
	for _, s := range r.q.specs {
		keys = append(keys, s.Key)
	}
	return keys
}

func httpDef(name, pattern string) Def {
	return Def{Name: name, Pattern: pattern, Mode: Ordered, AttemptsMax: 3, TimeoutNs: 5e9, BackoffBaseNs: 1e9, BackoffMaxNs: 4e9,
		Handler: Handler{Kind: HandlerHTTP, URL: "https://example.test/hook", Secret: []byte("sealed secret")}}
}

func TestDefRefusals(t *testing.T) {
	lim := DefaultLimits()
	cases := []struct {
		name string
		edit func(d *Def)
	}{
		{"empty name", func(d *Def) { d.Name = "" }},
		{"name with a colon", func(d *Def) { d.Name = "a:b" }},
		{"name with a slash", func(d *Def) { d.Name = "a/b" }},
		{"long name", func(d *Def) { d.Name = strings.Repeat("n", lim.NameBytesMax+1) }},
		{"invalid pattern", func(d *Def) { d.Pattern = "svc/a**" }},
		{"long pattern", func(d *Def) { d.Pattern = strings.Repeat("p", lim.PatternBytesMax+1) }},
		{"unknown event", func(d *Def) { d.Events = 8 }},
		{"unknown filter", func(d *Def) { d.Filter = 3 }},
		{"unknown handler kind", func(d *Def) { d.Handler = Handler{Kind: "topic"} }},
		{"no handler", func(d *Def) { d.Handler = Handler{} }},
		{"url not http", func(d *Def) { d.Handler.URL = "ftp://example.test/x" }},
		{"url without scheme", func(d *Def) { d.Handler.URL = "example.test/x" }},
		{"long url", func(d *Def) { d.Handler.URL = "https://" + strings.Repeat("u", lim.URLBytesMax) }},
		{"http without secret", func(d *Def) { d.Handler.Secret = nil }},
		{"http with a grant", func(d *Def) { d.Handler.Grant = []byte(`{}`) }},
		{"shell without grant", func(d *Def) { d.Handler = Handler{Kind: HandlerShell} }},
		{"shell with a url", func(d *Def) { d.Handler = Handler{Kind: HandlerShell, Grant: []byte(`{}`), URL: "https://x"} }},
		{"job without type", func(d *Def) { d.Handler = Handler{Kind: HandlerJob} }},
		{"job of type shell", func(d *Def) { d.Handler = Handler{Kind: HandlerJob, JobType: "shell"} }},
		{"job of type Shell", func(d *Def) { d.Handler = Handler{Kind: HandlerJob, JobType: " Shell"} }},
		{"job of type hook.http", func(d *Def) { d.Handler = Handler{Kind: HandlerJob, JobType: JobHTTP} }},
		{"job of type hook.x", func(d *Def) { d.Handler = Handler{Kind: HandlerJob, JobType: "hook.x"} }},
		{"job with a secret", func(d *Def) { d.Handler = Handler{Kind: HandlerJob, JobType: "mine", Secret: []byte("s")} }},
		{"unknown mode", func(d *Def) { d.Mode = "fifo" }},
		{"no mode", func(d *Def) { d.Mode = "" }},
		{"parallel 0", func(d *Def) { d.Mode, d.Parallel = Parallel, 0 }},
		{"parallel over the max", func(d *Def) { d.Mode, d.Parallel = Parallel, lim.ParallelMax+1 }},
		{"ordered with parallel", func(d *Def) { d.Parallel = 2 }},
		{"negative rate", func(d *Def) { d.RatePerSec = -1 }},
		{"rate over the max", func(d *Def) { d.RatePerSec, d.Burst = lim.RateMax+1, 1 }},
		{"rate without burst", func(d *Def) { d.RatePerSec = 1 }},
		{"negative burst", func(d *Def) { d.Burst = -1 }},
	}
	r := newRig(t, lim)
	ok := httpDef("ok", "svc/")
	if err := lim.check(&ok); err != nil {
		t.Fatalf("the base definition is refused: %v", err)
	}
	hash := r.m.Hash()
	for _, c := range cases {
		d := httpDef("h", "svc/")
		c.edit(&d)
		if err := lim.check(&d); !errors.Is(err, errInvalid) {
			t.Errorf("%s: check got %v, want invalid", c.name, err)
		}
		if a := r.apply(Create(d)); a.Outcome != module.Invalid || a.Detail == "" {
			t.Errorf("%s: create got %v, want invalid with a reason", c.name, a.Outcome)
		}
	}
	if r.m.Hash() != hash || len(r.m.Hooks()) != 0 {
		t.Fatalf("refused creates changed the table")
	}
	for _, h := range []Handler{
		{Kind: HandlerShell, Grant: []byte(`{"cmd":"notify"}`)},
		{Kind: HandlerJob, JobType: "reindex"},
	} {
		d := httpDef("h", "svc/**")
		d.Handler = h
		if err := lim.check(&d); err != nil {
			t.Errorf("handler %s: refused: %v", h.Kind, err)
		}
	}
}

func TestCreateConflictAndFull(t *testing.T) {
	lim := DefaultLimits()
	lim.HooksMax = 2
	r := newRig(t, lim)
	r.mustApply(Create(httpDef("a", "svc/")))
	hash := r.m.Hash()
	if a := r.apply(Create(httpDef("a", "other/"))); a.Outcome != module.Conflict || a.Detail == "" {
		t.Fatalf("duplicate name: got %v, want conflict", a.Outcome)
	}
	if r.m.Hash() != hash || r.hook("a").Pattern != "svc/" {
		t.Fatal("the refused duplicate changed hook a")
	}
	r.mustApply(Create(httpDef("b", "svc/")))
	hash = r.m.Hash()
	if a := r.apply(Create(httpDef("c", "svc/"))); a.Outcome != module.TooLarge {
		t.Fatalf("third hook of two: got %v, want too large", a.Outcome)
	}
	if r.m.Hash() != hash || len(r.m.Hooks()) != 2 {
		t.Fatal("the refused create changed the table")
	}
	for _, c := range []module.Command{Delete("x"), Enable("x"), Disable("x"), Trigger("x", nil, nil)} {
		if a := r.apply(c); a.Outcome != module.NotFound {
			t.Errorf("command %d on a hook that does not exist: got %v, want not found", c.Kind, a.Outcome)
		}
	}
	if a := r.m.Validate(CmdPump, []byte{0}); a.Outcome != module.Invalid {
		t.Errorf("a pump from a client: got %v, want invalid (the leader's own)", a.Outcome)
	}
	r.reload()
}

// A hook with a rate keeps handing deliveries over at that rate however
// finely replicated time is cut between the changes.
func TestTokenBucketRefillsUnderFineGrainedTime(t *testing.T) {
	r := newRig(t, DefaultLimits())
	d := httpDef("h", "svc/")
	d.Mode, d.Parallel, d.RatePerSec, d.Burst = Parallel, 64, 1, 1
	r.mustApply(Create(d))
	for i := 0; i < 6000; i++ { // a put every half millisecond for three seconds
		r.now += 500_000
		r.put(fmt.Sprintf("svc/%d", i), 1)
	}
	if got := len(r.q.specs); got < 3 || got > 4 {
		t.Fatalf("after 3 s at 1/s with a burst of 1: got %d deliveries handed over, want 3 or 4", got)
	}
	r.reload()
}

// A trigger on a hook whose backlog is full is refused: it has no
// revision, so it cannot be let pass into a resync range.
func TestTriggerOnFullBacklogRefused(t *testing.T) {
	lim := DefaultLimits()
	lim.BacklogMax = 2
	r := newRig(t, lim)
	r.mustApply(Create(httpDef("h", "svc/")))
	for i := 0; i < 3; i++ { // one in flight, two waiting
		r.put(fmt.Sprintf("svc/%d", i), 1)
	}
	hash := r.m.Hash()
	if a := r.apply(Trigger("h", []byte("k"), []byte("v"))); a.Outcome != module.Conflict || a.Detail == "" {
		t.Fatalf("trigger with a full backlog: got %v, want conflict", a.Outcome)
	}
	if h := r.hook("h"); r.m.Hash() != hash || h.Lagging || h.Stats.Lagged != 0 {
		t.Fatalf("the refused trigger changed the hook: %+v", h)
	}
}

// modelHook is what the model knows of one incarnation of a hook.
type modelHook struct {
	def      Def
	firstJob int             // jobs before this one belong to earlier incarnations
	matched  map[string]bool // "rev:key" of every change that matched while enabled
	jobRevs  []int64         // revisions of its change and resync deliveries, in submit order
	seen     map[string]int  // "rev:key" delivered one by one (submitted or waiting)
	ranges   [][2]int64      // resync ranges (submitted, waiting, or the open lag)
}

// TestModel runs random sequences of hook commands, changes, job
// completions, pumps, time and restarts, checking after each step that
// every matched change is delivered exactly once or inside a resync range,
// that an ordered hook hands over one at a time in revision order, and
// that the digest, the records and the snapshot agree with memory.
func TestModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		lim := DefaultLimits()
		lim.BacklogMax = rapid.IntRange(1, 4).Draw(rt, "backlog")
		r := newRig(rt, lim)
		names := []string{"a", "b"}
		patterns := []string{"svc/", "svc/*", "**/x", "svc/**", ""}
		keys := []string{"svc/x", "svc/y", "svc/y/x", "other/x"}
		model := map[string]*modelHook{}
		exists := map[string]bool{}
		for step := rapid.IntRange(1, 80).Draw(rt, "steps"); step > 0; step-- {
			switch op := rapid.IntRange(0, 9).Draw(rt, "op"); op {
			case 0: // create
				d := httpDef(rapid.SampledFrom(names).Draw(rt, "name"), rapid.SampledFrom(patterns).Draw(rt, "pattern"))
				if rapid.Bool().Draw(rt, "parallel") {
					d.Mode, d.Parallel = Parallel, int64(rapid.IntRange(1, 3).Draw(rt, "n"))
				}
				if rapid.Bool().Draw(rt, "rated") {
					d.RatePerSec, d.Burst = 1, int64(rapid.IntRange(1, 2).Draw(rt, "burst"))
				}
				d.Events = uint8(rapid.IntRange(0, 7).Draw(rt, "events"))
				d.Filter = uint8(rapid.IntRange(0, 2).Draw(rt, "filter"))
				if r.apply(Create(d)).Outcome == module.OK {
					model[d.Name] = &modelHook{def: d, firstJob: len(r.q.specs), matched: map[string]bool{}, seen: map[string]int{}}
				}
			case 1, 2, 3: // put or delete
				key := rapid.SampledFrom(keys).Draw(rt, "key")
				kind, created := OnPut, !exists[key]
				var rev int64
				if op == 3 && exists[key] {
					kind = OnDelete
					if rapid.Bool().Draw(rt, "expired") {
						kind = OnExpire
					}
					rev = r.del(key, kind == OnExpire)
					delete(exists, key)
				} else {
					version := int64(2)
					if created {
						version = 1
					}
					rev = r.put(key, version)
					exists[key] = true
				}
				for _, name := range names {
					if mh := model[name]; mh != nil && !r.m.hooks[name].Disabled && mh.def.matches([]byte(key), kind, created) {
						mh.matched[fmt.Sprintf("%d:%s", rev, key)] = true
					}
				}
			case 4: // a job finishes
				var live []jobs.ID
				for id, s := range r.q.states {
					if s == jobs.Pending {
						live = append(live, id)
					}
				}
				if len(live) > 0 {
					slices.Sort(live)
					id := rapid.SampledFrom(live).Draw(rt, "job")
					r.q.states[id] = rapid.SampledFrom([]jobs.State{jobs.Succeeded, jobs.Dead}).Draw(rt, "end")
				}
			case 5:
				r.pump()
			case 6:
				r.now += int64(rapid.IntRange(1, 2000).Draw(rt, "ms")) * 1e6
			case 7: // disable or enable
				name := rapid.SampledFrom(names).Draw(rt, "name")
				if rapid.Bool().Draw(rt, "disable") {
					r.apply(Disable(name))
				} else {
					r.apply(Enable(name))
				}
			case 8: // delete, or trigger
				name := rapid.SampledFrom(names).Draw(rt, "name")
				if rapid.IntRange(0, 3).Draw(rt, "del") == 0 {
					if r.apply(Delete(name)).Outcome == module.OK {
						delete(model, name)
					}
				} else {
					r.apply(Trigger(name, []byte("t"), nil))
				}
			case 9: // restart: the table as loaded from disk goes on
				r.reload()
				loaded := NewModule(lim, r.q)
				if err := loaded.Load(r.d.View()); err != nil {
					rt.Fatalf("load: %v", err)
				}
				r.m = loaded
			}
			checkModel(rt, r, model)
		}
		// Drain: finish every job and pump until nothing is left; every
		// matched change must then have reached the queue.
		for i := 0; i < 200; i++ {
			for id, s := range r.q.states {
				if s == jobs.Pending {
					r.q.states[id] = jobs.Succeeded
				}
			}
			r.now += 2e9
			for _, name := range names {
				if h := r.m.hooks[name]; h != nil && h.Disabled {
					r.apply(Enable(name))
				}
			}
			if !r.pump() && i > 2 {
				break
			}
			checkModel(rt, r, model)
		}
		for _, name := range names {
			if h := r.m.hooks[name]; h != nil && (len(h.backlog) > 0 || h.lagging) {
				rt.Fatalf("hook %s: after draining, backlog %d, lagging %v", name, len(h.backlog), h.lagging)
			}
		}
		checkModel(rt, r, model)
	})
}

func checkModel(t *rapid.T, r *rig, model map[string]*modelHook) {
	r.reload()
	for name, mh := range model {
		h := r.m.hooks[name]
		mh.seen, mh.ranges, mh.jobRevs = map[string]int{}, nil, nil
		live := 0
		for i, s := range r.q.specs[mh.firstJob:] {
			hook, rest, _ := strings.Cut(s.Key, ":")
			if hook != name {
				continue
			}
			if st := r.q.states[jobs.ID(mh.firstJob+i+1)]; st == jobs.Pending {
				live++
			}
			mh.note(t, rest)
		}
		for i := range h.backlog {
			_, rest, _ := strings.Cut(h.backlog[i].IdemKey(name), ":")
			mh.note(t, rest)
		}
		if h.lagging {
			mh.ranges = append(mh.ranges, [2]int64{h.lagFrom, h.lagTo})
		}
		if live > h.inFlight() {
			t.Fatalf("hook %s: %d deliveries in flight, at most %d", name, live, h.inFlight())
		}
		if h.Mode == Ordered && !slices.IsSorted(mh.jobRevs) {
			t.Fatalf("ordered hook %s handed over revisions %v", name, mh.jobRevs)
		}
		for ch, n := range mh.seen {
			if !mh.matched[ch] || n > 1 {
				t.Fatalf("hook %s: change %s delivered %d times, matched %v", name, ch, n, mh.matched[ch])
			}
		}
		for ch := range mh.matched {
			if mh.seen[ch] == 1 {
				continue
			}
			var rev int64
			fmt.Sscanf(ch, "%d:", &rev)
			if !slices.ContainsFunc(mh.ranges, func(g [2]int64) bool { return g[0] <= rev && rev <= g[1] }) {
				t.Fatalf("hook %s: matched change %s neither delivered nor in a resync range %v", name, ch, mh.ranges)
			}
		}
		if got := h.stats.Matched; got != uint64(len(mh.matched)) {
			t.Fatalf("hook %s: Matched %d, want %d", name, got, len(mh.matched))
		}
	}
}

// note counts one delivery by its idempotency key without the hook's name.
func (mh *modelHook) note(t *rapid.T, rest string) {
	kind, tail, _ := strings.Cut(rest, ":")
	switch kind {
	case "trigger":
	case "resync":
		var g [2]int64
		if _, err := fmt.Sscanf(tail, "%d-%d", &g[0], &g[1]); err != nil || g[0] > g[1] || g[0] < 1 {
			t.Fatalf("resync key %q", rest)
		}
		mh.ranges = append(mh.ranges, g)
		mh.jobRevs = append(mh.jobRevs, g[1])
	default:
		mh.seen[rest]++
		var rev int64
		fmt.Sscanf(kind, "%d", &rev)
		mh.jobRevs = append(mh.jobRevs, rev)
	}
}
