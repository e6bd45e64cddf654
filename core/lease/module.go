package lease

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/aspen-db/aspen/core/assert"
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
)

// Command kinds of the lease module. Clients send the first three; the leader
// proposes expiries and its grace itself (Due). Queries are served after a
// ReadIndex and never reach the log.
const (
	CmdGrant     byte = 16
	CmdKeepAlive byte = 17
	CmdRevoke    byte = 18
	CmdExpire    byte = 19
	CmdGrace     byte = 20

	QueryTTL  byte = 24
	QueryList byte = 25
)

// Records on disk: one per lease, one per attached key, and the table's meta.
var (
	prefix       = []byte("e/")
	prefixLease  = []byte("e/l/")
	prefixAttach = []byte("e/k/")
	keyMeta      = []byte("e/m")
)

// Bounds on the leader's own proposals.
const (
	expireBatchMax = 64  // leases one expiry command names
	proposeRetryNs = 1e9 // a proposal not applied after this is made again
)

// Store is the KV store as leases need it (kv.Module provides it).
type Store interface {
	UseLeases(kv.Leases)
	// DeleteExpired deletes keys at one revision and returns it.
	DeleteExpired(env *module.Env, keys [][]byte, expired bool) int64
}

// Module is the lease table as a replicated module.
type Module struct {
	t     *Table
	store Store

	// The leader's memory of what it proposed and when, so it does not
	// propose the same thing every tick. Not replicated: a new leader starts
	// with none, and applying a proposal twice is harmless.
	asked      map[ID]int64
	graceAsked [2]int64 // term, time

	// ended holds the leases the command being applied ended, until the host
	// takes them for its applied records (TakeReport).
	ended  []End
	report bool // keep ended (module.Reporter)

	onEnd func(env *module.Env, id ID, expired bool) // told of every lease's end, if set
}

// OnEnd makes fn hear of every lease's end (expiry or revoke) in the apply
// that ends it, after its keys are deleted: core/locks ends a session whose
// lease ended.
func (m *Module) OnEnd(fn func(env *module.Env, id ID, expired bool)) { m.onEnd = fn }

// GrantIn grants a lease of ttlNs inside another module's apply, choosing
// its id, and persists it in env's batch.
func (m *Module) GrantIn(env *module.Env, ttlNs int64) (Lease, error) {
	l, err := m.t.Grant(0, ttlNs, env.NowNs)
	if err == nil {
		m.granted(env, l, nil)
	}
	return l, err
}

// KeepAliveIn renews a lease inside another module's apply.
func (m *Module) KeepAliveIn(env *module.Env, id ID) (Lease, error) {
	l, err := m.t.KeepAlive(id, env.NowNs)
	if err == nil {
		m.granted(env, l, nil)
	}
	return l, err
}

// RevokeIn ends a lease inside another module's apply, deleting its keys;
// OnEnd hears of it as of any other revoke.
func (m *Module) RevokeIn(env *module.Env, id ID) { m.revoke(env, id, false) }

// End is a lease's end as the host reports it to checkers: which lease,
// whether it expired (else a client revoked it), its TTL and deadline at the
// end, and the keys deleted with it at Revision (in order).
type End struct {
	ID         ID
	Expired    bool
	TTLNs      int64
	DeadlineNs int64
	Revision   int64
	Keys       [][]byte
}

// Report switches the report of ended leases on (module.Reporter).
func (m *Module) Report(on bool) { m.report = on }

// TakeReport returns the leases ended since the last call, as []End, or nil
// (module.Reporter).
func (m *Module) TakeReport() any {
	if len(m.ended) == 0 {
		return nil
	}
	e := m.ended
	m.ended = nil
	return e
}

// NewModule returns an empty lease table wired to the KV store.
func NewModule(limits Limits, store Store) *Module {
	m := &Module{t: New(limits), store: store, asked: map[ID]int64{}}
	store.UseLeases(m)
	return m
}

// Table exposes the lease table, for the host's status and for checkers.
func (m *Module) Table() *Table { return m.t }

func (m *Module) Name() string    { return "leases" }
func (m *Module) Version() uint64 { return 1 }
func (m *Module) Kinds() []byte {
	return []byte{CmdGrant, CmdKeepAlive, CmdRevoke, CmdExpire, CmdGrace}
}
func (m *Module) QueryKinds() []byte { return []byte{QueryTTL, QueryList} }
func (m *Module) Prefixes() [][]byte { return [][]byte{prefix} }
func (m *Module) Hash() uint64       { return m.t.Hash() }

// Grant asks for a lease of ttlNs; id 0 lets the table choose one.
func Grant(id ID, ttlNs int64) module.Command {
	return module.Command{Kind: CmdGrant, Body: binary.AppendVarint(binary.AppendVarint(nil, int64(id)), ttlNs)}
}

// KeepAlive asks to renew lease id for its whole TTL from now.
func KeepAlive(id ID) module.Command { return idCommand(CmdKeepAlive, id) }

// Revoke asks to end lease id now, deleting its keys.
func Revoke(id ID) module.Command { return idCommand(CmdRevoke, id) }

// TimeToLive asks what is left of lease id, and its keys when keys is set.
func TimeToLive(id ID, keys bool) module.Command {
	b := binary.AppendVarint(nil, int64(id))
	if keys {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return module.Command{Kind: QueryTTL, Body: b}
}

// List asks for every lease.
func List() module.Command { return module.Command{Kind: QueryList} }

func idCommand(kind byte, id ID) module.Command {
	return module.Command{Kind: kind, Body: binary.AppendVarint(nil, int64(id))}
}

// Validate refuses malformed commands and TTLs out of bounds before they are
// proposed.
func (m *Module) Validate(kind byte, body []byte) module.Answer {
	r := &module.Reader{B: body}
	switch kind {
	case CmdGrant:
		id, ttl := r.Varint(), r.Varint()
		if err := r.Done("grant"); err != nil {
			return module.Refuse(module.Invalid, err)
		}
		if id < 0 {
			return module.Refuse(module.Invalid, fmt.Errorf("lease id %d is negative", id))
		}
		if err := m.t.checkTTL(ttl); err != nil {
			return module.Refuse(module.Invalid, err)
		}
	case CmdKeepAlive, CmdRevoke:
		if id := r.Varint(); r.Err == nil && id <= 0 {
			return module.Refuse(module.Invalid, fmt.Errorf("lease id %d is not positive", id))
		}
		if err := r.Done("lease id"); err != nil {
			return module.Refuse(module.Invalid, err)
		}
	default:
		return module.Refuse(module.Invalid, fmt.Errorf("lease command %d is the leader's own", kind))
	}
	return module.Answer{}
}

// Apply applies one lease command at the replicated time env.NowNs.
func (m *Module) Apply(env *module.Env, kind byte, body []byte) module.Answer {
	r := &module.Reader{B: body}
	var a module.Answer
	switch kind {
	case CmdGrant:
		id, ttl := ID(r.Varint()), r.Varint()
		l, err := m.t.Grant(id, ttl, env.NowNs)
		a = m.granted(env, l, err)
	case CmdKeepAlive:
		l, err := m.t.KeepAlive(ID(r.Varint()), env.NowNs)
		a = m.granted(env, l, err)
	case CmdRevoke:
		a = m.revoke(env, ID(r.Varint()), false)
	case CmdExpire:
		for n := r.Count(); n > 0 && r.Err == nil; n-- {
			id := ID(r.Varint())
			// Expire only what is still past its deadline at this entry's
			// time: a keep-alive may have applied since the leader asked.
			if l, _, ok := m.t.Get(id); ok && l.ExpiryNs <= env.NowNs {
				m.revoke(env, id, true)
			}
		}
	case CmdGrace:
		term, by := r.Uvarint(), r.Varint()
		for _, id := range m.t.Extend(term, env.NowNs, by) {
			m.persistLease(env.Batch, id)
		}
		m.persistMeta(env.Batch)
	}
	assert.That(r.Done("lease command") == nil, "lease command %d at %d does not decode", kind, env.Index)
	return a
}

// granted answers a grant or keep-alive and persists the lease it touched.
func (m *Module) granted(env *module.Env, l Lease, err error) module.Answer {
	if err != nil {
		return refusal(err)
	}
	m.persistLease(env.Batch, l.ID)
	m.persistMeta(env.Batch)
	delete(m.asked, l.ID)
	a := Answer{Lease: l, RemainingNs: l.ExpiryNs - env.NowNs}
	return module.Answer{Data: a.Encode(), Value: a}
}

// revoke ends a lease and deletes its keys at one revision.
func (m *Module) revoke(env *module.Env, id ID, expired bool) module.Answer {
	e := m.t.leases[id]
	keys, err := m.t.Revoke(id)
	if err != nil {
		return refusal(err)
	}
	env.Batch.Delete(leaseKey(id))
	for _, k := range keys {
		env.Batch.Delete(attachKey(k))
	}
	delete(m.asked, id)
	a := Answer{Revision: m.store.DeleteExpired(env, keys, expired)}
	if m.report {
		m.ended = append(m.ended, End{ID: id, Expired: expired, TTLNs: e.ttl, DeadlineNs: e.expiry, Revision: a.Revision, Keys: keys})
	}
	if m.onEnd != nil {
		m.onEnd(env, id, expired)
	}
	return module.Answer{Data: a.Encode(), Value: a}
}

// refusal maps the table's errors onto outcomes.
func refusal(err error) module.Answer {
	switch {
	case errors.Is(err, ErrNotFound):
		return module.Refuse(module.NotFound, err)
	case errors.Is(err, ErrExists):
		return module.Refuse(module.Conflict, err)
	case errors.Is(err, ErrFull), errors.Is(err, ErrKeysFull):
		return module.Refuse(module.TooLarge, err)
	}
	return module.Refuse(module.Invalid, err)
}

// CheckAttach refuses puts naming a lease that does not exist or that the
// puts would fill past its bound (kv.Leases).
func (m *Module) CheckAttach(puts []kv.Op) error {
	if err := m.checkAttach(puts); err != nil {
		a := refusal(err)
		return &module.Error{Outcome: a.Outcome, Detail: a.Detail}
	}
	return nil
}

func (m *Module) checkAttach(puts []kv.Op) error {
	for i, op := range puts {
		if err := m.t.CanAttach(op.Key, ID(op.Lease)); err != nil {
			return err
		}
		// Several puts of one txn may add keys to one lease: count them all.
		added := 0
		for _, o := range puts[:i+1] {
			if o.Lease == op.Lease && m.t.Of(o.Key) != ID(op.Lease) {
				added++
			}
		}
		if l, _, _ := m.t.Get(ID(op.Lease)); l.Keys+added > m.t.limits.KeysPerLeaseMax {
			return fmt.Errorf("%w: %d keys", ErrKeysFull, l.Keys)
		}
	}
	return nil
}

// Attach ties key to lease id (0: none), recording it (kv.Leases).
func (m *Module) Attach(env *module.Env, key []byte, id int64) {
	if m.t.Of(key) == ID(id) {
		return
	}
	assert.That(m.t.Attach(key, ID(id)) == nil, "attach %q to lease %d after CheckAttach", key, id)
	if id == 0 {
		env.Batch.Delete(attachKey(key))
	} else {
		env.Batch.Put(attachKey(key), binary.AppendVarint(nil, id))
	}
}

// Due proposes, on the leader, its grace once per term, then the expiry of
// leases past their deadline on the leader's clock. No lease expires before
// the grace of the current leader applied, so keep-alives that a failover
// lost do not cost a healthy lease its life.
func (m *Module) Due(l module.Leader) []module.Command {
	if m.t.Len() == 0 {
		return nil // nothing to protect, nothing to expire: keep the log quiet
	}
	if m.t.GraceTerm() < l.Term {
		if m.graceAsked[0] == int64(l.Term) && l.NowNs-m.graceAsked[1] < proposeRetryNs {
			return nil
		}
		m.graceAsked = [2]int64{int64(l.Term), l.NowNs}
		b := binary.AppendUvarint(nil, l.Term)
		return []module.Command{{Kind: CmdGrace, Body: binary.AppendVarint(b, l.GraceNs)}}
	}
	var ids []ID
	for _, id := range m.t.Expired(l.NowNs, expireBatchMax+len(m.asked)) {
		if at, ok := m.asked[id]; ok && l.NowNs-at < proposeRetryNs {
			continue
		}
		m.asked[id] = l.NowNs
		if ids = append(ids, id); len(ids) == expireBatchMax {
			break
		}
	}
	if len(ids) == 0 {
		return nil
	}
	b := binary.AppendUvarint(nil, uint64(len(ids)))
	for _, id := range ids {
		b = binary.AppendVarint(b, int64(id))
	}
	return []module.Command{{Kind: CmdExpire, Body: b}}
}

// Query answers time-to-live and list reads at nowNs.
func (m *Module) Query(kind byte, body []byte, nowNs int64) module.Answer {
	r := &module.Reader{B: body}
	var a Answer
	switch kind {
	case QueryTTL:
		id, keys := ID(r.Varint()), r.Uvarint() == 1
		if err := r.Done("time-to-live query"); err != nil {
			return module.Refuse(module.Invalid, err)
		}
		l, ks, ok := m.t.Get(id)
		if !ok {
			return refusal(fmt.Errorf("%w: %d", ErrNotFound, id))
		}
		a = Answer{Lease: l, RemainingNs: max(0, l.ExpiryNs-nowNs)}
		if keys {
			a.Keys = ks
		}
	case QueryList:
		a.Leases = m.t.List()
	}
	return module.Answer{Data: a.Encode(), Value: a}
}

// Answer is the reply to a lease command or query.
type Answer struct {
	Lease       Lease    // grant, keep-alive, time-to-live
	RemainingNs int64    // grant, keep-alive, time-to-live: replicated time left
	Keys        [][]byte // time-to-live with keys: attached keys, in order
	Leases      []Lease  // list
	Revision    int64    // revoke: the revision that deleted the keys
}

func appendLease(b []byte, l Lease) []byte {
	b = binary.AppendVarint(b, int64(l.ID))
	b = binary.AppendVarint(b, l.TTLNs)
	b = binary.AppendVarint(b, l.ExpiryNs)
	return binary.AppendUvarint(b, uint64(l.Keys))
}

func readLease(r *module.Reader) Lease {
	return Lease{ID: ID(r.Varint()), TTLNs: r.Varint(), ExpiryNs: r.Varint(), Keys: int(r.Uvarint())}
}

// answerVersion opens an encoded answer (and keeps it clear of the host's
// refusal mark, module.Answer).
const answerVersion = 1

// Encode lays the answer out field by field.
func (a Answer) Encode() []byte {
	b := appendLease([]byte{answerVersion}, a.Lease)
	b = binary.AppendVarint(b, a.RemainingNs)
	b = binary.AppendUvarint(b, uint64(len(a.Keys)))
	for _, k := range a.Keys {
		b = module.AppendBytes(b, k)
	}
	b = binary.AppendUvarint(b, uint64(len(a.Leases)))
	for _, l := range a.Leases {
		b = appendLease(b, l)
	}
	return binary.AppendVarint(b, a.Revision)
}

// DecodeAnswer reads what Answer.Encode wrote.
func DecodeAnswer(b []byte) (Answer, error) {
	if len(b) == 0 || b[0] != answerVersion {
		return Answer{}, fmt.Errorf("lease answer: %w: version", module.ErrMalformed)
	}
	r := &module.Reader{B: b[1:]}
	a := Answer{Lease: readLease(r), RemainingNs: r.Varint()}
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		a.Keys = append(a.Keys, append([]byte(nil), r.Bytes()...))
	}
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		a.Leases = append(a.Leases, readLease(r))
	}
	a.Revision = r.Varint()
	return a, r.Done("lease answer")
}

func leaseKey(id ID) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), prefixLease...), uint64(id))
}

func attachKey(key []byte) []byte {
	return append(append(make([]byte, 0, len(prefixAttach)+len(key)), prefixAttach...), key...)
}

func (m *Module) persistLease(b *storage.Batch, id ID) {
	l, _, _ := m.t.Get(id)
	b.Put(leaseKey(id), binary.AppendVarint(binary.AppendVarint(nil, l.TTLNs), l.ExpiryNs))
}

func (m *Module) persistMeta(b *storage.Batch) {
	b.Put(keyMeta, binary.AppendUvarint(binary.AppendVarint(nil, int64(m.t.last)), m.t.graceTerm))
}

// Persist writes every record of the table.
func (m *Module) Persist(b *storage.Batch) {
	m.persistMeta(b)
	for _, l := range m.t.List() {
		m.persistLease(b, l.ID)
		_, keys, _ := m.t.Get(l.ID)
		for _, k := range keys {
			b.Put(attachKey(k), binary.AppendVarint(nil, int64(l.ID)))
		}
	}
}

// Clear deletes every record of the table.
func (m *Module) Clear(b *storage.Batch) {
	b.Delete(keyMeta)
	for _, l := range m.t.List() {
		b.Delete(leaseKey(l.ID))
		_, keys, _ := m.t.Get(l.ID)
		for _, k := range keys {
			b.Delete(attachKey(k))
		}
	}
}

// Load reads the records: leases first (the key records name them), then
// the attachments.
func (m *Module) Load(disk storage.Reader) error {
	t := New(m.t.limits)
	err := module.ScanRecords(disk, keyMeta, func(_, v []byte) error {
		r := &module.Reader{B: v}
		t.last, t.graceTerm = ID(r.Varint()), r.Uvarint()
		return r.Done("lease meta")
	})
	if err == nil {
		err = module.ScanRecords(disk, prefixLease, func(k, v []byte) error {
			r := &module.Reader{B: v}
			e := &entry{ttl: r.Varint(), expiry: r.Varint(), keys: map[string]struct{}{}}
			if len(k) != 8 {
				r.Fail("lease record key %x", k)
			}
			if err := r.Done("lease record"); err != nil {
				return err
			}
			t.insert(ID(binary.BigEndian.Uint64(k)), e)
			return nil
		})
	}
	if err == nil {
		err = module.ScanRecords(disk, prefixAttach, func(k, v []byte) error {
			r := &module.Reader{B: v}
			id := ID(r.Varint())
			if t.leases[id] == nil {
				r.Fail("key %q attached to missing lease %d", k, id)
			}
			if err := r.Done("lease attachment"); err != nil {
				return err
			}
			t.attach(id, string(k))
			return nil
		})
	}
	if err != nil {
		return err
	}
	m.t = t
	return nil
}

// Freeze encodes the table now: it is small next to the KV store.
func (m *Module) Freeze() module.Frozen { return module.Encoded(m.t.Encode()) }

// Restore replaces the table with a snapshot's; a snapshot from before leases
// has none, and restores an empty table.
func (m *Module) Restore(section []byte) error {
	t := New(m.t.limits)
	if len(section) > 0 {
		var err error
		if t, err = Decode(section, m.t.limits); err != nil {
			return err
		}
	}
	m.t, m.asked = t, map[ID]int64{}
	return nil
}

func (m *Module) DecodeAnswer(data []byte) (any, error) { return DecodeAnswer(data) }
