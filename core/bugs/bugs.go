// Package bugs names the defects that tests plant in the core to prove that a
// checker can fail. They exist only in builds with the aspenbugs tag: in every
// other build Enabled is false, Set.Has is constantly false, and the compiler
// drops each planted branch, so production code never carries them (pebble's
// invariants tag works the same way).
package bugs

import (
	"fmt"
	"slices"
	"strings"
)

// Bug is one planted defect.
type Bug uint8

// The planted defects, by the checker class that must catch them.
const (
	// Linearizability, durability, divergence (the first five).
	LocalReads        Bug = iota // serve reads from local state without ReadIndex
	SkipSync                     // acknowledge writes without syncing the disk
	NoDedup                      // apply a retried write again instead of answering from the session
	EarlyConfChange              // the proposing leader applies a membership change before it commits
	RecomputeRevision            // on restart, derive the revision from the keys instead of the disk

	// Crashes in short windows.
	VoteUnsynced // a Ready that changes only the hard state (a vote) is not synced
	EarlyAcks    // acknowledgements of appends and votes leave before the sync, like other messages

	// Restarts compared with what was made durable.
	StaleTail         // a conflicting append leaves the replaced log tail on disk
	SnapshotKeepsKeys // a snapshot install writes the new keys but leaves old ones on disk

	// Revisions.
	NoopBump       // a write that changes nothing still takes a new revision
	CreateRevReset // overwriting a key resets its create revision
	EventRevision  // change events carry the revision before the write

	// Paths the workload never took.
	RangeEndInclusive // an explicit range includes its end key
	ReuseRemovedID    // a removed member's id may be added again
	TransferToLearner // a leader transfer to a learner is accepted (and silently ignored by raft)

	// Leases and replicated time.
	LeaseLocalClock // apply reads "now" from the replica's own clock, not the leader's stamp
	NoLeaseGrace    // a new leader expires leases at once, without extending them first
	StampByRole     // whether a proposal gets the leader's stamp is read from the role of the last Ready, not raft's own state

	// Jobs.
	CompletionWithoutToken // a job's complete is accepted without checking its token
	ExpiryKeepsAttempt     // a lease's expiry does not count the attempt

	// Schedules.
	TickLocalClock // a schedule's fire reads the replica's own clock, not the entry's stamp

	// Hooks.
	HookMatchOnProposal // the leader matches a write as it proposes it and proposes its deliveries' jobs with it
	HookFireFromWatch   // the leader fires deliveries from the changes it sees applied (doubles on failover)
	HookDropWhenFull    // a match finding the hook's backlog full is dropped instead of lagging

	// Consumer groups.
	GroupStaleCommit   // a commit naming a stale generation is accepted from the partition's owner
	AssignmentMapOrder // a leaver's partitions go to members in map order: replicas disagree
	// CommitBeforeProcess is the simulator's own: its partitioned group
	// members commit a read's offset before they process the messages, so a
	// crash between the two loses them (sim/groups.go).
	CommitBeforeProcess
	// Topics.
	TopicOffsetReuse // a message's offset is the count of messages its partition retains, not its end

	// Sessions and locks.
	LockIgnoresHolder    // an acquire takes a key another session holds
	LockDelayIgnored     // an acquire checks only that its session is live, not the key's lock delay
	InvalidateKeepsLocks // a session's invalidation leaves the keys it holds held

	count
)

var names = [count]string{
	"local_reads", "skip_sync", "no_dedup", "early_conf_change", "recompute_revision",
	"vote_unsynced", "early_acks",
	"stale_tail", "snapshot_keeps_keys",
	"noop_bump", "create_rev_reset", "event_revision",
	"range_end_inclusive", "reuse_removed_id", "transfer_to_learner",
	"lease_local_clock", "no_lease_grace", "stamp_by_role",
	"completion_without_token", "expiry_keeps_attempt",
	"tick_local_clock",
	"hook_match_on_proposal", "hook_fire_from_watch", "hook_drop_when_full",
	"group_stale_commit", "assignment_map_order", "commit_before_process",
	"topic_offset_reuse",
	"lock_ignores_holder", "lock_delay_ignored", "invalidate_keeps_locks",
}

func (b Bug) String() string {
	if b < count {
		return names[b]
	}
	return fmt.Sprintf("bug(%d)", uint8(b))
}

// All lists every planted defect in declaration order.
func All() []Bug {
	out := make([]Bug, count)
	for i := range out {
		out[i] = Bug(i)
	}
	return out
}

// Parse returns the bug with the given name.
func Parse(name string) (Bug, error) {
	if i := slices.Index(names[:], name); i >= 0 {
		return Bug(i), nil
	}
	return 0, fmt.Errorf("unknown planted bug %q (want one of %s)", name, strings.Join(names[:], ", "))
}

// Set is a set of planted bugs; the zero value plants nothing.
type Set uint32

// Of returns the set holding bs.
func Of(bs ...Bug) Set {
	var s Set
	for _, b := range bs {
		s |= 1 << b
	}
	return s
}

// Has reports whether b is planted. Without the aspenbugs tag it is always
// false, whatever the set holds.
func (s Set) Has(b Bug) bool { return Enabled && s&(1<<b) != 0 }

// Empty reports whether the set plants nothing.
func (s Set) Empty() bool { return s == 0 }
