package node_test

import (
	"math/rand/v2"
	"testing"

	"github.com/aspen-db/aspen/core/lease"
	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/sim/disk"
)

// pair is two replicas wired straight to each other, each reading its own
// clock: the true time plus an offset.
type pair struct {
	t      *testing.T
	nodes  [2]*node.Node
	disks  [2]*disk.Disk
	offset [2]int64
	now    int64
	resp   []node.Response
}

func startPair(t *testing.T) *pair {
	t.Helper()
	p := &pair{t: t}
	for i := range p.nodes {
		p.disks[i] = disk.New()
		n, err := node.New(node.DefaultConfig(uint64(i+1), []uint64{1, 2}), rand.New(rand.NewPCG(uint64(i), 9)), p.disks[i])
		if err != nil {
			t.Fatalf("start node %d: %v", i+1, err)
		}
		p.nodes[i] = n
	}
	for i := 0; i < 1000 && p.leader() < 0; i++ {
		p.step()
	}
	if p.leader() < 0 {
		t.Fatalf("no leader after 1000 ticks")
	}
	return p
}

func (p *pair) leader() int {
	for i, n := range p.nodes {
		if _, ok := n.LeaderTerm(); ok {
			return i
		}
	}
	return -1
}

// step ticks both replicas once and carries out every Ready until neither
// has anything left, delivering messages at once.
func (p *pair) step() {
	p.t.Helper()
	p.now += 10_000_000
	for i, n := range p.nodes {
		n.Tick(p.now + p.offset[i])
	}
	for busy := true; busy; {
		busy = false
		for i, n := range p.nodes {
			for n.HasReady() {
				busy = true
				rd := n.Ready()
				if err := p.disks[i].Apply(rd.Batch); err != nil {
					p.t.Fatal(err)
				}
				if err := p.disks[i].Sync(); err != nil {
					p.t.Fatal(err)
				}
				p.resp = append(p.resp, rd.Responses...)
				n.Advance()
				for _, m := range append(rd.EarlyMessages, rd.Messages...) {
					_ = p.nodes[m.To-1].Step(m)
				}
			}
		}
	}
}

// call submits a lease call at replica i and returns its answer.
func (p *pair) call(i int, client, seq uint64, c module.Command) lease.Answer {
	p.t.Helper()
	p.nodes[i].Submit(node.Request{Client: client, Seq: seq, Call: &c})
	for n := 0; n < 1000; n++ {
		for _, r := range p.resp {
			if r.Client == client && r.Seq == seq {
				if r.Outcome != node.OK {
					p.t.Fatalf("%v at node %d: %v", c.Kind, i+1, r.Err())
				}
				return r.Value.(lease.Answer)
			}
		}
		p.step()
	}
	p.t.Fatalf("no answer to call %d at node %d", c.Kind, i+1)
	return lease.Answer{}
}

// What a lease has left is told by the leader's clock, which decides when
// it expires. A follower knows replicated time only: whatever its own clock
// reads, it answers by that. Read at its own clock, a follower whose clock
// ran seconds ahead of the leader's said nothing was left of a lease renewed
// a moment ago, and one behind promised too much.
func TestTimeToLiveIgnoresFollowersClocks(t *testing.T) {
	const ttlNs, idleNs, slackNs = 3_000_000_000, 1_000_000_000, 100_000_000
	var answers []int64
	for _, offset := range []int64{5_000_000_000, -5_000_000_000} {
		p := startPair(t)
		leader := p.leader()
		follower := 1 - leader
		p.offset[follower] = offset
		granted := p.call(leader, 7, 1, lease.Grant(0, ttlNs))
		for i := int64(0); i < idleNs/10_000_000; i++ {
			p.step()
		}
		id := granted.Lease.ID
		atLeader := p.call(leader, 8, 1<<63|1, lease.TimeToLive(id, false)).RemainingNs
		if want := int64(ttlNs - idleNs); atLeader < want-slackNs || atLeader > want+slackNs {
			t.Errorf("leader: %d ms left after %d ms idle, want about %d ms", atLeader/1_000_000, idleNs/1_000_000, want/1_000_000)
		}
		atFollower := p.call(follower, 8, 1<<63|2, lease.TimeToLive(id, false)).RemainingNs
		if atFollower < ttlNs-slackNs || atFollower > ttlNs {
			t.Errorf("follower %d s off the leader's clock: %d ms left, want about %d ms (replicated time stood still)",
				offset/1_000_000_000, atFollower/1_000_000, ttlNs/1_000_000)
		}
		answers = append(answers, atFollower)
	}
	if answers[0] != answers[1] {
		t.Errorf("followers ahead and behind answered %d and %d ns, want the same", answers[0], answers[1])
	}
}
