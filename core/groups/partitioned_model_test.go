package groups

import (
	"fmt"
	"slices"
	"testing"

	"github.com/aspen-db/aspen/core/bugs"
	"github.com/aspen-db/aspen/core/module"
	"pgregory.net/rapid"
)

// TestPartitionedModel runs random joins, leaves, heartbeats (releasing
// what they were told), commits and expiries on two replicas, checking
// after every command: both replicas agree (hash and owners); a partition
// changes owner only through "no owner"; owners are members; the target
// is balanced within one; the generation never goes back; committed
// offsets never go back.
func TestPartitionedModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := newPartitioned(t), newPartitioned(t)
		b.log = a.log
		b.m.log = a.log
		ids := []string{"a", "b", "c", "d", "e"}
		lastGen := map[string]uint64{}
		prevOwner := slices.Clone(a.m.groups["g"].owner)
		prevOffsets := slices.Clone(a.m.groups["g"].offsets)
		prevGen := uint64(0)
		for range rapid.IntRange(1, 50).Draw(t, "steps") {
			var c module.Command
			leader := false
			releaser, released := "", []int(nil)
			switch rapid.IntRange(0, 5).Draw(t, "op") {
			case 0:
				c = Join("g", rapid.SampledFrom(ids).Draw(t, "id"))
			case 1:
				c = Leave("g", rapid.SampledFrom(ids).Draw(t, "id"))
			case 2:
				id := rapid.SampledFrom(ids).Draw(t, "id")
				var rel []int
				if g := a.m.groups["g"]; g.members[id] != nil {
					_, rel = g.owned(id)
				}
				if rapid.Bool().Draw(t, "release") {
					c = Heartbeat("g", id, rel...)
					releaser, released = id, rel
				} else {
					c = Heartbeat("g", id)
				}
			case 3:
				id := rapid.SampledFrom(ids).Draw(t, "id")
				p := rapid.IntRange(0, 3).Draw(t, "p")
				c = Commit("g", id, lastGen[id], p, uint64(rapid.IntRange(0, 5).Draw(t, "off")))
			case 4:
				dt := rapid.Int64Range(1, 8e9).Draw(t, "dt")
				a.now += dt
				b.now += dt
				continue
			case 5:
				cmds := a.m.Due(module.Leader{Term: 1, NowNs: a.now, GraceNs: 1e9})
				b.m.Due(module.Leader{Term: 1, NowNs: b.now, GraceNs: 1e9})
				for _, c := range cmds {
					a.applyRaw(c)
					b.applyRaw(c)
				}
				leader = true
			}
			if !leader {
				ra, rb := a.apply(c), b.apply(c)
				if ra.Outcome != rb.Outcome {
					t.Fatalf("replicas answered %v and %v", ra.Outcome, rb.Outcome)
				}
				if v, ok := ra.Value.(Answer); ok && v.Assignment != nil {
					lastGen[v.Assignment.Member] = v.Assignment.Generation
				}
			}
			if err := checkReplicasAgree(a, b); err != nil {
				t.Fatal(err)
			}
			g := a.m.groups["g"]
			for p, o := range g.owner {
				if o != "" && g.members[o] == nil {
					t.Fatalf("partition %d owned by %q, not a member", p, o)
				}
				if old := prevOwner[p]; old != "" && o != "" && old != o && g.members[old] != nil && !(old == releaser && slices.Contains(released, p)) {
					t.Fatalf("partition %d went from live member %q to %q without a release", p, old, o)
				}
				if g.offsets[p] < prevOffsets[p] {
					t.Fatalf("partition %d's offset went back from %d to %d", p, prevOffsets[p], g.offsets[p])
				}
			}
			checkBalanced(t, g.target, g.ids)
			if g.gen < prevGen {
				t.Fatalf("generation went back from %d to %d", prevGen, g.gen)
			}
			prevOwner, prevOffsets, prevGen = slices.Clone(g.owner), slices.Clone(g.offsets), g.gen
		}
		a.reload()
	})
}

// checkReplicasAgree: two replicas that applied the same commands hold the
// same state.
func checkReplicasAgree(a, b *rig) error {
	if a.m.Hash() != b.m.Hash() {
		ga, gb := a.m.groups["g"], b.m.groups["g"]
		return fmt.Errorf("replicas diverged: targets %q and %q", ga.target, gb.target)
	}
	return nil
}

// checkLeaveAgrees: replicas applying the same joins and leaves of many
// members agree on the assignment.
func checkLeaveAgrees(t *testing.T, planted bugs.Set) error {
	a, b := newPartitioned(t), newPartitioned(t)
	a.m.Bugs, b.m.Bugs = planted, planted
	a.log.create("big", 64)
	a.ok(Create(partitionedDef("wide", "big")))
	b.m.log = a.log
	b.ok(Create(partitionedDef("wide", "big")))
	for i := range 12 {
		c := Join("wide", fmt.Sprintf("m%02d", i))
		a.ok(c)
		b.ok(c)
	}
	for i := 0; i < 12; i += 2 {
		c := Leave("wide", fmt.Sprintf("m%02d", i))
		a.ok(c)
		b.ok(c)
		if a.m.Hash() != b.m.Hash() {
			return fmt.Errorf("after the leave of m%02d replicas disagree: %q and %q", i, a.m.groups["wide"].target, b.m.groups["wide"].target)
		}
	}
	return nil
}

func TestReplicasAgreeOnLeaves(t *testing.T) {
	for range 20 {
		if err := checkLeaveAgrees(t, 0); err != nil {
			t.Fatal(err)
		}
	}
}
