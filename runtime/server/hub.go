package server

import (
	"context"
	"sort"
	"sync"

	"github.com/aspen-db/aspen/core/node"
)

// hub tells waiting readers that the revision moved, and keeps recent events
// for watches. It is the one place the loop and HTTP handlers share.
type hub struct {
	mu      sync.Mutex
	rev     int64
	changed chan struct{} // closed and replaced whenever rev moves
	// events holds the last watchHistoryMax events, in ascending revisions
	// from index head on, wrapping: a ring, once full, so that keeping them
	// allocates nothing per write (copying the history down whenever it
	// doubled was 7% of the bytes a leader allocated under 64 writers).
	events []node.Event
	head   int
	oldest int64 // events before this revision are gone
	closed bool
}

func newHub() *hub { return &hub{changed: make(chan struct{})} }

func (h *hub) publish(evs []node.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range evs {
		if len(h.events) < watchHistoryMax {
			h.events = append(h.events, e)
			continue
		}
		// A revision cut in two counts as gone.
		h.oldest = h.events[h.head].Revision + 1
		h.events[h.head] = e
		h.head = (h.head + 1) % len(h.events)
	}
	h.rev = evs[len(evs)-1].Revision
	h.wakeLocked()
}

// event returns the i-th retained event, oldest first. Callers hold mu.
func (h *hub) event(i int) node.Event { return h.events[(h.head+i)%len(h.events)] }

// reset forgets history: the state was replaced (a snapshot install, or a
// start), so watches from before it cannot be served.
func (h *hub) reset(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.events) // let go of the values they hold
	h.events, h.head, h.rev, h.oldest = h.events[:0], 0, rev, rev+1
	h.wakeLocked()
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	h.wakeLocked()
}

func (h *hub) wakeLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// revision returns the current revision and a channel closed when it moves.
func (h *hub) revision() (int64, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rev, h.changed
}

// waitAbove blocks until the revision exceeds index, ctx ends or stop is
// closed; it returns the revision it saw last.
func (h *hub) waitAbove(ctx context.Context, stop <-chan struct{}, index int64) int64 {
	for {
		rev, ch := h.revision()
		if rev > index {
			return rev
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return rev
		case <-stop:
			return rev
		}
	}
}

// since returns the retained events at or after rev that match, the revision
// the answer is complete up to, whether history still reaches back to rev, and
// a channel closed when more arrives. Taken under one lock, so no event can
// slip between the answer and the channel.
func (h *hub) since(rev int64, match func(node.Event) bool) (evs []node.Event, upTo int64, ok bool, changed <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if rev < h.oldest || h.closed {
		return nil, h.rev, false, h.changed
	}
	first := sort.Search(len(h.events), func(i int) bool { return h.event(i).Revision >= rev })
	for i := first; i < len(h.events); i++ {
		if e := h.event(i); match(e) {
			evs = append(evs, e)
		}
	}
	return evs, h.rev, true, h.changed
}
