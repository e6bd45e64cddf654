package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Wire format. Every frame is
//
//	[uint32 payload length][uint32 CRC-32C of payload][payload]
//
// big-endian, and the first byte of a payload is its frame type:
//
//	hello:   type, uint32 version, uint64 from, uint64 to
//	message: type, marshalled raftpb.Message
//	chunk:   type, uint64 message id, uint64 total size, uint64 offset, data
//
// A connection carries one hello and then messages and chunks, in one
// direction only: each peer dials its own connection to send on.
const (
	protocolVersion uint32 = 1

	frameHeaderBytes = 8
	helloBytes       = 1 + 4 + 8 + 8
	chunkHeaderBytes = 1 + 8 + 8 + 8

	frameHello   byte = 1
	frameMessage byte = 2
	frameChunk   byte = 3
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// messageHead is the head of every message frame; it is never written to.
var messageHead = []byte{frameMessage}

// frameWriter writes frames to a buffered writer, and keeps a buffer to
// marshal small messages into so that steady traffic does not allocate.
type frameWriter struct {
	w   *bufio.Writer
	buf []byte
}

// write writes one frame whose payload is head followed by body: taking the
// payload in two parts lets a chunk go out without copying its data.
func (fw *frameWriter) write(head, body []byte) error {
	var hdr [frameHeaderBytes]byte
	binary.BigEndian.PutUint32(hdr[0:4], uint32(len(head)+len(body)))
	crc := crc32.Update(crc32.Checksum(head, castagnoli), castagnoli, body)
	binary.BigEndian.PutUint32(hdr[4:8], crc)
	if _, err := fw.w.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := fw.w.Write(head); err != nil {
		return err
	}
	_, err := fw.w.Write(body)
	return err
}

// frameReader reads frames into a buffer it reuses, so the buffer grows to the
// largest frame the connection has carried and never past the caller's limit.
type frameReader struct {
	r   *bufio.Reader
	buf []byte
}

// next returns the payload of the next frame, valid until the next call. The
// length is checked against payloadBytesMax before anything is allocated for
// it, so a corrupt or hostile length cannot cost memory.
func (fr *frameReader) next(payloadBytesMax int) ([]byte, error) {
	var hdr [frameHeaderBytes]byte
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[0:4])
	if n == 0 {
		return nil, errors.New("empty frame")
	}
	if uint64(n) > uint64(payloadBytesMax) {
		return nil, fmt.Errorf("frame of %d bytes exceeds limit of %d bytes", n, payloadBytesMax)
	}
	if uint32(cap(fr.buf)) < n {
		fr.buf = make([]byte, n)
	}
	p := fr.buf[:n]
	if _, err := io.ReadFull(fr.r, p); err != nil {
		return nil, fmt.Errorf("read frame payload: %w", noEOF(err))
	}
	if got, want := crc32.Checksum(p, castagnoli), binary.BigEndian.Uint32(hdr[4:8]); got != want {
		return nil, fmt.Errorf("frame checksum %#08x, header says %#08x", got, want)
	}
	return p, nil
}

// noEOF turns EOF inside a frame into ErrUnexpectedEOF: the peer hung up in
// the middle of a frame, which is not a clean end of stream.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// hello opens every connection and names both ends, so a peer dialling a
// stale address reaches a node that refuses it rather than one that obeys.
type hello struct {
	version  uint32
	from, to uint64
}

func (h hello) encode() []byte {
	p := make([]byte, helloBytes)
	p[0] = frameHello
	binary.BigEndian.PutUint32(p[1:5], h.version)
	binary.BigEndian.PutUint64(p[5:13], h.from)
	binary.BigEndian.PutUint64(p[13:21], h.to)
	return p
}

func decodeHello(p []byte) (hello, error) {
	if p[0] != frameHello {
		return hello{}, fmt.Errorf("first frame has type %d, want hello", p[0])
	}
	if len(p) != helloBytes {
		return hello{}, fmt.Errorf("hello of %d bytes, want %d", len(p), helloBytes)
	}
	return hello{
		version: binary.BigEndian.Uint32(p[1:5]),
		from:    binary.BigEndian.Uint64(p[5:13]),
		to:      binary.BigEndian.Uint64(p[13:21]),
	}, nil
}

// chunk is one piece of a message too large for a single frame.
type chunk struct {
	id, total, offset uint64
	data              []byte
}

func encodeChunkHeader(dst *[chunkHeaderBytes]byte, c chunk) {
	dst[0] = frameChunk
	binary.BigEndian.PutUint64(dst[1:9], c.id)
	binary.BigEndian.PutUint64(dst[9:17], c.total)
	binary.BigEndian.PutUint64(dst[17:25], c.offset)
}

// decodeChunk parses a chunk frame; its data aliases p.
func decodeChunk(p []byte) (chunk, error) {
	if len(p) <= chunkHeaderBytes {
		return chunk{}, fmt.Errorf("chunk frame of %d bytes carries no data", len(p))
	}
	return chunk{
		id:     binary.BigEndian.Uint64(p[1:9]),
		total:  binary.BigEndian.Uint64(p[9:17]),
		offset: binary.BigEndian.Uint64(p[17:25]),
		data:   p[chunkHeaderBytes:],
	}, nil
}
