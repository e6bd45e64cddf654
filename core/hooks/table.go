package hooks

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strconv"

	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/module"
)

// Delivery kinds.
const (
	KindPut     = "put"
	KindDelete  = "delete"
	KindExpire  = "expire"
	KindResync  = "resync"  // the hook lagged: changes in [FromRev, ToRev] were not delivered one by one
	KindTrigger = "trigger" // a synthetic event from `aspen hook trigger`
)

// Delivery is one event on its way to a hook's handler.
type Delivery struct {
	Seq       uint64 // per hook, in the order deliveries were made
	Kind      string
	Revision  int64 // the change's revision (resync: the revision it was made at)
	Key       []byte
	Value     []byte // the value written, if at most Limits.ValueInlineMax
	ValueSize int64
	ValueSHA  []byte // SHA-256 of the value, when it is not inline
	CreateRev int64
	ModRev    int64
	Version   int64
	AtNs      int64  // replicated time of the change
	FromRev   int64  // resync
	ToRev     int64  // resync
	Index     uint64 // the log index that made it

	stored bool // its record is on disk (a delivery handed over at once never is)
}

// IdemKey is the delivery's idempotency key, the job's key: handlers
// discard a repeat with it.
func (d *Delivery) IdemKey(hook string) string {
	switch d.Kind {
	case KindResync:
		return fmt.Sprintf("%s:resync:%d-%d", hook, d.FromRev, d.ToRev)
	case KindTrigger:
		return fmt.Sprintf("%s:trigger:%d", hook, d.Index)
	}
	key := string(d.Key)
	if len(hook)+len(key)+22 > idemKeyBytesMax { // a long key is named by its digest
		sum := sha256.Sum256(d.Key)
		key = fmt.Sprintf("sha256:%x", sum)
	}
	return hook + ":" + strconv.FormatInt(d.Revision, 10) + ":" + key
}

// idemKeyBytesMax keeps a delivery's key within the job queue's text limit.
const idemKeyBytesMax = 1024

// flight is a delivery handed to the job queue and not yet seen finished.
type flight struct {
	Job  jobs.ID
	Rev  int64
	AtNs int64
}

// Stats count what a hook did; they are replicated, so every node answers
// the same.
type Stats struct {
	Matched   uint64 // changes that matched
	Submitted uint64 // deliveries handed to the job queue
	Delivered uint64 // deliveries whose job succeeded
	Failed    uint64 // deliveries whose job failed for good
	Dead      uint64 // deliveries whose job ran out of attempts
	Retried   uint64 // attempts after the first, over finished deliveries
	Lagged    uint64 // changes covered by a resync rather than delivered one by one
	Resyncs   uint64 // resync deliveries made
}

// Hook is a hook as clients see it: its definition and state.
type Hook struct {
	Def
	CreatedNs int64
	Backlog   int   // deliveries waiting for the queue
	InFlight  int   // deliveries in the queue, not yet seen finished
	Lagging   bool  // the backlog was full: changes from LagFromRev on are not delivered one by one
	LagFrom   int64 // lagging: the first revision let pass
	LagTo     int64 // lagging: the last
	OldestRev int64 // the revision of the oldest delivery not finished (0: none)
	OldestNs  int64 // its replicated time
	Stats     Stats
}

// hook is a hook's whole state.
type hook struct {
	Def
	createdNs   int64
	nextSeq     uint64
	backlog     []Delivery
	flights     []flight
	tokensMilli int64 // the bucket, in thousandths of a delivery
	refillNs    int64 // when the bucket was last refilled
	lagging     bool
	lagFrom     int64
	lagTo       int64
	stats       Stats
	// passIndex is the entry that let a change pass last: a lag ends in a
	// later entry only, so the changes of one revision never split between
	// two resyncs of the same range (and the same idempotency key). Memory
	// only: one entry's apply never spans a restart.
	passIndex uint64
	sum       uint64 // the digest of its record as last saved: its share of the module's
}

func (h *hook) view() Hook {
	v := Hook{Def: h.Def, CreatedNs: h.createdNs, Backlog: len(h.backlog), InFlight: len(h.flights), Lagging: h.lagging,
		LagFrom: h.lagFrom, LagTo: h.lagTo, Stats: h.stats}
	if len(h.flights) > 0 {
		v.OldestRev, v.OldestNs = h.flights[0].Rev, h.flights[0].AtNs
	} else if len(h.backlog) > 0 {
		v.OldestRev, v.OldestNs = h.backlog[0].Revision, h.backlog[0].AtNs
	}
	return v
}

// takeToken refills the bucket to now and takes one delivery's token.
func (h *hook) takeToken(nowNs int64) bool {
	if h.RatePerSec == 0 {
		return true
	}
	h.refill(nowNs)
	if h.tokensMilli < 1000 {
		return false
	}
	h.tokensMilli -= 1000
	return true
}

// refill adds the tokens earned since the last refill, up to the burst.
// Time too short to earn a thousandth of a token is kept for the next
// refill, not thrown away: changes a few microseconds apart must not keep
// the bucket from ever filling.
func (h *hook) refill(nowNs int64) {
	elapsed := nowNs - h.refillNs
	if elapsed <= 0 {
		return
	}
	full := h.Burst * 1000
	// Capped before multiplying: no overflow, and a long quiet spell
	// fills the bucket and no more.
	fillNs := full * 1e6 / h.RatePerSec // ns to fill from empty
	earned := min(elapsed, fillNs) * h.RatePerSec / 1e6
	if h.tokensMilli+earned >= full {
		h.tokensMilli, h.refillNs = full, nowNs
		return
	}
	h.tokensMilli += earned
	h.refillNs += earned * 1e6 / h.RatePerSec
}

// tokenAt is when the bucket next holds a whole token (now if it does).
func (h *hook) tokenAt(nowNs int64) int64 {
	if h.RatePerSec == 0 {
		return nowNs
	}
	probe := *h
	probe.refill(nowNs)
	if probe.tokensMilli >= 1000 {
		return nowNs
	}
	return nowNs + (1000-probe.tokensMilli)*1e6/h.RatePerSec + 1
}

// Jobs is the job queue as hooks need it (jobs.Module provides it).
type Jobs interface {
	CheckSpec(s jobs.Spec) error
	SubmitFrom(env *module.Env, s jobs.Spec) (jobs.ID, bool, error)
	JobState(id jobs.ID) (jobs.State, bool)
	JobAttempts(id jobs.ID) int64
}

// reap forgets the deliveries whose jobs finished, counting how. A job
// gone from the queue (dropped, pruned) finished too. A dead job that an
// operator retries later is counted dead here and runs again outside the
// hook's bounds: the hook has moved on.
func (h *hook) reap(q Jobs) bool {
	kept := h.flights[:0]
	for _, f := range h.flights {
		state, ok := q.JobState(f.Job)
		switch {
		case !ok:
			h.stats.Delivered++ // pruned: only finished jobs are
		case state == jobs.Succeeded:
			h.stats.Delivered++
		case state == jobs.Failed, state == jobs.Cancelled:
			h.stats.Failed++
		case state == jobs.Dead:
			h.stats.Dead++
		default:
			kept = append(kept, f)
			continue
		}
		if ok {
			h.stats.Retried += uint64(max(0, q.JobAttempts(f.Job)-1))
		}
	}
	changed := len(kept) != len(h.flights)
	clear(h.flights[len(kept):])
	h.flights = kept
	return changed
}

// finishedAny reports whether a delivery in flight has finished.
func (h *hook) finishedAny(q Jobs) bool {
	for _, f := range h.flights {
		if state, ok := q.JobState(f.Job); !ok || state != jobs.Pending && state != jobs.Leased {
			return true
		}
	}
	return false
}

// canStart reports whether the head of the backlog could start at nowNs.
func (h *hook) canStart(nowNs int64) bool {
	return len(h.backlog) > 0 && len(h.flights) < h.inFlight() && h.tokenAt(nowNs) <= nowNs
}

// spec is the job that carries delivery d.
func (h *hook) spec(d *Delivery) jobs.Spec {
	typ := h.Handler.JobType
	switch h.Handler.Kind {
	case HandlerHTTP:
		typ = JobHTTP
	case HandlerShell:
		typ = JobShell
	}
	return jobs.Spec{Type: typ, Payload: h.payload(d), AttemptsMax: h.AttemptsMax, TimeoutNs: h.TimeoutNs,
		BackoffBaseNs: h.BackoffBaseNs, BackoffMaxNs: h.BackoffMaxNs, Key: d.IdemKey(h.Name)}
}

// sortedNames returns a map's keys in order: no map order reaches an output.
func sortedNames(m map[string]*hook) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
