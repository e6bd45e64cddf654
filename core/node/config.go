package node

import (
	"github.com/aspen-db/aspen/core/bugs"
	"github.com/aspen-db/aspen/core/groups"
	"github.com/aspen-db/aspen/core/hooks"
	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/lease"
	"github.com/aspen-db/aspen/core/locks"
	"github.com/aspen-db/aspen/core/sched"
	"github.com/aspen-db/aspen/core/topics"
)

// Config is everything a replica needs to know that is not on its disk. Every
// queue and table has a named bound here, checked where it grows.
type Config struct {
	ID      uint64
	Peers   []uint64 // initial voters, used only when the disk is empty
	Members []Member // their addresses, if the driver has them (optional)
	Join    bool     // an empty disk waits for the leader instead of bootstrapping
	Restore []byte   // a backup (Node.Backup) a fresh cluster starts from, instead of empty

	TickNs         int64 // virtual or wall nanoseconds per raft tick
	ElectionTicks  int
	HeartbeatTicks int
	// ThinFollowerTicks makes a follower pass on each raft tick with
	// probability one half, drawn from the seeded Rand: the jitter that
	// keeps elections from colliding forever when the driver has pinned
	// raft's own (raft's randomized election timeout reads crypto/rand,
	// which the simulator pins for determinism). A driver that leaves
	// raft's jitter alone leaves this off: thinned on top of it, a real
	// cluster took two to four election timeouts to replace a dead leader.
	ThinFollowerTicks bool

	RequestTimeoutNs int64 // a client request still pending after this fails with ErrTimeout
	ReadRetryNs      int64 // a ReadIndex with no answer after this is re-issued with a fresh context
	PendingMax       int   // client requests in flight at this replica
	SessionsMax      int   // clients remembered for exactly-once writes

	SnapshotEntries    uint64 // take a snapshot after this many entries applied since the last one
	CompactKeepEntries uint64 // entries kept behind a snapshot for slow followers
	// SnapshotBytes and CompactKeepBytes bound the same by the entries'
	// payload bytes (0: no bound). Raft's log in memory holds every entry
	// from the compaction point on, so counts alone let it grow with the
	// entries' size: 15k transactions of 64 puts held 180 MB.
	SnapshotBytes    uint64
	CompactKeepBytes uint64

	MaxSizePerMsgBytes    uint64
	MaxInflightMsgs       int
	MaxUncommittedBytes   uint64
	ProposalBatchMax      int    // client writes proposed in one MsgProp
	PromoteLagEntriesMax  uint64 // a learner further behind the commit index than this is not promoted
	AppliedRecordsEnabled bool   // report every applied entry in Ready.Applied (checkers)
	EventsEnabled         bool   // report every key change in Ready.Events (watches)

	Limits    kv.Limits
	Leases    lease.Limits
	Locks     locks.Limits
	Jobs      jobs.Limits
	Schedules sched.Limits
	Hooks     hooks.Limits
	Topics    topics.Limits
	Groups    groups.Limits
	// Bugs plants defects, for tests that prove a checker can catch them. It
	// has effect only in builds with the aspenbugs tag (see core/bugs).
	Bugs bugs.Set
}

// DefaultConfig returns a config with sane bounds for a replica with id and peers.
func DefaultConfig(id uint64, peers []uint64) Config {
	return Config{
		ID:                   id,
		Peers:                peers,
		TickNs:               10_000_000,
		ElectionTicks:        10,
		HeartbeatTicks:       1,
		RequestTimeoutNs:     2_000_000_000,
		ReadRetryNs:          300_000_000,
		PendingMax:           4096,
		SessionsMax:          1024,
		SnapshotEntries:      1000,
		CompactKeepEntries:   200,
		MaxSizePerMsgBytes:   1 << 20,
		MaxInflightMsgs:      256,
		MaxUncommittedBytes:  64 << 20,
		ProposalBatchMax:     512,
		PromoteLagEntriesMax: 100,
		Limits:               kv.DefaultLimits(),
		Leases:               lease.DefaultLimits(),
		Locks:                locks.DefaultLimits(),
		Jobs:                 jobs.DefaultLimits(),
		Schedules:            sched.DefaultLimits(),
		Hooks:                hooks.DefaultLimits(),
		Topics:               topics.DefaultLimits(),
		Groups:               groups.DefaultLimits(),
	}
}

// kvWithBugs is an empty state machine carrying the planted defects, if any.
func kvWithBugs(set bugs.Set) *kv.Machine {
	m := kv.New()
	m.Bugs = set
	return m
}
