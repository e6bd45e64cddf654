package sim

import (
	"errors"
	"math/rand/v2"

	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/core/storage"
	"github.com/aspen-db/aspen/sim/disk"
	"go.etcd.io/raft/v3/raftpb"
)

// The simulated driver's own settings, each named with why.
const (
	// compactKeepDivisor: a fifth of the snapshot interval stays behind a
	// snapshot, so a follower briefly behind catches up from the log.
	compactKeepDivisor = 5
	// readRetryElections: a ReadIndex unanswered for this many (average,
	// thinned) election timeouts is re-issued: long enough for an election
	// to finish, short enough to retry within a client's attempt.
	readRetryElections = 5.0 / 2
	// repairDelayMs: how long the operator takes to restore a corrupt
	// sector from a mirror before the node starts again.
	repairDelayMs = 100
	// downFractionMin: a crash or pause lasts at least this share of
	// down_ms_max, so that "down" means missing some heartbeats.
	downFractionMin = 0.1
)

// simNode is a replica's place in the world: its disk outlives crashes, its
// node.Node does not.
type simNode struct {
	idx      int
	id       uint64
	n        *node.Node // nil while crashed
	disk     *disk.Disk
	inc      uint64 // bumped at every crash; events of older incarnations are void
	paused   bool
	deferred []event // inputs that arrived while paused
	busy     bool    // a Ready is being written
	roundDue bool    // a loop round is open: its end (evRound) will run the Ready
	rd       node.Ready
	reload   reloadDepth // picked by the reload checker: check it once it has no Ready left
	driftPPM float64
	skewNs   int64
	flipped  bool // the disk holds a bit flip not yet caught
	joining  bool // added by the admin: starts empty and waits for the leader
	gone     bool // removed by the admin and stopped for good
	shadow   *watchShadow

	ticks        int    // ticks of this incarnation
	advertised   bool   // its membership lists the addresses it advertised
	advertiseSeq uint64 // last sequence number of its advertisements
	timeNs       int64  // the replicated time it applied last, this incarnation
}

func (w *World) newSimNode(i int) *simNode {
	sn := &simNode{idx: i, id: uint64(i + 1), disk: disk.New()}
	sn.driftPPM = w.uniform(-w.sc.Clock.DriftPPMMax, w.sc.Clock.DriftPPMMax)
	sn.skewNs = millis(w.uniform(0, w.sc.Clock.SkewMsMax))
	return sn
}

func (w *World) nodeConfig(sn *simNode) node.Config {
	peers := make([]uint64, w.sc.Cluster.Nodes) // the initial members; later ones join
	for i := range peers {
		peers[i] = uint64(i + 1)
	}
	cfg := node.DefaultConfig(sn.id, peers)
	cfg.ThinFollowerTicks = true // raft's own jitter is pinned (pinRaftRandomness)
	cfg.Join = sn.joining
	for _, id := range peers {
		cfg.Members = append(cfg.Members, node.Member{ID: id, PeerAddr: peerAddr(id)})
	}
	cfg.TickNs = millis(float64(w.sc.Cluster.TickMs))
	cfg.ElectionTicks = w.sc.Cluster.ElectionTicks
	cfg.SnapshotEntries = uint64(w.sc.Cluster.SnapshotEntries)
	cfg.CompactKeepEntries = cfg.SnapshotEntries / compactKeepDivisor
	cfg.RequestTimeoutNs = millis(float64(w.sc.Workload.AttemptTimeoutMs))
	cfg.ReadRetryNs = int64(readRetryElections * float64(cfg.TickNs*int64(cfg.ElectionTicks)))
	if w.sc.Cluster.SessionsMax > 0 {
		cfg.SessionsMax = w.sc.Cluster.SessionsMax
	}
	if w.sc.Hooks.BacklogMax > 0 {
		cfg.Hooks.BacklogMax = w.sc.Hooks.BacklogMax
	}
	if w.sc.Locks.on() {
		cfg.Locks.TTLMinNs = lockTTLMinNs
	}
	if w.sc.Topics.StoreBytesMax > 0 {
		cfg.Topics.TotalBytesMax = w.sc.Topics.StoreBytesMax
	}
	cfg.AppliedRecordsEnabled = true
	cfg.EventsEnabled = true
	cfg.Bugs = w.sc.plantedBugs()
	return cfg
}

// startNode builds the replica from its disk. A disk whose checksums fail keeps
// the replica down: that is the right outcome, and the checker counts it.
func (w *World) startNode(sn *simNode) {
	if sn.gone {
		return
	}
	rng := rand.New(rand.NewPCG(w.rng.Uint64(), w.rng.Uint64()))
	n, err := node.New(w.nodeConfig(sn), rng, sn.disk)
	switch {
	case errors.Is(err, storage.ErrCorrupt) && !sn.flipped:
		// Only bit flips corrupt records; anything else the core wrote itself.
		w.check.fail("node %d refused to start on a disk no bit flip touched: %v", sn.id, err)
		return
	case errors.Is(err, storage.ErrCorrupt):
		w.res.CorruptionsCaught++
		w.trace.note("node %d refused to start: %v", sn.id, err)
		sn.flipped = false
		sn.disk.Repair() // stands in for an operator restoring the sector from a mirror
		w.schedule(event{at: w.now + millis(repairDelayMs), kind: evRestart, node: sn.idx, inc: sn.inc})
		return
	case err != nil:
		w.check.fail("node %d failed to start: %v", sn.id, err)
		return
	case sn.flipped:
		w.check.fail("node %d started on a disk with a flipped bit: corruption went undetected", sn.id)
		sn.flipped = false
	}
	sn.n, sn.ticks, sn.advertised, sn.timeNs = n, 0, false, n.TimeNs()
	w.resetShadow(sn)
	w.schedule(event{at: w.now + w.tickGap(sn), kind: evTick, node: sn.idx, inc: sn.inc})
	w.pump(sn)
}

// tickGap is how long the node's next tick takes in virtual time, given its drift.
func (w *World) tickGap(sn *simNode) int64 {
	return int64(float64(millis(float64(w.sc.Cluster.TickMs))) * 1e6 / (1e6 + sn.driftPPM))
}

// localNow is the node's own reading of the clock: skewed and drifting.
func (w *World) localNow(sn *simNode) int64 {
	return sn.skewNs + w.now + int64(float64(w.now)*sn.driftPPM/1e6)
}

func (w *World) nodeEvent(e *event) {
	sn := w.nodes[e.node]
	if e.inc != sn.inc || sn.n == nil || sn.gone {
		if e.kind == evDeliver && e.snap {
			w.reportSnapshot(e.from, sn.id, false)
		}
		return
	}
	if sn.paused {
		if e.kind != evTick { // a paused process misses its timers
			sn.deferred = append(sn.deferred, *e)
		}
		if e.kind == evTick {
			w.schedule(event{at: w.now + w.tickGap(sn), kind: evTick, node: sn.idx, inc: sn.inc})
		}
		return
	}
	switch e.kind {
	case evTick:
		sn.n.Tick(w.localNow(sn))
		w.maybeAdvertise(sn)
		w.schedule(event{at: w.now + w.tickGap(sn), kind: evTick, node: sn.idx, inc: sn.inc})
	case evDeliver:
		var m raftpb.Message
		if err := m.Unmarshal(e.msg); err != nil {
			w.check.fail("message to node %d does not decode: %v", sn.id, err)
			return
		}
		_ = sn.n.Step(m) // raft rejects stray messages itself; nothing to do
		if e.snap {
			w.reportSnapshot(e.from, sn.id, true)
		}
	case evToNode:
		sn.n.Submit(*e.req)
	case evReadyDone:
		w.finishReady(sn)
	case evRound:
		sn.roundDue = false
	}
	w.endInput(sn, e.kind)
}

// endInput runs the node's Ready after an input, or leaves it to the end of
// the loop round the input opened, when the scenario has rounds: the
// runtime's loop steps everything in its inbox before it asks for a Ready,
// so a vote that makes raft leader and a proposal right behind it meet in
// one round, before the Ready that tells the node its new role (how a
// proposal went into the log unstamped, found by tools/faultcheck). A
// finished sync ends a round: the loop goes on to the next at once.
func (w *World) endInput(sn *simNode, kind evKind) {
	if w.sc.Cluster.RoundUsMax <= 0 || kind == evRound || kind == evReadyDone {
		w.pump(sn)
		return
	}
	if !sn.roundDue && !sn.busy {
		sn.roundDue = true
		w.schedule(event{at: w.now + micros(w.uniform(0, float64(w.sc.Cluster.RoundUsMax))), kind: evRound, node: sn.idx, inc: sn.inc})
	}
}

func (w *World) reportSnapshot(from int, to uint64, ok bool) {
	if sender := w.nodes[from]; sender.n != nil && !sender.paused {
		sender.n.ReportSnapshot(to, ok)
		w.pump(sender)
	}
}

// pump carries out Ready after Ready: the batch goes to the disk at once with
// the leader's early messages and the answers, and its sync (if any)
// completes after the disk's latency; only then do the other messages leave,
// as the durability contract demands.
func (w *World) pump(sn *simNode) {
	for sn.n != nil && !sn.busy && !sn.paused && sn.n.HasReady() {
		rd := sn.n.Ready()
		if w.lc != nil {
			w.noteAppended(sn.n)
		}
		if err := sn.disk.Apply(rd.Batch); err != nil {
			w.check.fail("node %d disk apply: %v", sn.id, err)
		}
		sn.rd, sn.busy = rd, true
		for i := range rd.EarlyMessages {
			w.send(sn, &rd.EarlyMessages[i])
		}
		w.observeReady(sn)
		// Answers leave before the sync, as the runtime sends them: each
		// answers a committed entry, a read or a refusal. A crash before
		// the sync then tests that no answer rested on this batch.
		for _, resp := range rd.Responses {
			w.toClient(sn.idx, resp)
		}
		if w.crashPoint(sn, &rd, beforeSync) {
			return
		}
		if rd.Sync && w.sc.Disk.SyncMsMax > 0 {
			lat := millis(w.uniform(0, w.sc.Disk.SyncMsMax))
			w.schedule(event{at: w.now + lat, kind: evReadyDone, node: sn.idx, inc: sn.inc})
			return
		}
		w.finishReady(sn)
	}
}

// observeReady hands the checkers what the Ready applied, before any answer
// it carries reaches a client: a checker judges an answer by what replicas
// applied.
func (w *World) observeReady(sn *simNode) {
	rd := &sn.rd
	if rd.Reset {
		w.res.SnapshotInstalls++
		w.trace.note("node %d installed a snapshot", sn.id)
	}
	if on(w.sc.Checkers.Invariants) {
		w.shadowEvents(sn)
		w.maybeMark(sn)
		w.maybeBackup(sn)
		if w.lc != nil {
			w.leaseRecords(sn, rd.Applied)
		}
		if w.jc != nil {
			w.jobRecords(sn, rd.Applied, rd.Events)
		}
		if w.tpc != nil {
			w.topicRecords(sn, rd.Applied)
			if w.gpc != nil {
				w.groupRecords(sn, rd.Applied)
			}
		}
		if w.lkc != nil {
			w.lockRecords(sn, rd.Applied, rd.Events)
		}
		w.check.applied(sn.id, rd.Applied)
		w.checkTime(sn)
		if term, ok := sn.n.LeaderTerm(); ok {
			w.check.leader(sn.id, term)
		}
	}
}

func (w *World) finishReady(sn *simNode) {
	rd := sn.rd
	if rd.Sync {
		if err := sn.disk.Sync(); err != nil {
			w.check.fail("node %d disk sync: %v", sn.id, err)
		}
	}
	for i := range rd.Messages {
		w.send(sn, &rd.Messages[i])
	}
	sn.rd, sn.busy = node.Ready{}, false
	sn.n.Advance()
	w.sampleReload(sn, &rd)
	w.crashPoint(sn, &rd, afterReady)
	w.stopIfRemoved(sn)
}

// crash kills a node's process: whatever it had not synced may be lost. It
// may come in the middle of a Ready: the bumped incarnation voids the pending
// end of a slow sync, like every other event of the old process.
func (w *World) crash(sn *simNode) {
	sn.n, sn.busy, sn.roundDue, sn.rd, sn.paused, sn.deferred = nil, false, false, node.Ready{}, false, nil
	sn.reload = reloadNone
	sn.inc++
	rep := sn.disk.Crash(w.rng, disk.Faults{
		KeepUnsyncedProb: w.sc.Disk.KeepUnsyncedProb,
		TornProb:         w.sc.Disk.TornProb,
		BitFlipProb:      w.sc.Disk.BitFlipProb,
	})
	sn.flipped = sn.flipped || rep.FlippedKey != nil
	w.res.Crashes++
	w.trace.note("crash node %d: unsynced %d kept %d torn %v flipped %q", sn.id, rep.UnsyncedBatches, rep.KeptBatches, rep.Torn, rep.FlippedKey)
	w.schedule(event{at: w.now + w.downTime(), kind: evRestart, node: sn.idx, inc: sn.inc})
}

func (w *World) restart(sn *simNode, inc uint64) {
	if inc != sn.inc || sn.n != nil {
		return
	}
	w.trace.note("restart node %d", sn.id)
	w.startNode(sn)
}

func (w *World) pause(sn *simNode) {
	sn.paused = true
	w.trace.note("pause node %d", sn.id)
	w.schedule(event{at: w.now + w.downTime(), kind: evUnpause, node: sn.idx, inc: sn.inc})
}

func (w *World) unpause(sn *simNode, inc uint64) {
	if inc != sn.inc || !sn.paused {
		return
	}
	sn.paused = false
	w.trace.note("unpause node %d (%d deferred inputs)", sn.id, len(sn.deferred))
	for _, e := range sn.deferred {
		e.at = w.now
		w.schedule(e)
	}
	sn.deferred = nil
	w.pump(sn)
}

func (w *World) downTime() int64 {
	return millis(w.uniform(downFractionMin, 1) * w.sc.Faults.DownMsMax)
}
