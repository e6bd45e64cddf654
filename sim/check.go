package sim

import (
	"fmt"
	"slices"

	"github.com/aspen-db/aspen/core/node"
)

// violationsMax bounds how many violations a run keeps: the first ones explain
// the failure, the rest are echoes.
const violationsMax = 20

type entryRecord struct {
	term, hash uint64
	node       uint64
}

// checker holds the invariants checked while the run goes on.
type checker struct {
	leaders    map[uint64]uint64      // term -> the leader seen in it
	votes      map[[2]uint64]uint64   // (voter, term) -> the candidate it voted for
	entries    map[uint64]entryRecord // index -> the entry applied there
	states     map[uint64]uint64      // applied index -> state hash right after it
	maxApplied uint64
	violations []string
}

func newChecker() checker {
	return checker{leaders: map[uint64]uint64{}, votes: map[[2]uint64]uint64{}, entries: map[uint64]entryRecord{}, states: map[uint64]uint64{}}
}

func (c *checker) fail(format string, args ...any) {
	if len(c.violations) < violationsMax {
		c.violations = append(c.violations, fmt.Sprintf(format, args...))
	}
}

// leader checks that no two nodes lead in the same term.
func (c *checker) leader(id, term uint64) {
	if prev, ok := c.leaders[term]; ok && prev != id {
		c.fail("two leaders in term %d: nodes %d and %d", term, prev, id)
		return
	}
	c.leaders[term] = id
}

// vote checks that no node votes for two candidates in one term, across
// crashes too: a forgotten vote is how a term gets two leaders.
func (c *checker) vote(voter, term, candidate uint64) {
	k := [2]uint64{voter, term}
	if prev, ok := c.votes[k]; ok && prev != candidate {
		c.fail("node %d voted twice in term %d: for nodes %d and %d", voter, term, prev, candidate)
		return
	}
	c.votes[k] = candidate
}

// applied checks that every replica applies the same entry at each index (so
// no committed entry is lost or changed) and reaches the same state after it,
// and that every command carries its leader's stamp: one without applies at
// the time of the last stamp, however long ago that was, so a keep-alive
// appended so extends its lease by nothing.
func (c *checker) applied(id uint64, recs []node.Applied) {
	for _, a := range recs {
		if prev, ok := c.entries[a.Index]; !ok {
			c.entries[a.Index] = entryRecord{term: a.Term, hash: a.EntryHash, node: id}
			if a.Kind != 0 && !a.Stamped {
				c.fail("entry %d (term %d, command kind %d) was appended without its leader's stamp", a.Index, a.Term, a.Kind)
			}
		} else if prev.term != a.Term || prev.hash != a.EntryHash {
			c.fail("committed entry %d changed: node %d applied term %d (hash %x), node %d applied term %d (hash %x)",
				a.Index, prev.node, prev.term, prev.hash, id, a.Term, a.EntryHash)
		}
		if prev, ok := c.states[a.Index]; !ok {
			c.states[a.Index] = a.StateHash
		} else if prev != a.StateHash {
			c.fail("replicas diverge: node %d has state %x after entry %d, another replica had %x", id, a.StateHash, a.Index, prev)
		}
		c.maxApplied = max(c.maxApplied, a.Index)
	}
}

// checkConvergence runs after the healed phase: every node must be up and
// identical, no committed entry may be missing, and every client must be done.
func (w *World) checkConvergence() {
	var first *simNode
	for _, sn := range w.nodes {
		if sn.gone {
			continue
		}
		if sn.n == nil || sn.paused {
			w.check.fail("healed phase ended with node %d down", sn.id)
			continue
		}
		if on(w.sc.Checkers.Invariants) {
			w.checkShadow(sn)
		}
		if first == nil {
			first = sn
			continue
		}
		a, b := first.n.Status(), sn.n.Status()
		if a.Applied != b.Applied || first.n.StateHash() != sn.n.StateHash() {
			w.check.fail("healed phase ended unconverged: node %d applied %d (state %x), node %d applied %d (state %x)",
				first.id, a.Applied, first.n.StateHash(), sn.id, b.Applied, sn.n.StateHash())
		}
	}
	if first != nil && first.n.AppliedIndex() < w.check.maxApplied {
		w.check.fail("committed entries lost: entry %d was applied once, but the healed cluster is at %d",
			w.check.maxApplied, first.n.AppliedIndex())
	}
	w.checkMembership()
	w.checkAddresses()
	for _, c := range w.clients {
		if c.op != nil {
			w.check.fail("healed phase ended with client %d still waiting (operation started at %.3fs)", c.idx, float64(c.op.start)/1e9)
		}
	}
	for _, h := range w.holders {
		if h.op != nil {
			w.check.fail("healed phase ended with lease holder %d still waiting (request started at %.3fs)", h.idx, float64(h.op.start)/1e9)
		}
	}
}

// checkMembership compares every running member's configuration with the one
// the admin asked for.
func (w *World) checkMembership() {
	a := w.admin
	if a == nil {
		return
	}
	if a.inFlight {
		w.check.fail("healed phase ended with a membership change still pending: %+v", a.plan[0].change)
		return
	}
	want := fmt.Sprintf("voters %v learners %v", sortedKeys(a.voters), sortedKeys(a.learners))
	for _, sn := range w.nodes {
		if sn.gone || sn.n == nil {
			continue
		}
		st := sn.n.Status()
		got := fmt.Sprintf("voters %v learners %v", sortedIDList(st.Voters), sortedIDList(st.Learners))
		if got != want {
			w.check.fail("node %d ended with %s, want %s", sn.id, got, want)
		}
	}
}

func sortedIDList(ids []uint64) []uint64 {
	return slices.Compact(slices.Sorted(slices.Values(ids)))
}
