package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/aspen-db/aspen/core/assert"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
)

// Command kinds of the audit module. Workers append; list and head are
// queries.
const (
	CmdAppend byte = 72

	QueryList byte = 76
)

// Records on disk: one per record by sequence number, and the head.
var (
	prefix       = []byte("a/")
	prefixRecord = []byte("a/r/")
	keyHead      = []byte("a/h")
)

// Bounds.
const (
	argvMax           = 256
	argBytesMax       = 4 << 10
	appendBytesMax    = 64 << 10
	ListMax           = 1000 // records one list answers
	recordsMaxDefault = 50_000
)

// Limits bounds the log. When an append would take it past RecordsMax, the
// oldest PruneBatch records go, and a checkpoint record naming the last of
// them (and its hash) is appended first, so the chain that is left still
// verifies from its first record.
type Limits struct {
	RecordsMax int
	PruneBatch int
}

// DefaultLimits keeps 50,000 records and prunes an eighth at a time.
func DefaultLimits() Limits {
	return Limits{RecordsMax: recordsMaxDefault, PruneBatch: recordsMaxDefault / 8}
}

// Module is the audit log as a replicated module.
type Module struct {
	limits  Limits
	records []Record // oldest first, consecutive
	head    Head
}

// NewModule returns an empty log.
func NewModule(limits Limits) *Module {
	assert.That(limits.PruneBatch >= 1 && limits.RecordsMax >= limits.PruneBatch+2, "audit limits %+v", limits)
	return &Module{limits: limits}
}

func (m *Module) Name() string       { return "audit" }
func (m *Module) Version() uint64    { return 1 }
func (m *Module) Kinds() []byte      { return []byte{CmdAppend} }
func (m *Module) QueryKinds() []byte { return []byte{QueryList} }
func (m *Module) Prefixes() [][]byte { return [][]byte{prefix} }

// Append asks to append one execution's record.
func Append(e Exec) module.Command { return module.Command{Kind: CmdAppend, Body: appendExec(nil, e)} }

// List asks for up to n records after sequence number after, with the head.
func List(after uint64, n int) module.Command {
	return module.Command{Kind: QueryList, Body: binary.AppendUvarint(binary.AppendUvarint(nil, after), uint64(n))}
}

// Validate refuses malformed or oversized appends before they are proposed.
func (m *Module) Validate(kind byte, body []byte) module.Answer {
	if kind != CmdAppend {
		return module.Refuse(module.Invalid, fmt.Errorf("audit command %d unknown", kind))
	}
	if len(body) > appendBytesMax {
		return module.Refuse(module.TooLarge, fmt.Errorf("audit record of %d bytes, at most %d", len(body), appendBytesMax))
	}
	r := &module.Reader{B: body}
	e := readExec(r)
	if err := r.Done("audit append"); err != nil {
		return module.Refuse(module.Invalid, err)
	}
	if len(e.Argv) == 0 || len(e.Argv) > argvMax {
		return module.Refuse(module.Invalid, fmt.Errorf("argv must have 1 to %d elements, got %d", argvMax, len(e.Argv)))
	}
	for _, a := range e.Argv {
		if len(a) > argBytesMax {
			return module.Refuse(module.TooLarge, fmt.Errorf("argument of %d bytes, at most %d", len(a), argBytesMax))
		}
	}
	if len(e.OutputSHA) != 0 && len(e.OutputSHA) != sha256.Size {
		return module.Refuse(module.Invalid, fmt.Errorf("output digest of %d bytes, want %d or none", len(e.OutputSHA), sha256.Size))
	}
	return module.Answer{}
}

// Apply appends a record at replicated time env.NowNs, pruning first when
// the log is full.
func (m *Module) Apply(env *module.Env, kind byte, body []byte) module.Answer {
	r := &module.Reader{B: body}
	e := readExec(r)
	assert.That(r.Done("audit append") == nil, "audit append at %d does not decode", env.Index)
	if len(m.records)+2 > m.limits.RecordsMax {
		m.prune(env)
	}
	rec := m.link(env, Record{Kind: KindExec, Exec: e})
	a := Answer{Records: []Record{rec}, Head: m.head}
	return module.Answer{Data: a.Encode(), Value: a}
}

// prune drops the oldest records and appends a checkpoint naming the last.
func (m *Module) prune(env *module.Env) {
	n := min(m.limits.PruneBatch, len(m.records))
	last := m.records[n-1]
	for _, r := range m.records[:n] {
		env.Batch.Delete(recordKey(r.Seq))
	}
	m.records = slices.Clone(m.records[n:])
	m.link(env, Record{Kind: KindCheckpoint, PrunedSeq: last.Seq, PrunedHash: last.Hash})
}

// link chains rec after the head and stores it.
func (m *Module) link(env *module.Env, rec Record) Record {
	rec.Seq, rec.Prev, rec.AppliedNs = m.head.Seq+1, m.head.Hash, env.NowNs
	rec.Hash = rec.ComputeHash()
	m.records = append(m.records, rec)
	m.head = Head{Seq: rec.Seq, Hash: rec.Hash}
	env.Batch.Put(recordKey(rec.Seq), rec.Encode())
	env.Batch.Put(keyHead, encodeHead(m.head))
	return rec
}

// Query answers a list: records after a sequence number, at most ListMax.
func (m *Module) Query(kind byte, body []byte, _ int64) module.Answer {
	r := &module.Reader{B: body}
	after, n := r.Uvarint(), r.Uvarint()
	if err := r.Done("audit list"); err != nil {
		return module.Refuse(module.Invalid, err)
	}
	if n == 0 || n > ListMax {
		n = ListMax
	}
	i, _ := slices.BinarySearchFunc(m.records, after+1, func(r Record, seq uint64) int {
		return compare(r.Seq, seq)
	})
	end := min(len(m.records), i+int(n))
	a := Answer{Records: m.records[i:end], Head: m.head}
	return module.Answer{Data: a.Encode(), Value: a}
}

func compare(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Answer is the reply to an append (the record appended) or a list.
type Answer struct {
	Records []Record
	Head    Head
}

const answerVersion = 1

// Encode lays the answer out record by record.
func (a Answer) Encode() []byte {
	b := binary.AppendUvarint([]byte{answerVersion}, uint64(len(a.Records)))
	for i := range a.Records {
		b = module.AppendBytes(b, a.Records[i].Encode())
	}
	return append(b, encodeHead(a.Head)...)
}

// DecodeAnswer reads what Answer.Encode wrote.
func DecodeAnswer(b []byte) (Answer, error) {
	if len(b) == 0 || b[0] != answerVersion {
		return Answer{}, fmt.Errorf("audit answer: %w: version", module.ErrMalformed)
	}
	r := &module.Reader{B: b[1:]}
	var a Answer
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		rec, err := DecodeRecord(r.Bytes())
		if err != nil {
			return Answer{}, err
		}
		a.Records = append(a.Records, rec)
	}
	a.Head = readHead(r)
	return a, r.Done("audit answer")
}

func (m *Module) DecodeAnswer(data []byte) (any, error) { return DecodeAnswer(data) }

func encodeHead(h Head) []byte { return append(binary.AppendUvarint(nil, h.Seq), h.Hash[:]...) }

func readHead(r *module.Reader) Head {
	h := Head{Seq: r.Uvarint()}
	readHash(r, &h.Hash)
	return h
}

func recordKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(slices.Clip(prefixRecord), seq)
}

// Hash digests the head, which chains every record ever appended.
func (m *Module) Hash() uint64 {
	return binary.BigEndian.Uint64(m.head.Hash[:8]) ^ m.head.Seq ^ uint64(len(m.records))<<32
}

// Persist writes every record and the head.
func (m *Module) Persist(b *storage.Batch) {
	for i := range m.records {
		b.Put(recordKey(m.records[i].Seq), m.records[i].Encode())
	}
	b.Put(keyHead, encodeHead(m.head))
}

// Clear deletes every record and the head.
func (m *Module) Clear(b *storage.Batch) {
	for i := range m.records {
		b.Delete(recordKey(m.records[i].Seq))
	}
	b.Delete(keyHead)
}

// Load reads the records and the head back as they are on disk. It does not
// verify the chain: a record altered on disk is for Verify (aspen audit
// verify) to report, and a node that refused to start would hide it.
func (m *Module) Load(disk storage.Reader) error {
	var recs []Record
	var head Head
	err := disk.Scan(prefix, func(key, v []byte) error {
		payload, err := storage.Open(key, v)
		if err != nil {
			return err
		}
		r := &module.Reader{B: payload}
		switch {
		case string(key) == string(keyHead):
			head = readHead(r)
			err = r.Done("audit head")
		case len(key) == len(prefixRecord)+8:
			var rec Record
			if rec, err = DecodeRecord(payload); err == nil && rec.Seq != binary.BigEndian.Uint64(key[len(prefixRecord):]) {
				err = fmt.Errorf("record %d stored as %x", rec.Seq, key)
			}
			recs = append(recs, rec)
		default:
			err = fmt.Errorf("unknown key")
		}
		if err != nil {
			return fmt.Errorf("%w: audit %q: %v", storage.ErrCorrupt, key, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	m.records, m.head = recs, head
	return nil
}

// Freeze keeps the records as of now (they are never changed in place;
// prune copies) and encodes them on demand.
func (m *Module) Freeze() module.Frozen {
	return Answer{Records: m.records[:len(m.records):len(m.records)], Head: m.head}
}

// Restore replaces the log with a snapshot's; a snapshot from before the
// audit log has none, and restores an empty one.
func (m *Module) Restore(section []byte) error {
	var a Answer
	if len(section) > 0 {
		var err error
		if a, err = DecodeAnswer(section); err != nil {
			return err
		}
	}
	m.records, m.head = a.Records, a.Head
	return nil
}
