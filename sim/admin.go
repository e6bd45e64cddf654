package sim

import (
	"sort"

	"github.com/aspen-db/aspen/core/node"
)

// The admin is the simulated operator: it changes membership one request at a
// time (add a learner, promote it, add a new node straight as a voter, remove
// a voter, replace a node), retrying
// through faults like any client, and stops the nodes it removed, as an
// operator would. What it succeeded in asking for is the membership the
// cluster must end with. It also asks for what must be refused
// (refusals.go) and hands leadership over (transfer.go).

// adminOp is one membership change the admin wants, or one it asks for
// knowing the cluster must refuse it.
type adminOp struct {
	change    node.MemberChange
	forbidden string // why it must be refused ("re-add removed node 4"); empty for a real change
}

type admin struct {
	session  uint64
	seq      uint64
	plan     []adminOp // queued changes, first in flight
	attempt  int
	target   int
	inFlight bool
	voters   map[uint64]bool // the membership asked for so far
	learners map[uint64]bool
	removed  map[uint64]bool // ids it removed: the cluster must never take them back
	done     int             // changes that succeeded
	refused  []string        // changes the cluster refused
}

func (w *World) newAdmin() *admin {
	a := &admin{session: uint64(clientIDBase + len(w.clients)),
		voters: map[uint64]bool{}, learners: map[uint64]bool{}, removed: map[uint64]bool{}}
	for _, sn := range w.nodes {
		a.voters[sn.id] = true
	}
	return a
}

func (w *World) isAdmin(client int) bool { return w.admin != nil && client == len(w.clients) }

// adminTick is the membership nemesis: it queues a change by the scenario's
// weights, unless one is already queued.
func (w *World) adminTick() {
	if !w.faultsOn {
		return
	}
	if len(w.admin.plan) == 0 {
		w.planChange()
	}
	w.adminNext()
	w.schedule(event{at: w.now + int64(w.rng.ExpFloat64()*w.sc.Membership.IntervalMs*1e6), kind: evAdmin, node: -1})
}

func (w *World) planChange() {
	m := w.sc.Membership
	// Weights at zero draw nothing extra, so scenarios without the newer
	// kinds keep their trajectories.
	if kind, ok := w.pickWeighted(m.AddLearner, m.Promote, m.Remove, m.Replace, m.AddVoter, m.Refused, m.Transfer); ok {
		w.planKind(kind)
	}
}

func (w *World) planKind(kind int) {
	a := w.admin
	switch kind {
	case 0:
		if id, ok := w.addNode(); ok {
			a.plan = append(a.plan, adminOp{change: node.MemberChange{Type: node.AddLearner, ID: id}})
		}
	case 1:
		if ids := sortedKeys(a.learners); len(ids) > 0 {
			a.plan = append(a.plan, adminOp{change: node.MemberChange{Type: node.AddVoter, ID: ids[w.rng.IntN(len(ids))]}})
		}
	case 2:
		if ids := sortedKeys(a.voters); len(ids) > w.sc.Membership.VotersMin {
			a.plan = append(a.plan, adminOp{change: node.MemberChange{Type: node.RemoveMember, ID: ids[w.rng.IntN(len(ids))]}})
		}
	case 3:
		w.planReplace(sortedKeys(a.voters))
	case 4:
		// A voter with an empty disk counts in quorums (and may be asked
		// to vote) before the leader's snapshot reaches it.
		if id, ok := w.addNode(); ok {
			a.plan = append(a.plan, adminOp{change: node.MemberChange{Type: node.AddVoter, ID: id}})
		}
	case 5:
		w.planRefused()
	case 6:
		w.adminTransfer()
	}
}

// planReplace swaps one voter for a new node: learner, promotion, removal.
func (w *World) planReplace(voters []uint64) {
	if len(voters) == 0 {
		return
	}
	old := voters[w.rng.IntN(len(voters))]
	if w.sc.Membership.ReplaceAll {
		old = w.nextOriginal()
		if old == 0 {
			return
		}
	}
	id, ok := w.addNode()
	if !ok {
		return
	}
	w.admin.plan = append(w.admin.plan,
		adminOp{change: node.MemberChange{Type: node.AddLearner, ID: id}},
		adminOp{change: node.MemberChange{Type: node.AddVoter, ID: id}},
		adminOp{change: node.MemberChange{Type: node.RemoveMember, ID: old}})
}

// nextOriginal is the lowest original node still a voter, or 0.
func (w *World) nextOriginal() uint64 {
	for id := uint64(1); id <= uint64(w.sc.Cluster.Nodes); id++ {
		if w.admin.voters[id] {
			return id
		}
	}
	return 0
}

// addNode creates a node with an empty disk that waits to be let in.
func (w *World) addNode() (uint64, bool) {
	if len(w.nodes) >= w.nodesMax() {
		return 0, false
	}
	sn := w.newSimNode(len(w.nodes))
	sn.joining = true
	w.nodes = append(w.nodes, sn)
	w.trace.note("new node %d (empty disk, joining)", sn.id)
	w.schedule(event{at: w.now, kind: evRestart, node: sn.idx, inc: sn.inc})
	return sn.id, true
}

func (w *World) nodesMax() int { return w.sc.Cluster.Nodes + w.sc.Membership.AddsMax }

// adminNext sends the first planned change, if none is in flight.
func (w *World) adminNext() {
	a := w.admin
	if a.inFlight || len(a.plan) == 0 {
		return
	}
	a.seq++
	a.inFlight, a.attempt = true, 0
	a.target = w.liveNode()
	w.adminAttempt()
}

func (w *World) adminAttempt() {
	a := w.admin
	a.attempt++
	w.toNode(a.target, node.Request{Client: a.session, Seq: a.seq, Members: []node.MemberChange{a.plan[0].change}})
	w.timeAttempt(len(w.clients), a.attempt)
}

func (w *World) adminTimeout(attempt int) {
	if w.admin.inFlight && attempt == w.admin.attempt {
		w.adminRetry()
	}
}

// adminRetry sends the same request (same session and sequence number, so it
// is applied at most once) to another node. The admin never gives up: the
// healed phase must let every change finish, so the membership asked for is
// always known.
func (w *World) adminRetry() {
	w.admin.target = w.liveNode()
	w.adminAttempt()
}

func (w *World) adminResponse(e event) {
	a := w.admin
	if !a.inFlight || e.resp.Seq != a.seq {
		return
	}
	op, r := a.plan[0], e.resp
	switch {
	case op.forbidden != "" && (r.Outcome == node.OK || r.Outcome.Refused()):
		w.forbiddenAnswered(op, r)
	case r.Outcome == node.OK:
		w.adminApplied(op.change)
		w.adminDone()
	case r.Outcome == node.Conflict:
		// Refused by replicated rules (for instance a concurrent removal made it
		// moot): the plan's later steps depend on it, so drop them.
		a.refused = append(a.refused, r.Err().Error())
		w.trace.note("admin: %v refused: %v", op.change, r.Err())
		w.dropPlan()
	case r.Outcome.Refused():
		w.check.fail("admin: %v answered %v; a membership change is only ever refused as a conflict", op.change, r.Err())
		w.dropPlan()
	case r.Outcome == node.NotLeader && r.Leader != 0 && !w.nodes[r.Leader-1].gone:
		// Follow the hint at once, as the CLI follows a redirect.
		a.target = int(e.resp.Leader - 1)
		w.adminAttempt()
	default:
		// Learner behind, no leader known, ...: the attempt timeout retries
		// elsewhere, which paces the retries.
	}
}

// adminDone ends the change in flight and sends the next one.
func (w *World) adminDone() {
	a := w.admin
	a.plan, a.inFlight = a.plan[1:], false
	w.adminNext()
}

// adminApplied records a change the cluster committed and, for a removal,
// stops the removed node for good.
func (w *World) adminApplied(c node.MemberChange) {
	a := w.admin
	a.done++
	w.trace.note("admin: applied %v", c)
	switch c.Type {
	case node.AddLearner:
		a.learners[c.ID] = true
	case node.AddVoter:
		delete(a.learners, c.ID)
		a.voters[c.ID] = true
	case node.RemoveMember:
		delete(a.learners, c.ID)
		delete(a.voters, c.ID)
		a.removed[c.ID] = true
		w.markRemoved(w.nodes[c.ID-1])
		w.retire(w.nodes[c.ID-1])
	}
}

// dropPlan abandons the queued changes; nodes created for additions that will
// not happen are stopped, as an operator would.
func (w *World) dropPlan() {
	a := w.admin
	for _, op := range a.plan {
		isAdd := op.change.Type == node.AddLearner || op.change.Type == node.AddVoter
		if isAdd && !a.learners[op.change.ID] && !a.voters[op.change.ID] {
			w.retire(w.nodes[op.change.ID-1])
		}
	}
	a.plan, a.inFlight = nil, false
}

// retire stops a removed node permanently.
func (w *World) retire(sn *simNode) {
	sn.gone = true
	sn.n, sn.busy, sn.roundDue, sn.paused, sn.deferred = nil, false, false, false, nil
	sn.inc++
	w.trace.note("node %d retired", sn.id)
}

// liveNode picks a node that has not been retired.
func (w *World) liveNode() int {
	var live []int
	for _, sn := range w.nodes {
		if !sn.gone {
			live = append(live, sn.idx)
		}
	}
	return live[w.rng.IntN(len(live))]
}

func sortedKeys(m map[uint64]bool) []uint64 {
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}
