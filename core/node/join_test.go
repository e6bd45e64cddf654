package node

import (
	"math/rand/v2"
	"testing"

	"github.com/aspen-db/aspen/sim/disk"
	"go.etcd.io/raft/v3/raftpb"
)

// joiner is a node started with --join that has not yet received the
// leader's snapshot: its disk holds at most a hard state.
func joiner(t *testing.T, d *disk.Disk) *Node {
	t.Helper()
	return startNode4(t, d, true)
}

// startNode4 starts node 4 of a cluster of 1, 2 and 3 on d.
func startNode4(t *testing.T, d *disk.Disk, join bool) *Node {
	t.Helper()
	cfg := DefaultConfig(4, []uint64{1, 2, 3, 4})
	cfg.Join = join
	n, err := New(cfg, rand.New(rand.NewPCG(3, 4)), d)
	if err != nil {
		t.Fatalf("start joiner: %v", err)
	}
	return n
}

// voteFor asks n for its vote in term 5 on behalf of candidate and reports
// whether n granted it, after persisting what n wrote as a driver must.
func voteFor(t *testing.T, n *Node, d *disk.Disk, candidate uint64) bool {
	t.Helper()
	if err := n.Step(raftpb.Message{Type: raftpb.MsgVote, From: candidate, To: 4, Term: 5, Index: 50, LogTerm: 4}); err != nil {
		t.Fatalf("step vote: %v", err)
	}
	granted := false
	carryOut(t, n, d, func(rd Ready) {
		for _, m := range append(rd.EarlyMessages, rd.Messages...) {
			if m.Type == raftpb.MsgVoteResp && m.To == candidate {
				granted = !m.Reject
			}
		}
	})
	return granted
}

// A node added as a voter can be asked to vote before the leader's snapshot
// reaches it. The vote it cast must survive a restart, or it could vote for
// two candidates in one term and let both win.
// Restarted without --join, its disk still says it is a joiner: it must not
// bootstrap a cluster of its own either.
func TestJoinerRemembersVoteAcrossRestart(t *testing.T) {
	for _, rejoin := range []bool{true, false} {
		d := disk.New()
		if !voteFor(t, joiner(t, d), d, 2) {
			t.Fatal("a joiner with an empty log refused its first vote")
		}
		d.Crash(rand.New(rand.NewPCG(1, 1)), disk.Faults{})
		if voteFor(t, startNode4(t, d, rejoin), d, 3) {
			t.Fatalf("after a restart (join %v) the joiner voted again in term 5, for another candidate", rejoin)
		}
	}
}

// A joiner told it was removed before any snapshot reached it must not come
// back as a fresh replica on the same disk.
func TestJoinerRemembersRemovalAcrossRestart(t *testing.T) {
	d := disk.New()
	if err := d.Apply(joiner(t, d).MarkRemoved()); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	if !joiner(t, d).Removed() {
		t.Fatal("after a restart the removed joiner forgot its removal")
	}
}

// A replica started with its election advanced campaigns within one
// election timeout and two ticks of its start (raft's own timeout is one to
// two election timeouts), so a cluster started together elects its first
// leader about twice as soon. Five starts: with the advance doing nothing,
// each would wait past that bound four times in five.
func TestAdvancedElectionCampaignsSooner(t *testing.T) {
	for start := range 5 {
		cfg := DefaultConfig(1, []uint64{1, 2, 3})
		d := disk.New()
		n, err := New(cfg, rand.New(rand.NewPCG(uint64(start), 7)), d)
		if err != nil {
			t.Fatal(err)
		}
		carryOut(t, n, d, nil)
		n.AdvanceElection()
		ticks := 0
		for campaigned := false; !campaigned; {
			if ticks++; ticks > cfg.ElectionTicks+1 {
				t.Fatalf("start %d: no campaign within %d ticks of an advanced election", start, cfg.ElectionTicks+1)
			}
			n.Tick(int64(ticks) * cfg.TickNs)
			carryOut(t, n, d, func(rd Ready) {
				for _, m := range append(rd.EarlyMessages, rd.Messages...) {
					campaigned = campaigned || m.Type == raftpb.MsgPreVote
				}
			})
		}
	}
}
