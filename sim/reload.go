package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/aspen-db/aspen/core/node"
)

// The reload checker compares a replica with itself rebuilt from its disk.
// Convergence compares replicas' memory only; a replica whose disk says
// something else than its memory (a stale log tail, keys a snapshot should
// have replaced) passes every other check until it restarts at the wrong
// moment. So, at sampled points and at the end of the run, a fresh node.New
// reads a copy-on-write view of the node's disk, and the two must agree on
// everything a restart restores. The durable layer alone (what a crash
// keeping no unsynced batch recovers) must load too.

// reloadSeed seeds the rng of rebuilt replicas: they never run, but node.New
// draws from it, and it must not be the world's.
const reloadSeed = 0x7e10ad

// reloadDepth is how much the reload checker does for a node it picked.
type reloadDepth uint8

const (
	reloadNone reloadDepth = iota
	// reloadView compares the node with itself rebuilt from its disk.
	reloadView
	// reloadFull also loads the durable layer alone. That doubles the cost,
	// and the crashes that keep no unsynced batch check it too, so sampled
	// points skip it.
	reloadFull
)

// sampleReload picks a node for the reload checker after it finished rd: with
// the scenario's probability (from the checkers' own rng), and always, fully,
// after a Ready that installed a snapshot or replaced a log tail, the rare
// moments when memory and disk part most easily. The check waits until the
// node has no Ready left: inputs that arrived during a slow sync have moved
// its memory past its disk until the next Ready writes them.
func (w *World) sampleReload(sn *simNode, rd *node.Ready) {
	p := w.sc.Checkers.ReloadProb
	if p <= 0 {
		return
	}
	if rd.Reset || rd.TailReplaced {
		sn.reload = reloadFull
	} else if w.checkRng.Float64() < p {
		sn.reload = max(sn.reload, reloadView)
	}
	if sn.reload != reloadNone && !sn.n.HasReady() {
		w.checkReload(sn, sn.reload)
		sn.reload = reloadNone
	}
}

// reloadAll runs the reload checker on every node up at the end of the run.
func (w *World) reloadAll() {
	if w.sc.Checkers.ReloadProb <= 0 {
		return
	}
	for _, sn := range w.nodes {
		if !sn.gone && sn.n != nil && !sn.busy && !sn.paused && !sn.n.HasReady() {
			w.checkReload(sn, reloadFull)
		}
	}
}

// checkReload rebuilds sn from its disk and compares. A panic while rebuilding
// (raft refusing what load accepted) is a violation too, not the harness's.
func (w *World) checkReload(sn *simNode, depth reloadDepth) {
	defer func() {
		if r := recover(); r != nil {
			w.check.fail("node %d reloaded from disk: panic: %v", sn.id, r)
		}
	}()
	w.res.Reloads++
	cfg := w.nodeConfig(sn)
	// Without unsynced batches the durable layer is the view loaded below.
	if depth == reloadFull && sn.disk.UnsyncedBatches() > 0 {
		if _, err := node.New(cfg, reloadRand(), sn.disk.DurableView()); err != nil {
			w.check.fail("node %d cannot be reloaded from what its disk made durable: %v", sn.id, err)
		}
	}
	if first, _, _ := sn.n.Log(); first == 0 {
		return // a joiner before the leader's snapshot: nothing to compare yet
	}
	re, err := node.New(cfg, reloadRand(), sn.disk.View())
	if err != nil {
		w.check.fail("node %d cannot be reloaded from its disk: %v", sn.id, err)
		return
	}
	if diff := reloadDiff(sn.n, re); diff != "" {
		w.check.fail("node %d reloaded from disk differs: %s", sn.id, diff)
	}
}

func reloadRand() *rand.Rand { return rand.New(rand.NewPCG(reloadSeed, reloadSeed)) }

// reloadDiff describes how the rebuilt replica differs from the live one, or
// returns "" when they agree on everything a restart restores.
func reloadDiff(live, re *node.Node) string {
	var diffs []string
	differ := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }
	if a, b := live.StateHash(), re.StateHash(); a != b {
		differ("state hash %x, reloaded %x", a, b)
	}
	if a, b := live.AppliedIndex(), re.AppliedIndex(); a != b {
		differ("applied index %d, reloaded %d", a, b)
	}
	sa, sb := live.Status(), re.Status()
	if a, b := sortedIDList(sa.Voters), sortedIDList(sb.Voters); !slices.Equal(a, b) {
		differ("voters %v, reloaded %v", a, b)
	}
	if a, b := sortedIDList(sa.Learners), sortedIDList(sb.Learners); !slices.Equal(a, b) {
		differ("learners %v, reloaded %v", a, b)
	}
	if sa.Removed != sb.Removed {
		differ("removed %v, reloaded %v", sa.Removed, sb.Removed)
	}
	if a, b := live.HardState(), re.HardState(); a.Term != b.Term || a.Vote != b.Vote || a.Commit != b.Commit {
		differ("hard state term %d vote %d commit %d, reloaded term %d vote %d commit %d", a.Term, a.Vote, a.Commit, b.Term, b.Vote, b.Commit)
	}
	if d := logDiff(live, re); d != "" {
		differ("%s", d)
	}
	return strings.Join(diffs, "; ")
}

// logDiff compares the two logs where both hold them: each side may keep
// entries the other compacted (a restart loads every record on disk, and raft
// compacts its own log on its own terms), but the last index and the term at
// every index both hold must agree.
func logDiff(live, re *node.Node) string {
	fa, la, ta := live.Log()
	fb, lb, tb := re.Log()
	if la != lb {
		return fmt.Sprintf("last log index %d, reloaded %d", la, lb)
	}
	for i := max(fa, fb); i <= la; i++ {
		if a, b := ta(i), tb(i); a != b {
			return fmt.Sprintf("log term at %d: %d, reloaded %d", i, a, b)
		}
	}
	return ""
}
