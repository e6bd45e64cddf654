package module

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Modules encode commands, answers and records as (u)varints and
// length-prefixed byte strings in field order. Reader is the one decoder they
// share: it remembers the first failure, so a caller reads every field and
// checks once, and it refuses counts the bytes left could not hold before
// anyone allocates for them.

// ErrMalformed marks bytes no encoder produced.
var ErrMalformed = errors.New("malformed encoding")

// Reader decodes from B.
type Reader struct {
	B   []byte
	Err error
}

// Fail records the first failure, naming what did not decode.
func (r *Reader) Fail(format string, args ...any) {
	if r.Err == nil {
		r.Err = fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
}

func (r *Reader) Uvarint() uint64 {
	if r.Err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.B)
	if n <= 0 {
		r.Fail("truncated number")
		return 0
	}
	r.B = r.B[n:]
	return v
}

func (r *Reader) Varint() int64 {
	if r.Err != nil {
		return 0
	}
	v, n := binary.Varint(r.B)
	if n <= 0 {
		r.Fail("truncated number")
		return 0
	}
	r.B = r.B[n:]
	return v
}

// Count reads a count of elements that take at least one byte each.
func (r *Reader) Count() int {
	n := r.Uvarint()
	if n > uint64(len(r.B)) {
		r.Fail("count %d exceeds the %d bytes left", n, len(r.B))
		return 0
	}
	return int(n)
}

// Bytes returns the next length-prefixed bytes, aliasing the input.
func (r *Reader) Bytes() []byte {
	n := r.Count()
	if r.Err != nil {
		return nil
	}
	out := r.B[:n:n]
	r.B = r.B[n:]
	return out
}

func (r *Reader) String() string { return string(r.Bytes()) }

// Done reports the first failure, or trailing bytes, naming what was read.
func (r *Reader) Done(what string) error {
	if r.Err == nil && len(r.B) > 0 {
		r.Fail("%d bytes after the %s", len(r.B), what)
	}
	if r.Err != nil {
		return fmt.Errorf("%s: %w", what, r.Err)
	}
	return nil
}

// AppendBytes appends b with its length.
func AppendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
