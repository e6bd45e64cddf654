package sched

import (
	"errors"
	"fmt"
	"time"

	"github.com/aspen-db/aspen/core/assert"
	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/module"
	"github.com/google/btree"
)

// Def is what a client gives to add a schedule.
type Def struct {
	Name      string
	Spec      string    // a cron expression or an interval (Parse)
	Zone      string    // the IANA zone cron ticks follow; "" is UTC
	Job       jobs.Spec // every tick's job; Key is not sent: each tick's job is keyed name@tick
	Overlap   Overlap
	CatchUp   CatchUp
	RunAllMax int // CatchUpRunAll: the most ticks one fire runs (1 to RunAllMax); else 0
}

// Schedule is one schedule as clients see it.
type Schedule struct {
	Def
	Paused       bool
	CreatedNs    int64   // the add's stamp; interval ticks count from its whole second
	LastTickNs   int64   // the latest tick fired or passed over; the add's (or resume's) stamp before any
	NextTickNs   int64   // the first tick after LastTickNs; 0 while paused (derived, not stored)
	LastJob      jobs.ID // the job the latest created tick made (0 before any)
	BufferedNs   int64   // buffer-one: the tick waiting for LastJob to end (0: none)
	Fired        uint64  // ticks that created a job (or found the job their key names)
	Missed       uint64  // due ticks the catch-up policy passed over
	MissedCapped bool    // Missed is a lower bound: too many cron ticks to count
	Skipped      uint64  // ticks the overlap policy dropped, or the job queue refused
}

// FireOutcome says what became of one tick.
type FireOutcome uint8

const (
	FireCreated  FireOutcome = iota + 1 // the tick's job was created (or found by its key)
	FireBuffered                        // buffer-one: waiting for the previous job to end
	FireSkipped                         // the previous job was still pending or leased
	FireRefused                         // the job queue refused the job (full, or a limit changed)
	FireMissed                          // catch-up passed over Missed ticks before TickNs
	fireOutcomeEnd
)

var fireOutcomeNames = [...]string{FireCreated: "created", FireBuffered: "buffered", FireSkipped: "skipped",
	FireRefused: "refused", FireMissed: "missed"}

func (o FireOutcome) String() string {
	if o > 0 && o < fireOutcomeEnd {
		return fireOutcomeNames[o]
	}
	return fmt.Sprintf("fire-outcome(%d)", uint8(o))
}

// Fire is one entry of a schedule's history.
type Fire struct {
	TickNs  int64
	AtNs    int64 // the stamp of the entry that applied it (its lag is AtNs - TickNs)
	Outcome FireOutcome
	Job     jobs.ID // created: the tick's job; buffered, skipped: the job still running
	Missed  uint64  // missed: how many ticks
}

// HistoryMax bounds a schedule's history: the oldest entries go first.
const HistoryMax = 32

// Limits bound the table and every definition.
type Limits struct {
	SchedulesMax int // schedules held
	NameBytesMax int // a schedule's name; name@tick must fit a job's idempotency key
	ListMax      int // schedules one list page holds
}

// DefaultLimits returns the limits a node uses unless configured otherwise.
func DefaultLimits() Limits { return Limits{SchedulesMax: 10_000, NameBytesMax: 128, ListMax: 1000} }

// Expected refusals; the module maps them onto outcomes.
var (
	ErrNotFound = errors.New("schedule not found")
	ErrExists   = errors.New("schedule already exists")
	ErrFull     = errors.New("too many schedules")
	errInvalid  = errors.New("invalid schedule command")
	errTooLarge = errors.New("over a schedule limit")
)

// Jobs is the job queue as schedules need it (jobs.Module provides it).
type Jobs interface {
	// CheckSpec refuses a template the queue's limits do not allow (a *module.Error).
	CheckSpec(s jobs.Spec) error
	// SubmitFrom submits a job at env; existing means s.Key named a job already held.
	SubmitFrom(env *module.Env, s jobs.Spec) (id jobs.ID, existing bool, err error)
	// JobState returns a job's state, false when the queue holds no such job.
	JobState(id jobs.ID) (jobs.State, bool)
}

// tickKey orders unpaused schedules by next tick, ties by name.
type tickKey struct {
	at   int64
	name string
}

func tickLess(a, b tickKey) bool { return a.at < b.at || a.at == b.at && a.name < b.name }

type entry struct {
	Schedule
	spec    Spec
	history []Fire // oldest first, at most HistoryMax
}

// Table is the set of schedules, ordered by next tick so that the leader's
// work follows the schedules due, not the schedules held. The zero value is
// not usable; call NewTable.
type Table struct {
	limits   Limits
	zones    *Zones
	all      map[string]*entry
	names    *btree.BTreeG[string]  // every schedule, for list pages
	due      *btree.BTreeG[tickKey] // unpaused schedules by next tick
	buffered *btree.BTreeG[string]  // schedules holding a buffered tick
	digest   uint64
	fires    []Fire   // recorded since the module last noted a change (not state)
	counters Counters // what this replica applied since it started (not state)
}

// Counters count the ticks this replica saw missed and skipped since its
// process started, over every schedule, removed ones included. They are not
// replicated state (not encoded, hashed or persisted; a load or snapshot
// install keeps them, a restart zeroes them), unlike each schedule's own
// Missed and Skipped, which are, and which go when the schedule goes.
type Counters struct {
	Missed  uint64 // due ticks catch-up passed over (a lower bound where a schedule's MissedCapped)
	Skipped uint64 // ticks the overlap policy dropped or the job queue refused
}

// NewTable returns an empty table resolving zones through zones.
func NewTable(limits Limits, zones *Zones) *Table {
	return &Table{limits: limits, zones: zones, all: map[string]*entry{},
		names: btree.NewG(8, strLess), due: btree.NewG(8, tickLess), buffered: btree.NewG(8, strLess)}
}

func strLess(a, b string) bool { return a < b }

// Limits returns the table's bounds.
func (t *Table) Limits() Limits { return t.limits }

// Len returns the number of schedules.
func (t *Table) Len() int { return len(t.all) }

// CheckDef refuses a definition that could never be added, whatever the
// table holds, and returns its parsed spec.
func (t *Table) CheckDef(d Def, q Jobs) (Spec, error) {
	if err := t.checkName(d.Name); err != nil {
		return Spec{}, err
	}
	spec, err := Parse(d.Spec, d.Zone, t.zones)
	if err != nil {
		return Spec{}, fmt.Errorf("%w: %w", errInvalid, err)
	}
	switch {
	case d.Overlap < OverlapSkip || d.Overlap > OverlapAllow:
		return Spec{}, fmt.Errorf("%w: unknown overlap policy %d", errInvalid, d.Overlap)
	case d.CatchUp < CatchUpSkip || d.CatchUp > CatchUpRunAll:
		return Spec{}, fmt.Errorf("%w: unknown catch-up policy %d", errInvalid, d.CatchUp)
	case d.CatchUp == CatchUpRunAll && (d.RunAllMax < 1 || d.RunAllMax > RunAllMax):
		return Spec{}, fmt.Errorf("%w: run-all bound %d, want 1 to %d", errInvalid, d.RunAllMax, RunAllMax)
	case d.CatchUp != CatchUpRunAll && d.RunAllMax != 0:
		return Spec{}, fmt.Errorf("%w: a run-all bound with catch-up %v", errInvalid, d.CatchUp)
	case d.Job.Key != "":
		return Spec{}, fmt.Errorf("%w: the job template has a key; each tick's job is keyed name@tick", errInvalid)
	}
	if err := q.CheckSpec(d.Job); err != nil {
		return Spec{}, err
	}
	return spec, nil
}

func (t *Table) checkName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty schedule name", errInvalid)
	}
	if len(name) > t.limits.NameBytesMax {
		return fmt.Errorf("%w: schedule name of %d bytes, max %d", errTooLarge, len(name), t.limits.NameBytesMax)
	}
	for _, c := range name {
		if c <= ' ' || c == '@' || c == 0x7f {
			return fmt.Errorf("%w: schedule name %q: no spaces, control characters or @", errInvalid, name)
		}
	}
	return nil
}

// Add adds a schedule at nowNs; its first tick is the first after nowNs.
// The definition is assumed checked (CheckDef gave spec).
func (t *Table) Add(d Def, spec Spec, nowNs int64) (Schedule, error) {
	if t.all[d.Name] != nil {
		return Schedule{}, fmt.Errorf("%w: %q", ErrExists, d.Name)
	}
	if len(t.all) >= t.limits.SchedulesMax {
		return Schedule{}, fmt.Errorf("%w: %d held", ErrFull, len(t.all))
	}
	d.Job.Payload = append([]byte(nil), d.Job.Payload...)
	e := &entry{Schedule: Schedule{Def: d, CreatedNs: nowNs, LastTickNs: nowNs}}
	e.spec = spec.WithAnchor(time.Unix(0, nowNs))
	t.insert(e)
	return e.Schedule, nil
}

// Pause stops a schedule firing; its buffered tick, if any, waits for Resume.
func (t *Table) Pause(name string) (Schedule, error) {
	e := t.all[name]
	if e == nil {
		return Schedule{}, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	t.change(e, func() { e.Paused = true })
	return e.Schedule, nil
}

// Resume lets a paused schedule fire again from nowNs: ticks that fell while
// it was paused are neither fired nor counted as missed.
func (t *Table) Resume(name string, nowNs int64) (Schedule, error) {
	e := t.all[name]
	if e == nil {
		return Schedule{}, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	if e.Paused {
		t.change(e, func() { e.Paused, e.LastTickNs = false, max(e.LastTickNs, nowNs) })
	}
	return e.Schedule, nil
}

// Remove deletes a schedule; the jobs it created stay in the queue.
func (t *Table) Remove(name string) (Schedule, error) {
	e := t.all[name]
	if e == nil {
		return Schedule{}, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	t.index(e, false)
	t.names.Delete(name)
	delete(t.all, name)
	return e.Schedule, nil
}

// Fire fires schedule name's tick tickNs at env (the leader's proposal,
// re-checked here against the entry's stamp): a tick not yet fired, due at
// the stamp, of an unpaused schedule runs the catch-up policy over the ticks
// since the last one fired, each kept tick going through the overlap policy
// into job name@tick. The buffered tick of a schedule whose previous job has
// ended is created instead. Anything else (fired already, not due, paused,
// removed, the previous job still running) changes nothing, so a fire
// applied twice, or proposed by two leaders, creates its job once. It
// reports whether anything changed.
func (t *Table) Fire(env *module.Env, q Jobs, name string, tickNs int64) bool {
	e := t.all[name]
	if e == nil || e.Paused || tickNs > env.NowNs {
		return false
	}
	if tickNs != 0 && tickNs == e.BufferedNs {
		if active(q, e.LastJob) {
			return false
		}
		t.change(e, func() { t.release(env, q, e) })
		return true
	}
	if tickNs <= e.LastTickNs || e.spec.Next(time.Unix(0, tickNs-1)).UnixNano() != tickNs {
		return false
	}
	c, err := Due(e.spec, time.Unix(0, e.LastTickNs), time.Unix(0, tickNs), e.CatchUp, e.RunAllMax)
	assert.That(err == nil && len(c.Fire) > 0 && c.Fire[len(c.Fire)-1].UnixNano() == tickNs,
		"schedule %q: tick %d due, catch-up gave %v (%v)", name, tickNs, c.Fire, err)
	t.change(e, func() {
		if c.Missed > 0 {
			e.Missed += c.Missed
			t.counters.Missed += c.Missed
			e.MissedCapped = e.MissedCapped || c.MissedCapped
			t.record(e, Fire{TickNs: c.Fire[0].UnixNano(), AtNs: env.NowNs, Outcome: FireMissed, Missed: c.Missed})
		}
		for _, at := range c.Fire {
			t.fireOne(env, q, e, at.UnixNano())
		}
		e.LastTickNs = tickNs
	})
	return true
}

// fireOne puts one kept tick through the overlap policy. A buffered tick
// whose wait is over goes first, so jobs are created in tick order.
func (t *Table) fireOne(env *module.Env, q Jobs, e *entry, tickNs int64) {
	if e.BufferedNs != 0 && !active(q, e.LastJob) {
		t.release(env, q, e)
	}
	switch {
	case e.Overlap == OverlapAllow || !active(q, e.LastJob):
		t.create(env, q, e, tickNs)
	case e.Overlap == OverlapBufferOne && e.BufferedNs == 0:
		e.BufferedNs = tickNs
		t.record(e, Fire{TickNs: tickNs, AtNs: env.NowNs, Outcome: FireBuffered, Job: e.LastJob})
	default:
		e.Skipped++
		t.counters.Skipped++
		t.record(e, Fire{TickNs: tickNs, AtNs: env.NowNs, Outcome: FireSkipped, Job: e.LastJob})
	}
}

func (t *Table) release(env *module.Env, q Jobs, e *entry) {
	tick := e.BufferedNs
	e.BufferedNs = 0
	t.create(env, q, e, tick)
}

// create submits tick's job, keyed name@tick.
func (t *Table) create(env *module.Env, q Jobs, e *entry, tickNs int64) {
	s := e.Job
	s.Key = JobKey(e.Name, tickNs)
	id, _, err := q.SubmitFrom(env, s)
	if err != nil {
		e.Skipped++
		t.counters.Skipped++
		t.record(e, Fire{TickNs: tickNs, AtNs: env.NowNs, Outcome: FireRefused})
		return
	}
	e.LastJob = id
	e.Fired++
	t.record(e, Fire{TickNs: tickNs, AtNs: env.NowNs, Outcome: FireCreated, Job: id})
}

// JobKey is the idempotency key of schedule name's job for the tick at
// tickNs: name@tick, the tick in UTC, RFC 3339.
func JobKey(name string, tickNs int64) string {
	return name + "@" + time.Unix(0, tickNs).UTC().Format(time.RFC3339)
}

// active reports whether job id is still pending or leased.
func active(q Jobs, id jobs.ID) bool {
	if id == 0 {
		return false
	}
	s, ok := q.JobState(id)
	return ok && (s == jobs.Pending || s == jobs.Leased)
}

// record adds f to e's history and to the fires the module reports.
func (t *Table) record(e *entry, f Fire) {
	t.fires = append(t.fires, f)
	if len(e.history) == HistoryMax {
		copy(e.history, e.history[1:])
		e.history = e.history[:HistoryMax-1]
	}
	e.history = append(e.history, f)
}

// insert adds a schedule to every index.
func (t *Table) insert(e *entry) {
	t.all[e.Name] = e
	t.names.ReplaceOrInsert(e.Name)
	t.index(e, true)
}

// index adds (on true) or removes a schedule from the tick indexes and the
// digest, computing its next tick on the way in.
func (t *Table) index(e *entry, add bool) {
	if add {
		e.NextTickNs = 0
		if !e.Paused {
			e.NextTickNs = e.spec.Next(time.Unix(0, e.LastTickNs)).UnixNano()
		}
	}
	t.digest ^= entryHash(e)
	if !e.Paused {
		toggle(t.due, tickKey{e.NextTickNs, e.Name}, add)
	}
	if e.BufferedNs != 0 {
		toggle(t.buffered, e.Name, add)
	}
}

func toggle[K any](tr *btree.BTreeG[K], k K, add bool) {
	if add {
		tr.ReplaceOrInsert(k)
	} else {
		tr.Delete(k)
	}
}

// change applies fn to e, keeping the indexes and the digest in step.
func (t *Table) change(e *entry, fn func()) {
	t.index(e, false)
	fn()
	t.index(e, true)
}

// Get returns one schedule and its history, oldest first.
func (t *Table) Get(name string) (Schedule, []Fire, bool) {
	e := t.all[name]
	if e == nil {
		return Schedule{}, nil, false
	}
	return e.Schedule, append([]Fire(nil), e.history...), true
}

// List returns at most n schedules named after after, in name order, and
// the last name when more may follow (else "").
func (t *Table) List(after string, n int) ([]Schedule, string) {
	var out []Schedule
	next := ""
	t.names.AscendGreaterOrEqual(after, func(name string) bool {
		if name == after {
			return true
		}
		if len(out) == n {
			next = out[len(out)-1].Name
			return false
		}
		out = append(out, t.all[name].Schedule)
		return true
	})
	return out, next
}

// DueBy calls fn, by next tick, for unpaused schedules whose next tick is at
// or before nowNs, until fn returns false.
func (t *Table) DueBy(nowNs int64, fn func(name string, nextNs int64) bool) {
	t.due.Ascend(func(k tickKey) bool { return k.at <= nowNs && fn(k.name, k.at) })
}

// LatestDue returns schedule name's latest tick at or before nowNs, for the
// leader's proposal (catch-up is decided when it applies).
func (t *Table) LatestDue(name string, nowNs int64) (int64, bool) {
	e := t.all[name]
	if e == nil || e.Paused || e.NextTickNs > nowNs {
		return 0, false
	}
	c, err := Due(e.spec, time.Unix(0, e.LastTickNs), time.Unix(0, nowNs), CatchUpSkip, 0)
	if err != nil || len(c.Fire) == 0 {
		return 0, false
	}
	return c.Fire[len(c.Fire)-1].UnixNano(), true
}

// Releasable calls fn for unpaused schedules whose buffered tick may go now
// (their previous job ended), in name order, until fn returns false.
func (t *Table) Releasable(q Jobs, fn func(name string, tickNs int64) bool) {
	t.buffered.Ascend(func(name string) bool {
		e := t.all[name]
		if e.Paused || active(q, e.LastJob) {
			return true
		}
		return fn(name, e.BufferedNs)
	})
}

// Counters returns what this replica's table counted since it started.
func (t *Table) Counters() Counters { return t.counters }

// LagNs is how long the oldest due tick of an unpaused schedule has waited
// at nowNs: nowNs minus the earliest next tick, or 0 when no tick is due. A
// buffered tick waiting for its previous job is not lag (the policy holds
// it), nor are ticks of paused schedules.
func (t *Table) LagNs(nowNs int64) int64 {
	k, ok := t.due.Min()
	if !ok || k.at >= nowNs {
		return 0
	}
	return nowNs - k.at
}

// Hash digests the table: the XOR of its schedules' digests.
func (t *Table) Hash() uint64 { return t.digest }
