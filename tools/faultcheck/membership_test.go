//go:build linux

package faultcheck_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aspen-db/aspen/tools/faultcheck"
)

// The shape of the membership run: a 3-node cluster under load grows to five
// (two nodes join as learners and are promoted), shrinks to {3, 4, 5} by
// removing nodes 1 and 2, and hands leadership to node 4, then node 5. The
// changes start 1 s into a 12 s load and take a few seconds; the rest of the
// load shows the new cluster serving.
const (
	growNodes        = 3
	growTickMs       = 50
	growClients      = 16
	growKeys         = 8
	growLoad         = 12 * time.Second
	growChangesAfter = time.Second
	growOpTimeout    = time.Second
	growExitTimeout  = 15 * time.Second
	growCheckTimeout = 20 * time.Second
	growTestBudget   = 55 * time.Second
)

// TestGrowShrinkTransferUnderLoad checks that membership changes lose no
// acknowledged write and keep the history linearizable. The clients spread
// over the addresses of all five nodes, ever: so some reads and writes go
// through nodes that are joining, being removed, or about to stop, which
// is where a membership bug would show; a refused dial (a node not started
// yet, or gone) records nothing and the client moves on. The final reads go
// through every address too, so nodes 4 and 5 must serve what they caught up on.
func TestGrowShrinkTransferUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five node processes and changes the membership under load")
	}
	bin := buildAspen(t)
	dir := artifactsDir(t)
	c := startProcCluster(t, bin, dir, growNodes, growTickMs)
	ctx, cancel := context.WithTimeout(context.Background(), growTestBudget)
	defer cancel()
	if _, err := c.leader(ctx, 15*time.Second, true); err != nil {
		t.Fatalf("cluster start: %v (logs in %s)", err, dir)
	}
	plan, err := planJoiners(ctx, t, c, dir, 4, 5)
	if err != nil {
		t.Fatal(err)
	}
	seed := testSeed(t)
	done := make(chan changeLog, 1)
	go func() { done <- plan.run(ctx, bin, growChangesAfter) }()
	h, err := faultcheck.Run(ctx, faultcheck.Config{Addrs: append(c.httpAddrs(), plan.httpAddrs()...), Clients: growClients,
		Keys: growKeys, Duration: growLoad, OpTimeout: growOpTimeout, Seed: seed, Logf: t.Logf})
	log := <-done
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	rep := faultcheck.Check(h, growCheckTimeout)
	t.Logf("%s\n%s", rep, log.timeline(h))
	if err := rep.Err(); err != nil {
		saveFailure(t, dir, h, rep)
		t.Fatalf("%v\nseed %d; logs in %s", err, seed, dir)
	}
	if log.err != nil {
		t.Fatalf("membership changes: %v (logs in %s)", log.err, dir)
	}
	if got := ackedWritesAfter(h, log.finished()); got == 0 {
		t.Errorf("acknowledged writes after the last change: got 0, want some (the new cluster did not serve)")
	}
	checkFinalMembership(ctx, t, c, "3 4 5")
}

// joinPlan is the scripted change of membership: who joins, and where.
type joinPlan struct {
	c       *procCluster
	via     string // the HTTP address every command is sent to: node 3, never removed
	joiners []*procNode
	peers   map[uint64]string
}

// planJoiners adds (without starting) nodes with ids that will join c:
// registered before the load, so the test's cleanup kills them, and their
// addresses known to the clients from the start.
func planJoiners(ctx context.Context, t *testing.T, c *procCluster, dir string, ids ...uint64) (*joinPlan, error) {
	t.Helper()
	ms, err := fetchMembers(ctx, c.node(3).httpAddr)
	if err != nil {
		return nil, fmt.Errorf("initial membership: %w", err)
	}
	p := &joinPlan{c: c, via: c.node(3).httpAddr, peers: map[uint64]string{}}
	var cluster []string
	for _, m := range ms {
		cluster = append(cluster, fmt.Sprintf("%d=%s", m.ID, m.PeerAddr))
	}
	addrs := freeAddrs(t, 2*len(ids))
	for i, id := range ids {
		peer, httpAddr := addrs[2*i], addrs[2*i+1]
		p.peers[id] = peer
		args := append([]string{"node", "start", "--join"},
			nodeArgs(dir, id, strings.Join(append(cluster, fmt.Sprintf("%d=%s", id, peer)), ","), httpAddr, growTickMs)...)
		p.joiners = append(p.joiners, c.addNode(dir, id, httpAddr, args...))
	}
	return p, nil
}

func (p *joinPlan) httpAddrs() []string {
	var out []string
	for _, j := range p.joiners {
		out = append(out, j.httpAddr)
	}
	return out
}

// changeLog records what the plan did, and when.
type changeLog struct {
	steps []step
	err   error
}

type step struct {
	name       string
	start, end time.Time
	note       string
}

// do runs one step unless an earlier one failed.
func (l *changeLog) do(name string, f func() (note string, err error)) {
	if l.err != nil {
		return
	}
	s := step{name: name, start: time.Now()}
	note, err := f()
	s.end, s.note = time.Now(), note
	l.steps = append(l.steps, s)
	if err != nil {
		l.err = fmt.Errorf("%s: %w", name, err)
	}
}

func (l changeLog) finished() time.Time {
	if len(l.steps) == 0 {
		return time.Time{}
	}
	return l.steps[len(l.steps)-1].end
}

func (l changeLog) timeline(h *faultcheck.History) string {
	var b strings.Builder
	for _, s := range l.steps {
		fmt.Fprintf(&b, "  %8v .. %8v  %s", h.At(s.start).Round(time.Millisecond), h.At(s.end).Round(time.Millisecond), s.name)
		if s.note != "" {
			fmt.Fprintf(&b, " (%s)", s.note)
		}
		b.WriteByte('\n')
	}
	from, to := longestStall(h)
	fmt.Fprintf(&b, "  no operation completed between %v and %v", from.Round(time.Millisecond), to.Round(time.Millisecond))
	return b.String()
}

// run waits after, then starts the joiners and changes the membership with
// the aspen CLI, one command at a time.
func (p *joinPlan) run(ctx context.Context, bin string, after time.Duration) changeLog {
	var l changeLog
	if !wait(ctx, after) {
		l.err = fmt.Errorf("before the changes: %w", ctx.Err())
		return l
	}
	cli := func(args ...string) func() (string, error) {
		return func() (string, error) {
			r := runAspen(ctx, bin, append(args, "--addr", p.via)...)
			return "", r.err()
		}
	}
	for _, j := range p.joiners {
		l.do(fmt.Sprintf("start node %d with --join", j.id), func() (string, error) { return "", j.start(bin) })
	}
	for _, j := range p.joiners {
		l.do(fmt.Sprintf("add node %d as a learner", j.id), cli("cluster", "add", "--id", fmt.Sprint(j.id),
			"--peer-addr", p.peers[j.id], "--http-addr", j.httpAddr))
	}
	for _, j := range p.joiners {
		l.do(fmt.Sprintf("promote node %d", j.id), cli("cluster", "promote", "--id", fmt.Sprint(j.id)))
	}
	for _, id := range []uint64{1, 2} {
		l.do(fmt.Sprintf("remove node %d", id), cli("cluster", "remove", "--id", fmt.Sprint(id)))
		l.do(fmt.Sprintf("node %d exits on its own", id), func() (string, error) {
			code, err := p.c.node(id).waitExited(ctx, growExitTimeout)
			return fmt.Sprintf("exit status %d", code), err
		})
	}
	for _, j := range p.joiners {
		l.do(fmt.Sprintf("transfer leadership to node %d", j.id), cli("cluster", "transfer-leader", "--id", fmt.Sprint(j.id)))
	}
	return l
}

// checkFinalMembership wants every remaining member to report the same
// membership, all voters, once each has applied the last change.
func checkFinalMembership(ctx context.Context, t *testing.T, c *procCluster, want string) {
	t.Helper()
	for _, id := range strings.Fields(want) {
		var n uint64
		fmt.Sscan(id, &n)
		addr := c.node(n).httpAddr
		err := pollUntil(ctx, 10*time.Second, func(ctx context.Context) error {
			ms, err := fetchMembers(ctx, addr)
			if err != nil {
				return err
			}
			if got := describeMembers(ms); got != want {
				return fmt.Errorf("node %d: got members %q, want %q", n, got, want)
			}
			return nil
		})
		if err != nil {
			t.Errorf("final membership: %v", err)
		}
	}
}
