package groups

import (
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// checkBalanced fails unless every member targets floor(P/M) or ceil(P/M)
// partitions and no partition is without a target.
func checkBalanced(t tester, target, ids []string) {
	t.Helper()
	if len(ids) == 0 {
		for p, o := range target {
			if o != "" {
				t.Fatalf("partition %d targets %q with no members", p, o)
			}
		}
		return
	}
	load := loads(target, ids)
	lo, hi := len(target)/len(ids), (len(target)+len(ids)-1)/len(ids)
	total := 0
	for _, id := range ids {
		if load[id] < lo || load[id] > hi {
			t.Fatalf("member %q targets %d partitions, want %d to %d (%v)", id, load[id], lo, hi, target)
		}
		total += load[id]
	}
	if total != len(target) {
		t.Fatalf("members target %d of %d partitions: %v", total, len(target), target)
	}
}

// TestAssignmentProperties: over any sequence of joins and leaves the
// target stays balanced within one; a join moves exactly floor(P/M)
// partitions, all to the newcomer; a leave moves exactly the leaver's; and
// the result does not depend on the order the members are listed in.
func TestAssignmentProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		parts := rapid.IntRange(1, 40).Draw(t, "partitions")
		target := make([]string, parts)
		var ids []string
		for step := range rapid.IntRange(1, 30).Draw(t, "steps") {
			before := slices.Clone(target)
			if len(ids) == 0 || rapid.Bool().Draw(t, fmt.Sprintf("join%d", step)) {
				n := fmt.Sprintf("m%d", rapid.IntRange(0, 60).Draw(t, "id"))
				if slices.Contains(ids, n) {
					continue
				}
				ids = append(ids, n)
				slices.Sort(ids)
				shuffled := rapid.Permutation(ids).Draw(t, "order")
				other := slices.Clone(before)
				moved := joinTarget(target, ids, n)
				joinTarget(other, shuffled, n)
				if !slices.Equal(other, target) {
					t.Fatalf("join of %q: members listed as %q give %v, sorted give %v", n, shuffled, other, target)
				}
				if want := parts / len(ids); len(moved) != want && len(ids) > 1 {
					t.Fatalf("join of %q moved %d partitions, want %d", n, len(moved), want)
				}
				for p := range target {
					if target[p] != before[p] && target[p] != n {
						t.Fatalf("join of %q moved partition %d from %q to %q", n, p, before[p], target[p])
					}
				}
			} else {
				x := rapid.SampledFrom(ids).Draw(t, "leaver")
				i, _ := slices.BinarySearch(ids, x)
				ids = slices.Delete(ids, i, i+1)
				shuffled := rapid.Permutation(ids).Draw(t, "order")
				other := slices.Clone(before)
				leaveTarget(target, ids, x, true)
				leaveTarget(other, shuffled, x, true)
				if !slices.Equal(other, target) {
					t.Fatalf("leave of %q: members listed as %q give %v, sorted give %v", x, shuffled, other, target)
				}
				for p := range target {
					if (target[p] != before[p]) != (before[p] == x) {
						t.Fatalf("leave of %q: partition %d went from %q to %q", x, p, before[p], target[p])
					}
				}
			}
			checkBalanced(t, target, ids)
		}
	})
}

// statelessTarget is the assignment the design rejects: each partition,
// in order, to the highest-weight member holding fewer than ceil(P/M).
func statelessTarget(parts int, ids []string) []string {
	out := make([]string, parts)
	load := map[string]int{}
	bound := (parts + len(ids) - 1) / len(ids)
	for p := range out {
		best := ""
		for _, id := range ids {
			if load[id] < bound && (best == "" || weight(id, p) > weight(best, p)) {
				best = id
			}
		}
		out[p] = best
		load[best]++
	}
	return out
}

// TestStatelessBoundedLoadMovesTooMuch keeps the reason the target is
// stateful: the stateless bounded-load assignment moves partitions between
// old members when one joins.
func TestStatelessBoundedLoadMovesTooMuch(t *testing.T) {
	for parts := 2; parts <= 12; parts++ {
		for m := 1; m <= 5; m++ {
			var ids []string
			for i := range m {
				ids = append(ids, fmt.Sprintf("m%d", i))
			}
			before := statelessTarget(parts, ids)
			after := statelessTarget(parts, append(ids, "new"))
			for p := range before {
				if after[p] != before[p] && after[p] != "new" {
					t.Logf("%d partitions, %d members, a join moves partition %d from %q to %q", parts, m, p, before[p], after[p])
					return
				}
			}
		}
	}
	t.Fatal("no join moved a partition between old members: the stateless assignment may do after all")
}

// TestAssignmentSpreads: a group formed by joins does not pile partitions
// on the first members (the weights decide who gives what).
func TestAssignmentSpreads(t *testing.T) {
	target := make([]string, 12)
	ids := []string{"a"}
	joinTarget(target, ids, "a")
	for _, n := range []string{"b", "c"} {
		ids = append(ids, n)
		joinTarget(target, ids, n)
	}
	checkBalanced(t, target, ids)
	// Every member holds 4; a leave hands b's 4 out 2 and 2.
	leaveTarget(target, []string{"a", "c"}, "b", true)
	checkBalanced(t, target, []string{"a", "c"})
}
