// Package node is one Aspen replica as a pure step machine: raft (through
// RawNode), the KV state machine, client sessions and linearizable reads.
//
// A driver feeds it inputs (Tick with the time, peer messages, client requests)
// and carries out what Ready returns: write the batch (and sync it when asked),
// then send the messages and deliver the responses, then call Advance. The
// simulator and the real runtime are two such drivers; nothing here does I/O.
package node

import (
	"fmt"
	"slices"

	"github.com/aspen-db/aspen/core/assert"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Rand is the injected source of randomness; the simulator seeds it.
type Rand interface{ Uint64() uint64 }

// Ready is what the driver must carry out, in order: apply Batch (atomically),
// Sync if asked, then send Messages, then Advance. EarlyMessages and
// Responses rest on nothing Batch writes, so they may leave before it is
// applied, and before the sync: each response answers a committed entry
// (durable on a quorum, whatever becomes of this replica's copy), a read of
// applied state (in memory; the core reads its disk only at start), or a
// refusal. A crash before the write is then a crash that lost the whole
// unsynced batch, which restart already has to handle.
type Ready struct {
	Batch storage.Batch
	// EarlyMessages may leave before the sync: everything but
	// acknowledgements (splitEarly). A leader's appends overlap its own
	// write, as the raft thesis allows (10.2.1), and it counts itself
	// towards a commit only when this Ready is done, so nothing is
	// acknowledged on the strength of an unsynced write.
	EarlyMessages []raftpb.Message
	Sync          bool
	// Messages leave after the sync: acknowledgements of appends and votes.
	Messages  []raftpb.Message
	Responses []Response
	Applied   []Applied // filled only when Config.AppliedRecordsEnabled, for checkers
	Events    []Event   // filled only when Config.EventsEnabled, for watches
	// Reset is set when a snapshot replaced the whole state: Events cannot
	// describe that, so watchers must start over from the new state.
	Reset bool
	// MembersChanged is set when membership or member addresses changed:
	// the driver should refresh its peer list from Members.
	MembersChanged bool
	// TailReplaced is set when the new entries replaced a conflicting tail of
	// the log (Batch deletes the old records beyond them). Nothing needs doing;
	// the simulator crashes replicas right after such a Ready, the moment a
	// stale tail left on disk would do harm.
	TailReplaced bool
}

// Event is one key's change, at the revision that made it (marked Expired
// when a lease's expiry deleted the key).
type Event = kv.Event

// Applied describes one applied log entry and the state right after it.
type Applied struct {
	Index, Term uint64
	EntryHash   uint64
	StateHash   uint64
	Kind        byte  // the command's kind (a module's); 0 for raft's own entries and conf changes
	Stamped     bool  // the command carries its leader's clock reading (every command a leader appends does)
	TimeNs      int64 // replicated time after the entry
	Revision    int64 // the KV revision after the entry: its changes are the events above the previous one
	Reports     []any // what modules reported on the entry (module.Reporter), e.g. []lease.End
}

// Status is a replica's view of the cluster.
type Status struct {
	ID, Term, Lead    uint64
	Role              raft.StateType // named in JSON ("StateLeader"); ParseRole reads it back
	Commit, Applied   uint64
	Revision          int64
	TimeNs            int64 // replicated time (the latest leader stamp applied)
	SnapshotIndex     uint64
	Keys, Sessions    int
	PendingWrites     int
	PendingReads      int
	LogFirst, LogLast uint64
	Removed           bool           // a committed change removed this replica
	Voters, Learners  []uint64       // the applied configuration
	Progress          []PeerProgress // each member's replication, as the leader sees it (leader only)
}

// ParseRole reads a raft role by the name raft gives it.
func ParseRole(name string) (raft.StateType, error) {
	for st := raft.StateFollower; st <= raft.StatePreCandidate; st++ {
		if st.String() == name {
			return st, nil
		}
	}
	return 0, fmt.Errorf("unknown raft role %q", name)
}

// PeerProgress is the leader's view of one member's log.
type PeerProgress struct {
	ID           uint64
	Match, Next  uint64
	Lag          uint64 // commit index minus match
	State        string // probe, replicate or snapshot
	RecentActive bool   // heard from within the last election timeout
	Learner      bool
}

// Node is one replica.
type Node struct {
	cfg Config
	rng Rand
	raw *raft.RawNode
	log *raft.MemoryStorage
	h   *hosted // the replicated state machines (modules.go)

	now       int64
	role      raft.StateType
	lead      uint64
	applied   uint64
	conf      raftpb.ConfState
	snapIndex uint64
	snapBytes uint64  // payload bytes of the entries applied since snapIndex
	frozen    *frozen // the state as of snapIndex, for followers that need a snapshot
	logFirst  uint64  // durable log records span [logFirst, logLast]
	trimTo    uint64  // records at or below this index are being deleted, a few per Ready
	logLast   uint64

	proposals []raftpb.Entry
	writes    map[uint64]pendingWrite // by client: one write in flight per client
	reads     []*pendingRead
	readCtx   uint64
	readEpoch uint64 // random per incarnation, prefixes every ReadIndex context

	responses    []Response
	timeNs       int64           // replicated time: the latest stamp applied (time.go)
	stampFloorNs int64           // the last stamp this replica gave as leader
	removedSelf  bool            // a committed change removed this replica: the driver should stop it
	snapshotDue  bool            // take a snapshot at the next chance, whatever the entry count
	earlyApplied map[string]bool // planted bug EarlyConfChange: changes applied at proposal

	boot         storage.Batch // records written on first start, carried by the first Ready
	bootstrapped bool          // New started a new cluster from an empty disk
	out          Ready         // the Ready being built (Ready)
	env          module.Env    // the command being applied (applyCommand): a local escapes through the module interface
	rd           raft.Ready
	haveRd       bool
}

type pendingWrite struct {
	seq      uint64
	deadline int64
}

// New builds a replica from what disk holds, or bootstraps a fresh one when the
// disk is empty. A record that fails its checksum is an error wrapping
// storage.ErrCorrupt: the replica must not start on corrupt state.
func New(cfg Config, rng Rand, disk storage.Reader) (*Node, error) {
	assert.That(cfg.ID != 0, "replica id must be non-zero")
	n := &Node{
		cfg:    cfg,
		rng:    rng,
		log:    raft.NewMemoryStorage(),
		h:      newHosted(cfg),
		writes: make(map[uint64]pendingWrite),
		frozen: &frozen{},

		earlyApplied: map[string]bool{},
	}
	if cfg.EventsEnabled {
		n.h.kv.EmitTo(&n.out.Events)
	}
	n.h.members.isMember = n.isMember
	n.h.members.revision = n.h.kv.M.Revision
	n.plantModules()
	n.readEpoch = rng.Uint64()
	fresh, err := n.load(disk)
	if err != nil {
		return nil, err
	}
	if fresh && !cfg.Join {
		if err := n.bootstrap(); err != nil {
			return nil, err
		}
		n.bootstrapped = true
	}
	raw, err := raft.NewRawNode(n.raftConfig())
	if err != nil {
		return nil, fmt.Errorf("node %d: start raft: %w", cfg.ID, err)
	}
	n.raw = raw
	return n, nil
}

func (n *Node) raftConfig() *raft.Config {
	return &raft.Config{
		ID:                        n.cfg.ID,
		ElectionTick:              n.cfg.ElectionTicks,
		HeartbeatTick:             n.cfg.HeartbeatTicks,
		Storage:                   raftStorage{n.log, n.conf, n.frozen},
		Applied:                   n.applied,
		MaxSizePerMsg:             n.cfg.MaxSizePerMsgBytes,
		MaxUncommittedEntriesSize: n.cfg.MaxUncommittedBytes,
		MaxInflightMsgs:           n.cfg.MaxInflightMsgs,
		CheckQuorum:               true,
		PreVote:                   true,
		ReadOnlyOption:            raft.ReadOnlySafe,
		Logger:                    quietLogger{},
	}
}

// bootstrap starts every replica of a new cluster from the same snapshot at
// index 1 naming the initial voters, so no replica needs a special first step.
func (n *Node) bootstrap() error {
	if n.cfg.Restore != nil {
		b, err := DecodeBackup(n.cfg.Restore)
		if err != nil {
			return err
		}
		if err := n.restoreBackup(b); err != nil {
			return err
		}
	}
	for _, m := range n.cfg.Members {
		n.h.members.m.addrs[m.ID] = [2]string{m.PeerAddr, m.HTTPAddr}
	}
	snap := raftpb.Snapshot{
		Metadata: raftpb.SnapshotMetadata{Index: 1, Term: 1, ConfState: raftpb.ConfState{Voters: n.cfg.Peers}},
	}
	hs := raftpb.HardState{Term: 1, Commit: 1}
	assert.That(n.log.ApplySnapshot(snap) == nil, "bootstrap snapshot refused")
	assert.That(n.log.SetHardState(hs) == nil, "bootstrap hard state refused")
	n.applied, n.snapIndex, n.conf = 1, 1, snap.Metadata.ConfState
	n.freeze()
	n.logFirst, n.logLast = 2, 1
	n.boot.Put(keySnapshot, mustMarshal(&snap))
	n.boot.Put(keyHardState, mustMarshal(&hs))
	n.boot.PutRecord(keyApplied, appliedRecord(n.appliedMeta()))
	for _, s := range n.h.states {
		s.Persist(&n.boot)
	}
	return nil
}

func (n *Node) appliedMeta() appliedMeta {
	return appliedMeta{Index: n.applied, Revision: n.h.kv.M.Revision(), TimeNs: n.timeNs, Conf: n.conf}
}

// Tick advances the replica's clock to now (its own, possibly drifting, clock).
// With Config.ThinFollowerTicks, followers pass on each raft tick with
// probability one half (see there).
func (n *Node) Tick(now int64) {
	n.now = now
	if !n.cfg.ThinFollowerTicks || n.role == raft.StateLeader || n.rng.Uint64()&1 == 0 {
		n.raw.Tick()
	}
	n.expire()
	n.proposeDue()
}

// AdvanceElection moves raft's election timer to two ticks short of its base
// timeout, as etcd does when a member starts: a cluster starting together
// elects its first leader two ticks to one election timeout after start,
// not one to two election timeouts. It decides nothing by itself. With
// PreVote a replica that campaigns early while a leader lives (a restart
// into a running cluster) is refused by peers that hear from it, and
// bumps no term. It neither moves the clock nor runs what a tick runs.
func (n *Node) AdvanceElection() {
	for range n.cfg.ElectionTicks - 2 {
		n.raw.Tick()
	}
}

// proposeDue proposes, on the leader, what the passing of time asks of the
// modules (lease expiries, ...). These commands carry no session: client 0.
func (n *Node) proposeDue() {
	if n.role != raft.StateLeader || n.removedSelf {
		return
	}
	l := module.Leader{Term: n.raw.BasicStatus().Term, NowNs: n.now, GraceNs: n.plantGrace(int64(n.cfg.ElectionTicks) * n.cfg.TickNs)}
	for _, p := range n.h.proposers {
		for _, c := range p.Due(l) {
			n.proposals = append(n.proposals, raftpb.Entry{Data: encodeCommand(c.Kind, 0, 0, c.Body)})
		}
	}
}

// Step hands the replica a message from a peer.
func (n *Node) Step(m raftpb.Message) error {
	if m.To != n.cfg.ID {
		return fmt.Errorf("node %d: message for node %d", n.cfg.ID, m.To)
	}
	if m.Type == raftpb.MsgProp && n.leads() {
		// Writes a follower forwards carry no stamp; the leader stamps them
		// as its own, so every applied write moves replicated time.
		n.stampEntries(m.Entries)
	}
	return n.raw.Step(m)
}

// ReportSnapshot tells raft whether a snapshot sent to peer arrived.
func (n *Node) ReportSnapshot(peer uint64, ok bool) {
	status := raft.SnapshotFinish
	if !ok {
		status = raft.SnapshotFailure
	}
	n.raw.ReportSnapshot(peer, status)
}

// ReportUnreachable tells raft that a message to peer could not be sent.
func (n *Node) ReportUnreachable(peer uint64) { n.raw.ReportUnreachable(peer) }

// HasReady reports whether Ready has work for the driver.
func (n *Node) HasReady() bool {
	return len(n.boot.Ops) > 0 || len(n.responses) > 0 || len(n.proposals) > 0 ||
		n.readsToIssue() || n.raw.HasReady()
}

// Ready gathers the next batch of intents. The driver must call Advance after
// carrying them out and before calling Ready again.
func (n *Node) Ready() Ready {
	assert.That(!n.haveRd, "Ready called twice without Advance")
	n.flushProposals()
	n.issueReads()
	// The Ready is built in place on the node: modules hold its address
	// (events, the batch in Env), which would move a local one to the heap
	// on every call.
	n.out = Ready{Batch: n.boot}
	out := &n.out
	n.boot = storage.Batch{}
	if n.raw.HasReady() {
		n.rd, n.haveRd = n.raw.Ready(), true
		n.handleRaftReady(&n.rd, out)
	}
	n.serveReads()
	n.maybeSnapshot(&out.Batch)
	n.trimLog(&out.Batch)
	out.Responses, n.responses = n.responses, nil
	n.plantSync(out, n.rd)
	rd := n.out
	n.out = Ready{}
	return rd
}

// Advance acknowledges that the last Ready was carried out.
func (n *Node) Advance() {
	if n.haveRd {
		n.raw.Advance(n.rd)
		n.rd, n.haveRd = raft.Ready{}, false
	}
}

// readyOpsPerApplied is how many batch ops handleRaftReady makes room for per
// applied entry: a write's record and its client's session.
const readyOpsPerApplied = 3

func (n *Node) handleRaftReady(rd *raft.Ready, out *Ready) {
	if rd.SoftState != nil {
		n.role, n.lead = rd.SoftState.RaftState, rd.SoftState.Lead
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		n.installSnapshot(rd.Snapshot, &out.Batch)
		out.Reset, out.MembersChanged = true, true
	}
	// Room for a typical batch at once, rather than growing it op by op: a
	// record per new entry, the hard state, and for the applied entries a
	// few records each (the module's, the session's) and the applied index.
	if ops := len(rd.Entries) + readyOpsPerApplied*len(rd.CommittedEntries); ops > 0 {
		out.Batch.Ops = slices.Grow(out.Batch.Ops, ops+2)
	}
	out.TailReplaced = n.appendEntries(rd.Entries, &out.Batch)
	if !raft.IsEmptyHardState(rd.HardState) {
		assert.That(n.log.SetHardState(rd.HardState) == nil, "set hard state")
		// Marshalled through the concrete type: through mustMarshal's
		// interface, the whole raft.Ready moved to the heap on every call.
		out.Batch.PutRecord(keyHardState, hardStateRecord(&rd.HardState))
	}
	n.applyEntries(rd.CommittedEntries, out)
	for _, rs := range rd.ReadStates {
		n.readIndexArrived(rs)
	}
	out.EarlyMessages, out.Messages = splitEarly(rd.Messages)
	if n.plantEarly(false) {
		out.EarlyMessages, out.Messages = rd.Messages, nil
	}
	// raft's MustSync covers entries and hard state only. An installed snapshot
	// must be durable too before the MsgAppResp acknowledging it leaves: the
	// leader counts this replica as holding everything up to the snapshot.
	out.Sync = rd.MustSync || !raft.IsEmptySnap(rd.Snapshot)
}

// splitEarly splits a Ready's messages into those that may leave before the
// sync and those that vouch for what it makes durable: acknowledgements of
// appends and votes (raft thesis 3.8). Everything else (appends, heartbeats,
// their responses, forwarded proposals and reads, vote requests) rests on no
// unsynced state here: raft counts a replica's own vote and its own log
// towards a result only at Advance, after the sync. raft queues exactly the
// acknowledgements after everything else (msgsAfterAppend), so the split is
// a prefix and a suffix of one slice. Sending only a leader's messages early
// held a follower's forwarded proposals behind its own fsync.
func splitEarly(msgs []raftpb.Message) (early, late []raftpb.Message) {
	i := 0
	for i < len(msgs) && !vouches(msgs[i].Type) {
		i++
	}
	for _, m := range msgs[i:] {
		if !vouches(m.Type) {
			return nil, msgs // not raft's order: hold them all, as is always safe
		}
	}
	return msgs[:i:i], msgs[i:]
}

// vouches reports whether a message of type t acknowledges state that must
// be durable first.
func vouches(t raftpb.MessageType) bool {
	return t == raftpb.MsgAppResp || t == raftpb.MsgVoteResp || t == raftpb.MsgPreVoteResp
}

// appendEntries persists new log entries, deleting any older tail they
// replace, and reports whether they replaced one. Raft hands out only entries
// past its last, unless they conflict with it; so entries that start at or
// below the last record replace a conflicting tail.
func (n *Node) appendEntries(ents []raftpb.Entry, b *storage.Batch) (replaced bool) {
	if len(ents) == 0 {
		return false
	}
	assert.That(n.log.Append(ents) == nil, "append entries at %d", ents[0].Index)
	for i := range ents {
		b.PutRecord(logKey(ents[i].Index), logRecord(&ents[i]))
	}
	first, last := ents[0].Index, ents[len(ents)-1].Index
	replaced = first <= n.logLast
	tail := len(b.Ops)
	for i := last + 1; i <= n.logLast; i++ {
		b.Delete(logKey(i))
	}
	n.plantKeepTail(b, tail)
	if n.logLast < n.logFirst || first < n.logFirst {
		n.logFirst = first
	}
	n.logLast = last
	return replaced
}

// Status reports the replica's view of the cluster.
func (n *Node) Status() Status {
	st := n.StatusWithoutProgress()
	st.Progress = n.Progress()
	return st
}

// StatusWithoutProgress is Status less the leader's view of each member's
// replication, which copies raft's progress map: a driver that refreshes
// its status after every round reads that less often (it was 6% of a
// leader's CPU under reads).
func (n *Node) StatusWithoutProgress() Status {
	bs := n.raw.BasicStatus()
	return Status{
		ID: n.cfg.ID, Term: bs.Term, Lead: bs.Lead, Role: bs.RaftState,
		Commit: bs.Commit, Applied: n.applied, Revision: n.h.kv.M.Revision(), TimeNs: n.timeNs,
		SnapshotIndex: n.snapIndex, Keys: n.h.kv.M.Len(), Sessions: n.h.sessions.Len(),
		PendingWrites: len(n.writes), PendingReads: len(n.reads),
		LogFirst: n.logFirst, LogLast: n.logLast,
		Removed: n.removedSelf, Voters: n.conf.Voters, Learners: n.conf.Learners,
	}
}

// Progress is the leader's view of each member's replication, in id order;
// nil on a replica that does not lead.
func (n *Node) Progress() []PeerProgress {
	if n.role != raft.StateLeader {
		return nil
	}
	st := n.raw.Status()
	out := make([]PeerProgress, 0, len(st.Progress))
	for _, id := range sortedIDs(st.Progress) {
		pr := st.Progress[id]
		lag := uint64(0)
		if st.Commit > pr.Match {
			lag = st.Commit - pr.Match
		}
		out = append(out, PeerProgress{ID: id, Match: pr.Match, Next: pr.Next, Lag: lag, State: pr.State.String(),
			RecentActive: pr.RecentActive, Learner: pr.IsLearner})
	}
	return out
}

// LeaderTerm reports the term this replica leads in right now, if it leads.
func (n *Node) LeaderTerm() (term uint64, ok bool) {
	bs := n.raw.BasicStatus()
	return bs.Term, bs.RaftState == raft.StateLeader
}

// HardState is raft's term, vote and commit index as they are now (what the
// next Ready persists, if it changed).
func (n *Node) HardState() raftpb.HardState { return n.raw.BasicStatus().HardState }

// Log reports raft's log as this replica holds it: the snapshot's index
// (first, whose term is known; entries follow it), the last index, and the
// term at any index in [first, last] (0 outside). Checkers compare it with
// the log of the same replica reloaded from its disk.
func (n *Node) Log() (first, last uint64, term func(index uint64) uint64) {
	fi, _ := n.log.FirstIndex()
	li, _ := n.log.LastIndex()
	return fi - 1, li, func(i uint64) uint64 {
		t, _ := n.log.Term(i)
		return t
	}
}

// StateHash digests the replicated state: every module's, and the time.
func (n *Node) StateHash() uint64 {
	return n.h.hash() ^ (uint64(n.timeNs) * 0x165667B19E3779F9)
}

// Bootstrapped reports whether New started a new cluster from an empty
// disk (not a restart, not a joiner): what a driver applies once at a
// cluster's birth, such as hooks from a config file, it applies then.
func (n *Node) Bootstrapped() bool { return n.bootstrapped }

// AppliedIndex returns the index of the last applied entry.
func (n *Node) AppliedIndex() uint64 { return n.applied }

// LastIndex returns the index of the last entry in this replica's log.
func (n *Node) LastIndex() uint64 { return n.logLast }

// Hosted returns the replicated state called name (a module's Name), or nil,
// for checkers and tools to inspect; they must not change it.
func (n *Node) Hosted(name string) module.State { return n.h.state(name) }

// Dump visits the replica's keys in order, for checkers and tools.
func (n *Node) Dump(fn func(key []byte, r kv.Record) bool) { n.h.kv.M.Ascend(fn) }

type marshaler interface{ Marshal() ([]byte, error) }

func mustMarshal(m marshaler) []byte {
	b, err := m.Marshal()
	assert.That(err == nil, "marshal %T: %v", m, err)
	return b
}

// entryHash is FNV-1a over the entry's type and data, xor its term. It is
// written out rather than through hash/fnv: the hash.Hash64 escaped to the
// heap on every applied entry.
func entryHash(e *raftpb.Entry) uint64 {
	const offset64, prime64 = 14695981039346656037, 1099511628211
	h := uint64(offset64)
	h = (h ^ uint64(byte(e.Type))) * prime64
	for _, c := range e.Data {
		h = (h ^ uint64(c)) * prime64
	}
	return h ^ e.Term
}
