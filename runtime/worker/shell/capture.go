package shell

import "fmt"

// capture keeps the first and last bytes of a stream, at most max in all,
// and counts what it dropped between them. Memory is bounded by max however
// much the command writes: the tail is a ring.
type capture struct {
	headMax int
	head    []byte
	tail    []byte // a ring of at most tailMax bytes once full
	tailMax int
	tailAt  int   // where the next byte goes once the ring is full
	total   int64 // bytes written in all
}

func newCapture(max int) *capture {
	headMax := max / 2
	return &capture{headMax: headMax, tailMax: max - headMax}
}

// Write never fails, so a command is never stopped by a full capture.
func (c *capture) Write(p []byte) (int, error) {
	n := len(p)
	c.total += int64(n)
	if room := c.headMax - len(c.head); room > 0 {
		k := min(room, len(p))
		c.head = append(c.head, p[:k]...)
		p = p[k:]
	}
	if len(p) >= c.tailMax {
		// Only the last tailMax bytes of p can survive.
		c.tail = append(c.tail[:0], p[len(p)-c.tailMax:]...)
		c.tailAt = 0
		return n, nil
	}
	for len(p) > 0 {
		if len(c.tail) < c.tailMax {
			k := min(c.tailMax-len(c.tail), len(p))
			c.tail = append(c.tail, p[:k]...)
			p = p[k:]
			continue
		}
		k := copy(c.tail[c.tailAt:], p)
		c.tailAt = (c.tailAt + k) % c.tailMax
		p = p[k:]
	}
	return n, nil
}

// truncated reports whether bytes were dropped.
func (c *capture) truncated() bool { return c.total > int64(c.headMax+c.tailMax) }

// String is the head, a marker naming how many bytes were cut if any, and
// the tail in order.
func (c *capture) String() string {
	tail := append(append([]byte{}, c.tail[c.tailAt:]...), c.tail[:c.tailAt]...)
	if !c.truncated() {
		return string(c.head) + string(tail)
	}
	cut := c.total - int64(len(c.head)) - int64(len(tail))
	return string(c.head) + fmt.Sprintf("\n... [%d bytes cut] ...\n", cut) + string(tail)
}
