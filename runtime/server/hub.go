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
	events  []node.Event  // ascending revisions, at most 2*watchHistoryMax
	oldest  int64         // events before this revision are gone
	closed  bool
}

func newHub() *hub { return &hub{changed: make(chan struct{})} }

func (h *hub) publish(evs []node.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, evs...)
	// Trim only when twice over the bound, down to the bound: each event is
	// copied at most once more, instead of the whole history on every write.
	if len(h.events) > 2*watchHistoryMax {
		over := len(h.events) - watchHistoryMax
		h.oldest = h.events[over-1].Revision + 1 // a revision cut in two counts as gone
		h.events = append(h.events[:0:0], h.events[over:]...)
	}
	h.rev = evs[len(evs)-1].Revision
	h.wakeLocked()
}

// reset forgets history: the state was replaced (a snapshot install, or a
// start), so watches from before it cannot be served.
func (h *hub) reset(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events, h.rev, h.oldest = nil, rev, rev+1
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
	first := sort.Search(len(h.events), func(i int) bool { return h.events[i].Revision >= rev })
	for _, e := range h.events[first:] {
		if match(e) {
			evs = append(evs, e)
		}
	}
	return evs, h.rev, true, h.changed
}
