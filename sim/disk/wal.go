package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/aspen-db/aspen/core/storage"
)

// The write-ahead log is a sequence of frames, one per applied batch:
//
//	frame   = length uint32 (big-endian, bytes of payload)
//	          crc    uint32 (big-endian, CRC-32C of payload)
//	          payload
//	payload = nops uvarint, then nops times:
//	          kind byte (opPut or opDelete)
//	          keylen uvarint, key
//	          for opPut only: vallen uvarint, value
//
// Every uvarint must be minimally encoded and a payload must be consumed exactly,
// so a frame that decodes has exactly one encoding (decode then encode is the
// identity), which the tests rely on.

const headerSize = 8

const (
	opPut    byte = 0
	opDelete byte = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Reasons a frame is rejected. Recovery stops at the first rejected frame.
var (
	errShortHeader = errors.New("frame header cut short")
	errShortFrame  = errors.New("frame payload cut short")
	errEmptyFrame  = errors.New("frame has an empty payload")
	errChecksum    = errors.New("frame checksum mismatch")
	errPayload     = errors.New("frame payload malformed")
	errTooLarge    = errors.New("batch too large for one frame")
)

// record is one decoded op. key and value alias the decoded buffer.
type record struct {
	key   []byte
	value []byte
	del   bool
}

// appendFrame appends the frame encoding ops to dst. On error dst is returned
// unchanged (same length).
func appendFrame(dst []byte, ops []storage.Op) ([]byte, error) {
	start := len(dst)
	dst, err := appendUnsealedFrame(dst, ops)
	if err == nil {
		sealFrame(dst[start:])
	}
	return dst, err
}

// appendUnsealedFrame is appendFrame without the checksum, which sealFrame
// writes later: the disk checksums its log only when a crash reads it.
func appendUnsealedFrame(dst []byte, ops []storage.Op) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	dst = binary.AppendUvarint(dst, uint64(len(ops)))
	for i := range ops {
		op := &ops[i]
		if op.Delete {
			dst = append(dst, opDelete)
			dst = binary.AppendUvarint(dst, uint64(len(op.Key)))
			dst = append(dst, op.Key...)
			continue
		}
		dst = append(dst, opPut)
		dst = binary.AppendUvarint(dst, uint64(len(op.Key)))
		dst = append(dst, op.Key...)
		dst = binary.AppendUvarint(dst, uint64(len(op.Value)))
		dst = append(dst, op.Value...)
	}
	payload := dst[start+headerSize:]
	if uint64(len(payload)) > math.MaxUint32 {
		return dst[:start], fmt.Errorf("disk: %w: %d bytes", errTooLarge, len(payload))
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(payload)))
	return dst, nil
}

// sealFrame writes the checksum of the frame that starts frame.
func sealFrame(frame []byte) {
	payload := frame[headerSize : headerSize+int(binary.BigEndian.Uint32(frame))]
	binary.BigEndian.PutUint32(frame[4:], crc32.Checksum(payload, castagnoli))
}

// decodeFrame decodes the frame at the start of buf, returning its ops and its
// size in bytes. It never panics, whatever buf holds.
func decodeFrame(buf []byte) ([]record, int, error) {
	if len(buf) < headerSize {
		return nil, 0, errShortHeader
	}
	n := binary.BigEndian.Uint32(buf)
	if n == 0 {
		return nil, 0, errEmptyFrame
	}
	if uint64(n) > uint64(len(buf)-headerSize) {
		return nil, 0, errShortFrame
	}
	payload := buf[headerSize : headerSize+int(n)]
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(buf[4:]) {
		return nil, 0, errChecksum
	}
	ops, err := decodePayload(payload)
	if err != nil {
		return nil, 0, err
	}
	return ops, headerSize + int(n), nil
}

func decodePayload(p []byte) ([]record, error) {
	nops, p, ok := readUvarint(p)
	// Every op takes at least two bytes (kind and key length), which bounds the
	// allocation below by the payload size.
	if !ok || nops > uint64(len(p))/2 {
		return nil, errPayload
	}
	ops := make([]record, 0, int(nops))
	for range nops {
		if len(p) == 0 {
			return nil, errPayload
		}
		kind := p[0]
		p = p[1:]
		if kind != opPut && kind != opDelete {
			return nil, errPayload
		}
		var r record
		if r.key, p, ok = readBytes(p); !ok {
			return nil, errPayload
		}
		if kind == opDelete {
			r.del = true
		} else if r.value, p, ok = readBytes(p); !ok {
			return nil, errPayload
		}
		ops = append(ops, r)
	}
	if len(p) != 0 {
		return nil, errPayload
	}
	return ops, nil
}

// readUvarint reads a minimally encoded uvarint.
func readUvarint(p []byte) (uint64, []byte, bool) {
	v, n := binary.Uvarint(p)
	if n <= 0 {
		return 0, p, false
	}
	// A final byte of zero (other than a lone zero) means an overlong encoding.
	if n > 1 && p[n-1] == 0 {
		return 0, p, false
	}
	return v, p[n:], true
}

func readBytes(p []byte) ([]byte, []byte, bool) {
	n, rest, ok := readUvarint(p)
	if !ok || n > uint64(len(rest)) {
		return nil, p, false
	}
	return rest[:n:n], rest[n:], true
}

// decodeLog decodes whole, valid frames from the start of buf until the first
// that is not, returning the frames' ops and how many bytes they span. stop is
// nil when buf was consumed exactly, otherwise why the next frame was rejected.
// Nothing is applied here, so the caller can apply frames all-or-nothing.
func decodeLog(buf []byte) (frames [][]record, valid int, stop error) {
	for valid < len(buf) {
		ops, n, err := decodeFrame(buf[valid:])
		if err != nil {
			return frames, valid, err
		}
		frames = append(frames, ops)
		valid += n
	}
	return frames, valid, nil
}
