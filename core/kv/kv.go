// Package kv is the deterministic key-value state machine that every replica of a
// Raft group applies committed transactions to.
//
// It keeps only the latest version of each key, stamped with etcd-style
// revisions, so that a client can make a write conditional on what it last read.
// Everything here is pure: the same sequence of transactions produces the same
// responses, changes, hash and snapshot bytes on every replica and in every
// simulator run, which is what lets replicas be compared by Hash.
package kv

import "bytes"

// Record is the stored state of one key.
type Record struct {
	Value []byte
	// CreateRev is the revision of the put that created the key.
	CreateRev int64
	// ModRev is the revision of the latest put to the key.
	ModRev int64
	// Version counts puts since creation: 1 right after the creating put.
	Version int64
	// Flags is an opaque number clients store with the value (Consul's).
	Flags uint64
	// LockIndex counts the times a session acquired the key (Consul's).
	LockIndex uint64
	// Session is the session holding the key's lock, or "".
	Session string
}

// KeyValue is a key together with its stored record.
type KeyValue struct {
	Key []byte
	Record
}

// OpType says what an Op does.
type OpType uint8

// The operations a transaction branch may hold.
const (
	OpGet OpType = iota + 1
	OpPut
	OpDelete
	OpRange
	OpDeleteRange
)

// Op is one operation of a transaction branch.
//
// Get, Put and Delete act on Key; Put stores Value. Range and DeleteRange cover
// the keys in [Key, End); when End is empty and Prefix is set they cover every key
// that starts with Key (all keys when Key is empty too), and when End is empty and
// Prefix is clear they cover Key alone. A positive Limit caps the number of
// records a Range returns, and OpResult.More then reports whether any were left
// out; zero means no cap. A Put with a Lease attaches its key to that lease
// (core/lease), so the key goes when the lease does; a Put without one
// detaches the key from any lease it had, as etcd's does.
//
// A Put stores Flags with the value. Its Lock says what it does to the key's
// lock, held by a session (Consul's acquire and release): LockAcquire takes
// it for Session, or keeps it when Session holds it already, and does
// nothing when the key is held by another session or cannot be taken (see
// Locks); LockRelease clears it when Session holds it and does nothing
// otherwise. Without a lock op a put keeps the key's lock as it is.
type Op struct {
	Type    OpType
	Key     []byte
	Value   []byte
	End     []byte
	Prefix  bool
	Limit   int
	Lease   int64
	Flags   uint64
	Lock    LockOp
	Session string
}

// LockOp is what a Put does to its key's lock.
type LockOp uint8

// The lock ops of a put.
const (
	LockNone LockOp = iota
	LockAcquire
	LockRelease
)

// isWrite reports whether the op may change the state.
func (o OpType) isWrite() bool {
	return o == OpPut || o == OpDelete || o == OpDeleteRange
}

// CompareTarget names the part of a key's state a Compare looks at.
type CompareTarget uint8

// The parts of a key's state a Compare can test.
const (
	TargetValue CompareTarget = iota + 1
	TargetModRev
	TargetCreateRev
	TargetVersion
	TargetExists
	// TargetSession compares the session holding the key's lock ("" when
	// none, or no key) with Value: Equal or NotEqual.
	TargetSession
	// TargetLockable tests whether the session named in Value could acquire
	// the key now (it holds it, or the key is free and Locks allows it):
	// Equal holds when it could, NotEqual when it could not.
	TargetLockable
)

// CompareResult is the relation a Compare requires.
type CompareResult uint8

// The relations a Compare can require.
const (
	Equal CompareResult = iota + 1
	NotEqual
	Less
	Greater
)

// Compare is one guard of a transaction: it holds when the target of the key's
// current state stands in relation Result to the given operand.
//
// TargetValue compares the stored value with Value byte-wise (lexicographically
// for Less and Greater); an absent key has no value, so only NotEqual holds for
// it. TargetModRev, TargetCreateRev and TargetVersion compare with Rev, reading 0
// for an absent key. TargetExists tests presence against Exists and supports only
// Equal and NotEqual.
type Compare struct {
	Key    []byte
	Target CompareTarget
	Result CompareResult
	Value  []byte
	Rev    int64
	Exists bool
}

// Txn is a request: when every Compare holds, the Then ops run, otherwise the
// Else ops do. Plain reads and writes are transactions without compares.
type Txn struct {
	Compares []Compare
	Then     []Op
	Else     []Op
	Publish  []Pub // published when Then runs (publish.go)
}

// ReadOnly reports whether neither branch holds a Put, Delete or DeleteRange, so
// that the txn can be served without going through the log.
func (t Txn) ReadOnly() bool {
	if len(t.Publish) > 0 {
		return false
	}
	for _, ops := range [2][]Op{t.Then, t.Else} {
		for _, op := range ops {
			if op.Type.isWrite() {
				return false
			}
		}
	}
	return true
}

// OpResult is the outcome of one op: the records a Get or Range found, whether a
// limited Range left some out, and how many keys a Delete or DeleteRange removed.
// A Put, or an op of unknown type, yields an empty OpResult. Records are copies
// that the caller owns.
type OpResult struct {
	Records []KeyValue
	More    bool
	Deleted int64
}

// Response is the outcome of a txn: which branch ran, the store's revision after
// the txn, and one result per op of that branch, in order.
type Response struct {
	Succeeded bool
	Revision  int64
	Results   []OpResult
}

// Change is one key's stored state after a write, or Deleted when the write
// removed it; Apply lists them so the caller can persist exactly what changed.
type Change struct {
	Key     []byte
	Record  Record
	Deleted bool
}

// span is the set of keys an op covers, resolved once from Key, End and Prefix.
type span struct {
	key, end []byte
	kind     spanKind
}

type spanKind uint8

const (
	spanSingle spanKind = iota
	spanInterval
	spanPrefix
)

// spanOf resolves the keys op covers; an explicit End wins over Prefix.
func spanOf(op Op) span {
	switch {
	case len(op.End) > 0:
		return span{key: op.Key, end: op.End, kind: spanInterval}
	case op.Prefix:
		return span{key: op.Key, kind: spanPrefix}
	default:
		return span{key: op.Key, kind: spanSingle}
	}
}

// contains reports whether key, which is at least s.key, is still inside s.
func (s span) contains(key []byte) bool {
	switch s.kind {
	case spanInterval:
		return bytes.Compare(key, s.end) < 0
	case spanPrefix:
		return bytes.HasPrefix(key, s.key)
	default:
		return bytes.Equal(key, s.key)
	}
}
