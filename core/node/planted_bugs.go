//go:build aspenbugs

package node

import (
	"bytes"

	"github.com/aspen-db/aspen/core/bugs"
	"github.com/aspen-db/aspen/core/hooks"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/sched"
	"github.com/aspen-db/aspen/core/session"
	"github.com/aspen-db/aspen/core/storage"
	"github.com/aspen-db/aspen/core/topics"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// The planted defects (core/bugs), each the mistake a contributor could make
// at that seam. Only builds with -tags aspenbugs hold this file; planted.go
// is the seams' production form.

// RecomputeRevision: derive the revision from the keys, wrong after a delete.
func (n *Node) plantLoadedRevision(stored, maxMod int64) int64 {
	if n.cfg.Bugs.Has(bugs.RecomputeRevision) {
		return maxMod
	}
	return stored
}

// NoDedup: apply a retried write again instead of answering from the session.
func (n *Node) plantVerdict(v session.Verdict) session.Verdict {
	if n.cfg.Bugs.Has(bugs.NoDedup) && v == session.Duplicate {
		return session.Fresh
	}
	return v
}

// LeaseLocalClock: apply reads "now" from the replica's own clock.
func (n *Node) plantNow(replicated int64) int64 {
	if n.cfg.Bugs.Has(bugs.LeaseLocalClock) {
		return n.now
	}
	return replicated
}

// NoLeaseGrace: "keep-alives reach the new leader soon enough".
func (n *Node) plantGrace(graceNs int64) int64 {
	if n.cfg.Bugs.Has(bugs.NoLeaseGrace) {
		return 0
	}
	return graceNs
}

// StampByRole: "the role from the last Ready says whether we lead".
func (n *Node) plantLeads(leads bool) bool {
	if n.cfg.Bugs.Has(bugs.StampByRole) {
		return n.role == raft.StateLeader
	}
	return leads
}

// SnapshotKeepsKeys: "the snapshot's keys overwrite the old ones anyway".
func (n *Node) plantKeepDeleted(b *storage.Batch, from int) {
	if n.cfg.Bugs.Has(bugs.SnapshotKeepsKeys) {
		dropDeletes(b, from, prefixKV)
	}
}

// StaleTail: "the new entries overwrite the old ones".
func (n *Node) plantKeepTail(b *storage.Batch, from int) {
	if n.cfg.Bugs.Has(bugs.StaleTail) {
		dropDeletes(b, from, prefixLog)
	}
}

// dropDeletes removes the deletes of keys under prefix queued since from.
func dropDeletes(b *storage.Batch, from int, prefix []byte) {
	kept := b.Ops[:from]
	for _, op := range b.Ops[from:] {
		if !(op.Delete && bytes.HasPrefix(op.Key, prefix)) {
			kept = append(kept, op)
		}
	}
	b.Ops = kept
}

// ReuseRemovedID: checkChanges forgets that removed ids are never reused.
func (n *Node) plantRemoved(removed bool) bool {
	return removed && !n.cfg.Bugs.Has(bugs.ReuseRemovedID)
}

// SkipSync: acknowledge without syncing. VoteUnsynced: "a vote alone is
// tiny", so a Ready with only a hard state is not synced.
func (n *Node) plantSync(out *Ready, rd raft.Ready) {
	if n.cfg.Bugs.Has(bugs.SkipSync) {
		out.Sync = false
	}
	if n.cfg.Bugs.Has(bugs.VoteUnsynced) && n.haveRd {
		out.Sync = out.Sync && (len(rd.Entries) > 0 || !raft.IsEmptySnap(rd.Snapshot))
	}
}

// EarlyAcks: acknowledgements of appends and votes leave before the sync too.
func (n *Node) plantEarly(early bool) bool { return early || n.cfg.Bugs.Has(bugs.EarlyAcks) }

// LocalReads: serve reads from local state without ReadIndex.
func (n *Node) plantStale(stale bool) bool { return stale || n.cfg.Bugs.Has(bugs.LocalReads) }

// EarlyConfChange: the proposing leader applies a change before it commits.
func (n *Node) plantProposedConfChange(cc raftpb.ConfChangeV2) {
	if n.cfg.Bugs.Has(bugs.EarlyConfChange) && n.role == raft.StateLeader {
		n.conf = *n.raw.ApplyConfChange(cc)
		n.earlyApplied[string(cc.Context)] = true
	}
}

// TransferToLearner: any member will do as the new leader.
func (n *Node) plantVoter(voter bool, to uint64) bool {
	if n.cfg.Bugs.Has(bugs.TransferToLearner) {
		return n.isMember(to)
	}
	return voter
}

// TickLocalClock: hand the schedules module the replica's own clock;
// TopicOffsetReuse: hand the topics module the planted set.
func (n *Node) plantModules() {
	n.h.state("schedules").(*sched.Module).PlantBugs(n.cfg.Bugs, func() int64 { return n.now })
	n.h.state("topics").(*topics.Module).PlantBugs(n.cfg.Bugs)
}

// HookMatchOnProposal: "the leader knows the write already": it matches the
// txn as it proposes it and proposes the deliveries' jobs right behind it.
func (n *Node) plantProposedTxn(t kv.Txn) {
	if !n.cfg.Bugs.Has(bugs.HookMatchOnProposal) || n.role != raft.StateLeader {
		return
	}
	m := n.h.state("hooks").(*hooks.Module)
	for _, c := range m.PlantProposed(t, n.h.kv.M.Revision()+1, n.now) {
		n.proposals = append(n.proposals, raftpb.Entry{Data: encodeCommand(c.Kind, 0, 0, c.Body)})
	}
}
