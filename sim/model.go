package sim

import (
	"fmt"
	"strings"

	"github.com/anishathalye/porcupine"
	"github.com/aspen-db/aspen/internal/linearize"
)

// modelKeysMax bounds keys per group, so a group's state is a comparable array
// and a set of keys fits in a keySet.
const modelKeysMax = 8

type opKind uint8

const (
	kGet opKind = iota + 1
	kPut
	kDelete
	kCAS
	kTxn
	kScan // a prefix: the group's, or a key's (which other keys extend)
	kDeletePrefix
	kRange       // explicit [start, end) with ends on, just before and just after keys
	kDeleteRange // the same bounds, deleting
	kInvalid     // a request the store must refuse (invalid.go); never in the history
	kStaleGet    // a get served from one replica's state (Stale); never in the history
	kLeasePut    // drawn from the mix as lease_put; enters the history as a kPut with a Lease
)

// kLeaseEnd is a lease's expiry or revoke, which deletes its keys: a write no
// client issued, entered into the history from the replicas' applied records
// (leasecheck.go).
const kLeaseEnd opKind = 101

type cmpKind uint8

const (
	cmpValue        cmpKind = iota + 1 // value equals Value
	cmpExists                          // key exists
	cmpAbsent                          // key does not exist
	cmpModRev                          // mod revision equals Rev, the one seen with Value (absent: 0)
	cmpVersionAbove                    // version is greater than Rev (absent: 0)
	cmpValueBelow                      // the key exists with a value ordered before Value
	cmpCreated                         // create revision is greater than 0: the key exists
	cmpKindsMax     = cmpCreated
)

// keySet is a set of key indexes of one group: bit i is key i.
type keySet uint8

func (s keySet) has(i int) bool { return s&(1<<i) != 0 }

// txnCmp and txnOp are a workload transaction as the model sees it; each
// non-empty put value is written by no other put, so it names the write that
// made it.
type txnCmp struct {
	Kind  cmpKind
	Not   bool // the compare must not hold (not equal)
	Key   int
	Value string
	Rev   int64
}

type txnOp struct {
	Kind  opKind // kGet, kPut or kDelete
	Key   int
	Value string
}

// opInput is one client operation on one group of keys.
type opInput struct {
	Kind   opKind
	Group  int
	Key    int
	Span   keySet // scans and ranges: the keys inside, by byte order of their names
	Lo, Hi string // scans and ranges: [Lo, Hi), or every key starting with Lo when Prefix
	Prefix bool
	Limit  int    // scans and ranges: at most this many keys (0: all)
	Value  string // put value; for CAS the new value
	Lease  int64  // put: the lease the key is attached to (0: none); lease end: the lease
	Cmps   []txnCmp
	Then   []txnOp
	Else   []txnOp
}

// readResult is one key as a read returned it.
type readResult struct {
	Present     bool
	Value       string
	Mod, Create int64
	Version     int64
}

// opOutput is what the client saw. Unknown means the outcome is not known (the
// client gave up), so the model accepts it having happened or not.
type opOutput struct {
	Unknown bool
	Ok      bool         // CAS or txn compares held
	More    bool         // a limited scan left keys out
	Rev     int64        // the store's revision in the answer
	Reads   []readResult // get: one; scan and range: one per key of the group; txn: one per get in the branch taken
	Deleted []int64      // keys removed by each delete of the branch taken (delete and delete ranges: one)
	Gone    keySet       // lease end: the keys of the group it deleted
	Bad     string       // the answer itself is malformed (keys out of order or outside the group)
}

// keyState is one key in the model. Mod and Create are 0 while unknown: the
// write that set them gave up, and no read has shown them since. Lease is the
// lease the last put attached the key to (0: none): its end deletes the key.
type keyState struct {
	Present     bool
	Value       string
	Mod, Create int64
	Version     int64
	Lease       int64
}

// groupState is a key group in the model. Rev is a lower bound on the store's
// revision at this point of the linearization: the highest revision any
// operation on the group has shown. The store's revision is one counter for
// all groups, so every later write must take a higher one.
type groupState struct {
	Keys [modelKeysMax]keyState
	Rev  int64
}

// stepModel is the sequential specification of one key group, revisions
// included: an effective write raises the revision, a write that changes
// nothing does not, and every read shows the revisions and version the
// writes before it gave the key.
func stepModel(s groupState, in opInput, out opOutput) (bool, groupState) {
	if out.Bad != "" {
		return false, s
	}
	r := &run{s: s, out: out, check: !out.Unknown, rev: out.Rev}
	if out.Unknown {
		r.rev = 0 // the write's revision, if it took one, is not known
	}
	r.apply(in)
	if out.Unknown {
		return true, r.s
	}
	if r.failed || out.Rev < s.Rev || r.changed && out.Rev == s.Rev {
		return false, s
	}
	r.s.Rev = out.Rev
	return true, r.s
}

// run is one operation being applied to the model.
type run struct {
	s       groupState
	out     opOutput
	check   bool  // compare against out (false for an outcome nobody saw)
	rev     int64 // the revision writes are stamped with (0: unknown)
	cmps    int   // compares evaluated
	ok      bool  // they held
	reads   int   // reads consumed from out.Reads
	dels    int   // delete counts consumed from out.Deleted
	changed bool  // some key changed: the write took a revision
	failed  bool
}

// apply runs in against the state, checking every read, delete count and
// compare outcome against out when it is known.
func (r *run) apply(in opInput) {
	switch in.Kind {
	case kGet:
		r.read(in.Key)
	case kPut:
		r.put(in.Key, in.Value, in.Lease)
	case kLeaseEnd:
		r.endLease(in.Lease)
	case kDelete:
		r.del(keySet(1 << in.Key))
	case kScan, kRange:
		r.scan(in)
	case kDeletePrefix, kDeleteRange:
		r.del(in.Span)
	case kCAS:
		r.cmps, r.ok = 1, cmpHolds(r.s, in.Cmps[0])
		if r.ok {
			r.put(in.Key, in.Value, 0)
		}
	case kTxn:
		r.txn(in)
	}
	if r.check && (r.cmps > 0 && r.ok != r.out.Ok || r.reads != len(r.out.Reads) || r.dels != len(r.out.Deleted)) {
		r.failed = true
	}
}

func (r *run) txn(in opInput) {
	r.cmps, r.ok = len(in.Cmps), true
	for _, c := range in.Cmps {
		r.ok = r.ok && cmpHolds(r.s, c)
	}
	branch := in.Then
	if !r.ok {
		branch = in.Else
	}
	for _, op := range branch {
		switch op.Kind {
		case kGet:
			r.read(op.Key)
		case kPut:
			r.put(op.Key, op.Value, 0)
		case kDelete:
			r.del(keySet(1 << op.Key))
		}
	}
}

// put writes key k, attaching it to lease (0: to none), as the store does.
func (r *run) put(k int, value string, lease int64) {
	ks := &r.s.Keys[k]
	if !ks.Present {
		*ks = keyState{Present: true, Create: r.rev}
	}
	ks.Value, ks.Mod, ks.Version, ks.Lease = value, r.rev, ks.Version+1, lease
	r.changed = true
}

// endLease deletes the keys attached to lease, which must be exactly the keys
// the replicas deleted with it.
func (r *run) endLease(lease int64) {
	var gone keySet
	for k := range modelKeysMax {
		if ks := &r.s.Keys[k]; ks.Present && ks.Lease == lease {
			*ks = keyState{}
			gone |= 1 << k
		}
	}
	r.changed = gone != 0
	r.failed = r.failed || r.check && gone != r.out.Gone
}

func (r *run) del(span keySet) {
	var n int64
	for k := range modelKeysMax {
		if span.has(k) && r.s.Keys[k].Present {
			r.s.Keys[k] = keyState{}
			n++
		}
	}
	r.changed = r.changed || n > 0
	if r.check {
		r.failed = r.failed || r.dels >= len(r.out.Deleted) || r.out.Deleted[r.dels] != n
		r.dels++
	}
}

// read checks one read result against key k. A revision the model does not
// know yet (its write gave up) is learned from the read: the key's record came
// from one definite write.
func (r *run) read(k int) {
	if !r.check {
		return
	}
	if r.reads >= len(r.out.Reads) {
		r.failed = true
		return
	}
	got, ks := r.out.Reads[r.reads], &r.s.Keys[k]
	r.reads++
	if !ks.Present {
		r.failed = r.failed || got.Present
		return
	}
	if ks.Mod == 0 {
		ks.Mod = got.Mod
	}
	if ks.Create == 0 {
		ks.Create = got.Create
	}
	want := readResult{Present: true, Value: ks.Value, Mod: ks.Mod, Create: ks.Create, Version: ks.Version}
	// A key at version 1 was created by the write that last set it.
	r.failed = r.failed || got != want || got.Mod > r.out.Rev || got.Version == 1 && got.Create != got.Mod
}

// scan reads the keys in the span, in byte order, up to the limit; the rest
// must be absent from the answer.
func (r *run) scan(in opInput) {
	var shown [modelKeysMax]bool
	n := 0
	for _, k := range keyOrder {
		if !in.Span.has(k) || !r.s.Keys[k].Present {
			continue
		}
		if in.Limit > 0 && n == in.Limit {
			r.failed = r.failed || r.check && !r.out.More
			break
		}
		shown[k] = true
		n++
	}
	if r.check && in.Limit > 0 && n < in.Limit && r.out.More {
		r.failed = true
	}
	for k := range modelKeysMax {
		if shown[k] {
			r.read(k)
		} else {
			r.expectAbsent(k)
		}
	}
}

// expectAbsent checks that a scan did not return key k, which its span excludes.
func (r *run) expectAbsent(k int) {
	if r.check {
		r.failed = r.failed || r.reads >= len(r.out.Reads) || r.out.Reads[r.reads].Present
		r.reads++
	}
}

func cmpHolds(s groupState, c txnCmp) bool {
	return cmpOn(s.Keys[c.Key], c) != c.Not
}

func cmpOn(ks keyState, c txnCmp) bool {
	switch c.Kind {
	case cmpVersionAbove:
		return ks.Version > c.Rev
	case cmpValueBelow:
		return ks.Present && ks.Value < c.Value
	case cmpCreated:
		return ks.Present
	case cmpValue:
		return ks.Present && ks.Value == c.Value
	case cmpExists:
		return ks.Present
	case cmpAbsent:
		return !ks.Present
	case cmpModRev:
		if !ks.Present || c.Rev == 0 {
			return !ks.Present && c.Rev == 0
		}
		if ks.Mod != 0 {
			return ks.Mod == c.Rev
		}
		// Unknown revision: non-empty values name their write, and the
		// workload never compares revisions seen with an empty value.
		return ks.Value == c.Value
	}
	return false
}

// groupModel checks each key group on its own: every operation touches exactly
// one group, which makes partitioning sound even for scans and transactions.
func groupModel() porcupine.Model {
	return porcupine.Model{
		Partition: linearize.PartitionBy(func(op porcupine.Operation) int { return op.Input.(opInput).Group }),
		Init:      func() any { return groupState{} },
		Step: func(state, input, output any) (bool, any) {
			s := state.(groupState)
			ok, next := stepModel(s, input.(opInput), output.(opOutput))
			if next == s {
				return ok, state // unchanged (most reads): no new 456-byte box
			}
			return ok, next
		},
		Equal:             func(a, b any) bool { return a.(groupState) == b.(groupState) },
		DescribeOperation: func(input, output any) string { return describeOp(input.(opInput), output.(opOutput)) },
		DescribeState:     func(state any) string { return describeState(state.(groupState)) },
	}
}

func describeState(s groupState) string {
	var parts []string
	for i, ks := range s.Keys {
		if ks.Present {
			part := fmt.Sprintf("k%d=%q@%d/%d/v%d", i, ks.Value, ks.Mod, ks.Create, ks.Version)
			if ks.Lease != 0 {
				part += fmt.Sprintf("/lease %d", ks.Lease)
			}
			parts = append(parts, part)
		}
	}
	return fmt.Sprintf("{%s rev>=%d}", strings.Join(parts, " "), s.Rev)
}

func describeOp(in opInput, out opOutput) string {
	res := fmt.Sprintf("ok=%v rev=%d reads=%v deleted=%v", out.Ok, out.Rev, describeReads(out.Reads), out.Deleted)
	switch {
	case out.Unknown:
		res = "unknown"
	case out.Bad != "":
		res = "malformed: " + out.Bad
	}
	switch in.Kind {
	case kGet:
		return fmt.Sprintf("get(g%d/k%d) -> %s", in.Group, in.Key, res)
	case kPut:
		if in.Lease != 0 {
			return fmt.Sprintf("put(g%d/k%d, %q, lease %d) -> %s", in.Group, in.Key, in.Value, in.Lease, res)
		}
		return fmt.Sprintf("put(g%d/k%d, %q) -> %s", in.Group, in.Key, in.Value, res)
	case kLeaseEnd:
		return fmt.Sprintf("end of lease %d in g%d (deleted %08b) -> %s", in.Lease, in.Group, out.Gone, res)
	case kDelete:
		return fmt.Sprintf("delete(g%d/k%d) -> %s", in.Group, in.Key, res)
	case kCAS:
		return fmt.Sprintf("cas(g%d/k%d, rev %d -> %q) -> %s", in.Group, in.Key, in.Cmps[0].Rev, in.Value, res)
	case kScan, kRange:
		return fmt.Sprintf("range(%s) -> %s", describeSpan(in), res)
	case kDeletePrefix, kDeleteRange:
		return fmt.Sprintf("delete_range(%s) -> %s", describeSpan(in), res)
	}
	return fmt.Sprintf("txn(g%d, if %v then %v else %v) -> %s", in.Group, in.Cmps, in.Then, in.Else, res)
}

func describeReads(rs []readResult) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = "-"
		if r.Present {
			parts[i] = fmt.Sprintf("%q@%d/%d/v%d", r.Value, r.Mod, r.Create, r.Version)
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func describeSpan(in opInput) string {
	if in.Prefix {
		return fmt.Sprintf("prefix %q", in.Lo)
	}
	return fmt.Sprintf("[%q, %q)", in.Lo, in.Hi)
}
