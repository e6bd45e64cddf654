package sim

import (
	"github.com/aspen-db/aspen/core/node"
	"go.etcd.io/raft/v3/raftpb"
)

// Crash points (FoundationDB's BUGGIFY, for crashes): the nemesis crashes
// nodes at random times, so the few milliseconds between a replica's write
// and its sync, or just after it granted a vote, are almost never hit. A crash
// point classifies each Ready a node carries out and, with the probability the
// scenario gives that kind, crashes the node at the moment that kind is most
// fragile. The disk then keeps, loses or tears its unsynced batches as at any
// crash.

// crashMoment is a moment in carrying out a Ready.
type crashMoment uint8

const (
	// beforeSync: the batch is applied and the early messages are sent; the
	// sync has not happened (a slow one would still be pending).
	beforeSync crashMoment = iota
	// afterReady: everything is carried out (messages sent, Advance called).
	afterReady
)

// crashPoint crashes sn at moment m if a crash point for the kind of Ready rd
// is drawn, and reports whether it did. It draws from the world's rng only for
// kinds whose probability is set, so runs without crash points keep their
// trajectories.
func (w *World) crashPoint(sn *simNode, rd *node.Ready, m crashMoment) bool {
	if !w.faultsOn || !w.sc.Faults.crashPointsOn() {
		return false
	}
	kind := w.drawCrashPoint(rd, m)
	if kind == "" || w.nodesDown() >= w.sc.Faults.CrashesMax {
		return false
	}
	w.res.CrashPoints++
	w.trace.note("crash point %s: node %d", kind, sn.id)
	w.crash(sn)
	return true
}

// drawCrashPoint names the crash point drawn for rd at moment m, or "". Each
// kind the Ready is of draws in turn; the first hit wins.
func (w *World) drawCrashPoint(rd *node.Ready, m crashMoment) string {
	f := &w.sc.Faults
	hit := func(prob float64, is func() bool) bool {
		return prob > 0 && is() && w.rng.Float64() < prob
	}
	if m == beforeSync {
		switch {
		case hit(f.CrashAfterVoteProb, func() bool { return grantsVote(rd.EarlyMessages) }):
			return "after early vote" // it left before the sync: the sync is what is at stake
		case hit(f.CrashInSnapshotInstallProb, func() bool { return rd.Reset }):
			return "in snapshot install"
		case hit(f.CrashBeforeSyncProb, func() bool { return rd.Sync }):
			return "before sync"
		}
		return ""
	}
	switch {
	case hit(f.CrashAfterVoteProb, func() bool { return grantsVote(rd.Messages) }):
		return "after vote"
	case hit(f.CrashAfterTailReplaceProb, func() bool { return rd.TailReplaced }):
		return "after tail replace"
	case hit(f.CrashAfterMembershipProb, func() bool { return rd.MembersChanged }):
		return "after membership change"
	}
	return ""
}

// grantsVote says whether msgs grant a vote. Pre-votes do not count: they
// change nothing on disk, and crashing right after one only takes the voter
// away before the real vote, the one whose durability is at stake.
func grantsVote(msgs []raftpb.Message) bool {
	for i := range msgs {
		if msgs[i].Type == raftpb.MsgVoteResp && !msgs[i].Reject {
			return true
		}
	}
	return false
}
