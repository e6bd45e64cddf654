package kv

import (
	"errors"
	"fmt"

	"github.com/aspen-db/aspen/core/assert"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
)

// Command kinds of the KV module: a txn, and a txn some of whose puts attach
// their keys to leases (its body ends with the list of those leases).
const (
	CmdTxn       byte = 1
	CmdLeasedTxn byte = 3
)

// Prefix is where the module keeps one record per key on disk.
var Prefix = []byte("k/")

// Event is one key's change, at the revision that made it.
type Event struct {
	Revision int64
	Key      []byte
	Record   Record // the new state; meaningless when Deleted
	Deleted  bool
	Expired  bool // deleted because its lease expired
}

// Leases is the lease table as the KV module needs it (core/lease provides
// it): every put names the lease its key belongs to, every delete unties it.
type Leases interface {
	// CheckAttach refuses puts naming a lease that does not exist or is full,
	// with a *module.Error naming the outcome.
	CheckAttach(puts []Op) error
	// Attach ties key to lease id (0: to none), recording it in env's batch.
	Attach(env *module.Env, key []byte, id int64)
}

// Locks is the session table as the KV module needs it (core/locks
// provides it): whether a session is live, and whether it may take a free
// key at a time (it is live and the key's lock delay has passed).
type Locks interface {
	Live(session string) bool
	Lockable(key []byte, session string, nowNs int64) bool
}

// ErrNoLocks refuses a lock op on a node without a session table.
var ErrNoLocks = errors.New("sessions are not enabled")

// Observer is replicated state that reacts to committed changes in the
// same apply (core/hooks): what it does goes into the change's own batch,
// so it commits, or is lost, with the change.
type Observer interface {
	Changed(env *module.Env, e *Event)
}

// Module is the KV store as a replicated module: txns in, answers and change
// events out, one record per key under Prefix.
type Module struct {
	M         *Machine
	leases    Leases
	locks     Locks
	observers []Observer // see every change applied
	publisher Publisher  // publishes a txn's messages (publish.go), if set
	events    *[]Event   // where change events go, if a driver serves watches
	maxMod    int64      // the highest ModRev Load saw, for the host's revision check
	last      Response   // the answer Apply gave last (see Apply)
	scratch   []Op
}

// NewModule returns an empty KV module over m.
func NewModule(m *Machine) *Module { return &Module{M: m} }

// EmitTo makes the module append every change's event to *dst.
func (k *Module) EmitTo(dst *[]Event) { k.events = dst }

// Observe makes o see every change as it is applied, after the observers
// added before it.
func (k *Module) Observe(o Observer) { k.observers = append(k.observers, o) }

// UseLocks connects the session table; until then a lock op is refused.
func (k *Module) UseLocks(l Locks) { k.locks = l }

// UseLeases connects the lease table; until then a put with a lease is refused.
func (k *Module) UseLeases(l Leases) { k.leases = l }

func (k *Module) Name() string       { return "kv" }
func (k *Module) Version() uint64    { return 1 }
func (k *Module) Kinds() []byte      { return []byte{CmdTxn, CmdLeasedTxn, CmdPublishTxn} }
func (k *Module) Prefixes() [][]byte { return [][]byte{Prefix} }
func (k *Module) Hash() uint64       { return k.M.Hash() }

// Command encodes a write txn as the command that carries it.
func Command(t Txn) module.Command {
	if len(t.Publish) > 0 {
		return publishCommand(t)
	}
	if t.Leased() {
		return module.Command{Kind: CmdLeasedTxn, Body: EncodeTxn(t)}
	}
	return module.Command{Kind: CmdTxn, Body: EncodeTxn(t)}
}

func decodeCommand(kind byte, body []byte) (Txn, error) {
	switch kind {
	case CmdLeasedTxn:
		return DecodeLeasedTxn(body)
	case CmdPublishTxn:
		return decodePublishTxn(body)
	}
	return DecodeTxn(body)
}

// checkPublish refuses a txn whose messages could not all be published,
// before anything changed.
func (k *Module) checkPublish(t Txn) (module.Answer, bool) {
	if k.publisher == nil {
		return module.Refuse(module.Invalid, errors.New("topics are not enabled")), false
	}
	if err := k.publisher.CheckPublish(t.Publish); err != nil {
		var refused *module.Error
		if errors.As(err, &refused) {
			return module.Answer{Outcome: refused.Outcome, Detail: refused.Detail}, false
		}
		return module.Refuse(module.Invalid, err), false
	}
	return module.Answer{}, true
}

// ErrNoLeases refuses a put with a lease on a node without a lease table.
var ErrNoLeases = errors.New("leases are not enabled")

// Apply applies a txn. A put naming a lease that cannot take its key refuses
// the whole txn, before anything changed.
func (k *Module) Apply(env *module.Env, kind byte, body []byte) module.Answer {
	t, err := decodeCommand(kind, body)
	if err != nil { // checked first: the message's arguments would allocate on every write
		assert.That(false, "kv command at %d does not decode: %v", env.Index, err)
	}
	if kind == CmdPublishTxn {
		if a, ok := k.checkPublish(t); !ok {
			return a
		}
	}
	if kind == CmdLeasedTxn || kind == CmdPublishTxn && t.Leased() {
		if err := k.checkLeases(t); err != nil {
			var refused *module.Error // the lease table's own verdict: not found, full
			if errors.As(err, &refused) {
				return module.Answer{Outcome: refused.Outcome, Detail: refused.Detail}
			}
			return module.Refuse(module.Invalid, err)
		}
	}
	if t.locking() {
		if a, ok := k.checkLocks(t); !ok {
			return a
		}
		k.M.locks, k.M.nowNs = k.locks, env.NowNs
		defer func() { k.M.locks = nil }()
	}
	before := k.M.Revision()
	resp, changes := k.M.Apply(t)
	resp = k.plantApplied(resp, changes)
	k.record(env, changes, k.plantEventRevision(resp.Revision, before), false)
	if k.leases != nil {
		k.attach(env, t, resp.Succeeded, changes)
	}
	if resp.Succeeded && len(t.Publish) > 0 {
		err := k.publisher.PublishAll(env, t.Publish)
		assert.That(err == nil, "publish checked at %d failed: %v", env.Index, err)
	}
	// The answer is handed out in place, not boxed: the host copies it before
	// the next Apply (one allocation fewer per write).
	k.last = resp
	return module.Answer{Data: EncodeResponse(resp), Value: &k.last}
}

// locking reports whether t acquires or releases a lock or tests one.
func (t Txn) locking() bool {
	for _, c := range t.Compares {
		if c.Target == TargetLockable {
			return true
		}
	}
	for _, ops := range [2][]Op{t.Then, t.Else} {
		for i := range ops {
			if ops[i].Lock != LockNone {
				return true
			}
		}
	}
	return false
}

// checkLocks refuses a txn that names a session which is not live, before
// anything changed: Consul answers such a write with an error, not false.
func (k *Module) checkLocks(t Txn) (module.Answer, bool) {
	if k.locks == nil {
		return module.Refuse(module.Invalid, ErrNoLocks), false
	}
	check := func(session string) bool { return k.locks.Live(session) }
	for _, c := range t.Compares {
		if c.Target == TargetLockable && !check(string(c.Value)) {
			return module.Refuse(module.Invalid, fmt.Errorf("invalid session %q", c.Value)), false
		}
	}
	for _, ops := range [2][]Op{t.Then, t.Else} {
		for i := range ops {
			if ops[i].Lock == LockAcquire && !check(ops[i].Session) {
				return module.Refuse(module.Invalid, fmt.Errorf("invalid session %q", ops[i].Session)), false
			}
		}
	}
	return module.Answer{}, true
}

func (k *Module) checkLeases(t Txn) error {
	if k.leases == nil {
		return ErrNoLeases
	}
	puts := k.scratch[:0]
	for _, ops := range [2][]Op{t.Then, t.Else} {
		for _, op := range ops {
			if op.Type == OpPut && op.Lease != 0 {
				puts = append(puts, op)
			}
		}
	}
	k.scratch = puts[:0]
	return k.leases.CheckAttach(puts)
}

// attach ties each written key to the lease of the last put to it in the
// branch that ran; a deleted key, or one put without a lease, to none.
func (k *Module) attach(env *module.Env, t Txn, then bool, changes []Change) {
	ops := t.Else
	if then {
		ops = t.Then
	}
	for _, c := range changes {
		var id int64
		if !c.Deleted {
			id = lastLease(ops, c.Key)
		}
		k.leases.Attach(env, c.Key, id)
	}
}

func lastLease(ops []Op, key []byte) int64 {
	for i := len(ops) - 1; i >= 0; i-- {
		if ops[i].Type == OpPut && string(ops[i].Key) == string(key) {
			return ops[i].Lease
		}
	}
	return 0
}

// record persists changes and keeps their events.
func (k *Module) record(env *module.Env, changes []Change, rev int64, expired bool) {
	for _, c := range changes {
		if c.Deleted {
			env.Batch.Delete(recordKey(c.Key))
		} else {
			env.Batch.PutRecord(recordKey(c.Key), appendRecord(storage.NewRecord(recordSizeMax(c.Record)), c.Record))
		}
		if k.events != nil || len(k.observers) > 0 {
			e := Event{Revision: rev, Key: c.Key, Record: c.Record, Deleted: c.Deleted, Expired: expired}
			for _, o := range k.observers {
				o.Changed(env, &e)
			}
			if k.events != nil {
				*k.events = append(*k.events, e)
			}
		}
	}
}

// DeleteExpired deletes keys whose lease expired or was revoked, all at one
// revision, and returns it. Their events are marked Expired when expired is set.
func (k *Module) DeleteExpired(env *module.Env, keys [][]byte, expired bool) int64 {
	if len(keys) == 0 {
		return k.M.Revision()
	}
	ops := make([]Op, len(keys))
	for i, key := range keys {
		ops[i] = Op{Type: OpDelete, Key: key}
	}
	resp, changes := k.M.Apply(Txn{Then: ops})
	k.record(env, changes, resp.Revision, expired)
	return resp.Revision
}

// ReleaseLocks ends session's hold on keys, all at one revision, as a
// session's invalidation does: each key the session still holds is deleted
// when del is set, and otherwise released with its value and flags kept.
// It returns the revision (the current one when nothing changed).
func (k *Module) ReleaseLocks(env *module.Env, session string, keys [][]byte, del bool) int64 {
	var ops []Op
	for _, key := range keys {
		it, ok := k.M.tree.Get(probe(key))
		switch {
		case !ok || string(it.session()) != session:
		case del:
			ops = append(ops, Op{Type: OpDelete, Key: key})
		default:
			flags, _ := it.lockNums()
			ops = append(ops, Op{Type: OpPut, Key: key, Value: it.value(), Flags: flags, Lock: LockRelease, Session: session})
		}
	}
	if ops = k.plantReleaseLocks(ops); len(ops) == 0 {
		return k.M.Revision()
	}
	resp, changes := k.M.Apply(Txn{Then: ops})
	k.record(env, changes, resp.Revision, false)
	return resp.Revision
}

func recordKey(key []byte) []byte {
	return append(append(make([]byte, 0, len(Prefix)+len(key)), Prefix...), key...)
}

// Load reads every record. The revision is the host's (it is saved with the
// applied index); MaxModRev lets the host check the two agree.
func (k *Module) Load(disk storage.Reader) error {
	return module.ScanRecords(disk, Prefix, func(key, payload []byte) error {
		r, err := DecodeRecord(payload)
		if err != nil {
			return fmt.Errorf("record %q: %v", key, err)
		}
		k.maxMod = max(k.maxMod, r.ModRev)
		k.M.Load(key, r)
		return nil
	})
}

// MaxModRev is the highest ModRev Load read.
func (k *Module) MaxModRev() int64 { return k.maxMod }

func (k *Module) Persist(b *storage.Batch) {
	k.M.Ascend(func(key []byte, r Record) bool {
		b.Put(recordKey(key), EncodeRecord(r))
		return true
	})
}

func (k *Module) Clear(b *storage.Batch) {
	k.M.Ascend(func(key []byte, _ Record) bool {
		b.Delete(recordKey(key))
		return true
	})
}

// Freeze clones the store in O(1); the clone is encoded only if raft sends it.
func (k *Module) Freeze() module.Frozen { return frozen{k.M.Clone()} }

type frozen struct{ m *Machine }

func (f frozen) Encode() []byte { return f.m.Snapshot() }

func (k *Module) Restore(section []byte) error { return k.M.Restore(section) }

func (k *Module) DecodeAnswer(data []byte) (any, error) { return DecodeResponse(data) }
