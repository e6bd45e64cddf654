package node

import (
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Replicated time. Replicas' clocks disagree (skew, drift, a paused
// process), and applied state must not: so apply never reads a clock. A
// leader stamps every command it appends with its own clock reading, never
// below the last stamp it gave or the time it has applied; apply moves the
// replicated time to each stamp it sees, never back. Entries a follower
// proposes (raft forwards them as they are) carry no stamp until the leader
// stamps them; one a deposed leader stamped and forwarded gets the new
// leader's stamp in place of its own. So every stamp in a term is its
// leader's clock, and a command moves replicated time to when it was
// appended. A new leader starts from the time it applied, so its stamps
// never go back across a failover, even when its clock is behind.
//
// How far replicated time is from true time is bounded by the clocks of the
// leaders that stamped it: a leader ahead by skew S moves it S ahead, and
// it stays there (it never goes back) until true time catches up; a leader
// behind is clamped to what was applied, so time stands still for a while.
// Every timer a user can see rides on it, so their error is the leaders'
// clock error; the simulator's skewed, drifting clocks check it.

// leads says whether raft leads now, which is what decides whether a
// proposal is appended here. n.role is the role as of the last Ready: the
// Step that brings the winning vote makes raft leader before it, and a
// proposal flushed in between went into the log unstamped. A keep-alive
// appended so, right after a failover, applied at the time the old leader
// last stamped and extended its lease by nothing (found by the real-process
// lease test, tools/faultcheck).
func (n *Node) leads() bool {
	return n.plantLeads(n.raw.BasicStatus().RaftState == raft.StateLeader)
}

// stampEntries stamps proposals with this leader's clock, monotonically.
func (n *Node) stampEntries(ents []raftpb.Entry) {
	stamp := max(n.now, n.stampFloorNs, n.timeNs)
	n.stampFloorNs = stamp
	for i := range ents {
		// Membership changes are raft's encoding, not commands: one that a
		// deposed leader proposed reaches the next leader forwarded, and a
		// stamp in front of it made raft panic decoding it (found by the
		// simulator, swarm-membership seed 148).
		if d := ents[i].Data; ents[i].Type == raftpb.EntryNormal && len(d) > 0 {
			ents[i].Data = stampCommand(d, stamp)
		}
	}
}

// advanceTime moves the replicated time to an applied entry's stamp.
func (n *Node) advanceTime(c command) {
	if c.stamped {
		n.timeNs = max(n.timeNs, c.stampNs)
	}
}

// queryNowNs is the time a query about what is left of a timer is answered
// at. The leader's clock is the one that decides when a timer fires (it
// proposes the expiry once its clock passes the deadline), so the leader
// answers by it, never below replicated time. A follower's clock says
// nothing about the leader's: read at its own clock, a follower whose clock
// ran seconds ahead told a lease renewed a moment ago that nothing was left
// (found by the simulator, leases seed 63), and one behind promised too much;
// taking replicated time on by its own clock's elapsed time ran ahead while a
// leader behind held replicated time still (swarm-membership seed 197). A
// follower answers by replicated time as of the read: the same on every
// follower at one index, at most the timer's length, and long, never short,
// by the time since the last write.
func (n *Node) queryNowNs() int64 {
	if n.role == raft.StateLeader {
		return max(n.timeNs, n.now)
	}
	return n.timeNs
}

// QueryNowNs is the time this replica answers reads about timers at (see
// queryNowNs): the leader's clock, never below replicated time, or a
// follower's replicated time. Drivers read gauges such as a schedule's lag
// at it.
func (n *Node) QueryNowNs() int64 { return n.queryNowNs() }

// TimeNs returns the replicated time: the latest stamp applied.
func (n *Node) TimeNs() int64 { return n.timeNs }
