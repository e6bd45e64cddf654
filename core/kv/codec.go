package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// The codecs write integers as (u)varints and byte strings as a uvarint length
// followed by the bytes, in field order. Encoding is deterministic, and decoding
// accepts exactly what encoding produces, so replicas and disks never disagree
// about what a log entry or record says.

// ErrMalformed marks bytes that no encoder produced: truncated, out of range
// or followed by garbage.
var ErrMalformed = errors.New("kv: malformed encoding")

// Smallest encodings of the repeated elements, used to reject counts that the
// remaining input could not possibly hold before allocating for them.
const (
	compareBytesMin  = 6 // key, target, result, value, rev, exists
	opBytesMin       = 6 // type, key, value, end, prefix, limit
	keyValueBytesMin = 5 // key, value, create rev, mod rev, version
	resultBytesMin   = 3 // record count, more, deleted
)

// EncodeTxn encodes t for the raft log.
func EncodeTxn(t Txn) []byte {
	b := make([]byte, 0, txnSizeMax(t))
	b = binary.AppendUvarint(b, uint64(len(t.Compares)))
	for _, c := range t.Compares {
		b = appendBytes(b, c.Key)
		b = append(b, byte(c.Target), byte(c.Result))
		b = appendBytes(b, c.Value)
		b = binary.AppendVarint(b, c.Rev)
		b = appendBool(b, c.Exists)
	}
	b = appendOps(b, t.Then)
	b = appendOps(b, t.Else)
	return appendLeases(b, t)
}

// Leased reports whether some put of t attaches its key to a lease.
func (t Txn) Leased() bool { return t.leaseCount() > 0 }

func (t Txn) leaseCount() int {
	n := 0
	for _, ops := range [2][]Op{t.Then, t.Else} {
		for _, op := range ops {
			if op.Lease != 0 {
				n++
			}
		}
	}
	return n
}

// appendLeases appends the leases of a txn's puts, if any, as a trailing
// list of (branch, op index, lease). A txn without leases encodes as it did
// before leases existed; the log entry's kind says which of the two a body is
// (DecodeTxn or DecodeLeasedTxn), so a cut-off list cannot pass for none.
func appendLeases(b []byte, t Txn) []byte {
	n := t.leaseCount()
	if n == 0 {
		return b
	}
	b = binary.AppendUvarint(b, uint64(n))
	for branch, ops := range [2][]Op{t.Then, t.Else} {
		for i, op := range ops {
			if op.Lease != 0 {
				b = append(b, byte(branch))
				b = binary.AppendUvarint(b, uint64(i))
				b = binary.AppendVarint(b, op.Lease)
			}
		}
	}
	return b
}

// leases reads appendLeases' list.
func (d *decoder) leases(t *Txn) {
	n := d.count(3)
	if n == 0 {
		d.fail("empty op lease list") // the encoder leaves it out instead
	}
	for ; n > 0 && d.err == nil; n-- {
		branch, i, lease := d.byte(), d.uvarint(), d.varint()
		ops := t.Then
		if branch == 1 {
			ops = t.Else
		}
		if branch > 1 || i >= uint64(len(ops)) || lease == 0 || ops[i].Lease != 0 {
			d.fail("bad op lease")
			return
		}
		ops[i].Lease = lease
	}
}

// opExtended marks, in an op's type byte, a put with flags or a lock op:
// its encoding ends with flags, lock op and session. Ops without them encode
// as they did before Consul's flags and locks, so old log entries decode
// unchanged.
const opExtended = 0x80

func appendOps(b []byte, ops []Op) []byte {
	b = binary.AppendUvarint(b, uint64(len(ops)))
	for _, op := range ops {
		ext := op.Flags != 0 || op.Lock != LockNone || op.Session != ""
		if ext {
			b = append(b, byte(op.Type)|opExtended)
		} else {
			b = append(b, byte(op.Type))
		}
		b = appendBytes(b, op.Key)
		b = appendBytes(b, op.Value)
		b = appendBytes(b, op.End)
		b = appendBool(b, op.Prefix)
		b = binary.AppendVarint(b, int64(op.Limit))
		if ext {
			b = binary.AppendUvarint(b, op.Flags)
			b = append(b, byte(op.Lock))
			b = appendBytes(b, []byte(op.Session))
		}
	}
	return b
}

// txnSizeMax bounds the encoded size of t so that encoding allocates once.
func txnSizeMax(t Txn) int {
	n := 4 * binary.MaxVarintLen64
	for _, c := range t.Compares {
		n += len(c.Key) + len(c.Value) + 3*binary.MaxVarintLen64 + 3
	}
	for _, ops := range [2][]Op{t.Then, t.Else} {
		for _, op := range ops {
			n += len(op.Key) + len(op.Value) + len(op.End) + 6*binary.MaxVarintLen64 + 3
			if op.Flags != 0 || op.Lock != LockNone || op.Session != "" {
				n += len(op.Session) + 2*binary.MaxVarintLen64 + 1
			}
		}
	}
	return n
}

// DecodeTxn decodes a txn without leases written by EncodeTxn. The txn does
// not alias b.
func DecodeTxn(b []byte) (Txn, error) { return decodeTxn(b, false) }

// DecodeLeasedTxn decodes a txn with leases written by EncodeTxn.
func DecodeLeasedTxn(b []byte) (Txn, error) { return decodeTxn(b, true) }

func decodeTxn(b []byte, leased bool) (Txn, error) {
	d := decoder{b: bytes.Clone(b)}
	var t Txn
	if n := d.count(compareBytesMin); n > 0 {
		t.Compares = make([]Compare, n)
		for i := range t.Compares {
			c := &t.Compares[i]
			c.Key = d.bytes()
			c.Target = CompareTarget(d.byte())
			c.Result = CompareResult(d.byte())
			c.Value = d.bytes()
			c.Rev = d.varint()
			c.Exists = d.bool()
		}
	}
	t.Then = d.ops()
	t.Else = d.ops()
	if leased {
		d.leases(&t)
	}
	if err := d.finish("txn"); err != nil {
		return Txn{}, err
	}
	return t, nil
}

func (d *decoder) ops() []Op {
	n := d.count(opBytesMin)
	if n == 0 {
		return nil
	}
	ops := make([]Op, n)
	for i := range ops {
		op := &ops[i]
		t := d.byte()
		op.Type = OpType(t &^ opExtended)
		op.Key = d.bytes()
		op.Value = d.bytes()
		op.End = d.bytes()
		op.Prefix = d.bool()
		op.Limit = d.int()
		if t&opExtended != 0 {
			op.Flags, op.Lock, op.Session = d.uvarint(), LockOp(d.byte()), string(d.bytes())
			if op.Flags == 0 && op.Lock == LockNone && op.Session == "" {
				d.fail("extended op without flags or lock") // the encoder leaves it out instead
			}
		}
	}
	return ops
}

// EncodeRecord encodes r for disk.
func EncodeRecord(r Record) []byte {
	return appendRecord(make([]byte, 0, recordSizeMax(r)), r)
}

// recordSizeMax bounds the size of r's encoding.
func recordSizeMax(r Record) int { return len(r.Value) + len(r.Session) + 7*binary.MaxVarintLen64 }

// appendRecord writes a record with flags or a lock with its version as
// -(version+1), followed by flags, lock index and session. A version is
// never negative, so the sign tells the two forms apart, and records
// without Consul's fields encode, hash and snapshot as they did before them.
func appendRecord(b []byte, r Record) []byte {
	b = appendBytes(b, r.Value)
	b = binary.AppendVarint(b, r.CreateRev)
	b = binary.AppendVarint(b, r.ModRev)
	if !r.extended() {
		return binary.AppendVarint(b, r.Version)
	}
	b = binary.AppendVarint(b, -r.Version-1)
	b = binary.AppendUvarint(b, r.Flags)
	b = binary.AppendUvarint(b, r.LockIndex)
	return appendBytes(b, []byte(r.Session))
}

func (r *Record) extended() bool { return r.Flags != 0 || r.LockIndex != 0 || r.Session != "" }

// DecodeRecord decodes a record written by EncodeRecord. The record does not
// alias b.
func DecodeRecord(b []byte) (Record, error) {
	d := decoder{b: bytes.Clone(b)}
	r := d.record()
	if err := d.finish("record"); err != nil {
		return Record{}, err
	}
	return r, nil
}

func (d *decoder) record() Record {
	r := Record{Value: d.bytes(), CreateRev: d.varint(), ModRev: d.varint(), Version: d.varint()}
	if r.Version < 0 {
		r.Version = -r.Version - 1
		r.Flags, r.LockIndex, r.Session = d.uvarint(), d.uvarint(), string(d.bytes())
		if !r.extended() {
			d.fail("extended record without flags or lock") // the encoder leaves it out instead
		}
	}
	return r
}

// EncodeResponse encodes r, for instance to remember the answer to a client's
// retried request.
func EncodeResponse(r Response) []byte {
	b := make([]byte, 0, responseSizeMax(r))
	b = appendBool(b, r.Succeeded)
	b = binary.AppendVarint(b, r.Revision)
	b = binary.AppendUvarint(b, uint64(len(r.Results)))
	for _, res := range r.Results {
		b = binary.AppendUvarint(b, uint64(len(res.Records)))
		for _, kv := range res.Records {
			b = appendBytes(b, kv.Key)
			b = appendRecord(b, kv.Record)
		}
		b = appendBool(b, res.More)
		b = binary.AppendVarint(b, res.Deleted)
	}
	return b
}

func responseSizeMax(r Response) int {
	n := 1 + 2*binary.MaxVarintLen64
	for _, res := range r.Results {
		n += 1 + 2*binary.MaxVarintLen64
		for _, kv := range res.Records {
			n += len(kv.Key) + len(kv.Value) + len(kv.Session) + 8*binary.MaxVarintLen64
		}
	}
	return n
}

// DecodeResponse decodes a response written by EncodeResponse. The response
// does not alias b.
func DecodeResponse(b []byte) (Response, error) {
	d := decoder{b: bytes.Clone(b)}
	r := Response{Succeeded: d.bool(), Revision: d.varint()}
	if n := d.count(resultBytesMin); n > 0 {
		r.Results = make([]OpResult, n)
		for i := range r.Results {
			r.Results[i] = d.opResult()
		}
	}
	if err := d.finish("response"); err != nil {
		return Response{}, err
	}
	return r, nil
}

func (d *decoder) opResult() OpResult {
	var res OpResult
	if n := d.count(keyValueBytesMin); n > 0 {
		res.Records = make([]KeyValue, n)
		for i := range res.Records {
			res.Records[i] = KeyValue{Key: d.bytes(), Record: d.record()}
		}
	}
	res.More = d.bool()
	res.Deleted = d.varint()
	return res
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// decoder reads fields off b. The first failure is kept in err and empties b, so
// callers can read a whole structure and check once at the end; every read after
// a failure returns a zero value.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, what)
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad or truncated uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad or truncated varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int() int {
	v := d.varint()
	if int64(int(v)) != v {
		d.fail("integer out of range")
		return 0
	}
	return int(v)
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail("truncated byte")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("bad bool")
	return false
}

// bytes returns the next byte string, aliasing the decoder's input; empty
// strings decode as nil.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("truncated byte string")
		return nil
	}
	if n == 0 {
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

// count reads an element count, failing when the rest of the input is too short
// to hold that many elements of at least elemMin bytes each.
func (d *decoder) count(elemMin int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/elemMin) {
		d.fail("count exceeds input")
		return 0
	}
	return int(n)
}

func (d *decoder) finish(what string) error {
	if d.err == nil && len(d.b) > 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return fmt.Errorf("decode %s: %w", what, d.err)
	}
	return nil
}

func decodeError(what, why string) error {
	return fmt.Errorf("decode %s: %w: %s", what, ErrMalformed, why)
}
