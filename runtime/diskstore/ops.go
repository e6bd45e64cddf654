package diskstore

import (
	"encoding/binary"
	"fmt"

	"github.com/aspen-db/aspen/core/storage"
)

// Op kinds in a record's payload.
const (
	kindPut    byte = 1
	kindDelete byte = 2
)

// appendOps appends ops to out as, for each: kind, key length, key and, for a
// put, value length and value; lengths are uvarints.
func appendOps(out []byte, ops []storage.Op) []byte {
	for _, op := range ops {
		if op.Delete {
			out = append(out, kindDelete)
			out = appendBytes(out, op.Key)
			continue
		}
		out = append(out, kindPut)
		out = appendBytes(appendBytes(out, op.Key), op.Value)
	}
	return out
}

func appendBytes(out, b []byte) []byte {
	return append(binary.AppendUvarint(out, uint64(len(b))), b...)
}

// walkOps calls fn with each op appendOps encoded in enc, aliasing enc, and
// the offset in enc of a put's value.
func walkOps(enc []byte, fn func(op storage.Op, valueAt int)) error {
	for i, rest := 0, enc; len(rest) > 0; i++ {
		kind := rest[0]
		key, after, err := cutBytes(rest[1:])
		if err != nil {
			return fmt.Errorf("op %d key: %w", i, err)
		}
		switch kind {
		case kindDelete:
			fn(storage.Op{Key: key, Delete: true}, 0)
		case kindPut:
			var value []byte
			if value, after, err = cutBytes(after); err != nil {
				return fmt.Errorf("op %d value: %w", i, err)
			}
			fn(storage.Op{Key: key, Value: value}, len(enc)-len(after)-len(value))
		default:
			return fmt.Errorf("%w: op %d has kind %d", storage.ErrCorrupt, i, kind)
		}
		rest = after
	}
	return nil
}

// cutBytes splits a uvarint-length-prefixed byte string off the front of enc.
func cutBytes(enc []byte) (b, rest []byte, err error) {
	n, size := binary.Uvarint(enc)
	if size <= 0 || n > uint64(len(enc)-size) {
		return nil, nil, fmt.Errorf("%w: truncated length-prefixed bytes", storage.ErrCorrupt)
	}
	end := size + int(n)
	return enc[size:end:end], enc[end:], nil
}
