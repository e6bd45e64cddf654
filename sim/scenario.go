package sim

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"

	"github.com/BurntSushi/toml"
	"github.com/aspen-db/aspen/core/bugs"
	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/lease"
	"github.com/aspen-db/aspen/core/topics"
)

// Scenario is the shape of a run, read from scenarios/*.toml. It never holds a
// seed: the harness supplies seeds. Keys carry their units.
type Scenario struct {
	Name        string `toml:"name"`
	Description string `toml:"description"`

	Cluster    ClusterSpec     `toml:"cluster"`
	Run        RunSpec         `toml:"run"`
	Workload   WorkloadSpec    `toml:"workload"`
	Network    NetworkSpec     `toml:"network"`
	Faults     FaultSpec       `toml:"faults"`
	Disk       DiskSpec        `toml:"disk"`
	Clock      ClockSpec       `toml:"clock"`
	Swarm      bool            `toml:"swarm"`
	Membership MembershipSpec  `toml:"membership"`
	Leases     LeaseSpec       `toml:"leases"`
	Jobs       JobSpec         `toml:"jobs"`
	Schedules  ScheduleSpec    `toml:"schedules"`
	Hooks      HookSpec        `toml:"hooks"`
	Topics     TopicSpec       `toml:"topics"`
	Locks      LockSpec        `toml:"locks"`
	Checkers   CheckerSpec     `toml:"checkers"`
	Bugs       map[string]bool `toml:"bugs"` // planted defects by name (core/bugs); aspenbugs builds only

	source []byte // the file as read, copied into artifacts
}

// ClusterSpec sizes the cluster.
type ClusterSpec struct {
	Nodes           int `toml:"nodes"`
	TickMs          int `toml:"tick_ms"`
	ElectionTicks   int `toml:"election_ticks"`
	SnapshotEntries int `toml:"snapshot_entries"`
	SessionsMax     int `toml:"sessions_max"` // client sessions a replica remembers (0: the node's default)
	// RoundUsMax, when set, makes a node take its inputs in rounds as the
	// runtime's loop does: an input reaching an idle node starts a round
	// that ends 0..RoundUsMax µs later, and every input up to then is
	// stepped before the round's one Ready. 0: a Ready after each input.
	RoundUsMax int `toml:"round_us_max"`
}

// RunSpec splits the run into a fault phase and a healed phase that must converge.
type RunSpec struct {
	FaultSeconds float64 `toml:"fault_seconds"`
	HealSeconds  float64 `toml:"heal_seconds"`
}

// WorkloadSpec describes the clients. Keys live in groups; every operation
// touches one group, so histories can be checked group by group.
type WorkloadSpec struct {
	Clients          int            `toml:"clients"`
	OpsPerSecond     float64        `toml:"ops_per_second"`
	Groups           int            `toml:"groups"`
	KeysPerGroup     int            `toml:"keys_per_group"`
	AttemptTimeoutMs int            `toml:"attempt_timeout_ms"`
	OpDeadlineMs     int            `toml:"op_deadline_ms"`
	ColdKeys         int            `toml:"cold_keys"` // keys written once, early, and checked at the end
	Mix              map[string]int `toml:"mix"`
}

// NetworkSpec sets message faults. Probabilities are per message.
type NetworkSpec struct {
	DelayMinMs     float64 `toml:"delay_min_ms"`
	DelayMaxMs     float64 `toml:"delay_max_ms"`
	DropProb       float64 `toml:"drop_prob"`
	DuplicateProb  float64 `toml:"duplicate_prob"`
	ReorderProb    float64 `toml:"reorder_prob"` // chance of an extra delay of up to reorder_delay_ms
	ReorderDelayMs float64 `toml:"reorder_delay_ms"`
}

// FaultSpec sets the nemesis: every interval_ms on average it picks one action,
// by weight, among those with a non-zero weight.
type FaultSpec struct {
	IntervalMs      float64 `toml:"interval_ms"`
	Partition       float64 `toml:"partition"`
	OneWayPartition float64 `toml:"one_way_partition"`
	Crash           float64 `toml:"crash"`
	Pause           float64 `toml:"pause"`
	Heal            float64 `toml:"heal"`
	DownMsMax       float64 `toml:"down_ms_max"`    // longest a crashed or paused node stays down
	CrashesMax      int     `toml:"crashes_max"`    // nodes down at once (keep a quorum to make progress)
	StrandClients   bool    `toml:"strand_clients"` // partitions also put each client on one side

	// Crash points: the chance that a node crashes at the worst moment of
	// carrying out a Ready of the kind named, moments the nemesis, acting at
	// random times, almost never hits. Fault phase only, within crashes_max.
	CrashAfterVoteProb         float64 `toml:"crash_after_vote_prob"`          // just after granting a (pre-)vote
	CrashAfterTailReplaceProb  float64 `toml:"crash_after_tail_replace_prob"`  // just after replacing a conflicting log tail
	CrashInSnapshotInstallProb float64 `toml:"crash_in_snapshot_install_prob"` // with an installed snapshot written, not synced
	CrashAfterMembershipProb   float64 `toml:"crash_after_membership_prob"`    // just after a membership change took effect
	CrashBeforeSyncProb        float64 `toml:"crash_before_sync_prob"`         // any Ready written, not yet synced
}

// crashPointsOn says whether any crash point is set.
func (f *FaultSpec) crashPointsOn() bool {
	return f.CrashAfterVoteProb+f.CrashAfterTailReplaceProb+f.CrashInSnapshotInstallProb+
		f.CrashAfterMembershipProb+f.CrashBeforeSyncProb > 0
}

// MembershipSpec sets the simulated operator: every interval_ms on average
// it queues one change by weight, and executes queued changes one at a time.
type MembershipSpec struct {
	IntervalMs float64 `toml:"interval_ms"`
	AddLearner float64 `toml:"add_learner"`
	Promote    float64 `toml:"promote"`
	Remove     float64 `toml:"remove"`
	Replace    float64 `toml:"replace"`     // add a learner, promote it, remove a voter
	AddVoter   float64 `toml:"add_voter"`   // add a new node straight as a voter
	Refused    float64 `toml:"refused"`     // a change or leader transfer the cluster must refuse
	Transfer   float64 `toml:"transfer"`    // the leader hands over to another voter
	ReplaceAll bool    `toml:"replace_all"` // replacements take the original nodes in order
	VotersMin  int     `toml:"voters_min"`  // removals never go below this many voters
	AddsMax    int     `toml:"adds_max"`    // nodes added over the whole run
}

func (m MembershipSpec) on() bool {
	return m.AddLearner+m.Promote+m.Remove+m.Replace+m.AddVoter+m.Refused+m.Transfer > 0
}

// LeaseSpec sets the lease workload (leases.go): holders each hold one lease
// at a time, granted with a TTL drawn from [ttl_ms_min, ttl_ms_max]; a kept
// lease is renewed every TTL/3 of the holder's time for up to hold_ttls_max
// TTLs, then revoked or left to lapse; the rest lapse at once. Clients attach
// keys to held leases with the lease_put mix weight. Off while holders = 0,
// and then the run draws exactly as it would without the table.
type LeaseSpec struct {
	Holders      int     `toml:"holders"`
	TTLMsMin     float64 `toml:"ttl_ms_min"`
	TTLMsMax     float64 `toml:"ttl_ms_max"`
	KeepProb     float64 `toml:"keep_prob"`      // a lease is kept alive (else left to lapse from the start)
	HoldTTLsMax  float64 `toml:"hold_ttls_max"`  // a kept lease is kept for up to this many TTLs
	RevokeProb   float64 `toml:"revoke_prob"`    // a kept lease is revoked at the end of its hold (else it lapses)
	ChosenIDProb float64 `toml:"chosen_id_prob"` // the holder names the id (else the table picks one)
	QueryProb    float64 `toml:"query_prob"`     // a holder's step is a time-to-live or list query
	InvalidProb  float64 `toml:"invalid_prob"`   // a holder's step is a lease request the store must refuse
}

func (l LeaseSpec) on() bool { return l.Holders > 0 }

// JobSpec sets the job workload (jobs.go): submitters submit jobs of types
// t0.. at submits_per_second in all, workers lease and run them, and an
// operator retries or drops a dead letter every dead_ops_ms. Off while
// submitters = 0, and then the run draws exactly as it would without it.
type JobSpec struct {
	Submitters       int     `toml:"submitters"`
	Workers          int     `toml:"workers"`
	Types            int     `toml:"types"`
	SubmitsPerSecond float64 `toml:"submits_per_second"`
	AttemptsMax      int64   `toml:"attempts_max"` // each job asks for 1..this many
	TimeoutMsMin     float64 `toml:"timeout_ms_min"`
	TimeoutMsMax     float64 `toml:"timeout_ms_max"`
	RunMsMin         float64 `toml:"run_ms_min"`
	RunMsMax         float64 `toml:"run_ms_max"`
	FailProb         float64 `toml:"fail_prob"`         // a run fails, retryable
	FatalProb        float64 `toml:"fatal_prob"`        // a run fails, not retryable
	HangProb         float64 `toml:"hang_prob"`         // a run hangs (fault phase)
	CrashProb        float64 `toml:"crash_prob"`        // a worker's step is a crash (fault phase)
	LoseContactProb  float64 `toml:"lose_contact_prob"` // a worker loses contact as it finishes a run (fault phase)
	ReuseKeyProb     float64 `toml:"reuse_key_prob"`    // a submit reuses an idempotency key
	CancelProb       float64 `toml:"cancel_prob"`       // a submitter's step is a cancel
	InvalidProb      float64 `toml:"invalid_prob"`      // a submitter's step is a request the store must refuse
	DeadOpsMs        float64 `toml:"dead_ops_ms"`       // the operator's interval; 0: no operator
	// BatchCompleteProb: a run's complete goes as a one-item batch complete
	// (jobs.CompleteBatch); 0 draws nothing, so older scenarios run as before.
	BatchCompleteProb float64 `toml:"batch_complete_prob"`
}

func (j JobSpec) on() bool { return j.Submitters > 0 }

func (sc *Scenario) validateJobs() error {
	j, l := sc.Jobs, jobs.DefaultLimits()
	if !j.on() {
		return nil
	}
	for _, p := range []float64{j.FailProb, j.FatalProb, j.HangProb, j.CrashProb, j.LoseContactProb, j.ReuseKeyProb, j.CancelProb, j.InvalidProb, j.BatchCompleteProb} {
		if p < 0 || p > 1 {
			return fmt.Errorf("jobs: probability %v outside [0, 1]", p)
		}
	}
	switch {
	case j.Submitters+j.Workers+1 > jobActorsMax || j.Workers < 0:
		return fmt.Errorf("jobs: at most %d submitters, workers and operator", jobActorsMax)
	case j.Types < 1 || j.Workers > 0 && j.Workers < j.Types:
		return fmt.Errorf("jobs.types = %d, want 1 to workers (each type served)", j.Types)
	case j.SubmitsPerSecond <= 0 || j.AttemptsMax < 1 || j.AttemptsMax > l.AttemptsMax:
		return fmt.Errorf("jobs: want submits_per_second > 0 and attempts_max in 1..%d", l.AttemptsMax)
	case millis(j.TimeoutMsMin) < l.TimeoutMinNs || j.TimeoutMsMax < j.TimeoutMsMin || j.RunMsMin < 0 || j.RunMsMax < j.RunMsMin:
		return fmt.Errorf("jobs: want %d <= timeout_ms_min <= timeout_ms_max, 0 <= run_ms_min <= run_ms_max", l.TimeoutMinNs/1e6)
	case !on(sc.Checkers.Invariants):
		return fmt.Errorf("jobs need checkers.invariants (job changes are read from the applied records)")
	}
	return nil
}

// ScheduleSpec sets the schedules workload (schedules.go): one operator
// adds schedules whose jobs the [jobs] workers run, up to `schedules` at
// once, and every ops_ms or so pauses, resumes or removes one. Off while
// schedules = 0, and then the run draws exactly as it would without it.
type ScheduleSpec struct {
	Schedules  int     `toml:"schedules"`   // live at once
	OpsMs      float64 `toml:"ops_ms"`      // the operator's interval, drawn in [0.5, 1.5] times this
	PauseProb  float64 `toml:"pause_prob"`  // a step pauses an unpaused schedule (a paused one is resumed)
	RemoveProb float64 `toml:"remove_prob"` // a step removes one
}

func (s ScheduleSpec) on() bool { return s.Schedules > 0 }

func (sc *Scenario) validateSchedules() error {
	s := sc.Schedules
	switch {
	case !s.on():
		return nil
	case s.PauseProb < 0 || s.RemoveProb < 0 || s.PauseProb+s.RemoveProb > 1:
		return fmt.Errorf("schedules: want pause_prob, remove_prob >= 0 with a sum at most 1")
	case s.OpsMs <= 0:
		return fmt.Errorf("schedules.ops_ms = %v, want > 0", s.OpsMs)
	case !sc.Jobs.on() || sc.Jobs.Workers < 1:
		return fmt.Errorf("schedules need [jobs] with workers (their jobs are run by them)")
	case s.Schedules > schedulesMax || sc.Jobs.Submitters+sc.Jobs.Workers+2 > jobActorsMax:
		return fmt.Errorf("schedules: at most %d schedules, and %d jobs clients with the operator", schedulesMax, jobActorsMax)
	}
	return nil
}

// HookSpec sets the hooks workload (hooks.go): one hook operator, a jobs
// client after the others, creates `hooks` job hooks at the start on
// patterns over the workload's keys, whose deliveries the [jobs] workers
// run, and every ops_ms or so disables one for a step or triggers one.
// backlog_max bounds every hook's backlog (hooks.Limits.BacklogMax), small
// so that hooks lag. Off while hooks = 0, and then the run draws exactly as
// it would without it.
type HookSpec struct {
	Hooks       int     `toml:"hooks"`        // created at the start, shapes from hookShapes in turn
	BacklogMax  int     `toml:"backlog_max"`  // each hook's backlog bound; 0: the node's default
	OpsMs       float64 `toml:"ops_ms"`       // the operator's interval, drawn in [0.5, 1.5] times this
	DisableProb float64 `toml:"disable_prob"` // a step disables an enabled hook (the next step enables it again)
	TriggerProb float64 `toml:"trigger_prob"` // a step triggers a hook with a synthetic event
	SlowProb    float64 `toml:"slow_prob"`    // a hook delivery's run is slow: most of its timeout, heartbeating
}

func (h HookSpec) on() bool { return h.Hooks > 0 }

func (sc *Scenario) validateHooks() error {
	h := sc.Hooks
	switch {
	case !h.on():
		return nil
	case h.Hooks > len(hookShapes):
		return fmt.Errorf("hooks.hooks = %d, want at most %d", h.Hooks, len(hookShapes))
	case h.BacklogMax < 0 || h.OpsMs <= 0:
		return fmt.Errorf("hooks: want backlog_max >= 0 and ops_ms > 0")
	case h.DisableProb < 0 || h.TriggerProb < 0 || h.DisableProb+h.TriggerProb > 1 || h.SlowProb < 0 || h.SlowProb > 1:
		return fmt.Errorf("hooks: want disable_prob, trigger_prob >= 0 with a sum at most 1, slow_prob in [0, 1]")
	case !sc.Jobs.on() || sc.Jobs.Workers < 1:
		return fmt.Errorf("hooks need [jobs] with workers (their deliveries are run by them)")
	case sc.Jobs.Submitters+sc.Jobs.Workers+3 > jobActorsMax:
		return fmt.Errorf("hooks: at most %d jobs clients with the operators", jobActorsMax)
	}
	return nil
}

// TopicSpec sets the topics workload (topics.go): an operator creates
// `topics` topics at the start (shapes from topicShapes: 1 to 8 partitions,
// some with small retention by count, some by age) and then describes one
// now and then; producers publish single messages and batches at
// publishes_per_second in all; readers read partitions from offsets at
// reads_per_second in all. store_bytes_max bounds the whole topic store
// (topics.Limits.TotalBytesMax), so that publishes are refused as full. Off
// while topics = 0, and then the run draws exactly as it would without it.
type TopicSpec struct {
	Topics             int     `toml:"topics"`
	Producers          int     `toml:"producers"`
	Readers            int     `toml:"readers"`
	PublishesPerSecond float64 `toml:"publishes_per_second"` // in all
	ReadsPerSecond     float64 `toml:"reads_per_second"`     // in all
	BatchMax           int     `toml:"batch_max"`            // a batch carries 2..batch_max messages
	BatchProb          float64 `toml:"batch_prob"`           // a publish is a batch (else one message)
	KeylessProb        float64 `toml:"keyless_prob"`         // a message has no key (round-robin)
	NamedPartitionProb float64 `toml:"named_partition_prob"` // a message names its partition
	InvalidProb        float64 `toml:"invalid_prob"`         // a publish the store must refuse (unknown topic, bad partition)
	DescribeMs         float64 `toml:"describe_ms"`          // the operator describes a topic about this often; 0: never
	StoreBytesMax      int64   `toml:"store_bytes_max"`      // the store's byte bound; 0: the node's default

	// Consumer groups (groups.go): with members > 0 the operator also
	// creates a partitioned group on topic0 and a competing one on topic2,
	// each with this many members.
	Members         int     `toml:"members"`           // members of each group; 0: no groups
	SessionMs       float64 `toml:"session_ms"`        // the partitioned group's session timeout
	AckWaitMs       float64 `toml:"ack_wait_ms"`       // the competing group's ack wait
	DeliveriesMax   int     `toml:"deliveries_max"`    // competing: deliveries before a dead letter
	MemberCrashProb float64 `toml:"member_crash_prob"` // per member step while faults run: stop without leaving
	MemberLeaveProb float64 `toml:"member_leave_prob"` // per step: leave, come back later
	MemberStallProb float64 `toml:"member_stall_prob"` // per step: stall past the session or ack wait, then go on
	NakProb         float64 `toml:"nak_prob"`          // competing: a delivery is nakked, not processed
	SettleBatchProb float64 `toml:"settle_batch_prob"` // competing: a member holding several settles them in one batch
	FetchCheckProb  float64 `toml:"fetch_check_prob"`  // competing: after an empty fetch, ask whether one would lease anything before fetching again
}

func (t TopicSpec) groupsOn() bool { return t.on() && t.Members > 0 }

func (t TopicSpec) on() bool { return t.Topics > 0 }

func (sc *Scenario) validateTopics() error {
	t := sc.Topics
	switch {
	case !t.on():
		return nil
	case t.Topics > len(topicShapes):
		return fmt.Errorf("topics.topics = %d, want at most %d", t.Topics, len(topicShapes))
	case t.Producers < 1 || t.Readers < 0 || t.Producers+t.Readers+1 > topicActorsMax:
		return fmt.Errorf("topics: want producers >= 1, readers >= 0, and at most %d with the operator", topicActorsMax)
	case t.PublishesPerSecond <= 0 || t.Readers > 0 && t.ReadsPerSecond <= 0:
		return fmt.Errorf("topics: want publishes_per_second > 0 and, with readers, reads_per_second > 0")
	case t.BatchMax < 1 || t.BatchMax > topics.DefaultLimits().BatchMax:
		return fmt.Errorf("topics.batch_max = %d, want 1..%d", t.BatchMax, topics.DefaultLimits().BatchMax)
	case t.DescribeMs < 0 || t.StoreBytesMax < 0:
		return fmt.Errorf("topics: describe_ms and store_bytes_max must not be negative")
	case !on(sc.Checkers.Invariants):
		return fmt.Errorf("topics need checkers.invariants (placements are read from the applied records)")
	case t.Members < 0 || t.Members > groupMembersMax || t.Members > 0 && t.Topics < 3:
		return fmt.Errorf("topics.members = %d, want 0..%d (and with members, topics >= 3)", t.Members, groupMembersMax)
	case t.Members > 0 && (t.SessionMs < 1000 || t.AckWaitMs < 1000 || t.DeliveriesMax < 1):
		return fmt.Errorf("topics: with members, want session_ms and ack_wait_ms >= 1000 and deliveries_max >= 1")
	case t.Producers+t.Readers+1+2*t.Members > topicActorsMax:
		return fmt.Errorf("topics: at most %d clients with the operator and the members", topicActorsMax)
	}
	for _, p := range []float64{t.BatchProb, t.KeylessProb, t.NamedPartitionProb, t.InvalidProb, t.MemberCrashProb, t.MemberLeaveProb, t.MemberStallProb, t.NakProb, t.SettleBatchProb, t.FetchCheckProb} {
		if p < 0 || p > 1 {
			return fmt.Errorf("topics: probability %v outside [0, 1]", p)
		}
	}
	return nil
}

// DiskSpec sets what a crash does to unsynced writes and how slow syncs are.
type DiskSpec struct {
	KeepUnsyncedProb float64 `toml:"keep_unsynced_prob"`
	TornProb         float64 `toml:"torn_prob"`
	BitFlipProb      float64 `toml:"bit_flip_prob"`
	SyncMsMax        float64 `toml:"sync_ms_max"`
}

// ClockSpec sets per-node clock drift (rate error) and skew (offset).
type ClockSpec struct {
	DriftPPMMax float64 `toml:"drift_ppm_max"`
	SkewMsMax   float64 `toml:"skew_ms_max"`
}

// CheckerSpec switches checkers; all default on.
type CheckerSpec struct {
	Linearizability  *bool   `toml:"linearizability"`
	Invariants       *bool   `toml:"invariants"`
	Convergence      *bool   `toml:"convergence"`
	LinearizeBudgetS float64 `toml:"linearize_budget_seconds"`
	// ReloadProb is the chance, after each Ready a node finishes, that the
	// checker rebuilds the node from its disk and compares; every node up is
	// also reloaded at the end of the run. 0 switches the reload checker off.
	ReloadProb float64 `toml:"reload_prob"`
}

// plantedBugs returns the defects the scenario plants. Names were checked by
// validate.
func (sc Scenario) plantedBugs() bugs.Set {
	var set bugs.Set
	for _, name := range slices.Sorted(maps.Keys(sc.Bugs)) {
		if b, err := bugs.Parse(name); err == nil && sc.Bugs[name] {
			set |= bugs.Of(b)
		}
	}
	return set
}

// PlantBug returns a copy of the scenario with one more planted defect. The
// source kept for artifacts says so too, so that a replay plants it again.
func (sc Scenario) PlantBug(b bugs.Bug) Scenario {
	out := sc
	out.Bugs = maps.Clone(sc.Bugs)
	if out.Bugs == nil {
		out.Bugs = map[string]bool{}
	}
	out.Bugs[b.String()] = true
	line := b.String() + " = true\n"
	if i := bytes.Index(sc.source, []byte("\n[bugs]\n")); i >= 0 {
		at := i + len("\n[bugs]\n")
		out.source = slices.Concat(sc.source[:at], []byte(line), sc.source[at:])
	} else {
		out.source = slices.Concat(sc.source, []byte("\n[bugs]\n"+line))
	}
	return out
}

// mixKinds is every operation a workload can weigh, in a fixed order.
var mixKinds = []string{"get", "put", "delete", "cas", "txn", "scan", "delete_prefix", "range", "delete_range", "invalid", "stale_get", "lease_put"}

// LoadScenario reads and validates a scenario file.
func LoadScenario(path string) (Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Scenario{}, fmt.Errorf("read scenario: %w", err)
	}
	return ParseScenario(data, path)
}

// ParseScenario decodes scenario TOML; unknown keys are errors, not silence.
func ParseScenario(data []byte, name string) (Scenario, error) {
	sc := defaultScenario()
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&sc)
	if err != nil {
		return Scenario{}, fmt.Errorf("scenario %s: %w", name, err)
	}
	if undec := md.Undecoded(); len(undec) > 0 {
		return Scenario{}, fmt.Errorf("scenario %s: unknown key %q", name, undec[0].String())
	}
	sc.source = append([]byte(nil), data...)
	if err := sc.validate(); err != nil {
		return Scenario{}, fmt.Errorf("scenario %s: %w", name, err)
	}
	return sc, nil
}

// Source returns the scenario file as it was read.
func (sc Scenario) Source() []byte { return sc.source }

func defaultScenario() Scenario {
	return Scenario{
		Cluster: ClusterSpec{Nodes: 3, TickMs: 10, ElectionTicks: 10, SnapshotEntries: 500},
		Run:     RunSpec{FaultSeconds: 20, HealSeconds: 10},
		Workload: WorkloadSpec{
			Clients: 8, OpsPerSecond: 200, Groups: 3, KeysPerGroup: 4,
			AttemptTimeoutMs: 500, OpDeadlineMs: 3000,
			Mix: map[string]int{"get": 30, "put": 25, "delete": 5, "cas": 15, "txn": 10, "scan": 10, "delete_prefix": 5, "range": 10, "delete_range": 3, "invalid": 2, "stale_get": 3},
		},
		Network:  NetworkSpec{DelayMinMs: 0.5, DelayMaxMs: 2},
		Faults:   FaultSpec{IntervalMs: 1000, DownMsMax: 3000, CrashesMax: 1},
		Checkers: CheckerSpec{LinearizeBudgetS: 20, ReloadProb: 0.0005},
		Leases: LeaseSpec{TTLMsMin: 2000, TTLMsMax: 6000, KeepProb: 0.6, HoldTTLsMax: 4, RevokeProb: 0.3,
			ChosenIDProb: 0.2, QueryProb: 0.15, InvalidProb: 0.05},
		Jobs: JobSpec{Types: 3, SubmitsPerSecond: 10, AttemptsMax: 3, TimeoutMsMin: 1000, TimeoutMsMax: 2500,
			RunMsMin: 50, RunMsMax: 800, FailProb: 0.2, FatalProb: 0.05, HangProb: 0.05, CrashProb: 0.01,
			LoseContactProb: 0.05, ReuseKeyProb: 0.1, CancelProb: 0.05, InvalidProb: 0.05, DeadOpsMs: 1500},
		Topics: TopicSpec{PublishesPerSecond: 20, ReadsPerSecond: 20, BatchMax: 5, BatchProb: 0.4, KeylessProb: 0.2,
			NamedPartitionProb: 0.1, InvalidProb: 0.03, DescribeMs: 1000, SessionMs: 2000, AckWaitMs: 1000, DeliveriesMax: 3},
	}
}

func (sc *Scenario) validate() error {
	switch {
	case sc.Cluster.Nodes < 1 || sc.Cluster.Nodes > 9:
		return fmt.Errorf("cluster.nodes = %d, want 1..9", sc.Cluster.Nodes)
	case sc.Cluster.SessionsMax < 0:
		return fmt.Errorf("cluster.sessions_max must not be negative")
	case sc.Cluster.TickMs < 1 || sc.Cluster.ElectionTicks < 3:
		return fmt.Errorf("cluster.tick_ms must be >= 1 and election_ticks >= 3")
	case sc.Cluster.RoundUsMax < 0 || sc.Cluster.RoundUsMax > 1000*sc.Cluster.TickMs:
		return fmt.Errorf("cluster.round_us_max = %d, want 0..one tick (%d µs)", sc.Cluster.RoundUsMax, 1000*sc.Cluster.TickMs)
	case sc.Run.FaultSeconds < 0 || sc.Run.HealSeconds < 1:
		return fmt.Errorf("run.heal_seconds must be >= 1 and fault_seconds >= 0")
	case sc.Workload.Groups < 1 || sc.Workload.KeysPerGroup < 1 || sc.Workload.KeysPerGroup > modelKeysMax:
		return fmt.Errorf("workload needs groups >= 1 and keys_per_group in 1..%d", modelKeysMax)
	case sc.Workload.ColdKeys < 0 || sc.Workload.ColdKeys > coldKeysMax:
		return fmt.Errorf("workload.cold_keys = %d, want 0..%d", sc.Workload.ColdKeys, coldKeysMax)
	case sc.Workload.Clients < 0 || sc.Workload.OpsPerSecond < 0:
		return fmt.Errorf("workload.clients and ops_per_second must not be negative")
	case sc.Workload.AttemptTimeoutMs < 1 || sc.Workload.OpDeadlineMs < sc.Workload.AttemptTimeoutMs:
		return fmt.Errorf("workload.op_deadline_ms must be >= attempt_timeout_ms >= 1")
	case sc.Network.DelayMaxMs < sc.Network.DelayMinMs || sc.Network.DelayMinMs < 0:
		return fmt.Errorf("network delays must satisfy 0 <= delay_min_ms <= delay_max_ms")
	case sc.Faults.CrashesMax < 0:
		return fmt.Errorf("faults.crashes_max must not be negative")
	case sc.Membership.on() && (sc.Membership.IntervalMs <= 0 || sc.Membership.VotersMin < 1 || sc.Membership.AddsMax < 0):
		return fmt.Errorf("membership needs interval_ms > 0, voters_min >= 1, adds_max >= 0")
	case sc.Cluster.Nodes+sc.Membership.AddsMax > 32:
		return fmt.Errorf("cluster.nodes + membership.adds_max = %d, want at most 32", sc.Cluster.Nodes+sc.Membership.AddsMax)
	}
	for _, p := range []float64{sc.Network.DropProb, sc.Network.DuplicateProb, sc.Network.ReorderProb,
		sc.Disk.KeepUnsyncedProb, sc.Disk.TornProb, sc.Disk.BitFlipProb,
		sc.Faults.CrashAfterVoteProb, sc.Faults.CrashAfterTailReplaceProb, sc.Faults.CrashInSnapshotInstallProb,
		sc.Faults.CrashAfterMembershipProb, sc.Faults.CrashBeforeSyncProb, sc.Checkers.ReloadProb,
		sc.Leases.KeepProb, sc.Leases.RevokeProb, sc.Leases.ChosenIDProb, sc.Leases.QueryProb, sc.Leases.InvalidProb} {
		if p < 0 || p > 1 {
			return fmt.Errorf("probability %v outside [0, 1]", p)
		}
	}
	if err := sc.validateBugs(); err != nil {
		return err
	}
	if err := sc.validateLeases(); err != nil {
		return err
	}
	if err := sc.validateJobs(); err != nil {
		return err
	}
	if err := sc.validateSchedules(); err != nil {
		return err
	}
	if err := sc.validateHooks(); err != nil {
		return err
	}
	if err := sc.validateTopics(); err != nil {
		return err
	}
	if err := sc.validateLocks(); err != nil {
		return err
	}
	total := 0
	for k, w := range sc.Workload.Mix {
		if !slices.Contains(mixKinds, k) {
			return fmt.Errorf("workload.mix: unknown operation %q (want one of %v)", k, mixKinds)
		}
		if w < 0 {
			return fmt.Errorf("workload.mix.%s is negative", k)
		}
		total += w
	}
	if total == 0 && sc.Workload.Clients > 0 {
		return fmt.Errorf("workload.mix weighs nothing")
	}
	return nil
}

// validateLeases keeps the lease workload inside what the node grants: TTLs
// within its limits, and above an election timeout (a new leader's grace).
func (sc *Scenario) validateLeases() error {
	l, limits := sc.Leases, lease.DefaultLimits()
	electionMs := float64(sc.Cluster.TickMs * sc.Cluster.ElectionTicks)
	switch {
	case l.Holders < 0 || l.Holders > leaseHoldersMax:
		return fmt.Errorf("leases.holders = %d, want 0..%d", l.Holders, leaseHoldersMax)
	case sc.Workload.Mix["lease_put"] > 0 && !l.on():
		return fmt.Errorf("workload.mix.lease_put needs leases.holders > 0")
	case !l.on():
		return nil
	case millis(l.TTLMsMin) < limits.TTLMinNs || l.TTLMsMax < l.TTLMsMin || millis(l.TTLMsMax) > limits.TTLMaxNs:
		return fmt.Errorf("leases: want %d <= ttl_ms_min <= ttl_ms_max <= %d", limits.TTLMinNs/1e6, limits.TTLMaxNs/1e6)
	case l.TTLMsMin < 2*electionMs:
		return fmt.Errorf("leases.ttl_ms_min = %v, want at least two election timeouts (%v ms)", l.TTLMsMin, 2*electionMs)
	case l.HoldTTLsMax < 0:
		return fmt.Errorf("leases.hold_ttls_max must not be negative")
	case sc.Checkers.Invariants != nil && !*sc.Checkers.Invariants:
		return fmt.Errorf("leases need checkers.invariants (lease ends are read from the applied records)")
	}
	return nil
}

func (sc *Scenario) validateBugs() error {
	for _, name := range slices.Sorted(maps.Keys(sc.Bugs)) {
		if _, err := bugs.Parse(name); err != nil {
			return fmt.Errorf("bugs: %w", err)
		}
		if sc.Bugs[name] && !bugs.Enabled {
			return fmt.Errorf("bugs.%s: planted bugs need a build with -tags aspenbugs", name)
		}
	}
	return nil
}

// swarm returns a copy in which the seed has chosen which faults are on and how
// hard: each fault kind is kept with probability one half and scaled by a
// random factor, so different seeds explore different corners.
func (sc Scenario) swarm(rng *rand.Rand) Scenario {
	out := sc
	scale := func(v float64) float64 {
		if rng.IntN(2) == 0 {
			return 0
		}
		return v * (0.25 + 1.5*rng.Float64())
	}
	prob := func(v float64) float64 { return min(1, scale(v)) }
	out.Network.DropProb = prob(sc.Network.DropProb)
	out.Network.DuplicateProb = prob(sc.Network.DuplicateProb)
	out.Network.ReorderProb = prob(sc.Network.ReorderProb)
	out.Faults.Partition = scale(sc.Faults.Partition)
	out.Faults.OneWayPartition = scale(sc.Faults.OneWayPartition)
	out.Faults.Crash = scale(sc.Faults.Crash)
	out.Faults.Pause = scale(sc.Faults.Pause)
	out.Disk.KeepUnsyncedProb = prob(sc.Disk.KeepUnsyncedProb)
	out.Disk.TornProb = prob(sc.Disk.TornProb)
	out.Disk.BitFlipProb = prob(sc.Disk.BitFlipProb)
	out.Disk.SyncMsMax = scale(sc.Disk.SyncMsMax)
	out.Clock.DriftPPMMax = scale(sc.Clock.DriftPPMMax)
	out.Clock.SkewMsMax = scale(sc.Clock.SkewMsMax)
	out.Faults.StrandClients = sc.Faults.StrandClients && rng.IntN(2) == 0
	// Crash points draw only when set (and after everything else), so swarm
	// scenarios without them keep the trajectories they had before them.
	probIfSet := func(v float64) float64 {
		if v == 0 {
			return 0
		}
		return prob(v)
	}
	out.Faults.CrashAfterVoteProb = probIfSet(sc.Faults.CrashAfterVoteProb)
	out.Faults.CrashAfterTailReplaceProb = probIfSet(sc.Faults.CrashAfterTailReplaceProb)
	out.Faults.CrashInSnapshotInstallProb = probIfSet(sc.Faults.CrashInSnapshotInstallProb)
	out.Faults.CrashAfterMembershipProb = probIfSet(sc.Faults.CrashAfterMembershipProb)
	out.Faults.CrashBeforeSyncProb = probIfSet(sc.Faults.CrashBeforeSyncProb)
	return out
}

func on(b *bool) bool { return b == nil || *b }
