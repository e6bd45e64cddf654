package server

import (
	"testing"

	"github.com/aspen-db/aspen/core/node"
)

// The hub keeps the last watchHistoryMax events in order, says a revision is
// gone once any of its events is, and starts over at a reset.
func TestHubKeepsRecentHistory(t *testing.T) {
	h := newHub()
	all := func(node.Event) bool { return true }
	// Two events per revision, then one: the ring's cut then falls inside a
	// revision, whose first event is gone and second kept.
	rev := int64(0)
	for range watchHistoryMax + 7 {
		rev++
		h.publish([]node.Event{{Revision: rev, Key: []byte("a")}, {Revision: rev, Key: []byte("b")}})
	}
	rev++
	h.publish([]node.Event{{Revision: rev}})
	evs, upTo, ok, _ := h.since(rev-10, all)
	if !ok || upTo != rev || len(evs) != 21 || evs[0].Revision != rev-10 || evs[20].Revision != rev {
		t.Fatalf("since(%d) = %d events (%v), up to %d, ok %v; want 21 from %d to %d", rev-10, len(evs), revisions(evs), upTo, ok, rev-10, rev)
	}
	// The ring holds 16384 events: the last revision's one, the 8191 pairs
	// before it, and the second event of the pair before those, whose
	// revision is thus gone.
	whole := int64(watchHistoryMax/2 - 1)
	first := rev - whole
	if evs, _, ok, _ := h.since(first, all); !ok || len(evs) != int(2*whole+1) {
		t.Errorf("since(%d): %d events, ok %v; want %d, true (the revisions from it on are whole)", first, len(evs), ok, 2*whole+1)
	}
	if _, _, ok, _ := h.since(first-1, all); ok {
		t.Errorf("since(%d): history kept, want it gone (its first event left the ring)", first-1)
	}
	evs, _, _, _ = h.since(first, all)
	for i := 1; i < len(evs); i++ {
		if evs[i].Revision < evs[i-1].Revision {
			t.Fatalf("events out of order at %d: %d after %d", i, evs[i].Revision, evs[i-1].Revision)
		}
	}
	h.reset(rev + 5)
	if _, _, ok, _ := h.since(rev, all); ok {
		t.Errorf("since(%d) after a reset to %d: history kept, want it gone", rev, rev+5)
	}
	h.publish([]node.Event{{Revision: rev + 6}})
	if evs, _, ok, _ := h.since(rev+6, all); !ok || len(evs) != 1 {
		t.Errorf("since(%d) after a reset and one event: %d events, ok %v; want 1, true", rev+6, len(evs), ok)
	}
}

func revisions(evs []node.Event) []int64 {
	var out []int64
	for _, e := range evs {
		out = append(out, e.Revision)
	}
	return out
}
