package groups

import (
	"encoding/binary"
	"hash/fnv"

	"github.com/aspen-db/aspen/core/assert"
)

// The target assignment of a partitioned group: which member each
// partition should belong to. It changes only when a member joins or
// leaves, and only as much as it must:
//
//   - a join moves partitions to the newcomer and nowhere else, taking them
//     from the most loaded members until the newcomer is within one of them;
//     among those members' partitions it takes the one the newcomer weighs
//     highest (rendezvous weight, ties to the lower partition);
//   - a leave hands each of the leaver's partitions, in partition order, to
//     the least loaded member left, ties to the highest rendezvous weight.
//
// So every member holds floor(P/M) or ceil(P/M) partitions (balanced within
// one) after every change, a join moves exactly floor(P/M) partitions (all
// to the newcomer) and a leave moves exactly the leaver's. The target is a
// pure function of the sequence of joins and leaves, never of map order.
//
// A stateless rendezvous assignment (each partition to the highest-weight
// member with room under ceil(P/M)) is balanced but not minimal: a join
// lowers the bound, a partition pushed to its second choice returns to its
// first, and moves cascade between old members. assign_test.go keeps the
// counterexample. Keeping the previous target is what makes both hold.

// weight is member id's rendezvous weight for partition p: FNV-1a of the
// id and the partition, finished by a 64-bit mixer so near ids spread.
func weight(id string, p int) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	h.Write(binary.BigEndian.AppendUint32([]byte{0}, uint32(p)))
	return mix64(h.Sum64())
}

func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb93fe53e1a87
	h ^= h >> 33
	return h
}

// loads counts the partitions each of ids is the target of.
func loads(target []string, ids []string) map[string]int {
	l := make(map[string]int, len(ids))
	for _, id := range ids {
		l[id] = 0
	}
	for _, o := range target {
		if o != "" {
			l[o]++
		}
	}
	return l
}

// joinTarget moves partitions of target to newcomer n (already in ids,
// holding none) until the group is balanced within one, and returns the
// partitions moved. With no one else (the first member) n takes all.
func joinTarget(target []string, ids []string, n string) []int {
	var moved []int
	if len(ids) == 1 {
		for p := range target {
			assert.That(target[p] == "", "partition %d targets %q in a group with no members", p, target[p])
			target[p] = n
			moved = append(moved, p)
		}
		return moved
	}
	load := loads(target, ids)
	assert.That(load[n] == 0, "newcomer %q already targets %d partitions", n, load[n])
	w := make([]uint64, len(target))
	for p := range w {
		w[p] = weight(n, p)
	}
	for {
		top := 0
		for _, id := range ids {
			if id != n {
				top = max(top, load[id])
			}
		}
		if top-load[n] < 2 {
			return moved
		}
		best := -1
		for p, o := range target {
			if o != n && load[o] == top && (best < 0 || w[p] > w[best]) {
				best = p
			}
		}
		load[target[best]]--
		target[best] = n
		load[n]++
		moved = append(moved, best)
	}
}

// leaveTarget hands leaver x's partitions to the members left (ids, in the
// order they are to be considered) and returns the partitions moved. With
// byWeight false ties go to the first member in ids' order: only the
// planted defect asks for that (assignment_map_order).
func leaveTarget(target []string, ids []string, x string, byWeight bool) []int {
	var moved []int
	load := loads(target, ids)
	for p, o := range target {
		if o != x {
			continue
		}
		moved = append(moved, p)
		best, bestW := "", uint64(0)
		for _, id := range ids {
			if id == x {
				continue
			}
			wt := weight(id, p)
			if best == "" || load[id] < load[best] || load[id] == load[best] && byWeight && (wt > bestW || wt == bestW && id < best) {
				best, bestW = id, wt
			}
		}
		target[p] = best
		if best != "" {
			load[best]++
		}
	}
	return moved
}
