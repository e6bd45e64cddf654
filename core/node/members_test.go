package node_test

import (
	"strings"
	"testing"

	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/sim/disk"
)

func change(client, seq uint64, t node.MemberChangeType, id uint64) node.Request {
	return node.Request{Client: client, Seq: seq, Members: []node.MemberChange{{Type: t, ID: id, PeerAddr: "p", HTTPAddr: "h"}}}
}

// A learner that has not caught up is not promoted, a removed id is never
// reused, and a retried change is answered, not refused.
func TestMembershipRules(t *testing.T) {
	s := start(t, disk.New())
	s.n.Submit(change(7, 1, node.AddLearner, 2))
	s.run(1)
	if s.resp[0].Outcome != node.OK {
		t.Fatalf("add learner 2: got %v, want success", s.resp[0].Err())
	}
	if st := s.n.Status(); len(st.Learners) != 1 || st.Learners[0] != 2 {
		t.Fatalf("learners %v, want [2]", st.Learners)
	}
	s.n.Submit(change(7, 1, node.AddLearner, 2)) // the same request, retried
	s.run(2)
	if s.resp[1].Outcome != node.OK {
		t.Fatalf("retried add: got %v, want the first answer (success)", s.resp[1].Err())
	}
	s.n.Submit(change(7, 2, node.AddVoter, 2)) // node 2 does not exist: it never catches up
	s.run(3)
	if s.resp[2].Outcome != node.Behind {
		t.Fatalf("promote a learner that is behind: got %v, want %v", s.resp[2].Err(), node.Behind)
	}
	s.n.Submit(change(7, 3, node.RemoveMember, 2))
	s.run(4)
	s.n.Submit(change(7, 4, node.AddLearner, 2))
	s.run(5)
	if r := s.resp[4]; r.Outcome != node.Conflict || !strings.Contains(r.Detail, "never reused") {
		t.Fatalf("re-add removed id: got %v, want a never-reused conflict", r.Err())
	}
	s.n.Submit(change(7, 5, node.RemoveMember, 1))
	s.run(6)
	if s.resp[5].Outcome != node.Conflict {
		t.Fatalf("remove the last voter: got %v, want a conflict", s.resp[5].Err())
	}
	if got := s.n.Members(); len(got) != 1 || got[0].ID != 1 {
		t.Fatalf("members %+v, want only node 1", got)
	}
}
