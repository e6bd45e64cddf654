package sim

import (
	"errors"
	"slices"

	"github.com/aspen-db/aspen/core/node"
)

// Leader transfers have no network round trip in the simulator: the admin
// calls TransferLeader on a running node directly, as an operator's
// transfer-leader call would once it reached that node, and the answer is
// judged at once. What the handover does afterwards is judged by the usual
// checkers (one leader per term, convergence in the healed phase).

// adminTransfer asks the current leader to hand over to another voter of its
// applied configuration; a refusal is a violation.
func (w *World) adminTransfer() {
	sn := w.leaderNode()
	if sn == nil {
		return
	}
	voters := slices.DeleteFunc(sortedIDList(sn.n.Status().Voters), func(id uint64) bool { return id == sn.id })
	if len(voters) == 0 {
		return
	}
	to := voters[w.rng.IntN(len(voters))]
	w.trace.note("admin: asks leader %d to transfer leadership to voter %d", sn.id, to)
	if err := sn.n.TransferLeader(to); err != nil {
		w.check.fail("valid leader transfer refused: leader %d to voter %d: %v", sn.id, to, err)
	}
	w.res.LeaderTransfers++
	w.pump(sn)
}

// forbiddenTransfer asks the leader (or, with none running, any running
// node) to hand leadership to a node that cannot take it. The leader must
// refuse the target; another node may only say it does not lead.
func (w *World) forbiddenTransfer(to uint64, why string) {
	sn := w.leaderNode()
	if sn == nil {
		sn = w.runningNode()
	}
	if sn == nil {
		return
	}
	_, leads := sn.n.LeaderTerm()
	w.trace.note("admin: asks node %d to %s (must be refused)", sn.id, why)
	err := sn.n.TransferLeader(to)
	switch {
	case err == nil:
		w.check.fail("forbidden leader transfer accepted: %s (asked of node %d)", why, sn.id)
	case errors.Is(err, node.ErrTransferRefused), errors.Is(err, node.ErrTransferNotLeader) && !leads:
		w.res.RefusalsChecked++
		w.trace.note("admin: refused as it must be: %s: %v", why, err)
	default:
		w.check.fail("forbidden leader transfer (%s) asked of node %d: got %v, want a refusal by the leader", why, sn.id, err)
	}
	w.pump(sn)
}

// leaderNode is the running node that leads in the highest term, or nil.
func (w *World) leaderNode() *simNode {
	var best *simNode
	var bestTerm uint64
	for _, sn := range w.nodes {
		if !w.running(sn) {
			continue
		}
		if term, ok := sn.n.LeaderTerm(); ok && (best == nil || term > bestTerm) {
			best, bestTerm = sn, term
		}
	}
	return best
}

// runningNode draws a node that is up and not paused, or nil.
func (w *World) runningNode() *simNode {
	var up []*simNode
	for _, sn := range w.nodes {
		if w.running(sn) {
			up = append(up, sn)
		}
	}
	if len(up) == 0 {
		return nil
	}
	return up[w.rng.IntN(len(up))]
}

func (w *World) running(sn *simNode) bool { return !sn.gone && sn.n != nil && !sn.paused }
