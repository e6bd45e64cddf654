package sim

import (
	"fmt"

	"github.com/aspen-db/aspen/core/node"
)

// The admin also asks for what the cluster must refuse: ids back from the
// dead, removals of strangers, promotions of voters, voters demoted by a
// second add, leadership handed to learners or strangers. Each is judged
// against the membership the admin knows is committed, and only while no
// change of its own is in flight, so nothing can make it legitimately
// allowed by the time it arrives. A refusal leaves the admin's model as it
// was; an acceptance is a violation.

// forbiddenKind is one kind of request the cluster must refuse.
type forbiddenKind int

const (
	reuseRemoved     forbiddenKind = iota // add, as learner or voter, an id the cluster removed
	removeStranger                        // remove an id that was never a member
	promoteVoter                          // add as voter an id that already is one
	relearnMember                         // add as learner an id that is already a member
	transferLearner                       // hand leadership to a learner
	transferStranger                      // hand leadership to an id that was never a member
)

// planRefused picks one forbidden request among those the admin's knowledge
// allows. planChange runs only with an empty plan, so nothing is in flight.
func (w *World) planRefused() {
	a := w.admin
	kinds := []forbiddenKind{removeStranger, promoteVoter, relearnMember, transferStranger}
	if len(a.removed) > 0 {
		kinds = append(kinds, reuseRemoved)
	}
	if len(a.learners) > 0 {
		kinds = append(kinds, transferLearner)
	}
	switch kind := kinds[w.rng.IntN(len(kinds))]; kind {
	case transferLearner:
		id := w.pickID(a.learners)
		w.forbiddenTransfer(id, fmt.Sprintf("transfer leadership to learner %d", id))
	case transferStranger:
		id := w.strangerID()
		w.forbiddenTransfer(id, fmt.Sprintf("transfer leadership to node %d, never a member", id))
	default:
		a.plan = append(a.plan, w.forbiddenChange(kind))
	}
}

// forbiddenChange builds a membership request the cluster must refuse.
func (w *World) forbiddenChange(kind forbiddenKind) adminOp {
	a := w.admin
	var c node.MemberChange
	var why string
	switch kind {
	case reuseRemoved:
		c = node.MemberChange{Type: node.AddLearner, ID: w.pickID(a.removed)}
		as := "learner"
		if w.rng.IntN(2) == 0 {
			c.Type, as = node.AddVoter, "voter"
		}
		why = fmt.Sprintf("re-add removed node %d as %s", c.ID, as)
	case removeStranger:
		c = node.MemberChange{Type: node.RemoveMember, ID: w.strangerID()}
		why = fmt.Sprintf("remove node %d, never a member", c.ID)
	case promoteVoter:
		c = node.MemberChange{Type: node.AddVoter, ID: w.pickID(a.voters)}
		why = fmt.Sprintf("promote node %d, already a voter", c.ID)
	case relearnMember:
		members := map[uint64]bool{}
		for _, m := range []map[uint64]bool{a.voters, a.learners} {
			for id := range m {
				members[id] = true
			}
		}
		c = node.MemberChange{Type: node.AddLearner, ID: w.pickID(members)}
		why = fmt.Sprintf("add node %d as learner, already a member", c.ID)
	}
	w.trace.note("admin: asks to %s (must be refused)", why)
	return adminOp{change: c, forbidden: why}
}

// forbiddenAnswered checks the final answer to a forbidden change: a refusal,
// which leaves the admin's model alone, or an acceptance, a violation.
func (w *World) forbiddenAnswered(op adminOp, r node.Response) {
	switch r.Outcome {
	case node.OK:
		w.check.fail("forbidden membership change accepted: %s", op.forbidden)
	case node.Conflict:
		w.res.RefusalsChecked++
		w.trace.note("admin: refused as it must be: %s: %v", op.forbidden, r.Err())
	default:
		w.check.fail("forbidden membership change %s answered %v, want a conflict", op.forbidden, r.Err())
	}
	w.adminDone()
}

// pickID draws one id of the set, in id order so the draw is deterministic.
func (w *World) pickID(set map[uint64]bool) uint64 {
	ids := sortedKeys(set)
	return ids[w.rng.IntN(len(ids))]
}

// strangerID is an id no node ever has: addNode stops at nodesMax.
func (w *World) strangerID() uint64 { return uint64(w.nodesMax() + 1) }
