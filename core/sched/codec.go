package sched

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/aspen-db/aspen/core/jobs"
	"github.com/aspen-db/aspen/core/module"
)

// Encodings, field by field (strings and bytes length-prefixed):
//
//	def:      name | spec | zone | job type | payload | priority varint |
//	          attempts max varint | backoff base varint | backoff max varint |
//	          timeout varint | overlap uvarint | catch-up uvarint | run-all max uvarint
//	schedule: def | paused byte | created varint | last tick varint |
//	          next tick varint | last job uvarint | buffered varint | fired uvarint |
//	          missed uvarint | missed capped byte | skipped uvarint
//	fire:     tick varint | at varint | outcome uvarint | job uvarint | missed uvarint
//	record:   schedule | fire count uvarint | fires (oldest first)
//	snapshot: schedule count uvarint | records in name order
//
// Commands: add is a def; pause, resume, remove, get and history a name;
// list after-name | n uvarint; the leader's fire count uvarint | (name | tick varint)...
// The section's version is the module's (Module.Version).

// ErrCorrupt marks a snapshot or record that does not decode.
var ErrCorrupt = errors.New("schedule table does not decode")

func appendDef(b []byte, d *Def) []byte {
	for _, s := range []string{d.Name, d.Spec, d.Zone, d.Job.Type} {
		b = module.AppendBytes(b, []byte(s))
	}
	b = module.AppendBytes(b, d.Job.Payload)
	for _, v := range []int64{d.Job.Priority, d.Job.AttemptsMax, d.Job.BackoffBaseNs, d.Job.BackoffMaxNs, d.Job.TimeoutNs} {
		b = binary.AppendVarint(b, v)
	}
	for _, v := range []uint64{uint64(d.Overlap), uint64(d.CatchUp), uint64(d.RunAllMax)} {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

func readDef(r *module.Reader) Def {
	d := Def{Name: r.String(), Spec: r.String(), Zone: r.String()}
	d.Job.Type, d.Job.Payload = r.String(), cloneBytes(r.Bytes())
	d.Job.Priority, d.Job.AttemptsMax, d.Job.BackoffBaseNs, d.Job.BackoffMaxNs, d.Job.TimeoutNs = r.Varint(), r.Varint(), r.Varint(), r.Varint(), r.Varint()
	overlap, catchUp, runAll := r.Uvarint(), r.Uvarint(), r.Uvarint()
	if overlap > 255 || catchUp > 255 || runAll > RunAllMax {
		r.Fail("policy %d/%d/%d out of range", overlap, catchUp, runAll)
	}
	d.Overlap, d.CatchUp, d.RunAllMax = Overlap(overlap), CatchUp(catchUp), int(runAll)
	return d
}

func cloneBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

func appendFlag(b []byte, f bool) []byte {
	if f {
		return append(b, 1)
	}
	return append(b, 0)
}

func readFlag(r *module.Reader, what string) bool {
	f := r.Uvarint()
	if f > 1 {
		r.Fail("%s flag %d", what, f)
	}
	return f == 1
}

func appendSchedule(b []byte, s *Schedule) []byte {
	b = appendFlag(appendDef(b, &s.Def), s.Paused)
	for _, v := range []int64{s.CreatedNs, s.LastTickNs, s.NextTickNs} {
		b = binary.AppendVarint(b, v)
	}
	b = binary.AppendUvarint(b, uint64(s.LastJob))
	b = binary.AppendVarint(b, s.BufferedNs)
	b = binary.AppendUvarint(binary.AppendUvarint(b, s.Fired), s.Missed)
	return binary.AppendUvarint(appendFlag(b, s.MissedCapped), s.Skipped)
}

func readSchedule(r *module.Reader) Schedule {
	s := Schedule{Def: readDef(r), Paused: readFlag(r, "paused")}
	s.CreatedNs, s.LastTickNs, s.NextTickNs = r.Varint(), r.Varint(), r.Varint()
	s.LastJob, s.BufferedNs = jobs.ID(r.Uvarint()), r.Varint()
	s.Fired, s.Missed, s.MissedCapped, s.Skipped = r.Uvarint(), r.Uvarint(), readFlag(r, "missed capped"), r.Uvarint()
	return s
}

func appendFire(b []byte, f Fire) []byte {
	b = binary.AppendVarint(binary.AppendVarint(b, f.TickNs), f.AtNs)
	b = binary.AppendUvarint(b, uint64(f.Outcome))
	return binary.AppendUvarint(binary.AppendUvarint(b, uint64(f.Job)), f.Missed)
}

func readFire(r *module.Reader) Fire {
	f := Fire{TickNs: r.Varint(), AtNs: r.Varint()}
	o := r.Uvarint()
	if r.Err == nil && (o == 0 || o >= uint64(fireOutcomeEnd)) {
		r.Fail("fire outcome %d", o)
	}
	f.Outcome, f.Job, f.Missed = FireOutcome(o), jobs.ID(r.Uvarint()), r.Uvarint()
	return f
}

func appendFires(b []byte, fs []Fire) []byte {
	b = binary.AppendUvarint(b, uint64(len(fs)))
	for _, f := range fs {
		b = appendFire(b, f)
	}
	return b
}

func readFires(r *module.Reader, max int) []Fire {
	n := r.Count()
	if n > max {
		r.Fail("%d fires, at most %d", n, max)
	}
	var fs []Fire
	for ; n > 0 && r.Err == nil; n-- {
		fs = append(fs, readFire(r))
	}
	return fs
}

// appendRecord encodes a schedule with its history (records, snapshots).
func appendRecord(b []byte, e *entry) []byte {
	return appendFires(appendSchedule(b, &e.Schedule), e.history)
}

// readRecord decodes what appendRecord wrote and checks it against t: a
// schedule no sequence of commands could have made fails r.
func (t *Table) readRecord(r *module.Reader) *entry {
	e := &entry{Schedule: readSchedule(r)}
	e.history = readFires(r, HistoryMax)
	if r.Err != nil {
		return nil
	}
	spec, err := t.checkDefShape(e.Def)
	switch {
	case err != nil:
		r.Fail("schedule %q: %v", e.Name, err)
	case t.all[e.Name] != nil:
		r.Fail("schedule %q repeated", e.Name)
	case e.BufferedNs != 0 && (e.Overlap != OverlapBufferOne || e.BufferedNs > e.LastTickNs):
		r.Fail("schedule %q buffers tick %d", e.Name, e.BufferedNs)
	case e.LastTickNs < e.CreatedNs:
		r.Fail("schedule %q last tick %d before its creation %d", e.Name, e.LastTickNs, e.CreatedNs)
	}
	if r.Err != nil {
		return nil
	}
	e.spec = spec
	return e
}

// checkDefShape checks what CheckDef checks without the job queue's limits,
// which a restarted node may have changed (the queue refuses at fire time).
func (t *Table) checkDefShape(d Def) (Spec, error) {
	if err := t.checkName(d.Name); err != nil {
		return Spec{}, err
	}
	spec, err := Parse(d.Spec, d.Zone, t.zones)
	switch {
	case err != nil:
		return Spec{}, err
	case d.Overlap < OverlapSkip || d.Overlap > OverlapAllow || d.CatchUp < CatchUpSkip || d.CatchUp > CatchUpRunAll:
		return Spec{}, fmt.Errorf("policies %d/%d", d.Overlap, d.CatchUp)
	case (d.CatchUp == CatchUpRunAll) != (d.RunAllMax > 0):
		return Spec{}, fmt.Errorf("run-all bound %d with catch-up %v", d.RunAllMax, d.CatchUp)
	}
	return spec, nil
}

// load adds a decoded schedule, anchoring its spec at its creation.
func (t *Table) load(e *entry) {
	e.spec = e.spec.WithAnchor(time.Unix(0, e.CreatedNs))
	t.insert(e)
}

// Encode returns the table's snapshot encoding; equal tables encode equally.
func (t *Table) Encode() []byte {
	b := binary.AppendUvarint(nil, uint64(len(t.all)))
	t.names.Ascend(func(name string) bool {
		b = appendRecord(b, t.all[name])
		return true
	})
	return b
}

// Decode builds a table from Encode's output. Counts larger than the bytes
// left, repeated names, impossible schedules and trailing bytes are errors.
func Decode(b []byte, limits Limits, zones *Zones) (*Table, error) {
	r := &module.Reader{B: b}
	t := NewTable(limits, zones)
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		if e := t.readRecord(r); e != nil {
			t.load(e)
		}
	}
	if err := r.Done("schedule table"); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return t, nil
}

// entryHash digests one schedule with its history.
func entryHash(e *entry) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range appendRecord(nil, e) {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return mix64(h)
}

// mix64 is MurmurHash3's finalizer: every input bit reaches every output bit.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb93fe53e1a87
	h ^= h >> 33
	return h
}

// Add asks to add a schedule.
func Add(d Def) module.Command { return module.Command{Kind: CmdAdd, Body: appendDef(nil, &d)} }

// Pause asks to stop schedule name firing.
func Pause(name string) module.Command { return nameCommand(CmdPause, name) }

// Resume asks to let schedule name fire again, from now.
func Resume(name string) module.Command { return nameCommand(CmdResume, name) }

// Remove asks to delete schedule name.
func Remove(name string) module.Command { return nameCommand(CmdRemove, name) }

// Get asks for schedule name.
func Get(name string) module.Command { return nameCommand(QueryGet, name) }

// History asks for schedule name's recent fires, oldest first.
func History(name string) module.Command { return nameCommand(QueryHistory, name) }

// List asks for at most n schedules named after after (n 0: the limit's most).
func List(after string, n int) module.Command {
	return module.Command{Kind: QueryList, Body: binary.AppendUvarint(module.AppendBytes(nil, []byte(after)), uint64(n))}
}

func nameCommand(kind byte, name string) module.Command {
	return module.Command{Kind: kind, Body: module.AppendBytes(nil, []byte(name))}
}

// fireRef names one tick of one schedule in the leader's fire command.
type fireRef struct {
	name   string
	tickNs int64
}

func fireCommand(fs []fireRef) module.Command {
	b := binary.AppendUvarint(nil, uint64(len(fs)))
	for _, f := range fs {
		b = binary.AppendVarint(module.AppendBytes(b, []byte(f.name)), f.tickNs)
	}
	return module.Command{Kind: CmdFire, Body: b}
}

func decodeFire(body []byte) ([]fireRef, error) {
	r := &module.Reader{B: body}
	var fs []fireRef
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		fs = append(fs, fireRef{name: r.String(), tickNs: r.Varint()})
	}
	return fs, r.Done("schedule fire")
}

func decodeDef(body []byte) (Def, error) {
	r := &module.Reader{B: body}
	d := readDef(r)
	return d, done(r, "schedule add")
}

func decodeName(body []byte, what string) (string, error) {
	r := &module.Reader{B: body}
	name := r.String()
	return name, done(r, what)
}

func done(r *module.Reader, what string) error {
	if err := r.Done(what); err != nil {
		return fmt.Errorf("%w: %v", errInvalid, err)
	}
	return nil
}

// Answer is the reply to a schedule command or query.
type Answer struct {
	Schedule  Schedule   // add, pause, resume, remove, get
	Schedules []Schedule // list: a page
	Next      string     // list: pass as after for the next page; "" at the end
	History   []Fire     // history: oldest first
}

// answerVersion opens an encoded answer (and keeps it clear of the host's
// refusal mark, module.Answer).
const answerVersion = 1

// Encode lays the answer out field by field.
func (a Answer) Encode() []byte {
	b := appendSchedule([]byte{answerVersion}, &a.Schedule)
	b = binary.AppendUvarint(b, uint64(len(a.Schedules)))
	for i := range a.Schedules {
		b = appendSchedule(b, &a.Schedules[i])
	}
	b = module.AppendBytes(b, []byte(a.Next))
	return appendFires(b, a.History)
}

// DecodeAnswer reads what Answer.Encode wrote.
func DecodeAnswer(b []byte) (Answer, error) {
	if len(b) == 0 || b[0] != answerVersion {
		return Answer{}, fmt.Errorf("schedule answer: %w: version", module.ErrMalformed)
	}
	r := &module.Reader{B: b[1:]}
	a := Answer{Schedule: readSchedule(r)}
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		a.Schedules = append(a.Schedules, readSchedule(r))
	}
	a.Next, a.History = r.String(), readFires(r, HistoryMax)
	return a, r.Done("schedule answer")
}
