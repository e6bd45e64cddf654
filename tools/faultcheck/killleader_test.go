//go:build linux

package faultcheck_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aspen-db/aspen/tools/faultcheck"
)

// The shape of the kill -9 run: a 3-node cluster under load whose leader is
// killed 1.5 s into a 6 s load and restarted 1.5 s later on the same disk.
const (
	killNodes        = 3
	killTickMs       = 50
	killClients      = 16
	killKeys         = 8
	killLoad         = 6 * time.Second
	killAfter        = 1500 * time.Millisecond
	killDowntime     = 1500 * time.Millisecond
	killOpTimeout    = time.Second
	killCheckTimeout = 20 * time.Second
	killTestBudget   = 50 * time.Second
)

func TestKillLeaderKeepsAckedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-process cluster and kill -9s its leader")
	}
	bin := buildAspen(t)
	dir := artifactsDir(t)
	c := startProcCluster(t, bin, dir, killNodes, killTickMs)
	ctx, cancel := context.WithTimeout(context.Background(), killTestBudget)
	defer cancel()
	if _, err := c.leader(ctx, 15*time.Second, true); err != nil {
		t.Fatalf("cluster start: %v (logs in %s)", err, dir)
	}
	seed := testSeed(t)
	faults := make(chan fault, 1)
	go func() { faults <- c.killLeaderThenRestart(ctx, killAfter, killDowntime) }()
	h, err := faultcheck.Run(ctx, faultcheck.Config{Addrs: c.httpAddrs(), Clients: killClients, Keys: killKeys,
		Duration: killLoad, OpTimeout: killOpTimeout, Seed: seed, Logf: t.Logf})
	f := <-faults
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	rep := faultcheck.Check(h, killCheckTimeout)
	t.Logf("%s; %s", rep, f.timeline(h))
	if f.err != nil {
		t.Fatalf("fault injection: %v", f.err)
	}
	if err := rep.Err(); err != nil {
		saveFailure(t, dir, h, rep)
		t.Fatalf("%v\nseed %d; %s", err, seed, f.timeline(h))
	}
	if got := ackedWritesAfter(h, f.restarted); got == 0 {
		t.Fatalf("acknowledged writes after the restart: got 0, want some (the cluster did not recover); %s", f.timeline(h))
	}
}

// testSeed is FAULTCHECK_SEED when set, else random. The seed fixes the
// operation mix; thread timing and the fault's timing still vary.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv("FAULTCHECK_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FAULTCHECK_SEED=%q: %v", s, err)
		}
		return seed
	}
	return rand.Uint64() | 1
}

// fault records what killLeaderThenRestart did, and when.
type fault struct {
	leader            uint64
	killed, restarted time.Time
	err               error
}

// killLeaderThenRestart waits after, kill -9s the leader, waits down, and
// starts it again on the same data dir and ports.
func (c *procCluster) killLeaderThenRestart(ctx context.Context, after, down time.Duration) fault {
	var f fault
	if !wait(ctx, after) {
		f.err = fmt.Errorf("before the kill: %w", ctx.Err())
		return f
	}
	p, err := c.leader(ctx, 5*time.Second, false)
	if err != nil {
		f.err = fmt.Errorf("find the leader to kill: %w", err)
		return f
	}
	f.leader, f.killed = p.id, time.Now()
	p.kill()
	if !wait(ctx, down) {
		f.err = fmt.Errorf("before the restart: %w", ctx.Err())
		return f
	}
	if err := p.start(c.bin); err != nil {
		f.err = err
		return f
	}
	f.restarted = time.Now()
	return f
}

// wait schedules the fault; it orders nothing the checks rely on.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (f fault) timeline(h *faultcheck.History) string {
	ms := time.Millisecond
	if f.killed.IsZero() {
		return "no node was killed"
	}
	s := fmt.Sprintf("leader node %d killed at %v", f.leader, h.At(f.killed).Round(ms))
	if !f.restarted.IsZero() {
		s += fmt.Sprintf(", restarted at %v", h.At(f.restarted).Round(ms))
	}
	from, to := longestStall(h)
	return s + fmt.Sprintf("; no operation completed between %v and %v", from.Round(ms), to.Round(ms))
}

// longestStall is the longest stretch of the load in which no operation returned.
func longestStall(h *faultcheck.History) (from, to time.Duration) {
	var returns []int64
	for _, op := range h.Ops {
		if !op.Unknown && !op.Final {
			returns = append(returns, op.Return)
		}
	}
	slices.Sort(returns)
	for i := 1; i < len(returns); i++ {
		if gap := returns[i] - returns[i-1]; gap > int64(to-from) {
			from, to = time.Duration(returns[i-1]), time.Duration(returns[i])
		}
	}
	return from, to
}

func ackedWritesAfter(h *faultcheck.History, t time.Time) int {
	n := 0
	for _, op := range h.Ops {
		if op.Acked() && time.Duration(op.Call) > h.At(t) {
			n++
		}
	}
	return n
}

// saveFailure writes the history and, for a linearizability failure,
// porcupine's visualization next to the node logs.
func saveFailure(t *testing.T, dir string, h *faultcheck.History, rep *faultcheck.Report) {
	t.Helper()
	if err := h.WriteJSON(filepath.Join(dir, "history.json")); err != nil {
		t.Log(err)
	}
	if len(rep.Illegal) == 0 {
		return
	}
	if err := rep.WriteHTML(filepath.Join(dir, "history.html"), killCheckTimeout); err != nil {
		t.Log(err)
	}
}
