package jobs

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/aspen-db/aspen/core/assert"
	"github.com/aspen-db/aspen/core/bugs"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
)

// Command kinds of the job module. Clients send the first eight and the
// batch complete; the leader proposes expiries and pruning itself (Due).
// Queries are served after a ReadIndex and never reach the log.
const (
	CmdSubmit        byte = 32
	CmdCancel        byte = 33
	CmdLease         byte = 34
	CmdHeartbeat     byte = 35
	CmdComplete      byte = 36
	CmdFail          byte = 37
	CmdRetry         byte = 38 // a dead letter back to pending
	CmdDrop          byte = 39 // a dead letter deleted
	CmdExpire        byte = 40 // the leader's
	CmdPrune         byte = 41 // the leader's
	CmdGrace         byte = 42 // the leader's: its grace for every job lease
	CmdCompleteBatch byte = 43 // several completes, each judged alone (batch.go)

	QueryGet   byte = 44
	QueryList  byte = 45
	QueryDead  byte = 46
	QueryStats byte = 47 // answers Stats, not Answer
)

// Records on disk: one per job and the table's meta.
var (
	prefix    = []byte("j/")
	prefixJob = []byte("j/j/")
	keyMeta   = []byte("j/m")
)

// Bounds on the leader's own proposals.
const (
	expireBatchMax = 64  // jobs one expiry command names
	pruneBatchMax  = 256 // finished jobs one prune command deletes by age
	proposeRetryNs = 1e9 // a proposal not applied after this is made again
)

// Module is the job table as a replicated module.
type Module struct {
	t *Table

	// The leader's memory of what it proposed and when, so it does not
	// propose the same thing every tick. Not replicated: a new leader starts
	// with none, and applying a proposal twice is harmless.
	asked      map[ID]int64
	pruneAsked int64
	graceAsked [2]int64 // term, time of the last grace asked for

	// The jobs the command being applied changed, until the host takes
	// them for its applied records (module.Reporter).
	module.Reports[Change]

	// Bugs plants defects, for tests that prove a checker catches them
	// (planted_bugs.go; inert without the aspenbugs tag).
	Bugs bugs.Set
}

// NewModule returns an empty job table.
func NewModule(limits Limits) *Module { return &Module{t: New(limits), asked: map[ID]int64{}} }

// Table exposes the job table, for the host's status and for checkers.
func (m *Module) Table() *Table { return m.t }

func (m *Module) Name() string    { return "jobs" }
func (m *Module) Version() uint64 { return 1 }
func (m *Module) Kinds() []byte {
	return []byte{CmdSubmit, CmdCancel, CmdLease, CmdHeartbeat, CmdComplete, CmdFail, CmdRetry, CmdDrop, CmdExpire, CmdPrune, CmdGrace, CmdCompleteBatch}
}
func (m *Module) QueryKinds() []byte { return []byte{QueryGet, QueryList, QueryDead, QueryStats} }
func (m *Module) Prefixes() [][]byte { return [][]byte{prefix} }
func (m *Module) Hash() uint64       { return m.t.Hash() }

// Validate refuses malformed commands and commands over a limit before they
// are proposed, and the leader's own kinds from clients.
func (m *Module) Validate(kind byte, body []byte) module.Answer {
	var err error
	switch kind {
	case CmdSubmit:
		var s Spec
		if s, err = decodeSubmit(body); err == nil {
			err = m.t.CheckSpec(s)
		}
	case CmdLease:
		var l leaseCmd
		if l, err = decodeLease(body); err == nil {
			err = m.checkLease(l)
		}
	case CmdCancel, CmdRetry, CmdDrop, CmdHeartbeat, CmdComplete, CmdFail:
		var c jobCmd
		if c, err = decodeJobCmd(kind, body); err == nil {
			err = m.checkJobCmd(c)
		}
	case CmdCompleteBatch:
		var items []jobCmd
		if items, err = decodeCompleteBatch(body); err == nil {
			err = m.checkCompleteBatch(items)
		}
	default:
		err = fmt.Errorf("%w: job command %d is the leader's own", errInvalid, kind)
	}
	if err != nil {
		return refusal(err)
	}
	return module.Answer{}
}

var (
	errInvalid  = errors.New("invalid job command")
	errTooLarge = errors.New("over a job limit")
)

// CheckSpec refuses a spec the limits do not allow.
func (t *Table) CheckSpec(s Spec) error {
	l := t.limits
	switch {
	case s.Type == "":
		return fmt.Errorf("%w: empty job type", errInvalid)
	case len(s.Type) > l.TypeBytesMax:
		return fmt.Errorf("%w: job type of %d bytes, max %d", errTooLarge, len(s.Type), l.TypeBytesMax)
	case len(s.Payload) > l.PayloadBytesMax:
		return fmt.Errorf("%w: payload of %d bytes, max %d", errTooLarge, len(s.Payload), l.PayloadBytesMax)
	case len(s.Key) > l.TextBytesMax:
		return fmt.Errorf("%w: idempotency key of %d bytes, max %d", errTooLarge, len(s.Key), l.TextBytesMax)
	case s.AttemptsMax < 1 || s.AttemptsMax > l.AttemptsMax:
		return fmt.Errorf("%w: max attempts %d, want 1 to %d", errInvalid, s.AttemptsMax, l.AttemptsMax)
	case s.TimeoutNs < l.TimeoutMinNs || s.TimeoutNs > l.TimeoutMaxNs:
		return fmt.Errorf("%w: timeout %dns, want %d to %d", errInvalid, s.TimeoutNs, l.TimeoutMinNs, l.TimeoutMaxNs)
	case s.BackoffBaseNs < 0 || s.BackoffMaxNs < s.BackoffBaseNs || s.BackoffMaxNs > l.BackoffMaxNs:
		return fmt.Errorf("%w: backoff %d to %dns, want 0 <= base <= max <= %d", errInvalid, s.BackoffBaseNs, s.BackoffMaxNs, l.BackoffMaxNs)
	}
	return nil
}

func (m *Module) checkLease(c leaseCmd) error {
	l := m.t.limits
	switch {
	case c.worker == "" || len(c.worker) > l.TextBytesMax:
		return fmt.Errorf("%w: worker name of %d bytes, want 1 to %d", errInvalid, len(c.worker), l.TextBytesMax)
	case len(c.types) == 0 || len(c.types) > l.TypesPerLeaseMax:
		return fmt.Errorf("%w: %d job types, want 1 to %d", errInvalid, len(c.types), l.TypesPerLeaseMax)
	case c.n < 1 || c.n > uint64(l.LeaseJobsMax):
		return fmt.Errorf("%w: %d jobs asked, want 1 to %d", errInvalid, c.n, l.LeaseJobsMax)
	}
	for _, typ := range c.types {
		if typ == "" || len(typ) > l.TypeBytesMax {
			return fmt.Errorf("%w: job type of %d bytes, want 1 to %d", errInvalid, len(typ), l.TypeBytesMax)
		}
	}
	return nil
}

func (m *Module) checkJobCmd(c jobCmd) error {
	l := m.t.limits
	switch {
	case c.id == 0:
		return fmt.Errorf("%w: job id 0", errInvalid)
	case (c.kind == CmdHeartbeat || c.kind == CmdComplete || c.kind == CmdFail) && c.token == 0:
		return fmt.Errorf("%w: token 0", errInvalid)
	case len(c.result.Output) > l.OutputBytesMax:
		return fmt.Errorf("%w: output of %d bytes, max %d (the worker cuts it)", errTooLarge, len(c.result.Output), l.OutputBytesMax)
	case len(c.result.Detail) > l.TextBytesMax || len(c.reason) > l.TextBytesMax:
		return fmt.Errorf("%w: detail or reason over %d bytes", errTooLarge, l.TextBytesMax)
	}
	return nil
}

// Apply applies one job command at the replicated time env.NowNs.
func (m *Module) Apply(env *module.Env, kind byte, body []byte) module.Answer {
	switch kind {
	case CmdSubmit:
		s, err := decodeSubmit(body)
		assert.That(err == nil, "job submit at %d does not decode: %v", env.Index, err)
		j, existing, err := m.submit(env, s)
		return answer(Answer{Job: j, Existing: existing}, err)
	case CmdLease:
		c, err := decodeLease(body)
		assert.That(err == nil, "job lease at %d does not decode: %v", env.Index, err)
		leased, promoted := m.t.Lease(c.worker, c.types, int(c.n), env.Index, env.NowNs)
		for _, id := range promoted {
			m.save(env.Batch, id)
		}
		for _, j := range leased {
			m.save(env.Batch, j.ID)
		}
		return answer(Answer{Jobs: leased}, nil)
	case CmdCompleteBatch:
		return m.applyCompleteBatch(env, body)
	case CmdExpire, CmdPrune:
		m.applyLeaders(env, kind, body)
		return module.Answer{}
	case CmdGrace:
		r := &module.Reader{B: body}
		term, by := r.Uvarint(), r.Varint()
		assert.That(r.Done("job grace") == nil, "job grace at %d does not decode", env.Index)
		for _, id := range m.t.Extend(term, env.NowNs, by) {
			m.save(env.Batch, id)
		}
		m.persistMeta(env.Batch)
		return module.Answer{}
	}
	c, err := decodeJobCmd(kind, body)
	assert.That(err == nil, "job command %d at %d does not decode: %v", kind, env.Index, err)
	return m.applyJobCmd(env, c)
}

// submit adds a job at env's time and writes its record; a held key
// answers the job holding it, and nothing changes.
func (m *Module) submit(env *module.Env, s Spec) (Job, bool, error) {
	j, existing, err := m.t.Submit(s, env.NowNs)
	if err != nil || existing {
		return j, existing, err
	}
	m.save(env.Batch, j.ID)
	m.persistMeta(env.Batch)
	return j, false, nil
}

// CheckSpec refuses a spec the limits do not allow, as a *module.Error
// carrying the outcome, for modules that submit jobs of their own.
func (m *Module) CheckSpec(s Spec) error {
	if err := m.t.CheckSpec(s); err != nil {
		a := refusal(err)
		return &module.Error{Outcome: a.Outcome, Detail: a.Detail}
	}
	return nil
}

// SubmitFrom submits a job from another module's apply (a schedule's fire),
// as the submit command would at env: it checks the spec against the
// limits, answers the job already holding s.Key with existing set, and
// refuses a full table. Refusals are *module.Error values.
func (m *Module) SubmitFrom(env *module.Env, s Spec) (id ID, existing bool, err error) {
	if err := m.CheckSpec(s); err != nil {
		return 0, false, err
	}
	j, existing, err := m.submit(env, s)
	if err != nil {
		a := refusal(err)
		return 0, false, &module.Error{Outcome: a.Outcome, Detail: a.Detail}
	}
	return j.ID, existing, nil
}

// JobState returns the state of job id, and false when the table holds no
// such job (never submitted, dropped or pruned).
func (m *Module) JobState(id ID) (State, bool) {
	j := m.t.jobs[id]
	if j == nil {
		return 0, false
	}
	return j.State, true
}

// JobAttempts returns the leases job id has been given, 0 for a job the
// table does not hold.
func (m *Module) JobAttempts(id ID) int64 {
	if j := m.t.jobs[id]; j != nil {
		return j.Attempts
	}
	return 0
}

// applyJobCmd applies a command naming one job, then prunes by count.
func (m *Module) applyJobCmd(env *module.Env, c jobCmd) module.Answer {
	var j Job
	var err error
	switch c.kind {
	case CmdCancel:
		j, err = m.t.Cancel(c.id, env.NowNs)
	case CmdHeartbeat:
		j, err = m.t.Heartbeat(c.id, c.token, env.NowNs)
	case CmdComplete:
		j, err = m.t.Complete(c.id, m.plantCompleteToken(c.id, c.token), c.result, env.NowNs)
	case CmdFail:
		j, err = m.t.Fail(c.id, c.token, c.reason, c.retryable, env.NowNs, env.Index)
	case CmdRetry:
		j, err = m.t.Retry(c.id)
	case CmdDrop:
		j, err = m.t.Drop(c.id)
	}
	if err != nil {
		return refusal(err)
	}
	m.save(env.Batch, c.id)
	delete(m.asked, c.id)
	m.prune(env, 0) // a job that just finished may put the count over its bound
	return answer(Answer{Job: j}, nil)
}

// applyLeaders applies the leader's expiry and pruning: each re-checked
// against this entry's time, since the state may have moved since it asked.
func (m *Module) applyLeaders(env *module.Env, kind byte, body []byte) {
	r := &module.Reader{B: body}
	if kind == CmdExpire {
		for n := r.Count(); n > 0 && r.Err == nil; n-- {
			id, token := ID(r.Uvarint()), r.Uvarint()
			if r.Err == nil && m.t.Expire(id, token, env.NowNs, env.Index) {
				m.plantExpired(id)
				m.save(env.Batch, id)
				delete(m.asked, id)
			}
		}
	}
	assert.That(r.Done("job leader command") == nil, "job command %d at %d does not decode", kind, env.Index)
	m.prune(env, pruneBatchMax)
}

func (m *Module) prune(env *module.Env, n int) {
	for _, id := range m.t.Prune(env.NowNs, n) {
		env.Batch.Delete(jobKey(id))
		m.note(id)
	}
}

// refusal maps the table's errors onto outcomes.
func refusal(err error) module.Answer {
	switch {
	case errors.Is(err, ErrNotFound):
		return module.Refuse(module.NotFound, err)
	case errors.Is(err, ErrState), errors.Is(err, ErrToken):
		return module.Refuse(module.Conflict, err)
	case errors.Is(err, ErrFull), errors.Is(err, errTooLarge):
		return module.Refuse(module.TooLarge, err)
	}
	return module.Refuse(module.Invalid, err)
}

func answer(a Answer, err error) module.Answer {
	if err != nil {
		return refusal(err)
	}
	return module.Answer{Data: a.Encode(), Value: a}
}

// Due proposes, on the leader, the expiry of leases past their deadline on
// the leader's clock, and the pruning of finished jobs past their age.
func (m *Module) Due(l module.Leader) []module.Command {
	if m.t.Len() == 0 {
		return nil // keep the log quiet
	}
	var out []module.Command
	if m.t.LeasedCount() > 0 && m.t.GraceTerm() < l.Term {
		// A new leader first extends every job lease by one election
		// timeout, as the lease module does, and expires none before that
		// grace has applied.
		if m.graceAsked[0] != int64(l.Term) || l.NowNs-m.graceAsked[1] >= proposeRetryNs {
			m.graceAsked = [2]int64{int64(l.Term), l.NowNs}
			b := binary.AppendVarint(binary.AppendUvarint(nil, l.Term), l.GraceNs)
			out = append(out, module.Command{Kind: CmdGrace, Body: b})
		}
		return append(out, m.pruneDue(l)...)
	}
	var due []Job
	for _, j := range m.t.Expired(l.NowNs, expireBatchMax+len(m.asked)) {
		if at, ok := m.asked[j.ID]; ok && l.NowNs-at < proposeRetryNs {
			continue
		}
		m.asked[j.ID] = l.NowNs
		if due = append(due, j); len(due) == expireBatchMax {
			break
		}
	}
	if len(due) > 0 {
		b := binary.AppendUvarint(nil, uint64(len(due)))
		for _, j := range due {
			b = binary.AppendUvarint(binary.AppendUvarint(b, uint64(j.ID)), j.Token)
		}
		out = append(out, module.Command{Kind: CmdExpire, Body: b})
	}
	return append(out, m.pruneDue(l)...)
}

// pruneDue proposes pruning once the oldest finished job is past its age.
func (m *Module) pruneDue(l module.Leader) []module.Command {
	at, ok := m.t.OldestFinishedNs()
	if ok && at <= l.NowNs-m.t.limits.FinishedAgeMaxNs && l.NowNs-m.pruneAsked >= proposeRetryNs {
		m.pruneAsked = l.NowNs
		return []module.Command{{Kind: CmdPrune}}
	}
	return nil
}

// Query answers get, list and stats reads.
func (m *Module) Query(kind byte, body []byte, _ int64) module.Answer {
	r := &module.Reader{B: body}
	var a Answer
	switch kind {
	case QueryStats:
		if err := r.Done("job stats"); err != nil {
			return module.Refuse(module.Invalid, err)
		}
		return module.Answer{Value: Stats{Counts: m.t.Counts(), Counters: m.t.Counters()}}
	case QueryGet:
		id := ID(r.Uvarint())
		if err := r.Done("job get"); err != nil {
			return module.Refuse(module.Invalid, err)
		}
		j, ok := m.t.Get(id)
		if !ok {
			return refusal(fmt.Errorf("%w: %d", ErrNotFound, id))
		}
		a.Job = j
	case QueryList, QueryDead:
		state := Dead
		if kind == QueryList {
			state = State(r.Uvarint())
		}
		after, n := ID(r.Uvarint()), r.Uvarint()
		keyed := kind == QueryList && len(r.B) > 0 // ListKeyed: a key prefix follows
		var prefix string
		if keyed {
			prefix = r.String()
		}
		if err := r.Done("job list"); err != nil {
			return module.Refuse(module.Invalid, err)
		}
		if state == 0 || state >= stateEnd {
			return module.Refuse(module.Invalid, fmt.Errorf("%w: unknown state %d", errInvalid, state))
		}
		if n == 0 || n > uint64(m.t.limits.ListMax) {
			n = uint64(m.t.limits.ListMax)
		}
		if keyed {
			a.Jobs, a.Next = m.t.ListKeyed(state, after, int(n), prefix)
		} else {
			a.Jobs, a.Next = m.t.List(state, after, int(n))
		}
	}
	return module.Answer{Data: a.Encode(), Value: a}
}

func jobKey(id ID) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), prefixJob...), uint64(id))
}

// save writes job id's record and notes the change for the report.
func (m *Module) save(b *storage.Batch, id ID) {
	m.note(id)
	m.write(b, id)
}

// write writes job id's record, or deletes it when the job is gone.
func (m *Module) write(b *storage.Batch, id ID) {
	j := m.t.jobs[id]
	if j == nil {
		b.Delete(jobKey(id))
		return
	}
	b.Put(jobKey(id), appendJob(nil, j))
}

func (m *Module) persistMeta(b *storage.Batch) {
	b.Put(keyMeta, binary.AppendUvarint(binary.AppendUvarint(nil, uint64(m.t.last)), m.t.graceTerm))
}

// Persist writes every record of the table.
func (m *Module) Persist(b *storage.Batch) {
	m.persistMeta(b)
	for _, id := range m.t.ids() {
		m.write(b, id)
	}
}

// Clear deletes every record of the table.
func (m *Module) Clear(b *storage.Batch) {
	b.Delete(keyMeta)
	for _, id := range m.t.ids() {
		b.Delete(jobKey(id))
	}
}

// Load reads the records.
func (m *Module) Load(disk storage.Reader) error {
	t := New(m.t.limits)
	err := module.ScanRecords(disk, keyMeta, func(_, v []byte) error {
		r := &module.Reader{B: v}
		t.last, t.graceTerm = ID(r.Uvarint()), r.Uvarint()
		return r.Done("job meta")
	})
	if err == nil {
		err = module.ScanRecords(disk, prefixJob, func(k, v []byte) error {
			r := &module.Reader{B: v}
			j := readJob(r)
			if len(k) != 8 || binary.BigEndian.Uint64(k) != uint64(j.ID) {
				r.Fail("job record key %x holds job %d", k, j.ID)
			}
			checkJob(r, t, &j)
			if err := r.Done("job record"); err != nil {
				return err
			}
			t.insert(&j)
			return nil
		})
	}
	if err != nil {
		return err
	}
	t.counters = m.t.counters // what this replica applied, not the records' state
	m.t, m.asked = t, map[ID]int64{}
	m.Forget()
	return nil
}

// Freeze encodes the table now.
func (m *Module) Freeze() module.Frozen { return module.Encoded(m.t.Encode()) }

// Restore replaces the table with a snapshot's; a snapshot from before jobs
// has none, and restores an empty table.
func (m *Module) Restore(section []byte) error {
	t := New(m.t.limits)
	if len(section) > 0 {
		var err error
		if t, err = Decode(section, m.t.limits); err != nil {
			return err
		}
	}
	t.counters = m.t.counters // what this replica applied, not the snapshot's state
	m.t, m.asked = t, map[ID]int64{}
	m.Forget()
	return nil
}

func (m *Module) DecodeAnswer(data []byte) (any, error) { return DecodeAnswer(data) }
