package node_test

import (
	"math/rand/v2"
	"testing"

	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/sim/disk"
)

// A leader's writes carry its clock into the replicated time, which a
// restart reads back from disk and which never goes back, even when the
// clock does.
func TestReplicatedTimeFollowsTheLeadersStamps(t *testing.T) {
	d := disk.New()
	s := start(t, d)
	s.n.Submit(put(7, 1, "a", "1"))
	s.run(1)
	first := s.n.TimeNs()
	if first <= 0 || first > s.now {
		t.Fatalf("after a write at clock %d: replicated time %d, want in (0, %d]", s.now, first, s.now)
	}
	s.now -= 5_000_000_000 // the clock jumps back
	s.n.Submit(put(7, 2, "a", "2"))
	s.run(2)
	if got := s.n.TimeNs(); got < first {
		t.Fatalf("after the clock went back: replicated time %d, below %d", got, first)
	}
	want := s.n.TimeNs()
	again, err := node.New(node.DefaultConfig(1, []uint64{1}), rand.New(rand.NewPCG(1, 2)), d)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	if got := again.TimeNs(); got != want {
		t.Fatalf("after a restart: replicated time %d, want %d", got, want)
	}
}
