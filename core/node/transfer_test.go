package node_test

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/sim/disk"
)

// A leader hands over only to a voter of its applied configuration; anything
// else is refused with a reason instead of being ignored, as raft would.
func TestTransferLeaderJudgesTarget(t *testing.T) {
	s := start(t, disk.New())
	s.n.Submit(change(7, 1, node.AddLearner, 2))
	s.run(1)
	s.n.Submit(change(7, 2, node.AddVoter, 3)) // a voter that never answers: fine for judging
	s.run(2)
	for _, r := range s.resp {
		if r.Outcome != node.OK {
			t.Fatalf("membership setup: got %v, want success", r.Err())
		}
	}
	cases := []struct {
		to      uint64
		want    error
		because string
	}{
		{1, node.ErrTransferRefused, "already leads"},
		{2, node.ErrTransferRefused, "is a learner"},
		{9, node.ErrTransferRefused, "not a member"},
		{3, nil, ""},
	}
	for _, c := range cases {
		err := s.n.TransferLeader(c.to)
		if !errors.Is(err, c.want) || (err != nil && !strings.Contains(err.Error(), c.because)) {
			t.Errorf("transfer to %d: got %v, want %v (%s)", c.to, err, c.want, c.because)
		}
		if refused := (&node.Error{}); err != nil && (!errors.As(err, &refused) || refused.Outcome != node.Conflict) {
			t.Errorf("transfer to %d: got %v, want a conflict outcome", c.to, err)
		}
	}
}

func TestTransferLeaderNeedsLeader(t *testing.T) {
	n, err := node.New(node.DefaultConfig(1, []uint64{1, 2, 3}), rand.New(rand.NewPCG(1, 2)), disk.New())
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if err := n.TransferLeader(2); !errors.Is(err, node.ErrTransferNotLeader) || !errors.Is(err, &node.Error{Outcome: node.NotLeader}) {
		t.Fatalf("transfer from a follower: got %v, want %v", err, node.ErrTransferNotLeader)
	}
}

// Outcomes compare by kind, and by detail when the target gives one.
func TestErrorMatchesByOutcome(t *testing.T) {
	err := error(&node.Error{Outcome: node.Conflict, Detail: "node 4 is a learner"})
	cases := []struct {
		target error
		want   bool
	}{
		{&node.Error{Outcome: node.Conflict}, true},
		{&node.Error{Outcome: node.Conflict, Detail: "node 4 is a learner"}, true},
		{&node.Error{Outcome: node.Conflict, Detail: "another"}, false},
		{&node.Error{Outcome: node.Invalid}, false},
	}
	for _, c := range cases {
		if got := errors.Is(err, c.target); got != c.want {
			t.Errorf("errors.Is(%v, %v) = %v, want %v", err, c.target, got, c.want)
		}
	}
	if !node.Conflict.Refused() || node.Timeout.Refused() || node.NotLeader.Refused() {
		t.Errorf("Refused: conflict must be a refusal, timeout and not leader must not")
	}
}
