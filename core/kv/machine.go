package kv

import (
	"bytes"
	"cmp"
	"slices"

	"github.com/aspen-db/aspen/core/assert"
	"github.com/aspen-db/aspen/core/bugs"
	"github.com/google/btree"
)

// btreeDegree trades node size against depth; 32 keeps nodes within a few cache
// lines of pointers while leaving the tree shallow for millions of keys.
const btreeDegree = 32

// Machine is the replicated state: the latest record of every key and the
// revision of the latest write. Its zero value is not usable; call New.
//
// Stored keys and values are private copies that are never modified in place,
// which is what allows Changes and Ascend to hand them out without copying.
type Machine struct {
	tree   *btree.BTreeG[item]
	rev    int64
	digest uint64 // XOR of item.sum() over all items

	// Bugs plants defects for tests (core/bugs); inert without the aspenbugs tag.
	Bugs bugs.Set

	// locks judges acquisitions (core/locks) at nowNs, the time of the entry
	// being applied; set by the module around an Apply that takes locks.
	locks Locks
	nowNs int64

	// Scratch reused across calls to keep the hot path free of allocations.
	touched []Change // every write of the txn being applied, in order
	found   []item   // items matched by the range being read or deleted
}

// Clone returns a copy of the state that later writes to either do not
// affect. It costs O(1): the tree is shared and copied node by node as
// either side writes.
func (m *Machine) Clone() *Machine {
	return &Machine{tree: m.tree.Clone(), rev: m.rev, digest: m.digest, Bugs: m.Bugs}
}

// New returns an empty machine at revision 0.
func New() *Machine {
	return &Machine{tree: btree.NewG(btreeDegree, itemLess)}
}

// Revision returns the revision of the latest write.
func (m *Machine) Revision() int64 { return m.rev }

// Len returns the number of stored keys.
func (m *Machine) Len() int { return m.tree.Len() }

// Apply executes t at the next revision and returns its response together with
// the final state of every key it wrote, in ascending key order.
//
// The revision advances by exactly one when some op changed the state (any Put,
// or a Delete or DeleteRange that removed a key), and every key written gets that
// revision as ModRev. A key put and then deleted by the same txn counts as
// changed and is listed as Deleted. Ops observe the writes of earlier ops in the
// same txn. Apply does not check Limits (the proposer did), and never fails on
// odd input: an op of unknown type is skipped with an empty result.
//
// The Changes alias stored keys and values, which are never modified: callers
// must treat them as read-only.
func (m *Machine) Apply(t Txn) (Response, []Change) {
	next := m.rev + 1
	ok, results := m.run(t, next)
	changes := m.collectChanges()
	if len(changes) > 0 {
		m.rev = next
	}
	return Response{Succeeded: ok, Revision: m.rev, Results: results}, changes
}

// Read executes a read-only txn against the current state. Reads do not go
// through the log, so a write reaching here is a caller bug and panics.
func (m *Machine) Read(t Txn) Response {
	assert.That(t.ReadOnly(), "kv: Read given a txn that writes")
	ok, results := m.run(t, m.rev)
	return Response{Succeeded: ok, Revision: m.rev, Results: results}
}

// run evaluates the compares and executes the chosen branch, stamping writes
// with rev.
func (m *Machine) run(t Txn, rev int64) (bool, []OpResult) {
	ok := m.holds(t.Compares)
	ops := t.Then
	if !ok {
		ops = t.Else
	}
	if len(ops) == 0 {
		return ok, nil
	}
	results := make([]OpResult, len(ops))
	for i, op := range ops {
		results[i] = m.exec(op, rev)
	}
	return ok, results
}

func (m *Machine) exec(op Op, rev int64) OpResult {
	switch op.Type {
	case OpGet:
		return m.get(op.Key)
	case OpRange:
		return m.rangeOp(spanOf(op), op.Limit)
	case OpPut:
		m.put(&op, rev)
		return OpResult{}
	case OpDelete:
		return OpResult{Deleted: m.deleteSpan(span{key: op.Key, kind: spanSingle})}
	case OpDeleteRange:
		return OpResult{Deleted: m.deleteSpan(spanOf(op))}
	}
	// Whatever reached the log must apply identically everywhere; skipping an
	// unknown op is the one outcome every replica can agree on.
	return OpResult{}
}

func (m *Machine) get(key []byte) OpResult {
	it, ok := m.tree.Get(probe(key))
	if !ok {
		return OpResult{}
	}
	return OpResult{Records: copyOut([]item{it})}
}

func (m *Machine) rangeOp(s span, limit int) OpResult {
	if s.kind == spanSingle {
		return m.get(s.key)
	}
	found, more := m.found[:0], false
	m.ascend(s, func(it item) bool {
		if limit > 0 && len(found) == limit {
			more = true
			return false
		}
		found = append(found, it)
		return true
	})
	res := OpResult{Records: copyOut(found), More: more}
	m.releaseFound(found)
	return res
}

// ascend visits the stored items inside s in key order until fn returns false.
func (m *Machine) ascend(s span, fn func(item) bool) {
	m.tree.AscendGreaterOrEqual(probe(s.key), func(it item) bool {
		key := it.key()
		return m.plantContains(s, key, s.contains(key)) && fn(it)
	})
}

// releaseFound returns the scratch slice, dropping its references so that
// deleted values can be collected.
func (m *Machine) releaseFound(found []item) {
	clear(found)
	m.found = found[:0]
}

// put stores op's value and flags under its key at rev, keeping CreateRev of
// an existing key, and its lock unless op acquires or releases it (Op says
// when that does nothing).
func (m *Machine) put(op *Op, rev int64) {
	rec := Record{Value: op.Value, CreateRev: rev, ModRev: rev, Version: 1, Flags: op.Flags}
	if old, ok := m.tree.Get(probe(op.Key)); ok {
		rec.CreateRev, rec.Version = m.plantCreateRev(old.createRev(), rev), old.version()+1
		_, rec.LockIndex = old.lockNums()
		rec.Session = string(old.session())
	}
	switch op.Lock {
	case LockAcquire:
		if rec.Session != op.Session {
			if m.plantHolder(rec.Session) != "" || !m.lockable(op.Key, op.Session) {
				return
			}
			rec.Session = op.Session
			rec.LockIndex++
		}
	case LockRelease:
		if rec.Session != op.Session {
			return
		}
		rec.Session = ""
	}
	it := newItem(op.Key, &rec)
	m.insert(it)
	rec.Value = it.value()
	m.touched = append(m.touched, Change{Key: it.key(), Record: rec})
}

// lockable asks Locks whether session may take the free key now.
func (m *Machine) lockable(key []byte, session string) bool {
	return m.locks != nil && m.plantLockable(session, m.locks.Lockable(key, session, m.nowNs))
}

// deleteSpan removes every stored key inside s and returns how many there were.
func (m *Machine) deleteSpan(s span) int64 {
	if s.kind == spanSingle {
		old, ok := m.tree.Delete(probe(s.key))
		if !ok {
			return 0
		}
		m.removed(old)
		return 1
	}
	// The tree cannot be modified while it is being iterated, so collect first.
	found := m.found[:0]
	m.ascend(s, func(it item) bool {
		found = append(found, it)
		return true
	})
	for _, it := range found {
		_, ok := m.tree.Delete(it)
		assert.That(ok, "kv: key %q vanished during delete range", it.key())
		m.removed(it)
	}
	n := int64(len(found))
	m.releaseFound(found)
	return n
}

// insert stores it, replacing any item with the same key, and keeps the digest
// in step.
func (m *Machine) insert(it item) {
	if old, ok := m.tree.ReplaceOrInsert(it); ok {
		m.digest ^= old.sum()
	}
	m.digest ^= it.sum()
}

func (m *Machine) removed(it item) {
	m.digest ^= it.sum()
	m.touched = append(m.touched, Change{Key: it.key(), Deleted: true})
}

// collectChanges reduces the writes of the txn to one Change per key, in key
// order, holding the key's final state.
func (m *Machine) collectChanges() []Change {
	if len(m.touched) == 0 {
		return nil
	}
	// A stable sort keeps each key's writes in txn order, so the last of a run
	// of equal keys is the key's final state.
	slices.SortStableFunc(m.touched, func(a, b Change) int { return bytes.Compare(a.Key, b.Key) })
	changes := make([]Change, 0, len(m.touched))
	for i, c := range m.touched {
		if i+1 < len(m.touched) && bytes.Equal(c.Key, m.touched[i+1].Key) {
			continue
		}
		changes = append(changes, c)
	}
	clear(m.touched)
	m.touched = m.touched[:0]
	return changes
}

func (m *Machine) holds(cs []Compare) bool {
	for _, c := range cs {
		if !m.compare(c) {
			return false
		}
	}
	return true
}

// compare evaluates c; an absent key reads as zero revisions and version,
// as having no value and as held by no session. Unknown targets or results
// never hold.
func (m *Machine) compare(c Compare) bool {
	it, found := m.tree.Get(probe(c.Key))
	if !found {
		it = absent
	}
	switch c.Target {
	case TargetValue:
		if !found {
			return c.Result == NotEqual
		}
		return c.Result.matches(bytes.Compare(it.value(), c.Value))
	case TargetModRev:
		return c.Result.matches(cmp.Compare(it.modRev(), c.Rev))
	case TargetCreateRev:
		return c.Result.matches(cmp.Compare(it.createRev(), c.Rev))
	case TargetVersion:
		return c.Result.matches(cmp.Compare(it.version(), c.Rev))
	case TargetExists:
		return c.Result.holds(found == c.Exists)
	case TargetSession:
		return c.Result.holds(string(it.session()) == string(c.Value))
	case TargetLockable:
		held := m.plantHolder(string(it.session()))
		return c.Result.holds(held == string(c.Value) || held == "" && m.lockable(c.Key, string(c.Value)))
	}
	return false
}

// absent is what compare reads for a key that is not stored: an empty key
// with an empty record.
var absent = newItem(nil, &Record{})

// holds reports whether a test's truth satisfies Equal (it is true) or
// NotEqual (it is false); other results never hold.
func (r CompareResult) holds(truth bool) bool {
	switch r {
	case Equal:
		return truth
	case NotEqual:
		return !truth
	}
	return false
}

// matches reports whether an ordering (negative, zero, positive) satisfies r.
func (r CompareResult) matches(order int) bool {
	switch r {
	case Equal:
		return order == 0
	case NotEqual:
		return order != 0
	case Less:
		return order < 0
	case Greater:
		return order > 0
	}
	return false
}

// Load stores a copy of key and r while restoring from disk, replacing any
// record already stored under key. It does not touch the revision.
func (m *Machine) Load(key []byte, r Record) {
	m.insert(newItem(key, &r))
}

// SetRevision sets the revision once loading is done.
func (m *Machine) SetRevision(rev int64) {
	assert.That(rev >= 0, "kv: negative revision %d", rev)
	m.rev = rev
}

// Ascend visits every stored record in key order until fn returns false. The
// key and value alias stored buffers: fn must not modify or retain them past
// the next write.
func (m *Machine) Ascend(fn func(key []byte, r Record) bool) {
	m.tree.Ascend(func(it item) bool { return fn(it.key(), it.record()) })
}

// copyOut copies items into fresh KeyValues, carving all keys and values from a
// single buffer so that a range costs two allocations however long it is.
func copyOut(items []item) []KeyValue {
	if len(items) == 0 {
		return nil
	}
	n := 0
	for _, it := range items {
		n += it.valueEnd() // the key's and the value's bytes
	}
	buf := make([]byte, 0, n)
	out := make([]KeyValue, len(items))
	for i, it := range items {
		out[i] = KeyValue{Key: carve(&buf, it.key()), Record: it.record()}
		out[i].Value = carve(&buf, it.value())
	}
	return out
}

// carve appends b to *buf and returns the appended part, capped so that an
// append by the receiver cannot overwrite its neighbour. Empty input yields nil.
func carve(buf *[]byte, b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	start := len(*buf)
	*buf = append(*buf, b...)
	end := len(*buf)
	return (*buf)[start:end:end]
}
