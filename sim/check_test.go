package sim

import (
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
	"github.com/aspen-db/aspen/core/node"
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
