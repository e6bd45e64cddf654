// Package jobs is the replicated job queue: clients submit jobs, workers
// lease them, heartbeat, and complete or fail them under a fencing token.
//
// Time is whatever the caller passes in, and the node passes the replicated
// time of the entry being applied (the leader's stamp), never a replica's own
// clock; randomness (the jitter of a retry's backoff) is drawn from the job,
// its attempt and the log index applying it. Every replica therefore moves
// every job the same way at the same index. Nothing here expires a lease by
// itself: the leader finds the leases past their deadline (Expired) and
// proposes their expiry, which every replica applies at the same index.
package jobs

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/btree"
)

// ID names a job; ids grow with each submit, so a lower id is an older job.
type ID uint64

// State is where a job is in its life. A job that failed and will be retried
// is Pending with a not-before time.
type State uint8

const (
	Pending   State = iota + 1 // waiting for a worker (after NotBeforeNs, if set)
	Leased                     // a worker holds it under Token until DeadlineNs
	Succeeded                  // completed (finished)
	Failed                     // failed and the worker said retrying cannot help (finished)
	Dead                       // ran out of attempts: a dead letter, kept until retried or dropped
	Cancelled                  // cancelled by a client before it finished (finished)
	stateEnd
)

var stateNames = [...]string{Pending: "pending", Leased: "leased", Succeeded: "succeeded", Failed: "failed", Dead: "dead", Cancelled: "cancelled"}

func (s State) String() string {
	if s > 0 && s < stateEnd {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Finished reports whether the job will never run again and may be pruned.
func (s State) Finished() bool { return s == Succeeded || s == Failed || s == Cancelled }

// Spec is what a client submits.
type Spec struct {
	Type          string // which workers serve it
	Payload       []byte
	Priority      int64  // higher leases first
	AttemptsMax   int64  // leases it may be given in all
	BackoffBaseNs int64  // the delay before the first retry, doubled for each later one
	BackoffMaxNs  int64  // the cap on that delay
	TimeoutNs     int64  // visibility: a lease not heartbeaten for this long expires
	Key           string // idempotency key: a second submit with it returns the first job
}

// Result is what a worker reports when it completes a job.
type Result struct {
	ExitCode int64
	Output   []byte // capped by Limits.OutputBytesMax: the worker cuts it
	Detail   string
}

// Job is one job as clients see it.
type Job struct {
	ID ID
	Spec
	State       State
	Attempts    int64 // leases given so far (an expired one counts)
	SubmittedNs int64
	NotBeforeNs int64  // pending: not leased before this (a retry's backoff); 0 when due
	Token       uint64 // the log index of the entry that leased it last; 0 before any lease
	Worker      string // who holds or held the last lease
	DeadlineNs  int64  // leased: the lease expires at this replicated time
	FinishedNs  int64  // when it became succeeded, failed, dead or cancelled
	Result      Result
	Reason      string // why the last attempt failed (a worker's reason, or an expiry)
}

// Limits bound the table and every command; every insert checks them.
type Limits struct {
	JobsMax          int   // jobs held in all states
	TypeBytesMax     int   // a job type's name
	PayloadBytesMax  int   // a job's payload
	OutputBytesMax   int   // a result's output
	TextBytesMax     int   // a result's detail, a failure's reason, a worker's name, an idempotency key
	TypesPerLeaseMax int   // job types one lease request names
	LeaseJobsMax     int   // jobs one lease request may get
	AttemptsMax      int64 // the most attempts a job may ask for
	TimeoutMinNs     int64
	TimeoutMaxNs     int64
	BackoffMaxNs     int64 // the longest backoff a job may ask for
	FinishedMax      int   // finished jobs kept; the oldest go first
	FinishedAgeMaxNs int64 // finished jobs older than this are pruned
	ListMax          int   // jobs one list page holds
}

// DefaultLimits returns the limits a node uses unless configured otherwise.
func DefaultLimits() Limits {
	return Limits{
		JobsMax: 100_000, TypeBytesMax: 128, PayloadBytesMax: 64 << 10, OutputBytesMax: 64 << 10,
		TextBytesMax: 1024, TypesPerLeaseMax: 16, LeaseJobsMax: 16, AttemptsMax: 100,
		TimeoutMinNs: 1e9, TimeoutMaxNs: 24 * 3600e9, BackoffMaxNs: 7 * 24 * 3600e9,
		FinishedMax: 10_000, FinishedAgeMaxNs: 24 * 3600e9, ListMax: 1000,
	}
}

// Expected refusals; the module maps them onto outcomes.
var (
	ErrNotFound = errors.New("job not found")
	ErrFull     = errors.New("too many jobs")
	ErrState    = errors.New("job is not in a state for this")
	ErrToken    = errors.New("stale token: the job is someone else's now")
)

// timeKey orders jobs by a time, ties by id: deadlines, not-before times,
// finish times.
type timeKey struct {
	at int64
	id ID
}

func timeLess(a, b timeKey) bool { return a.at < b.at || a.at == b.at && a.id < b.id }

// readyKey orders due pending jobs by type, then highest priority, then oldest.
type readyKey struct {
	typ  string
	prio int64
	id   ID
}

func readyLess(a, b readyKey) bool {
	if a.typ != b.typ {
		return a.typ < b.typ
	}
	if a.prio != b.prio {
		return a.prio > b.prio
	}
	return a.id < b.id
}

// stateKey orders jobs by state, then id, for paged lists.
type stateKey struct {
	state State
	id    ID
}

func stateLess(a, b stateKey) bool { return a.state < b.state || a.state == b.state && a.id < b.id }

// Table is the set of jobs and the indexes that find them. The zero value
// is not usable; call New.
type Table struct {
	limits   Limits
	jobs     map[ID]*Job
	byKey    map[string]ID
	ready    *btree.BTreeG[readyKey] // pending, due (NotBeforeNs 0)
	delayed  *btree.BTreeG[timeKey]  // pending, by NotBeforeNs
	leased   *btree.BTreeG[timeKey]  // leased, by DeadlineNs
	finished *btree.BTreeG[timeKey]  // succeeded, failed, cancelled, by FinishedNs
	byState  *btree.BTreeG[stateKey]
	counts   [stateEnd]int // jobs per state, kept by index: O(1) to read
	counters Counters      // what this replica applied since it started (not state)
	last     ID            // the highest id ever given
	// graceTerm is the leader term whose grace (Extend) applied last: a
	// leader expires no job lease before its own grace has applied.
	graceTerm uint64
	digest    uint64
}

// New returns an empty table.
func New(limits Limits) *Table {
	return &Table{
		limits: limits, jobs: map[ID]*Job{}, byKey: map[string]ID{},
		ready: btree.NewG(8, readyLess), delayed: btree.NewG(8, timeLess), leased: btree.NewG(8, timeLess),
		finished: btree.NewG(8, timeLess), byState: btree.NewG(8, stateLess),
	}
}

// Limits returns the table's bounds.
func (t *Table) Limits() Limits { return t.limits }

// index adds (on true) or removes a job from every index and the digest.
func (t *Table) index(j *Job, add bool) {
	t.digest ^= jobHash(j)
	toggle(t.byState, stateKey{j.State, j.ID}, add)
	if add {
		t.counts[j.State]++
	} else {
		t.counts[j.State]--
	}
	switch {
	case j.State == Pending && j.NotBeforeNs == 0:
		toggle(t.ready, readyKey{j.Type, j.Priority, j.ID}, add)
	case j.State == Pending:
		toggle(t.delayed, timeKey{j.NotBeforeNs, j.ID}, add)
	case j.State == Leased:
		toggle(t.leased, timeKey{j.DeadlineNs, j.ID}, add)
	case j.State.Finished():
		toggle(t.finished, timeKey{j.FinishedNs, j.ID}, add)
	}
}

func toggle[K any](tr *btree.BTreeG[K], k K, add bool) {
	if add {
		tr.ReplaceOrInsert(k)
	} else {
		tr.Delete(k)
	}
}

// change applies fn to job j, keeping the indexes and the digest in step.
func (t *Table) change(j *Job, fn func(j *Job)) {
	t.index(j, false)
	fn(j)
	t.index(j, true)
}

func (t *Table) insert(j *Job) {
	t.jobs[j.ID] = j
	if j.Key != "" {
		t.byKey[j.Key] = j.ID
	}
	t.last = max(t.last, j.ID)
	t.index(j, true)
}

func (t *Table) remove(j *Job) {
	t.index(j, false)
	delete(t.jobs, j.ID)
	if j.Key != "" {
		delete(t.byKey, j.Key)
	}
}

// Submit adds a job at nowNs. A key already held names the job it returns
// (existing is then true) and nothing changes. The spec is assumed checked
// (CheckSpec).
func (t *Table) Submit(s Spec, nowNs int64) (j Job, existing bool, err error) {
	if s.Key != "" {
		if id, ok := t.byKey[s.Key]; ok {
			return t.view(t.jobs[id], true), true, nil
		}
	}
	if len(t.jobs) >= t.limits.JobsMax {
		return Job{}, false, fmt.Errorf("%w: %d held", ErrFull, len(t.jobs))
	}
	s.Payload = slices.Clone(s.Payload)
	nj := &Job{ID: t.last + 1, Spec: s, State: Pending, SubmittedNs: nowNs}
	t.insert(nj)
	return t.view(nj, true), false, nil
}

// Cancel ends a pending or leased job; a leased job's token stops working.
func (t *Table) Cancel(id ID, nowNs int64) (Job, error) {
	j := t.jobs[id]
	if j == nil {
		return Job{}, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if j.State != Pending && j.State != Leased {
		return Job{}, fmt.Errorf("%w: job %d is %v", ErrState, id, j.State)
	}
	t.change(j, func(j *Job) { j.State, j.FinishedNs, j.NotBeforeNs = Cancelled, nowNs, 0 })
	return t.view(j, true), nil
}

// Lease gives worker at most n due pending jobs of types, highest priority
// first, then oldest, each under token (the log index of the entry applying
// this) until nowNs plus the job's timeout. Jobs whose backoff has passed
// become due first: promoted lists them, for the caller to persist.
func (t *Table) Lease(worker string, types []string, n int, token uint64, nowNs int64) (leased []Job, promoted []ID) {
	promoted = t.promote(nowNs)
	for len(leased) < n {
		best, ok := t.head(types)
		if !ok {
			break
		}
		j := t.jobs[best.id]
		if j.Attempts > 0 {
			t.counters.Retries++
		}
		t.change(j, func(j *Job) {
			j.State, j.Attempts, j.Token, j.Worker, j.DeadlineNs = Leased, j.Attempts+1, token, worker, nowNs+j.TimeoutNs
		})
		leased = append(leased, t.view(j, true))
	}
	return leased, promoted
}

// head returns the best due pending job of any of types.
func (t *Table) head(types []string) (readyKey, bool) {
	var best readyKey
	found := false
	for _, typ := range types {
		t.ready.AscendGreaterOrEqual(readyKey{typ: typ, prio: 1<<63 - 1}, func(k readyKey) bool {
			if k.typ == typ && (!found || k.prio > best.prio || k.prio == best.prio && k.id < best.id) {
				best, found = k, true
			}
			return false
		})
	}
	return best, found
}

// promote makes due every pending job whose not-before time is at or before nowNs.
func (t *Table) promote(nowNs int64) []ID {
	var due []ID
	t.delayed.Ascend(func(k timeKey) bool {
		if k.at > nowNs {
			return false
		}
		due = append(due, k.id)
		return true
	})
	for _, id := range due {
		t.change(t.jobs[id], func(j *Job) { j.NotBeforeNs = 0 })
	}
	return due
}

// holder returns job id if it is leased under token.
func (t *Table) holder(id ID, token uint64) (*Job, error) {
	j := t.jobs[id]
	if j == nil {
		return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if j.State != Leased || j.Token != token {
		return nil, fmt.Errorf("%w: job %d is %v under token %d, not %d", ErrToken, id, j.State, j.Token, token)
	}
	return j, nil
}

// Heartbeat moves a leased job's deadline to nowNs plus its timeout (never earlier).
func (t *Table) Heartbeat(id ID, token uint64, nowNs int64) (Job, error) {
	j, err := t.holder(id, token)
	if err != nil {
		return Job{}, err
	}
	t.change(j, func(j *Job) { j.DeadlineNs = max(j.DeadlineNs, nowNs+j.TimeoutNs) })
	return t.view(j, true), nil
}

// Complete records a leased job's result and marks it succeeded.
func (t *Table) Complete(id ID, token uint64, r Result, nowNs int64) (Job, error) {
	j, err := t.holder(id, token)
	if err != nil {
		return Job{}, err
	}
	r.Output = slices.Clone(r.Output)
	t.change(j, func(j *Job) { j.State, j.Result, j.FinishedNs, j.DeadlineNs = Succeeded, r, nowNs, 0 })
	return t.view(j, true), nil
}

// Fail ends a leased job's attempt: retried after a backoff while attempts
// remain and retryable, dead when none remain, failed when not retryable.
// index is the applying entry's, the jitter's seed.
func (t *Table) Fail(id ID, token uint64, reason string, retryable bool, nowNs int64, index uint64) (Job, error) {
	j, err := t.holder(id, token)
	if err != nil {
		return Job{}, err
	}
	t.change(j, func(j *Job) { t.endAttempt(j, reason, retryable, nowNs, index) })
	return t.view(j, true), nil
}

func (t *Table) endAttempt(j *Job, reason string, retryable bool, nowNs int64, index uint64) {
	j.Reason, j.DeadlineNs = reason, 0
	switch {
	case !retryable:
		j.State, j.FinishedNs = Failed, nowNs
	case j.Attempts >= j.AttemptsMax:
		j.State, j.FinishedNs = Dead, nowNs
		t.counters.DeadLetters++
	default:
		j.State = Pending
		if d := Backoff(j.ID, j.Attempts, index, j.BackoffBaseNs, j.BackoffMaxNs); d > 0 {
			j.NotBeforeNs = nowNs + d
		}
	}
}

// Expire ends the lease of job id under token if its deadline is at or
// before nowNs (a heartbeat may have applied since the leader asked): the
// attempt counts, as a retryable failure. It reports whether it expired.
func (t *Table) Expire(id ID, token uint64, nowNs int64, index uint64) bool {
	j, err := t.holder(id, token)
	if err != nil || j.DeadlineNs > nowNs {
		return false
	}
	t.counters.LeaseExpiries++
	t.change(j, func(j *Job) { t.endAttempt(j, "lease expired", true, nowNs, index) })
	return true
}

// Backoff is the delay before a retry after attempt (1 for the first): base
// doubled for each attempt before it, capped at maxNs, then jittered into its
// upper half by a hash of the job, the attempt and the log index.
func Backoff(id ID, attempt int64, index uint64, baseNs, maxNs int64) int64 {
	if baseNs <= 0 || maxNs <= 0 {
		return 0
	}
	d := maxNs
	if shift := attempt - 1; shift < 62 && baseNs <= maxNs>>shift {
		d = baseNs << shift
	}
	h := mix64(uint64(id)*0x9e3779b97f4a7c15 ^ mix64(uint64(attempt)) ^ mix64(index+0x632be59bd9b4e019))
	half := d / 2
	return half + int64(h%uint64(d-half+1))
}

// Retry puts a dead job back to pending with its attempts reset.
func (t *Table) Retry(id ID) (Job, error) {
	j, err := t.dead(id)
	if err != nil {
		return Job{}, err
	}
	t.change(j, func(j *Job) { j.State, j.Attempts, j.NotBeforeNs, j.FinishedNs = Pending, 0, 0, 0 })
	return t.view(j, true), nil
}

// Drop deletes a dead job.
func (t *Table) Drop(id ID) (Job, error) {
	j, err := t.dead(id)
	if err != nil {
		return Job{}, err
	}
	t.remove(j)
	return t.view(j, true), nil
}

func (t *Table) dead(id ID) (*Job, error) {
	j := t.jobs[id]
	if j == nil {
		return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if j.State != Dead {
		return nil, fmt.Errorf("%w: job %d is %v, not dead", ErrState, id, j.State)
	}
	return j, nil
}

// Prune deletes finished jobs, oldest first: those finished at or before
// nowNs minus the age bound (at most n of them), then as many as exceed the
// count bound. It returns the ids deleted.
func (t *Table) Prune(nowNs int64, n int) []ID {
	var gone []ID
	t.finished.Ascend(func(k timeKey) bool {
		over := t.finished.Len()-len(gone) > t.limits.FinishedMax
		if !over && (k.at > nowNs-t.limits.FinishedAgeMaxNs || len(gone) >= n) {
			return false
		}
		gone = append(gone, k.id)
		return true
	})
	for _, id := range gone {
		t.remove(t.jobs[id])
	}
	return gone
}

// OldestFinishedNs returns when the oldest finished job finished.
func (t *Table) OldestFinishedNs() (int64, bool) {
	k, ok := t.finished.Min()
	return k.at, ok
}

// Expired lists, by deadline, at most n leased jobs whose deadline is at or
// before nowNs.
func (t *Table) Expired(nowNs int64, n int) []Job {
	var out []Job
	t.leased.Ascend(func(k timeKey) bool {
		if k.at > nowNs || len(out) >= n {
			return false
		}
		out = append(out, t.view(t.jobs[k.id], false))
		return true
	})
	return out
}

// Get returns one job.
func (t *Table) Get(id ID) (Job, bool) {
	j := t.jobs[id]
	if j == nil {
		return Job{}, false
	}
	return t.view(j, true), true
}

// List returns at most n jobs in state with ids above after, in id order,
// without payload or output, and the last id when more may follow (else 0).
func (t *Table) List(state State, after ID, n int) ([]Job, ID) {
	var out []Job
	var next ID
	t.byState.AscendGreaterOrEqual(stateKey{state, after + 1}, func(k stateKey) bool {
		if k.state != state {
			return false
		}
		if len(out) == n {
			next = out[len(out)-1].ID
			return false
		}
		out = append(out, t.view(t.jobs[k.id], false))
		return true
	})
	return out, next
}

// listScanPages bounds a filtered list's scan: it looks at no more than
// this many pages' worth of jobs in the state, matching or not, so a
// filter that matches few jobs costs a bounded query, and answers with
// Next set where it stopped for the client to go on from.
const listScanPages = 8

// ListKeyed is List restricted to jobs whose idempotency key starts with
// prefix. It looks at most listScanPages*n jobs in state; when it stops
// for that bound, Next is the last id it looked at (a page may then hold
// fewer than n jobs, even none, and still not be the last).
func (t *Table) ListKeyed(state State, after ID, n int, prefix string) ([]Job, ID) {
	var out []Job
	var next, last ID
	budget := listScanPages * n
	t.byState.AscendGreaterOrEqual(stateKey{state, after + 1}, func(k stateKey) bool {
		if k.state != state {
			return false
		}
		if budget == 0 {
			next = last
			return false
		}
		budget--
		last = k.id
		j := t.jobs[k.id]
		if !strings.HasPrefix(j.Key, prefix) {
			return true
		}
		if len(out) == n {
			next = out[len(out)-1].ID
			return false
		}
		out = append(out, t.view(j, false))
		return true
	})
	return out, next
}

// Len returns the number of jobs.
func (t *Table) Len() int { return len(t.jobs) }

// Count returns the number of jobs in state.
func (t *Table) Count(state State) int {
	if state == 0 || state >= stateEnd {
		return 0
	}
	return t.counts[state]
}

// Counts is how many jobs are in each state.
type Counts struct {
	Pending, Leased, Succeeded, Failed, Dead, Cancelled int
}

// Counts returns how many jobs are in each state, in O(1).
func (t *Table) Counts() Counts {
	c := t.counts
	return Counts{Pending: c[Pending], Leased: c[Leased], Succeeded: c[Succeeded], Failed: c[Failed], Dead: c[Dead], Cancelled: c[Cancelled]}
}

// Counters count what this replica applied since its process started. They
// are not replicated state: not encoded, not hashed, not persisted; a
// snapshot install or a load keeps them (Module carries them over), a
// restart zeroes them, as Prometheus expects of a process's counters.
// Replicas that applied the same entries since they started agree.
type Counters struct {
	LeaseExpiries uint64 // leases that ran out (Expire)
	Retries       uint64 // leases of a job that had been leased before (attempts after the first)
	DeadLetters   uint64 // jobs that ran out of attempts and became dead
}

// Counters returns what this replica's table counted since it started.
func (t *Table) Counters() Counters { return t.counters }

// Hash digests the table: every job and the last id.
func (t *Table) Hash() uint64 {
	return mix64(t.digest ^ mix64(uint64(t.last)+0x9e3779b97f4a7c15) ^ mix64(t.graceTerm+0x632be59bd9b4e019))
}

// Extend moves every job lease's deadline to at least nowNs plus byNs: the
// grace of the leader of term, so that heartbeats a failover lost (or a
// restart after downtime) do not cost a healthy worker its job, as leases
// get (core/lease). It returns the jobs whose deadline moved.
func (t *Table) Extend(term uint64, nowNs, byNs int64) []ID {
	var moved []ID
	t.leased.Ascend(func(k timeKey) bool {
		if k.at >= nowNs+byNs {
			return false
		}
		moved = append(moved, k.id)
		return true
	})
	for _, id := range moved {
		t.change(t.jobs[id], func(j *Job) { j.DeadlineNs = nowNs + byNs })
	}
	t.graceTerm = max(t.graceTerm, term)
	return moved
}

// GraceTerm is the term of the last leader whose grace applied.
func (t *Table) GraceTerm() uint64 { return t.graceTerm }

// LeasedCount is the number of jobs leased now.
func (t *Table) LeasedCount() int { return t.leased.Len() }

// view copies a job out; without full, its payload and output stay behind.
func (t *Table) view(j *Job, full bool) Job {
	v := *j
	if !full {
		v.Payload, v.Result.Output = nil, nil
	}
	return v
}

func (t *Table) ids() []ID {
	ids := make([]ID, 0, len(t.jobs))
	for id := range t.jobs {
		ids = append(ids, id)
	}
	slices.Sort(ids) // map order must not reach output
	return ids
}
