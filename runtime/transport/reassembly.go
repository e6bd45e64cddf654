package transport

import "fmt"

// reassembly rebuilds one chunked message on one connection. A sender writes
// the chunks of a message back to back and in order, so anything else (a gap,
// an overlap, another message in between) is a broken peer and an error.
// It lives and dies with its connection, so a disconnect drops whatever was
// incomplete.
type reassembly struct {
	bytesMax  uint64
	id, total uint64
	buf       []byte // nil when no message is in progress
}

// active reports whether a chunked message is partly received.
func (r *reassembly) active() bool {
	return r.buf != nil
}

// add appends c and returns the whole marshalled message once its last chunk
// has arrived, nil before that.
func (r *reassembly) add(c chunk) ([]byte, error) {
	if err := r.check(c); err != nil {
		return nil, err
	}
	if c.offset == 0 {
		r.id, r.total = c.id, c.total
	}
	r.buf = grow(r.buf, len(c.data), r.total)
	r.buf = append(r.buf, c.data...)
	if uint64(len(r.buf)) < r.total {
		return nil, nil
	}
	msg := r.buf
	r.buf = nil // the message is unmarshalled into copies; let the bytes go
	return msg, nil
}

// check validates c against the message in progress. The announced total is
// checked against the limit before any memory is set aside for it.
func (r *reassembly) check(c chunk) error {
	switch {
	case len(c.data) == 0:
		return fmt.Errorf("chunk of message %d carries no data", c.id)
	case c.total > r.bytesMax:
		return fmt.Errorf("chunked message of %d bytes exceeds limit of %d bytes", c.total, r.bytesMax)
	case c.offset == 0 && r.active():
		return fmt.Errorf("message %d starts before message %d is complete", c.id, r.id)
	case c.offset != 0 && !r.active():
		return fmt.Errorf("chunk of message %d at offset %d with no start", c.id, c.offset)
	case c.offset != 0 && (c.id != r.id || c.total != r.total):
		return fmt.Errorf("chunk of message %d (%d bytes) inside message %d (%d bytes)", c.id, c.total, r.id, r.total)
	case c.offset != uint64(len(r.buf)):
		return fmt.Errorf("chunk of message %d at offset %d, want %d", c.id, c.offset, len(r.buf))
	case uint64(len(c.data)) > c.total-c.offset:
		return fmt.Errorf("chunk of message %d runs past its total of %d bytes", c.id, c.total)
	}
	return nil
}

// grow makes room for n more bytes, doubling like append does but never past
// total: memory follows the bytes actually received, not the size announced,
// and a finished message holds no slack.
func grow(buf []byte, n int, total uint64) []byte {
	if cap(buf)-len(buf) >= n {
		return buf
	}
	size := uint64(max(2*cap(buf), len(buf)+n))
	grown := make([]byte, len(buf), min(size, total))
	copy(grown, buf)
	return grown
}
