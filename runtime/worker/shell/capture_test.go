package shell

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// The capture equals head + marker + tail of the whole stream, however the
// stream is split into writes.
func TestCaptureKeepsHeadAndTail(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		max := 1 + rng.IntN(40)
		stream := make([]byte, rng.IntN(120))
		for j := range stream {
			stream[j] = byte('a' + j%26)
		}
		c := newCapture(max)
		for rest := stream; len(rest) > 0; {
			k := min(len(rest), 1+rng.IntN(50))
			c.Write(rest[:k])
			rest = rest[k:]
		}
		want := string(stream)
		if len(stream) > max {
			head, tail := max/2, max-max/2
			want = string(stream[:head]) + fmt.Sprintf("\n... [%d bytes cut] ...\n", len(stream)-max) + string(stream[len(stream)-tail:])
		}
		if got := c.String(); got != want || c.truncated() != (len(stream) > max) {
			t.Fatalf("case %d (max %d, %d bytes): got %q (truncated %v), want %q", i, max, len(stream), got, c.truncated(), want)
		}
	}
}
