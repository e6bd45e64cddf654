package node

import (
	"fmt"
	"slices"

	"go.etcd.io/raft/v3"
)

// Refusals of TransferLeader, as outcomes: a driver answers them like a
// request's.
var (
	// ErrTransferNotLeader: only the leader hands leadership over; ask it.
	ErrTransferNotLeader = &Error{Outcome: NotLeader}
	// ErrTransferRefused: the target cannot take over (a learner, not a
	// member, already the leader); asking again will not help.
	ErrTransferRefused = &Error{Outcome: Conflict}
)

// TransferLeader asks this replica, which must lead, to hand leadership to a
// voter of the applied configuration. It judges the target itself because
// raft silently ignores a learner, a non-member or itself as target: the
// caller would wait for a handover that never comes.
func (n *Node) TransferLeader(to uint64) error {
	// Raft's own state, not n.role: a driver may call between a Step that
	// demoted this replica and the Ready that reports it.
	if n.raw.BasicStatus().RaftState != raft.StateLeader {
		return ErrTransferNotLeader
	}
	if err := n.transferTarget(to); err != nil {
		return &Error{Outcome: Conflict, Detail: "leader transfer refused: " + err.Error()}
	}
	n.raw.TransferLeader(to)
	return nil
}

// transferTarget says why a node cannot take over leadership, or nil. Only a
// voter of the incoming configuration can: a learner cannot campaign, and an
// outgoing voter is leaving.
func (n *Node) transferTarget(to uint64) error {
	voter := n.plantVoter(slices.Contains(n.conf.Voters, to), to)
	switch {
	case to == n.cfg.ID:
		return fmt.Errorf("node %d already leads", to)
	case voter:
		return nil
	case slices.Contains(n.conf.Learners, to) || slices.Contains(n.conf.LearnersNext, to):
		return fmt.Errorf("node %d is a learner", to)
	case slices.Contains(n.conf.VotersOutgoing, to):
		return fmt.Errorf("node %d is leaving the configuration", to)
	}
	return fmt.Errorf("node %d is not a member", to)
}
