package sim

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/core/storage"
	"go.etcd.io/raft/v3/raftpb"
)

func TestCheckerReportsTwoLeadersInATerm(t *testing.T) {
	c := newChecker()
	c.leader(1, 5)
	c.leader(1, 5)
	c.leader(2, 6)
	if len(c.violations) != 0 {
		t.Fatalf("got %v for distinct terms, want none", c.violations)
	}
	c.leader(3, 5)
	if len(c.violations) != 1 || !strings.Contains(c.violations[0], "two leaders in term 5") {
		t.Fatalf("got %v, want one two-leaders violation", c.violations)
	}
}

func TestCheckerReportsChangedEntriesAndDivergence(t *testing.T) {
	c := newChecker()
	c.applied(1, []node.Applied{{Index: 4, Term: 2, EntryHash: 10, StateHash: 100}})
	c.applied(2, []node.Applied{{Index: 4, Term: 2, EntryHash: 10, StateHash: 100}})
	if len(c.violations) != 0 {
		t.Fatalf("got %v for equal replicas, want none", c.violations)
	}
	c.applied(3, []node.Applied{{Index: 4, Term: 3, EntryHash: 11, StateHash: 100}})
	c.applied(3, []node.Applied{{Index: 5, Term: 3, EntryHash: 11, StateHash: 7}})
	c.applied(1, []node.Applied{{Index: 5, Term: 3, EntryHash: 11, StateHash: 8}})
	if len(c.violations) != 2 || !strings.Contains(c.violations[0], "committed entry 4 changed") ||
		!strings.Contains(c.violations[1], "replicas diverge") {
		t.Fatalf("got %v, want a changed entry and a divergence", c.violations)
	}
}

// The model must reject a stale read, accept an unknown write either way, and
// hold every revision and version a read shows to the writes before it.
func TestGroupModel(t *testing.T) {
	put := func(v string, rev, call, ret int64) porcupine.Operation {
		out := opOutput{Rev: rev, Unknown: rev < 0}
		return porcupine.Operation{ClientId: 0, Input: opInput{Kind: kPut, Value: v}, Output: out, Call: call, Return: ret}
	}
	get := func(rd readResult, rev, call, ret int64) porcupine.Operation {
		out := opOutput{Rev: rev, Reads: []readResult{rd}}
		return porcupine.Operation{ClientId: 1, Input: opInput{Kind: kGet}, Output: out, Call: call, Return: ret}
	}
	seen := func(v string, mod, create, version int64) readResult {
		return readResult{Present: true, Value: v, Mod: mod, Create: create, Version: version}
	}
	const never = 1 << 62
	cases := []struct {
		name string
		ops  []porcupine.Operation
		want bool
	}{
		{"read after write", []porcupine.Operation{put("a", 1, 0, 10), get(seen("a", 1, 1, 1), 1, 20, 30)}, true},
		{"stale read", []porcupine.Operation{put("a", 1, 0, 10), put("b", 2, 11, 12), get(seen("a", 1, 1, 1), 2, 20, 30)}, false},
		{"unknown write seen", []porcupine.Operation{put("a", -1, 0, never), get(seen("a", 7, 7, 1), 9, 20, 30)}, true},
		{"unknown write not seen", []porcupine.Operation{put("a", -1, 0, never), get(readResult{}, 3, 20, 30)}, true},
		{"value from nowhere", []porcupine.Operation{get(seen("z", 1, 1, 1), 1, 20, 30)}, false},
		{"empty value", []porcupine.Operation{put("", 4, 0, 10), get(seen("", 4, 4, 1), 4, 20, 30)}, true},
		{"empty value is not absence", []porcupine.Operation{put("", 4, 0, 10), get(readResult{}, 4, 20, 30)}, false},
		{"overwrite keeps create revision", []porcupine.Operation{put("a", 1, 0, 10), put("b", 5, 11, 12), get(seen("b", 5, 1, 2), 5, 20, 30)}, true},
		{"overwrite resets create revision", []porcupine.Operation{put("a", 1, 0, 10), put("b", 5, 11, 12), get(seen("b", 5, 5, 2), 5, 20, 30)}, false},
		{"wrong version", []porcupine.Operation{put("a", 1, 0, 10), put("b", 5, 11, 12), get(seen("b", 5, 1, 1), 5, 20, 30)}, false},
		{"wrong mod revision", []porcupine.Operation{put("a", 3, 0, 10), get(seen("a", 2, 2, 1), 3, 20, 30)}, false},
		{"two writes, one revision", []porcupine.Operation{put("a", 3, 0, 10), put("b", 3, 11, 12)}, false},
		{"revision goes back", []porcupine.Operation{get(readResult{}, 5, 0, 10), put("a", 4, 11, 12)}, false},
		{"unknown revision learned once", []porcupine.Operation{put("a", -1, 0, never),
			get(seen("a", 7, 7, 1), 9, 20, 30), get(seen("a", 8, 8, 1), 9, 31, 40)}, false},
	}
	for _, c := range cases {
		if got := porcupine.CheckOperations(groupModel(), c.ops); got != c.want {
			t.Errorf("%s: linearizable = %v, want %v", c.name, got, c.want)
		}
	}
}

// Ranges report exactly the keys inside their span; a delete says how many
// keys it removed.
func TestGroupModelSpans(t *testing.T) {
	putK := func(k int, v string, rev int64) porcupine.Operation {
		return porcupine.Operation{Input: opInput{Kind: kPut, Key: k, Value: v}, Output: opOutput{Rev: rev}, Call: rev * 10, Return: rev*10 + 1}
	}
	scan := func(span keySet, reads map[int]readResult) porcupine.Operation {
		rs := make([]readResult, modelKeysMax)
		for k, r := range reads {
			rs[k] = r
		}
		return porcupine.Operation{Input: opInput{Kind: kRange, Span: span}, Output: opOutput{Rev: 2, Reads: rs}, Call: 100, Return: 101}
	}
	limited := func(span keySet, limit int, more bool, reads map[int]readResult) porcupine.Operation {
		op := scan(span, reads)
		in, out := op.Input.(opInput), op.Output.(opOutput)
		in.Limit, out.More = limit, more
		op.Input, op.Output = in, out
		return op
	}
	delRange := func(span keySet, n int64) porcupine.Operation {
		return porcupine.Operation{Input: opInput{Kind: kDeleteRange, Span: span}, Output: opOutput{Rev: 3, Deleted: []int64{n}}, Call: 200, Return: 201}
	}
	a := readResult{Present: true, Value: "a", Mod: 1, Create: 1, Version: 1}
	b := readResult{Present: true, Value: "b", Mod: 2, Create: 2, Version: 1}
	base := []porcupine.Operation{putK(0, "a", 1), putK(1, "b", 2)}
	cases := []struct {
		name string
		op   porcupine.Operation
		want bool
	}{
		{"range inside", scan(0b01, map[int]readResult{0: a}), true},
		{"range leaks its end", scan(0b01, map[int]readResult{0: a, 1: b}), false},
		{"range misses a key", scan(0b11, map[int]readResult{0: a}), false},
		{"limit keeps the first key in byte order", limited(0b11, 1, true, map[int]readResult{0: a}), true},
		{"limit keeps a later key", limited(0b11, 1, true, map[int]readResult{1: b}), false},
		{"limit hides that more is left", limited(0b11, 1, false, map[int]readResult{0: a}), false},
		{"limit not reached says more", limited(0b11, 3, true, map[int]readResult{0: a, 1: b}), false},
		{"delete range counts", delRange(0b111, 2), true},
		{"delete range miscounts", delRange(0b111, 3), false},
	}
	for _, c := range cases {
		ops := append(slices.Clone(base), c.op)
		if got := porcupine.CheckOperations(groupModel(), ops); got != c.want {
			t.Errorf("%s: linearizable = %v, want %v", c.name, got, c.want)
		}
	}
}

// The watch-event shadow agrees with the state after a real run, and the
// comparison notices a lost or altered event.
func TestWatchShadowCheck(t *testing.T) {
	sc := loadScenario(t, "../scenarios/baseline.toml")
	sc.Run.HealSeconds = 2
	w := newWorld(sc, 1, Options{})
	w.loop()
	sn := w.nodes[0]
	w.checkShadow(sn)
	if len(w.check.violations) != 0 {
		t.Fatalf("after a clean run: %v", w.check.violations)
	}
	for k, r := range sn.shadow.keys {
		r.Value = append([]byte("x"), r.Value...)
		sn.shadow.keys[k] = r
		break
	}
	w.checkShadow(sn)
	if len(w.check.violations) != 1 || !strings.Contains(w.check.violations[0], "watch events disagree") {
		t.Fatalf("after altering one event: got %v, want one disagreement", w.check.violations)
	}
}

// A watcher that read the state and resumed from the next revision must end
// up with the state; an event stamped one revision early is lost to it.
func TestWatchResumeCheck(t *testing.T) {
	sc := loadScenario(t, "../scenarios/baseline.toml")
	sc.Run.HealSeconds = 4
	// Keys are few and rewritten often, so a seed's node may have no event
	// whose loss would show: look for one.
	for seed := uint64(1); seed <= 10; seed++ {
		w := newWorld(sc, seed, Options{})
		w.loop()
		for _, sn := range w.nodes {
			i, m := lastWordAfterMark(sn.shadow)
			if i < 0 {
				continue
			}
			w.checkShadow(sn)
			if len(w.check.violations) != 0 {
				t.Fatalf("seed %d, after a clean run: %v", seed, w.check.violations)
			}
			sn.shadow.log[i].Revision = m.rev // as if stamped before the write
			w.checkShadow(sn)
			if len(w.check.violations) == 0 || !strings.Contains(w.check.violations[0], "watched from") {
				t.Fatalf("seed %d, after restamping an event past a mark: got %v, want a resumed watcher ending wrong", seed, w.check.violations)
			}
			return
		}
	}
	t.Fatal("no node of seeds 1..10 has an event right after a mark whose key no later event writes: the check would prove nothing")
}

// lastWordAfterMark finds an event at the revision right after a mark whose
// key no later event writes: a watcher resuming from that mark that missed
// it ends wrong (one overwritten later would not show). -1 if none.
func lastWordAfterMark(sh *watchShadow) (int, resumeMark) {
	for _, m := range sh.marks {
	events:
		for i, e := range sh.log {
			if e.Revision != m.rev+1 {
				continue
			}
			for _, later := range sh.log[i+1:] {
				if string(later.Key) == string(e.Key) {
					continue events
				}
			}
			return i, m
		}
	}
	return -1, resumeMark{}
}

// Every revision up to the last must be taken by one write: two writes on one
// revision, or more gaps than writes with unknown outcomes, are violations.
func TestRevisionAccounting(t *testing.T) {
	put := func(rev int64) porcupine.Operation {
		return porcupine.Operation{Input: opInput{Kind: kPut}, Output: opOutput{Rev: rev, Unknown: rev == 0}}
	}
	noop := porcupine.Operation{Input: opInput{Kind: kDelete}, Output: opOutput{Rev: 2, Deleted: []int64{0}}}
	cases := []struct {
		name    string
		history []porcupine.Operation
		final   int64
		want    string
	}{
		{"every revision taken", []porcupine.Operation{put(1), put(2), noop, put(3)}, 3, ""},
		{"a gap an unknown write explains", []porcupine.Operation{put(1), put(0), put(3)}, 3, ""},
		{"a gap nothing explains", []porcupine.Operation{put(1), noop, put(3)}, 3, "taken by no acknowledged write"},
		{"a revision taken twice", []porcupine.Operation{put(1), put(2), put(2)}, 2, "taken by two writes"},
		{"a write past the end", []porcupine.Operation{put(1), put(2)}, 1, "the store ended at revision 1"},
	}
	for _, c := range cases {
		w := &World{history: c.history, check: newChecker()}
		w.checkRevisions(c.final)
		got := strings.Join(w.check.violations, "; ")
		if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

// The reload checker passes a replica whose disk says what its memory says,
// and notices a disk that says something else.
func TestReloadCheck(t *testing.T) {
	sc := loadScenario(t, "../scenarios/baseline.toml")
	sc.Run.HealSeconds = 2
	cases := []struct {
		name, want string
		tamper     func(b *storage.Batch, last, lastTerm uint64)
	}{
		{"untouched", "", func(*storage.Batch, uint64, uint64) {}},
		{"extra key", "reloaded from disk differs: state hash", func(b *storage.Batch, _, _ uint64) {
			b.Put([]byte("k/zz"), kv.EncodeRecord(kv.Record{Value: []byte("x"), CreateRev: 1, ModRev: 1, Version: 1}))
		}},
		{"entry beyond the last", "reloaded from disk differs: last log index", func(b *storage.Batch, last, lastTerm uint64) {
			e := raftpb.Entry{Index: last + 1, Term: lastTerm}
			b.Put(binary.BigEndian.AppendUint64([]byte("l/"), last+1), mustMarshal(&e))
		}},
		{"lost log", "cannot be reloaded from its disk", func(b *storage.Batch, last, _ uint64) {
			b.Delete(binary.BigEndian.AppendUint64([]byte("l/"), last))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(sc, 1, Options{})
			w.loop()
			sn := w.nodes[0]
			var b storage.Batch
			_, last, term := sn.n.Log()
			c.tamper(&b, last, term(last))
			if err := sn.disk.Apply(b); err != nil {
				t.Fatal(err)
			}
			w.checkReload(sn, reloadFull)
			got := strings.Join(w.check.violations, "\n")
			if c.want == "" && got != "" || !strings.Contains(got, c.want) {
				t.Fatalf("got violations %q, want one saying %q", got, c.want)
			}
		})
	}
}

// Replicated time must never go back on a node, nor run ahead of every clock.
func TestTimeCheck(t *testing.T) {
	sc := loadScenario(t, "../scenarios/baseline.toml")
	sc.Run.HealSeconds = 2
	w := newWorld(sc, 1, Options{})
	w.loop()
	sn := w.nodes[0]
	if sn.n.TimeNs() <= 0 {
		t.Fatalf("replicated time %d after a run with writes, want > 0", sn.n.TimeNs())
	}
	w.checkTime(sn)
	if len(w.check.violations) != 0 {
		t.Fatalf("after a clean run: %v", w.check.violations)
	}
	sn.timeNs = sn.n.TimeNs() + 1
	w.checkTime(sn)
	if len(w.check.violations) != 1 || !strings.Contains(w.check.violations[0], "went back") {
		t.Fatalf("time seen above the node's: got %v, want it to have gone back", w.check.violations)
	}
	w.now = 0 // every clock now reads at most its skew
	w.checkTime(sn)
	if got := strings.Join(w.check.violations, "\n"); !strings.Contains(got, "ahead of every clock") {
		t.Fatalf("time ahead of the clocks: got %v", w.check.violations)
	}
}
