package groups

import (
	"fmt"
	"slices"

	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
	"github.com/aspen-db/aspen/core/topics"
	"github.com/aspen-db/aspen/sim/disk"
)

// fakeLog is an in-memory topics.Log: partitions of messages, of which
// retention may have removed a prefix.
type fakeLog struct {
	topics map[string][][]topics.Message // by partition, from the first held offset
	firsts map[string][]uint64
}

func newFakeLog() *fakeLog {
	return &fakeLog{topics: map[string][][]topics.Message{}, firsts: map[string][]uint64{}}
}

func (f *fakeLog) create(topic string, parts int) {
	f.topics[topic] = make([][]topics.Message, parts)
	f.firsts[topic] = make([]uint64, parts)
}

// publish appends a message to partition p at time atNs and returns its offset.
func (f *fakeLog) publish(topic string, p int, value string, atNs int64) uint64 {
	_, end := f.Bounds(topic, p)
	f.topics[topic][p] = append(f.topics[topic][p], topics.Message{Topic: topic, Partition: p, Offset: end, Value: []byte(value), AtNs: atNs})
	return end
}

// trim removes partition p's messages below first.
func (f *fakeLog) trim(topic string, p int, first uint64) {
	for f.firsts[topic][p] < first && len(f.topics[topic][p]) > 0 {
		f.topics[topic][p] = f.topics[topic][p][1:]
		f.firsts[topic][p]++
	}
}

func (f *fakeLog) Partitions(topic string) (int, bool) {
	ps, ok := f.topics[topic]
	return len(ps), ok
}

func (f *fakeLog) Bounds(topic string, p int) (uint64, uint64) {
	if _, ok := f.topics[topic]; !ok || p >= len(f.topics[topic]) {
		return 0, 0
	}
	first := f.firsts[topic][p]
	return first, first + uint64(len(f.topics[topic][p]))
}

func (f *fakeLog) Read(topic string, p int, from uint64, max, maxBytes int) []topics.Message {
	first, end := f.Bounds(topic, p)
	from = min(end, maxU(from, first))
	var out []topics.Message
	bytes := 0
	for _, m := range f.topics[topic][p][from-first:] {
		if len(out) == max || len(out) > 0 && bytes+len(m.Value) > maxBytes {
			break
		}
		bytes += len(m.Value)
		out = append(out, m)
	}
	return out
}

func (f *fakeLog) OffsetAt(topic string, p int, atNs int64) uint64 {
	first, end := f.Bounds(topic, p)
	for i, m := range f.topics[topic][p] {
		if m.AtNs >= atNs {
			return first + uint64(i)
		}
	}
	return end
}

func maxU(a, b uint64) uint64 { return max(a, b) }

// tester is what a rig needs of *testing.T and *rapid.T.
type tester interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// rig drives the module alone: commands applied at increasing indexes and
// a clock the test moves, their batches written to a simulated disk.
type rig struct {
	t     tester
	m     *Module
	log   *fakeLog
	d     *disk.Disk
	lim   Limits
	index uint64
	now   int64
	term  uint64
}

func newRig(t tester) *rig {
	log := newFakeLog()
	lim := DefaultLimits()
	return &rig{t: t, m: NewModule(lim, log), log: log, d: disk.New(), lim: lim, now: 1e12, term: 1}
}

// in runs fn as the apply of the next index and writes its batch.
func (r *rig) in(fn func(env *module.Env)) *storage.Batch {
	r.t.Helper()
	r.index++
	env := &module.Env{Index: r.index, NowNs: r.now, Batch: &storage.Batch{}}
	fn(env)
	if err := r.d.Apply(*env.Batch); err != nil {
		r.t.Fatal(err)
	}
	return env.Batch
}

// apply validates c as the host would, then applies it. A refusal must
// have changed nothing: no record, no hash.
func (r *rig) apply(c module.Command) module.Answer {
	r.t.Helper()
	if a := r.m.Validate(c.Kind, c.Body); a.Outcome != module.OK {
		return a
	}
	return r.applyRaw(c)
}

// applyRaw applies c without validating it (the leader's own commands).
func (r *rig) applyRaw(c module.Command) module.Answer {
	r.t.Helper()
	before := r.m.Hash()
	var a module.Answer
	b := r.in(func(env *module.Env) { a = r.m.Apply(env, c.Kind, c.Body) })
	if a.Outcome != module.OK && (!b.Empty() || r.m.Hash() != before) {
		r.t.Fatalf("command %d refused (%v: %s) but wrote %d records or moved the hash", c.Kind, a.Outcome, a.Detail, len(b.Ops))
	}
	if a.Outcome == module.OK && len(a.Data) > 0 {
		if _, err := r.m.DecodeAnswer(a.Data); err != nil {
			r.t.Fatalf("command %d: answer does not decode: %v", c.Kind, err)
		}
	}
	return a
}

func (r *rig) ok(c module.Command) Answer {
	r.t.Helper()
	a := r.apply(c)
	if a.Outcome != module.OK {
		r.t.Fatalf("command %d: got %v %s, want ok", c.Kind, a.Outcome, a.Detail)
	}
	return a.Value.(Answer)
}

func (r *rig) refused(c module.Command, want module.Outcome) string {
	r.t.Helper()
	a := r.apply(c)
	if a.Outcome != want {
		r.t.Fatalf("command %d: got %v %s, want %v", c.Kind, a.Outcome, a.Detail, want)
	}
	return a.Detail
}

// due applies what the leader proposes now.
func (r *rig) due() int {
	r.t.Helper()
	cmds := r.m.Due(module.Leader{Term: r.term, NowNs: r.now, GraceNs: 1e9})
	for _, c := range cmds {
		if a := r.applyRaw(c); a.Outcome != module.OK {
			r.t.Fatalf("leader command %d refused: %v %s", c.Kind, a.Outcome, a.Detail)
		}
	}
	return len(cmds)
}

// settleTime moves the clock and lets the leader's grace for this term apply.
func (r *rig) graceNow() {
	r.t.Helper()
	for range 3 {
		r.due()
	}
}

func (r *rig) describe(name string) Group {
	r.t.Helper()
	a := r.m.Query(QueryDescribe, Describe(name).Body, r.now)
	if a.Outcome != module.OK {
		r.t.Fatalf("describe %q: %v %s", name, a.Outcome, a.Detail)
	}
	return a.Value.(Answer).Groups[0]
}

// fetchable asks the replica whether member's fetch would lease anything
// now, through the query's encoded answer.
func (r *rig) fetchable(name, member string) Readiness {
	r.t.Helper()
	a := r.m.Query(QueryFetchable, FetchableQuery(name, member, 1).Body, r.now)
	if a.Outcome != module.OK {
		r.t.Fatalf("fetchable %q: %v %s", name, a.Outcome, a.Detail)
	}
	got, err := DecodeAnswer(a.Data)
	if err != nil || got.Ready == nil {
		r.t.Fatalf("fetchable %q: answer %x does not decode (%v)", name, a.Data, err)
	}
	return *got.Ready
}

// reload checks that the records on disk and the snapshot section both
// rebuild the same state (same hash, same description of every group).
func (r *rig) reload() {
	r.t.Helper()
	loaded := NewModule(r.lim, r.log)
	if err := loaded.Load(r.d); err != nil {
		r.t.Fatalf("load: %v", err)
	}
	restored := NewModule(r.lim, r.log)
	if err := restored.Restore(r.m.Freeze().Encode()); err != nil {
		r.t.Fatalf("restore: %v", err)
	}
	persisted := disk.New()
	var b storage.Batch
	restored.Persist(&b)
	if err := persisted.Apply(b); err != nil {
		r.t.Fatal(err)
	}
	again := NewModule(r.lim, r.log)
	if err := again.Load(persisted); err != nil {
		r.t.Fatalf("load after persist: %v", err)
	}
	for name, other := range map[string]*Module{"load": loaded, "restore": restored, "persist+load": again} {
		if other.Hash() != r.m.Hash() {
			r.t.Fatalf("%s: hash %x, want %x", name, other.Hash(), r.m.Hash())
		}
		for _, g := range r.m.names {
			want := fmt.Sprintf("%+v", r.m.view(r.m.groups[g], true))
			if got := fmt.Sprintf("%+v", other.view(other.groups[g], true)); got != want {
				r.t.Fatalf("%s: group %q\n got %s\nwant %s", name, g, got, want)
			}
		}
		if !slices.Equal(other.names, r.m.names) {
			r.t.Fatalf("%s: groups %q, want %q", name, other.names, r.m.names)
		}
	}
	var clear storage.Batch
	r.m.Clear(&clear)
	wiped := disk.New()
	_ = wiped.Apply(b)
	_ = wiped.Apply(clear)
	n := 0
	_ = wiped.Scan(prefix, func(k, _ []byte) error { n++; return nil })
	if n != 0 {
		r.t.Fatalf("clear left %d records", n)
	}
}
