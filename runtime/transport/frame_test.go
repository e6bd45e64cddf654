package transport

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	raw := cat(frameBytes(t, messageHead, []byte("hello")), frameBytes(t, []byte{frameChunk}, bytes.Repeat([]byte("z"), 300)))
	fr := &frameReader{r: bufio.NewReader(bytes.NewReader(raw))}
	for _, want := range [][]byte{append([]byte{frameMessage}, "hello"...), append([]byte{frameChunk}, bytes.Repeat([]byte("z"), 300)...)} {
		got, err := fr.next(1 << 10)
		if err != nil {
			t.Fatalf("next: %v", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("got payload %q, want %q", got, want)
		}
	}
}

// TestFrameReaderChecksLengthBeforeAllocating feeds a header claiming 4 GiB
// with no payload behind it: the reader must refuse it without growing.
func TestFrameReaderChecksLengthBeforeAllocating(t *testing.T) {
	fr := &frameReader{r: bufio.NewReader(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}))}
	_, err := fr.next(1 << 20)
	if err == nil || !strings.Contains(err.Error(), "exceeds limit") {
		t.Fatalf("got error %v, want one saying the frame exceeds the limit", err)
	}
	if cap(fr.buf) != 0 {
		t.Errorf("got a buffer of %d bytes, want none allocated", cap(fr.buf))
	}
}

func TestFrameReaderRejects(t *testing.T) {
	good := frameBytes(t, messageHead, []byte("payload"))
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-1] ^= 1
	tests := []struct {
		name, raw, want string
	}{
		{"corrupt payload", string(corrupt), "checksum"},
		{"empty frame", "\x00\x00\x00\x00\x00\x00\x00\x00", "empty frame"},
		{"truncated payload", string(good[:len(good)-2]), "unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := &frameReader{r: bufio.NewReader(strings.NewReader(tt.raw))}
			_, err := fr.next(1 << 10)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestReassembly(t *testing.T) {
	data := []byte("0123456789abcdefghij")
	piece := func(id, off, end uint64) chunk {
		return chunk{id: id, total: uint64(len(data)), offset: off, data: data[off:end]}
	}
	tests := []struct {
		name   string
		chunks []chunk
		want   string // the message, or a substring of the error of the last chunk
	}{
		{"in order", []chunk{piece(1, 0, 7), piece(1, 7, 14), piece(1, 14, 20)}, string(data)},
		{"one chunk", []chunk{piece(1, 0, 20)}, string(data)},
		{"gap", []chunk{piece(1, 0, 7), piece(1, 14, 20)}, "want 7"},
		{"repeat", []chunk{piece(1, 0, 7), piece(1, 0, 7)}, "before message 1 is complete"},
		{"no start", []chunk{piece(1, 7, 14)}, "no start"},
		{"other message inside", []chunk{piece(1, 0, 7), piece(2, 7, 14)}, "inside message 1"},
		{"past total", []chunk{{id: 1, total: 5, data: data[:6]}}, "runs past"},
		{"over limit", []chunk{{id: 1, total: 101, data: data[:1]}}, "exceeds limit of 100"},
		{"empty", []chunk{{id: 1, total: 5}}, "no data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ra := reassembly{bytesMax: 100}
			var msg []byte
			var err error
			for i, c := range tt.chunks {
				msg, err = ra.add(c)
				if err != nil && i < len(tt.chunks)-1 {
					t.Fatalf("chunk %d: unexpected error %v", i, err)
				}
			}
			switch {
			case err != nil && !strings.Contains(err.Error(), tt.want):
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			case err == nil && string(msg) != tt.want:
				t.Errorf("got message %q, want %q", msg, tt.want)
			case err == nil && cap(msg) != len(msg):
				t.Errorf("got capacity %d for a %d-byte message, want no slack", cap(msg), len(msg))
			}
			if err == nil && ra.active() {
				t.Errorf("got a reassembly still active after a whole message, want idle")
			}
		})
	}
}
