package sched

import (
	"errors"
	"fmt"

	"github.com/aspen-db/aspen/core/assert"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
)

// Command kinds of the schedule module. Clients send the first four; the
// leader proposes fires itself (Due). Queries are served after a ReadIndex
// and never reach the log.
const (
	CmdAdd    byte = 48
	CmdPause  byte = 49
	CmdResume byte = 50
	CmdRemove byte = 51
	CmdFire   byte = 52 // the leader's

	QueryGet     byte = 56
	QueryList    byte = 57
	QueryHistory byte = 58
)

// Records on disk: one per schedule, with its history.
var (
	prefix         = []byte("s/")
	prefixSchedule = []byte("s/s/")
)

// Bounds on the leader's own proposals.
const (
	fireBatchMax   = 64  // ticks one fire command names
	proposeRetryNs = 1e9 // a proposal not applied after this is made again
)

// Module is the schedule table as a replicated module. It creates jobs
// through the job queue (Jobs), in the apply of the fire that makes them.
type Module struct {
	t     *Table
	jobs  Jobs
	zones *Zones // this instance's own: never shared with another module

	// The leader's memory of what it proposed and when, so it does not
	// propose the same tick every tick. Not replicated: a new leader starts
	// with none, and applying a fire twice creates nothing twice.
	asked map[string]asked

	changed []Change // what the command being applied changed (report.go)
	report  bool     // keep changed (module.Reporter)
	planted planted  // defects tests plant (planted_bugs.go); empty otherwise
}

type asked struct {
	nextNs, tickNs, atNs int64
}

// NewModule returns an empty schedule table that creates jobs through q.
func NewModule(limits Limits, q Jobs) *Module {
	z := &Zones{}
	return &Module{t: NewTable(limits, z), jobs: q, zones: z, asked: map[string]asked{}}
}

// Table exposes the schedule table, for the host's status and for checkers.
func (m *Module) Table() *Table { return m.t }

func (m *Module) Name() string    { return "schedules" }
func (m *Module) Version() uint64 { return 1 }
func (m *Module) Kinds() []byte {
	return []byte{CmdAdd, CmdPause, CmdResume, CmdRemove, CmdFire}
}
func (m *Module) QueryKinds() []byte { return []byte{QueryGet, QueryList, QueryHistory} }
func (m *Module) Prefixes() [][]byte { return [][]byte{prefix} }
func (m *Module) Hash() uint64       { return m.t.Hash() }

// Validate refuses malformed definitions and commands before they are
// proposed, and the leader's fire from clients.
func (m *Module) Validate(kind byte, body []byte) module.Answer {
	var err error
	switch kind {
	case CmdAdd:
		var d Def
		if d, err = decodeDef(body); err == nil {
			_, err = m.t.CheckDef(d, m.jobs)
		}
	case CmdPause, CmdResume, CmdRemove:
		var name string
		if name, err = decodeName(body, "schedule name"); err == nil {
			err = m.t.checkName(name)
		}
	default:
		err = fmt.Errorf("%w: schedule command %d is the leader's own", errInvalid, kind)
	}
	if err != nil {
		return refusal(err)
	}
	return module.Answer{}
}

// Apply applies one schedule command at the replicated time env.NowNs.
func (m *Module) Apply(env *module.Env, kind byte, body []byte) module.Answer {
	if kind == CmdFire {
		fs, err := decodeFire(body)
		assert.That(err == nil, "schedule fire at %d does not decode: %v", env.Index, err)
		fenv := *env
		fenv.NowNs = m.plantFireNow(env.NowNs)
		for _, f := range fs {
			if m.t.Fire(&fenv, m.jobs, f.name, f.tickNs) {
				m.save(env.Batch, f.name)
				m.note(f.name)
			}
			delete(m.asked, f.name)
		}
		return module.Answer{}
	}
	var s Schedule
	var err error
	if kind == CmdAdd {
		d, derr := decodeDef(body)
		assert.That(derr == nil, "schedule add at %d does not decode: %v", env.Index, derr)
		var spec Spec
		if spec, err = m.t.CheckDef(d, m.jobs); err == nil {
			s, err = m.t.Add(d, spec, env.NowNs)
		}
	} else {
		name, derr := decodeName(body, "schedule name")
		assert.That(derr == nil, "schedule command %d at %d does not decode: %v", kind, env.Index, derr)
		switch kind {
		case CmdPause:
			s, err = m.t.Pause(name)
		case CmdResume:
			s, err = m.t.Resume(name, env.NowNs)
		case CmdRemove:
			s, err = m.t.Remove(name)
		}
	}
	if err != nil {
		return refusal(err)
	}
	m.save(env.Batch, s.Name)
	m.note(s.Name)
	delete(m.asked, s.Name)
	return answer(Answer{Schedule: s})
}

// refusal maps the table's errors onto outcomes; the job queue's come as
// *module.Error and keep theirs.
func refusal(err error) module.Answer {
	var me *module.Error
	switch {
	case errors.As(err, &me):
		return module.Refuse(me.Outcome, err)
	case errors.Is(err, ErrNotFound):
		return module.Refuse(module.NotFound, err)
	case errors.Is(err, ErrExists):
		return module.Refuse(module.Conflict, err)
	case errors.Is(err, ErrFull), errors.Is(err, errTooLarge):
		return module.Refuse(module.TooLarge, err)
	}
	return module.Refuse(module.Invalid, err)
}

func answer(a Answer) module.Answer { return module.Answer{Data: a.Encode(), Value: a} }

// Due proposes, on the leader, a fire for each unpaused schedule whose next
// tick its clock has passed, naming the latest due tick (apply runs the
// catch-up policy over the ticks before it), and the release of buffered
// ticks whose previous job has ended. Idle schedules cost one look at the
// earliest next tick.
func (m *Module) Due(l module.Leader) []module.Command {
	var fs []fireRef
	m.t.DueBy(l.NowNs, func(name string, nextNs int64) bool {
		if a, ok := m.asked[name]; ok && a.nextNs == nextNs && l.NowNs-a.atNs < proposeRetryNs {
			return true
		}
		tick, ok := m.t.LatestDue(name, l.NowNs)
		if !ok {
			return true
		}
		m.asked[name] = asked{nextNs: nextNs, tickNs: tick, atNs: l.NowNs}
		fs = append(fs, fireRef{name, tick})
		return len(fs) < fireBatchMax
	})
	if len(fs) < fireBatchMax {
		m.t.Releasable(m.jobs, func(name string, tickNs int64) bool {
			if a, ok := m.asked[name]; ok && a.tickNs == tickNs && l.NowNs-a.atNs < proposeRetryNs {
				return true
			}
			m.asked[name] = asked{tickNs: tickNs, atNs: l.NowNs}
			fs = append(fs, fireRef{name, tickNs})
			return len(fs) < fireBatchMax
		})
	}
	if len(fs) == 0 {
		return nil
	}
	return []module.Command{fireCommand(fs)}
}

// Query answers get, list and history reads.
func (m *Module) Query(kind byte, body []byte, _ int64) module.Answer {
	var a Answer
	if kind == QueryList {
		r := &module.Reader{B: body}
		after, n := r.String(), r.Uvarint()
		if err := done(r, "schedule list"); err != nil {
			return refusal(err)
		}
		if n == 0 || n > uint64(m.t.limits.ListMax) {
			n = uint64(m.t.limits.ListMax)
		}
		a.Schedules, a.Next = m.t.List(after, int(n))
		return answer(a)
	}
	name, err := decodeName(body, "schedule query")
	if err != nil {
		return refusal(err)
	}
	s, h, ok := m.t.Get(name)
	if !ok {
		return refusal(fmt.Errorf("%w: %q", ErrNotFound, name))
	}
	if kind == QueryHistory {
		a.History = h
	} else {
		a.Schedule = s
	}
	return answer(a)
}

func scheduleKey(name string) []byte {
	return append(append(make([]byte, 0, len(prefixSchedule)+len(name)), prefixSchedule...), name...)
}

// save writes schedule name's record, or deletes it when the schedule is gone.
func (m *Module) save(b *storage.Batch, name string) {
	e := m.t.all[name]
	if e == nil {
		b.Delete(scheduleKey(name))
		return
	}
	b.Put(scheduleKey(name), appendRecord(nil, e))
}

// Persist writes every record of the table.
func (m *Module) Persist(b *storage.Batch) {
	m.t.names.Ascend(func(name string) bool {
		m.save(b, name)
		return true
	})
}

// Clear deletes every record of the table.
func (m *Module) Clear(b *storage.Batch) {
	m.t.names.Ascend(func(name string) bool {
		b.Delete(scheduleKey(name))
		return true
	})
}

// Load reads the records.
func (m *Module) Load(disk storage.Reader) error {
	t := NewTable(m.t.limits, m.zones)
	err := module.ScanRecords(disk, prefixSchedule, func(name, payload []byte) error {
		r := &module.Reader{B: payload}
		e := t.readRecord(r)
		if r.Err == nil && e.Name != string(name) {
			r.Fail("schedule record %q holds %q", name, e.Name)
		}
		if err := r.Done("schedule record"); err != nil {
			return err
		}
		t.load(e)
		return nil
	})
	if err != nil {
		return err
	}
	t.counters = m.t.counters // what this replica applied, not the records' state
	m.t, m.asked = t, map[string]asked{}
	return nil
}

// Freeze encodes the table now.
func (m *Module) Freeze() module.Frozen { return module.Encoded(m.t.Encode()) }

// Restore replaces the table with a snapshot's; a snapshot from before
// schedules has none, and restores an empty table.
func (m *Module) Restore(section []byte) error {
	t := NewTable(m.t.limits, m.zones)
	if len(section) > 0 {
		var err error
		if t, err = Decode(section, m.t.limits, m.zones); err != nil {
			return err
		}
	}
	t.counters = m.t.counters // what this replica applied, not the snapshot's state
	m.t, m.asked = t, map[string]asked{}
	return nil
}

func (m *Module) DecodeAnswer(data []byte) (any, error) { return DecodeAnswer(data) }
