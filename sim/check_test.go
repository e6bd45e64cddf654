package sim

import (
	"encoding/binary"
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

// The model must reject a stale read and accept an unknown write either way.
func TestGroupModel(t *testing.T) {
	put := func(client int, v string, call, ret int64, unknown bool) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: opInput{Kind: kPut, Value: v}, Output: opOutput{Unknown: unknown}, Call: call, Return: ret}
	}
	get := func(client int, v string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: opInput{Kind: kGet}, Output: opOutput{Values: []string{v}}, Call: call, Return: ret}
	}
	cases := []struct {
		name string
		ops  []porcupine.Operation
		want bool
	}{
		{"read after write", []porcupine.Operation{put(0, "a", 0, 10, false), get(1, "a", 20, 30)}, true},
		{"stale read", []porcupine.Operation{put(0, "a", 0, 10, false), put(0, "b", 11, 12, false), get(1, "a", 20, 30)}, false},
		{"unknown write seen", []porcupine.Operation{put(0, "a", 0, 1<<62, true), get(1, "a", 20, 30)}, true},
		{"unknown write not seen", []porcupine.Operation{put(0, "a", 0, 1<<62, true), get(1, "", 20, 30)}, true},
		{"value from nowhere", []porcupine.Operation{get(1, "z", 20, 30)}, false},
	}
	for _, c := range cases {
		if got := porcupine.CheckOperations(groupModel(), c.ops); got != c.want {
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
