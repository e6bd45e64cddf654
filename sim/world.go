// Package sim is the deterministic simulator: it drives Aspen replicas through a
// seeded virtual world (clock, network, disks, clients, faults) on one
// goroutine, checks what they do, and hashes every event so that a seed replays
// byte for byte.
package sim

import (
	crand "crypto/rand"
	"io"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/aspen-db/aspen/core/lease"
)

// Options are per-run settings that do not change what happens in the run.
type Options struct {
	Trace io.Writer // readable trace, one line per event, when non-nil
}

// Result is the outcome of one run.
type Result struct {
	Scenario          string   `json:"scenario"`
	Seed              uint64   `json:"seed"`
	Passed            bool     `json:"passed"`
	TraceHash         string   `json:"trace_hash"`
	VirtualSeconds    float64  `json:"virtual_seconds"`
	WallSeconds       float64  `json:"wall_seconds"`
	Events            int      `json:"events"`
	Ops               int      `json:"ops"`
	OpsUnknown        int      `json:"ops_unknown"`
	Messages          int      `json:"messages"`
	Crashes           int      `json:"crashes"`
	CrashPoints       int      `json:"crash_points"` // of the crashes, those at a crash point
	Reloads           int      `json:"reloads"`      // nodes the reload checker rebuilt from disk
	CorruptionsCaught int      `json:"corruptions_caught"`
	SnapshotInstalls  int      `json:"snapshot_installs"`
	Backups           int      `json:"backups"` // taken and restored by the simulated operator
	MembershipChanges int      `json:"membership_changes"`
	RefusalsChecked   int      `json:"refusals_checked,omitempty"` // forbidden admin requests refused, as they must be
	LeaderTransfers   int      `json:"leader_transfers,omitempty"`
	FinalVoters       []uint64 `json:"final_voters,omitempty"`
	Partitions        int      `json:"partitions"`
	LeasesGranted     int      `json:"leases_granted,omitempty"`     // grants acknowledged to holders
	LeasesExpired     int      `json:"leases_expired,omitempty"`     // as applied by the replicas
	LeasesRevoked     int      `json:"leases_revoked,omitempty"`     // likewise
	LeaseKeysDeleted  int      `json:"lease_keys_deleted,omitempty"` // keys their ends deleted
	JobLeases         int      `json:"job_leases,omitempty"`         // as applied by the replicas
	JobsEnded         [4]int   `json:"jobs_ended,omitzero"`          // succeeded, failed, dead, cancelled at the end
	ScheduleJobs      int      `json:"schedule_jobs,omitempty"`      // jobs schedules created, as applied
	ScheduleSkipped   int      `json:"schedule_skipped,omitempty"`   // ticks skipped or refused, at the end
	ScheduleMissed    int      `json:"schedule_missed,omitempty"`    // ticks missed, at the end
	HookDeliveries    int      `json:"hook_deliveries,omitempty"`    // deliveries handed to the job queue, as applied
	HookResyncs       int      `json:"hook_resyncs,omitempty"`       // resync deliveries made, at the end
	TopicMessages     int      `json:"topic_messages,omitempty"`     // messages placed, as applied
	TopicAcked        int      `json:"topic_acked,omitempty"`        // publishes acknowledged
	TopicFull         int      `json:"topic_full,omitempty"`         // publishes refused as the store was full
	TopicReads        int      `json:"topic_reads,omitempty"`        // reads answered
	TopicDropped      int      `json:"topic_dropped,omitempty"`      // messages retention dropped, at the end
	GroupProcessed    int      `json:"group_processed,omitempty"`    // messages group members processed (with repeats)
	GroupDead         int      `json:"group_dead,omitempty"`         // messages that went to a group's dead letters
	GroupCrashes      int      `json:"group_crashes,omitempty"`      // members that stopped without leaving
	GroupRefusedAcks  int      `json:"group_refused_acks,omitempty"` // acks refused as the lease had moved on
	GroupBatchItems   int      `json:"group_batch_items,omitempty"`  // settles answered in batch settles
	LockSessions      int      `json:"lock_sessions,omitempty"`      // sessions created, as applied
	LockInvalidations int      `json:"lock_invalidations,omitempty"` // sessions ended (expired or destroyed), as applied
	LockKeysReleased  int      `json:"lock_keys_released,omitempty"` // lock keys their invalidations released or deleted
	LockFencedWrites  int      `json:"lock_fenced_writes,omitempty"` // writes under a lock acknowledged
	LockStaleRefused  int      `json:"lock_stale_refused,omitempty"` // of the writes clients back from a stall sent, those refused
	LockOps           int      `json:"lock_ops,omitempty"`           // operations in the lock history
	LockHistory       string   `json:"lock_history,omitempty"`       // the lock history's porcupine verdict, like Linearizability
	Linearizability   string   `json:"linearizability"`
	Violations        []string `json:"violations"`

	history []porcupine.Operation
	linInfo porcupine.LinearizationInfo
}

// VisualizeHTML writes porcupine's view of the checked history (most useful
// when linearizability failed).
func (r *Result) VisualizeHTML(w io.Writer) error {
	return porcupine.Visualize(groupModel(), r.linInfo, w)
}

// World is one simulation. It is not safe for use by more than one goroutine,
// and needs none.
type World struct {
	sc   Scenario
	seed uint64
	rng  *rand.Rand
	// checkRng samples where checkers look. It is its own stream, so that
	// checking more or less never changes what happens in the run.
	checkRng    *rand.Rand
	now         int64
	q           queue
	nodes       []*simNode
	clients     []*simClient
	net         network
	admin       *admin
	holders     []*leaseHolder // lease holders (leases.go)
	lc          *leaseChecker  // nil without leases
	jobActors   []*jobActor    // job submitters, workers, operator (jobs.go)
	jc          *jobsChecker   // nil without jobs
	schc        *schedChecker  // nil without schedules
	hc          *hooksChecker  // nil without hooks
	topicActors []*topicActor  // topic operator, producers, readers (topics.go)
	tpc         *topicsChecker // nil without topics
	gpc         *groupsChecker // nil without group members
	lockClients []*lockClient  // lock clients (locks.go)
	lkc         *lockChecker   // nil without locks
	trace       tracer
	check       checker
	res         Result
	names       [][]string // key names by group and index
	bounds      [][]string // range ends by group (boundaries), built on first use
	mix         []int      // the workload's mix weights in mixKinds order (pickKind), built on first use

	faultsOn   bool
	clientsOn  bool
	faultEnd   int64
	end        int64
	history    []porcupine.Operation
	coldOps    []porcupine.Operation // cold-key writes (cold.go)
	coldNext   int                   // the next cold key to write
	readSeq    uint64
	partitions int // epoch of the current partition

	leaseIDsNamed lease.ID // lease ids holders named so far
}

// panicStackBytesMax bounds the stack kept from a panicking run: the top
// frames name the broken invariant, the rest is the simulator's own loop.
const panicStackBytesMax = 4096

var pinOnce sync.Once

// pinRaftRandomness makes raft's election jitter deterministic. Raft draws it
// from crypto/rand.Reader; a reader of zeros gives every replica the same base
// timeout, and the core's seeded tick thinning supplies the jitter instead.
// This is safe with simulations running in parallel, unlike a shared seeded
// stream, whose draws would interleave between goroutines.
func pinRaftRandomness() {
	pinOnce.Do(func() { crand.Reader = zeroReader{} })
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Run executes one seeded run of a scenario.
func Run(sc Scenario, seed uint64, opts Options) Result {
	pinRaftRandomness()
	start := time.Now()
	w := newWorld(sc, seed, opts)
	if w.loopRecovering() {
		w.finish()
	} else {
		w.finishAfterPanic()
	}
	w.res.WallSeconds = time.Since(start).Seconds()
	return w.res
}

func newWorld(sc Scenario, seed uint64, opts Options) *World {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed5eed5eed5eed))
	if sc.Swarm {
		sc = sc.swarm(rng)
	}
	w := &World{sc: sc, seed: seed, rng: rng, trace: newTracer(opts.Trace), check: newChecker()}
	w.checkRng = rand.New(rand.NewPCG(seed^0xc4ecc4ecc4ecc4ec, seed))
	w.res = Result{Scenario: sc.Name, Seed: seed}
	w.faultEnd = seconds(sc.Run.FaultSeconds)
	w.end = w.faultEnd + seconds(sc.Run.HealSeconds)
	w.faultsOn, w.clientsOn = w.faultEnd > 0, true
	w.net = newNetwork(sc.Cluster.Nodes+sc.Membership.AddsMax, sc.Network)
	w.names = keyNames(sc.Workload.Groups, sc.Workload.KeysPerGroup)
	for i := 0; i < sc.Cluster.Nodes; i++ {
		w.nodes = append(w.nodes, w.newSimNode(i))
	}
	for i := range w.nodes {
		// Nodes start from inside the loop, so a panic while starting is caught
		// like any other.
		w.schedule(event{at: 0, kind: evRestart, node: i})
	}
	for i := 0; i < sc.Workload.Clients; i++ {
		w.clients = append(w.clients, newSimClient(i))
		w.schedule(event{at: w.thinkTime(), kind: evClientNext, node: -1, client: i})
	}
	if sc.Membership.on() {
		w.admin = w.newAdmin()
		w.schedule(event{at: w.now + millis(sc.Membership.IntervalMs), kind: evAdmin, node: -1})
	}
	if w.faultsOn {
		w.schedule(event{at: w.nemesisGap(), kind: evNemesis, node: -1})
		w.schedule(event{at: w.faultEnd, kind: evHeal, node: -1})
	}
	if sc.Leases.on() || sc.Locks.on() {
		w.newLeaseChecker() // sessions with a TTL ride on leases
	}
	if sc.Leases.on() {
		w.newHolders()
	}
	if sc.Jobs.on() {
		w.newJobsChecker()
		if sc.Schedules.on() {
			w.newSchedChecker()
		}
		if sc.Hooks.on() {
			w.newHooksChecker()
		}
		w.newJobActors()
	}
	if sc.Topics.on() {
		w.newTopicsChecker()
		if sc.Topics.groupsOn() {
			w.newGroupsChecker()
		}
		w.newTopicActors()
	}
	if sc.Locks.on() {
		w.newLockChecker()
		w.newLockClients()
	}
	w.schedule(event{at: w.faultEnd + seconds(sc.Run.HealSeconds)/2, kind: evStopClients, node: -1})
	w.schedule(event{at: w.end, kind: evEnd, node: -1})
	return w
}

// The end waits, in steps, up to endDrainMaxNs for the live nodes to apply
// the same entries: nothing new starts after the clients stop, but the
// leader still proposes for itself (lease expiries), and an entry committed
// a moment before the end is no failure to converge.
const (
	endDrainStepNs = 10_000_000
	endDrainMaxNs  = 1_000_000_000
)

// converged reports whether every live node has applied the same entries.
func (w *World) converged() bool {
	var applied uint64
	first := true
	for _, sn := range w.nodes {
		if sn.gone || sn.n == nil || sn.paused {
			continue
		}
		if a := sn.n.AppliedIndex(); first {
			applied, first = a, false
		} else if a != applied {
			return false
		}
	}
	return true
}

func seconds(s float64) int64     { return int64(s * 1e9) }
func millis(ms float64) int64     { return int64(ms * 1e6) }
func micros(us float64) int64     { return int64(us * 1e3) }
func (w *World) schedule(e event) { w.q.push(e) }

// loop runs events in time order until the end event; time jumps straight to
// the next event, so idle time costs nothing.
func (w *World) loop() {
	for w.q.len() > 0 {
		e := w.q.pop()
		w.now = e.at
		w.res.Events++
		w.trace.event(e)
		if e.kind == evEnd {
			if w.converged() || w.now >= w.end+endDrainMaxNs {
				return
			}
			// An entry committed just before the end (a lease expiry the
			// leader proposed on its own) may not have reached every node
			// yet: let the cluster finish what is in flight first.
			w.schedule(event{at: w.now + endDrainStepNs, kind: evEnd, node: -1})
			continue
		}
		if e.kind.forNode() {
			w.nodeEvent(e) // most events: in place, not copied
			continue
		}
		w.dispatch(*e)
	}
}

func (w *World) dispatch(e event) {
	switch e.kind {
	case evTick, evDeliver, evReadyDone, evToNode, evRound:
		w.nodeEvent(&e)
	case evToClient:
		if c := w.lockClient(e.client); c != nil {
			w.lockResponse(c, e)
		} else if t := w.topicActor(e.client); t != nil {
			w.topicResponse(t, e)
		} else if a := w.jobActor(e.client); a != nil {
			w.jobResponse(a, e)
		} else if h := w.holder(e.client); h != nil {
			w.holderResponse(h, e)
		} else if w.isAdmin(e.client) {
			w.adminResponse(e)
		} else {
			w.clientResponse(e)
		}
	case evAttemptTimeout:
		if c := w.lockClient(e.client); c != nil {
			w.lockTimeout(c, e.n)
		} else if t := w.topicActor(e.client); t != nil {
			w.topicTimeout(t, e.n)
		} else if a := w.jobActor(e.client); a != nil {
			w.jobTimeout(a, e.n)
		} else if h := w.holder(e.client); h != nil {
			w.holderTimeout(h, e.n)
		} else if w.isAdmin(e.client) {
			w.adminTimeout(e.n)
		} else {
			w.attemptTimeout(e)
		}
	case evHolder:
		w.holderWake(e)
	case evJobs:
		w.jobActorWake(e)
	case evTopics:
		w.topicActorWake(e)
	case evLocks:
		w.lockClientWake(e)
	case evAdmin:
		w.adminTick()
	case evClientNext:
		w.clientNext(e.client)
	case evNemesis:
		w.nemesis()
	case evRestart:
		w.restart(w.nodes[e.node], e.inc)
	case evUnpause:
		w.unpause(w.nodes[e.node], e.inc)
	case evPartitionEnd:
		if e.n == w.partitions {
			w.net.heal()
			w.trace.note("partition %d healed", e.n)
		}
	case evHeal:
		w.heal()
	case evStopClients:
		w.clientsOn = false
		w.stopHolders()
		w.stopLockClients()
	}
}

// heal ends the fault phase: every node up, the network whole and reliable.
func (w *World) heal() {
	w.faultsOn = false
	w.net.heal()
	w.net.spec.DropProb, w.net.spec.DuplicateProb, w.net.spec.ReorderProb = 0, 0, 0
	for _, sn := range w.nodes {
		if sn.gone {
			continue
		}
		if sn.paused {
			w.unpause(sn, sn.inc)
		}
		if sn.n == nil {
			w.restart(sn, sn.inc)
		}
	}
	w.trace.note("heal: faults off")
}

// loopRecovering runs the loop, turning a panic inside a replica (an assert,
// or raft finding its log broken) into a violation: a broken invariant is a
// finding, not a crash of the harness.
func (w *World) loopRecovering() (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			stack := debug.Stack()
			w.check.fail("panic at %.6fs: %v", float64(w.now)/1e9, r)
			w.check.fail("panic stack:\n%s", stack[:min(len(stack), panicStackBytesMax)])
			w.trace.note("panic: %v", r)
			ok = false
		}
	}()
	w.loop()
	return true
}

// finishAfterPanic reports a run cut short; the world's state is not worth
// checking further.
func (w *World) finishAfterPanic() {
	w.res.VirtualSeconds = float64(w.now) / 1e9
	w.res.Ops = len(w.history)
	w.res.Linearizability = "not checked (run aborted)"
	w.res.Violations = w.check.violations
	w.res.TraceHash = w.trace.sum()
}

// finish runs the end-of-run checks and fills in the result.
func (w *World) finish() {
	w.res.VirtualSeconds = float64(w.now) / 1e9
	w.res.Ops = len(w.history)
	if on(w.sc.Checkers.Convergence) {
		w.checkConvergence()
		w.checkColdKeys()
		if w.lc != nil {
			w.checkLeasesAtEnd()
		}
		if w.jc != nil {
			w.checkJobsAtEnd()
		}
		if w.tpc != nil {
			w.checkTopicsEnd()
			if w.gpc != nil {
				w.checkGroupsEnd()
			}
		}
		if w.lkc != nil {
			w.checkLocksAtEnd()
		}
	}
	w.reloadAll()
	if on(w.sc.Checkers.Linearizability) {
		if w.lc != nil {
			w.checkLeaseReads()
		}
		w.checkLinearizability()
		if w.lkc != nil {
			w.checkLockHistory()
		}
		if final, ok := w.finalRevision(); ok && w.res.Linearizability == "ok" {
			w.checkRevisions(final)
		}
	}
	if w.admin != nil {
		w.res.MembershipChanges = w.admin.done
		w.res.FinalVoters = sortedKeys(w.admin.voters)
	}
	w.res.Violations = w.check.violations
	w.res.Passed = len(w.res.Violations) == 0
	w.res.TraceHash = w.trace.sum()
}

func (w *World) checkLinearizability() {
	budget := time.Duration(w.sc.Checkers.LinearizeBudgetS * float64(time.Second))
	result, info := porcupine.CheckOperationsVerbose(groupModel(), w.history, budget)
	w.res.history, w.res.linInfo = w.history, info
	switch result {
	case porcupine.Ok:
		w.res.Linearizability = "ok"
	case porcupine.Illegal:
		w.res.Linearizability = "illegal"
		w.check.fail("history of %d operations is not linearizable", len(w.history))
	default:
		// A search that runs out of budget proves nothing either way; say so
		// rather than pass or fail silently.
		w.res.Linearizability = "unknown (checker budget exhausted)"
	}
}

func (w *World) thinkTime() int64 {
	rate := w.sc.Workload.OpsPerSecond / float64(max(1, w.sc.Workload.Clients))
	if rate <= 0 {
		return math.MaxInt64 / 2
	}
	return w.now + int64(w.rng.ExpFloat64()/rate*1e9)
}

func (w *World) uniform(lo, hi float64) float64 { return lo + (hi-lo)*w.rng.Float64() }
