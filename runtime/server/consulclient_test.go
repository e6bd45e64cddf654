package server

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aspen-db/aspen/core/node"
	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/consul/api/watch"
)

// The recipes Consul users build on sessions, run by HashiCorp's client
// against a 3-node cluster: each contender talks to its own node.

// casIncrement adds one to the number under key with a read and a CAS,
// retrying when another write came between: work inside a critical section
// that takes real round trips.
func casIncrement(t *testing.T, kv *api.KV, key string) {
	for {
		pair, _, err := kv.Get(key, nil)
		if err != nil {
			t.Errorf("read %s: %v", key, err)
			return
		}
		n, index := 0, uint64(0)
		if pair != nil {
			n, _ = strconv.Atoi(string(pair.Value))
			index = pair.ModifyIndex
		}
		ok, _, err := kv.CAS(&api.KVPair{Key: key, Value: []byte(strconv.Itoa(n + 1)), ModifyIndex: index}, nil)
		if err != nil {
			t.Errorf("cas %s: %v", key, err)
			return
		}
		if ok {
			return
		}
	}
}

// runContenders runs n contenders, contender i on node i%3, each doing
// rounds of enter, work, leave, and waits for all of them.
func runContenders(t *testing.T, n, rounds int, round func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			for range rounds {
				if err := round(i); err != nil {
					errs <- fmt.Errorf("contender %d: %w", i, err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("contenders did not finish within 90s")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// api.Lock among three contenders: one holder at a time, and Unlock lets
// the next one in, until every contender has held the lock three times.
func TestConsulLockContenders(t *testing.T) {
	c := startCluster(t, 3)
	var holders atomic.Int32
	const rounds = 3
	runContenders(t, 3, rounds, func(i int) error {
		client := c.consul(i % 3)
		lock, err := client.LockOpts(&api.LockOptions{Key: "election/leader", Value: []byte(strconv.Itoa(i))})
		if err != nil {
			return err
		}
		lost, err := lock.Lock(nil)
		if err != nil || lost == nil {
			return fmt.Errorf("lock: %v", err)
		}
		if h := holders.Add(1); h != 1 {
			t.Errorf("contender %d holds the lock with %d holders", i, h)
		}
		casIncrement(t, client.KV(), "election/count")
		holders.Add(-1)
		return lock.Unlock()
	})
	if got := mustGetPair(t, c.consul(0).KV(), "election/count"); string(got.Value) != strconv.Itoa(3*rounds) {
		t.Fatalf("count after %d critical sections: %s", 3*rounds, got.Value)
	}
}

// api.Semaphore with limit 2: a third contender cannot get in while two
// hold it, gets in once one leaves, and five contenders never hold it more
// than two at a time.
func TestConsulSemaphore(t *testing.T) {
	c := startCluster(t, 3)
	sem := func(i int, tryOnce bool) *api.Semaphore {
		s, err := c.consul(i % 3).SemaphoreOpts(&api.SemaphoreOptions{Prefix: "pool/", Limit: 2,
			SemaphoreTryOnce: tryOnce, SemaphoreWaitTime: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	first, second := sem(0, false), sem(1, false)
	for _, s := range []*api.Semaphore{first, second} {
		if lost, err := s.Acquire(nil); err != nil || lost == nil {
			t.Fatalf("acquire of a free slot: %v", err)
		}
	}
	if lost, err := sem(2, true).Acquire(nil); err != nil || lost != nil {
		t.Fatalf("a third holder got in past the limit of 2 (%v)", err)
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	third := sem(2, true)
	if lost, err := third.Acquire(nil); err != nil || lost == nil {
		t.Fatalf("a slot freed by a release was not taken: %v", err)
	}
	for _, s := range []*api.Semaphore{second, third} {
		if err := s.Release(); err != nil {
			t.Fatal(err)
		}
	}
	var holders atomic.Int32
	runContenders(t, 5, 2, func(i int) error {
		s := sem(i, false)
		if lost, err := s.Acquire(nil); err != nil || lost == nil {
			return fmt.Errorf("acquire: %v", err)
		}
		if h := holders.Add(1); h > 2 {
			t.Errorf("contender %d holds the semaphore with %d holders, limit 2", i, h)
		}
		casIncrement(t, c.consul(i%3).KV(), "pool-count")
		holders.Add(-1)
		return s.Release()
	})
}

// A session whose renewals stop ends after its TTL (at most twice it, as
// in Consul): its lock is released, the key keeps its value, nobody may
// take it during the lock delay, and a renewed session of the same TTL
// lives on. TTLs here are 2 s, below Consul's 10 s floor, by the node's
// limits.
func TestConsulSessionTTLReleasesLock(t *testing.T) {
	c := startClusterWith(t, 3, func(cfg *Config) {
		n := node.DefaultConfig(0, nil)
		n.Locks.TTLMinNs = int64(time.Second)
		cfg.Node = &n
	})
	const ttl = 2 * time.Second
	dead := c.newSession(0, &api.SessionEntry{TTL: ttl.String(), LockDelay: 10 * time.Second})
	live := c.newSession(1, &api.SessionEntry{TTL: ttl.String()})
	stopRenewing := make(chan struct{})
	defer close(stopRenewing)
	go c.consul(1).Session().RenewPeriodic(ttl.String(), live, nil, stopRenewing)
	kv := c.consul(2).KV()
	start := time.Now()
	for key, s := range map[string]string{"ttl/dead": dead, "ttl/live": live} {
		if ok, _, err := kv.Acquire(&api.KVPair{Key: key, Value: []byte("held"), Session: s}, nil); err != nil || !ok {
			t.Fatalf("acquire %s: %v, %v", key, ok, err)
		}
	}
	eventually(t, "the unrenewed session's lock to be released", func() bool {
		return mustGetPair(t, kv, "ttl/dead").Session == ""
	})
	if elapsed := time.Since(start); elapsed < ttl {
		t.Fatalf("the session ended %v after its acquire, before its TTL of %v", elapsed, ttl)
	}
	if got := mustGetPair(t, kv, "ttl/dead"); string(got.Value) != "held" || got.LockIndex != 1 {
		t.Fatalf("released key: %+v; want its value kept and lock index 1", got)
	}
	if got, _, _ := c.consul(0).Session().Info(dead, nil); got != nil {
		t.Fatalf("the expired session is still listed: %+v", got)
	}
	if got := mustGetPair(t, kv, "ttl/live"); got.Session != live {
		t.Fatalf("the renewed session lost its lock: %+v", got)
	}
	other := c.newSession(2, nil)
	if ok, _, err := kv.Acquire(&api.KVPair{Key: "ttl/dead", Session: other}, nil); err != nil || ok {
		t.Fatalf("acquire during the lock delay: %v, %v; want false", ok, err)
	}
}

// consul/api/watch plans on a key and on a prefix fire on each change,
// with the flags and values the writes stored.
func TestConsulWatchPlans(t *testing.T) {
	c := startCluster(t, 3)
	// A store never written reports index 1, as it will after its first
	// write (Consul clients take 0 as no index): a watch would see that
	// first write only with the next one.
	c.put(0, "unrelated", "x")
	keyValues, prefixSizes := make(chan string, 64), make(chan int, 64)
	keyPlan := c.watchPlan(map[string]any{"type": "key", "key": "cfg/a"}, func(raw any) {
		pair, _ := raw.(*api.KVPair)
		if pair == nil {
			keyValues <- "<none>"
			return
		}
		keyValues <- fmt.Sprintf("%s/%d", pair.Value, pair.Flags)
	})
	prefixPlan := c.watchPlan(map[string]any{"type": "keyprefix", "prefix": "cfg/"}, func(raw any) {
		pairs, _ := raw.(api.KVPairs)
		prefixSizes <- len(pairs)
	})
	defer keyPlan.Stop()
	defer prefixPlan.Stop()
	kv := c.consul(0).KV()
	waitFor(t, keyValues, "<none>")
	waitFor(t, prefixSizes, 0)
	kv.Put(&api.KVPair{Key: "cfg/a", Value: []byte("1"), Flags: 4}, nil)
	waitFor(t, keyValues, "1/4")
	waitFor(t, prefixSizes, 1)
	kv.Put(&api.KVPair{Key: "cfg/b", Value: []byte("x")}, nil)
	waitFor(t, prefixSizes, 2)
	kv.Put(&api.KVPair{Key: "cfg/a", Value: []byte("2")}, nil)
	waitFor(t, keyValues, "2/0")
	kv.Delete("cfg/a", nil)
	waitFor(t, keyValues, "<none>")
	waitFor(t, prefixSizes, 1)
}

// watchPlan runs a consul/api/watch plan against node 1 until stopped.
func (c *cluster) watchPlan(params map[string]any, handle func(raw any)) *watch.Plan {
	c.t.Helper()
	plan, err := watch.Parse(params)
	if err != nil {
		c.t.Fatal(err)
	}
	plan.Handler = func(_ uint64, raw any) { handle(raw) }
	client := c.consul(1)
	go plan.RunWithClientAndHclog(client, nil)
	return plan
}

// waitFor reads ch until it yields want: a plan may fold quick changes
// into one firing, but the last state always shows.
func waitFor[T comparable](t *testing.T, ch <-chan T, want T) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-ch:
			if got == want {
				return
			}
		case <-deadline:
			t.Fatalf("the watch did not report %v within 10s", want)
		}
	}
}
