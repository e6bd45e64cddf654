//go:build linux

package faultcheck_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// The shape of the fencing run: a 3-process cluster; three contenders, each
// with HashiCorp's client pointed at its own node, elect a leader with
// api.Lock over and over for 12 s, and each holder adds one to a counter ten
// times under the lock (read, then CAS). The Aspen leader is kill -9ed
// 2.5 s in and restarted 1.5 s later. When the holder's own node was the
// one killed, the lock goes free only once that node is back and the
// holder destroys its session; the others then meet the lock delay, and
// api.Lock waits 5 s (its DefaultLockRetryTime) before trying again: the
// load runs long enough after the restart for that.
const (
	fenceNodes      = 3
	fenceTickMs     = 50
	fenceLoad       = 12 * time.Second
	fenceKillAfter  = 2500 * time.Millisecond
	fenceDowntime   = 1500 * time.Millisecond
	fenceWrites     = 10 // per tenure
	fenceSessionTTL = "10s"
	// fenceLockDelay keeps a key whose holder's session was destroyed
	// while holding it (its node died mid-tenure) from others for 1 s,
	// instead of Consul's default 15 s.
	fenceLockDelay   = time.Second
	fenceLockWait    = time.Second // a blocking read of the lock, so a contender notices the end of the run
	fenceRetryPause  = 100 * time.Millisecond
	fenceTestBudget  = 60 * time.Second
	fenceKey         = "fence/leader"
	fenceCounter     = "fence/counter"
	fenceContenderOf = "contender %d" // the lock's value: who holds it
)

// tenure is one contender's hold of the lock, as it saw it: from the
// moment Lock returned to its last acknowledged write.
type tenure struct {
	contender int
	lockIndex uint64 // the key's LockIndex while held: one per acquisition
	acquired  time.Time
	writes    []fencedWrite
	lost      bool // it ended on losing the lock or its node, not by choice
}

// fencedWrite is one acknowledged increment: the value written and when
// it was sent and answered.
type fencedWrite struct {
	value          int
	invoked, acked time.Time
}

func (tn tenure) end() time.Time { return tn.writes[len(tn.writes)-1].acked }

func TestConsulLockFencingAcrossLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-process cluster and kill -9s its leader")
	}
	bin, dir := buildAspen(t), artifactsDir(t)
	c := startProcCluster(t, bin, dir, fenceNodes, fenceTickMs)
	ctx, cancel := context.WithTimeout(context.Background(), fenceTestBudget)
	defer cancel()
	if _, err := c.leader(ctx, 15*time.Second, true); err != nil {
		t.Fatalf("cluster start: %v (logs in %s)", err, dir)
	}
	faults := make(chan fault, 1)
	go func() { faults <- c.killLeaderThenRestart(ctx, fenceKillAfter, fenceDowntime) }()
	tenures := runFencedContenders(ctx, t, c.httpAddrs(), time.Now().Add(fenceLoad))
	f := <-faults
	if f.err != nil {
		t.Fatalf("fault injection: %v", f.err)
	}
	checkTenures(t, tenures)
	last := tenures[len(tenures)-1].writes
	if got := readCounter(ctx, t, c.httpAddrs()[0]); got < last[len(last)-1].value {
		t.Fatalf("counter %d, below the %d last acknowledged", got, last[len(last)-1].value)
	}
	if !tenures[len(tenures)-1].acquired.After(f.restarted) {
		t.Fatalf("no contender held the lock after the restart: %s", describeKill(tenures, f))
	}
	t.Logf("%d tenures, %d acknowledged increments; %s", len(tenures), countWrites(tenures), describeKill(tenures, f))
}

// runFencedContenders runs one contender per node until until, and returns
// every tenure with an acknowledged write, in LockIndex order.
func runFencedContenders(ctx context.Context, t *testing.T, addrs []string, until time.Time) []tenure {
	var mu sync.Mutex
	var all []tenure
	var wg sync.WaitGroup
	for i, addr := range addrs {
		client, err := api.NewClient(&api.Config{Address: addr, Scheme: "http"})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			mine := contend(ctx, t, i, client, until)
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.SortFunc(all, func(a, b tenure) int { return cmp.Compare(a.lockIndex, b.lockIndex) })
	if len(all) == 0 {
		t.Fatal("no contender ever held the lock")
	}
	return all
}

// contend takes the lock again and again until until.
func contend(ctx context.Context, t *testing.T, i int, client *api.Client, until time.Time) []tenure {
	var out []tenure
	for time.Now().Before(until) && ctx.Err() == nil {
		tn, ok := holdOnce(ctx, t, i, client, until)
		if !ok {
			wait(ctx, fenceRetryPause) // its node is down, or the run ended while it waited
			continue
		}
		if len(tn.writes) > 0 {
			out = append(out, tn)
		}
	}
	return out
}

// holdOnce is one tenure under a session of its own, which it renews and,
// at the end, destroys through its node once that answers: a holder whose
// node died cannot release the key until then, and the destroy releases it.
func holdOnce(ctx context.Context, t *testing.T, i int, client *api.Client, until time.Time) (tenure, bool) {
	sessions := client.Session()
	sid, _, err := sessions.Create(&api.SessionEntry{Name: fmt.Sprintf(fenceContenderOf, i), TTL: fenceSessionTTL, LockDelay: fenceLockDelay}, nil)
	if err != nil {
		return tenure{}, false
	}
	defer destroyWhenReachable(ctx, sessions, sid)
	renewing := make(chan struct{})
	defer close(renewing)
	go sessions.RenewPeriodic(fenceSessionTTL, sid, nil, renewing)
	lock, err := client.LockOpts(&api.LockOptions{Key: fenceKey, Session: sid, Value: fmt.Appendf(nil, fenceContenderOf, i), LockWaitTime: fenceLockWait})
	if err != nil {
		t.Error(err)
		return tenure{}, false
	}
	stop := make(chan struct{})
	timer := time.AfterFunc(time.Until(until), func() { close(stop) })
	defer timer.Stop()
	lost, err := lock.Lock(stop)
	if err != nil || lost == nil {
		return tenure{}, false
	}
	tn := hold(t, i, client.KV(), sid, lost)
	lock.Unlock() // through a dead node it fails: the destroy releases the key
	return tn, true
}

// destroyWhenReachable retries until the session is destroyed or the run's
// budget ends.
func destroyWhenReachable(ctx context.Context, sessions *api.Session, sid string) {
	for ctx.Err() == nil {
		if _, err := sessions.Destroy(sid, nil); err == nil {
			return
		}
		wait(ctx, fenceRetryPause)
	}
}

// hold adds one to the counter fenceWrites times while the lock is held.
// It stops at the first sign of losing it: the lock's monitor closing lost,
// or a call that fails (its outcome unknown), since it can no longer tell.
func hold(t *testing.T, i int, kv *api.KV, sid string, lost <-chan struct{}) tenure {
	tn := tenure{contender: i, acquired: time.Now(), lost: true}
	pair, _, err := kv.Get(fenceKey, nil)
	if err != nil {
		return tn
	}
	if pair == nil || pair.Session != sid {
		t.Errorf("contender %d: Lock returned, but the key reads %+v, not held by its session %s", i, pair, sid)
		return tn
	}
	tn.lockIndex = pair.LockIndex
	for len(tn.writes) < fenceWrites {
		select {
		case <-lost:
			return tn
		default:
		}
		w, ok := increment(t, i, kv)
		if !ok {
			return tn
		}
		tn.writes = append(tn.writes, w)
	}
	tn.lost = false
	return tn
}

// increment reads the counter and writes it plus one with a CAS. Under the
// lock nobody else writes it, so a CAS that fails is a second writer.
func increment(t *testing.T, i int, kv *api.KV) (fencedWrite, bool) {
	invoked := time.Now()
	pair, _, err := kv.Get(fenceCounter, nil)
	if err != nil {
		return fencedWrite{}, false
	}
	n, index := 0, uint64(0)
	if pair != nil {
		n, _ = strconv.Atoi(string(pair.Value))
		index = pair.ModifyIndex
	}
	ok, _, err := kv.CAS(&api.KVPair{Key: fenceCounter, Value: []byte(strconv.Itoa(n + 1)), ModifyIndex: index}, nil)
	if err != nil {
		return fencedWrite{}, false
	}
	if !ok {
		t.Errorf("contender %d holds the lock, yet the counter changed between its read of %d and its CAS: a second writer", i, n)
		return fencedWrite{}, false
	}
	return fencedWrite{value: n + 1, invoked: invoked, acked: time.Now()}, true
}

// checkTenures fails the test when two tenures overlap: each acquisition
// has its own LockIndex; a tenure's increments follow each other with
// nothing between them; and the next holder's Lock returns only after the
// previous holder's last increment was answered (which it sent before it
// released the key or its session ended), with a higher counter.
func checkTenures(t *testing.T, tenures []tenure) {
	t.Helper()
	for k, tn := range tenures {
		for j := 1; j < len(tn.writes); j++ {
			if tn.writes[j].value != tn.writes[j-1].value+1 {
				t.Errorf("tenure %d (contender %d): increments %d then %d under one hold", tn.lockIndex, tn.contender, tn.writes[j-1].value, tn.writes[j].value)
			}
		}
		if k == 0 {
			continue
		}
		prev := tenures[k-1]
		switch {
		case tn.lockIndex == prev.lockIndex:
			t.Errorf("contenders %d and %d both held the lock at LockIndex %d", prev.contender, tn.contender, tn.lockIndex)
		case !prev.end().Before(tn.acquired):
			t.Errorf("tenure %d (contender %d, %v to %v) overlaps tenure %d (contender %d, from %v)", prev.lockIndex, prev.contender,
				prev.acquired.Format(time.StampMilli), prev.end().Format(time.StampMilli), tn.lockIndex, tn.contender, tn.acquired.Format(time.StampMilli))
		case tn.writes[0].value <= prev.writes[len(prev.writes)-1].value:
			t.Errorf("tenure %d wrote %d after tenure %d wrote %d: the fencing counter went back", tn.lockIndex, tn.writes[0].value,
				prev.lockIndex, prev.writes[len(prev.writes)-1].value)
		}
	}
}

func readCounter(ctx context.Context, t *testing.T, addr string) int {
	t.Helper()
	e, err := consistentGet(ctx, addr, fenceCounter)
	if err != nil || !e.present {
		t.Fatalf("read the counter from %s: %+v %v", addr, e, err)
	}
	n, _ := strconv.Atoi(string(e.value))
	return n
}

func countWrites(tenures []tenure) int {
	n := 0
	for _, tn := range tenures {
		n += len(tn.writes)
	}
	return n
}

// describeKill says who held the lock when the leader was killed and how
// long the lock went without a holder around it.
func describeKill(tenures []tenure, f fault) string {
	ms := time.Millisecond
	s := fmt.Sprintf("leader node %d killed, restarted %v later", f.leader, f.restarted.Sub(f.killed).Round(ms))
	next := slices.IndexFunc(tenures, func(tn tenure) bool { return tn.acquired.After(f.killed) })
	if next > 0 {
		held := tenures[next-1]
		how := "unlocked"
		if held.lost {
			how = "lost the lock or its node"
		}
		s += fmt.Sprintf("; the last holder before the kill, contender %d (node %d), %s, its last increment answered %v",
			held.contender, held.contender+1, how, relative(held.end(), f.killed))
	}
	if next < 0 {
		return s + "; nobody took the lock after the kill"
	}
	tn := tenures[next]
	return s + fmt.Sprintf("; the next holder, contender %d, took the lock %v after the kill (%v after the restart); the longest handover was %v",
		tn.contender, tn.acquired.Sub(f.killed).Round(ms), tn.acquired.Sub(f.restarted).Round(ms), longestHandover(tenures).Round(ms))
}

// relative says how long before or after the kill at was.
func relative(at, kill time.Time) string {
	d := at.Sub(kill).Round(time.Millisecond)
	if d < 0 {
		return fmt.Sprintf("%v before the kill", -d)
	}
	return fmt.Sprintf("%v after the kill", d)
}

// longestHandover is the longest time from one holder's last increment to
// the next holder's Lock returning.
func longestHandover(tenures []tenure) time.Duration {
	var most time.Duration
	for k := 1; k < len(tenures); k++ {
		most = max(most, tenures[k].acquired.Sub(tenures[k-1].end()))
	}
	return most
}
