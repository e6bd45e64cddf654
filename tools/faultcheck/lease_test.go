//go:build linux

package faultcheck_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aspen-db/aspen/runtime/server"
)

// The shape of the lease run: a 3-process cluster; a lease of 3 s holding a
// few keys, kept alive every second by the test, through a kill -9 of the
// leader and its restart; then the keep-alives stop and the keys must go.
const (
	leaseNodes     = 3
	leaseTickMs    = 50
	leaseTTL       = 3 * time.Second
	leaseKeys      = 4
	leaseEvery     = time.Second // keep-alive period: a third of the TTL, as etcdctl does
	leaseKillAfter = 2 * time.Second
	// leaseSlack is for process scheduling: three nodes, the test and a
	// simulator sweep may share 2 cores, so a tick, an fsync or a poll can
	// come late by this much without anything being wrong.
	leaseSlack = time.Second
	// leaseEarly is how much sooner than TTL after it was sent a keep-alive
	// may run out: a leader stamps it with its clock as of its last tick,
	// and each process reads its own clock.
	leaseEarly       = leaseTickMs*time.Millisecond + 50*time.Millisecond
	leaseCallTimeout = 2 * time.Second
	leaseRetryPause  = 20 * time.Millisecond // between attempts on different nodes: a killed node refuses at once
	leaseTestBudget  = 60 * time.Second
)

func TestLeaseOutlivesLeaderKillThenExpires(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-process cluster and kill -9s its leader")
	}
	bin, dir := buildAspen(t), artifactsDir(t)
	c := startProcCluster(t, bin, dir, leaseNodes, leaseTickMs)
	ctx, cancel := context.WithTimeout(context.Background(), leaseTestBudget)
	defer cancel()
	if _, err := c.leader(ctx, 15*time.Second, true); err != nil {
		t.Fatalf("cluster start: %v (logs in %s)", err, dir)
	}
	election := electionTimeout(ctx, t, c, leaseTickMs)
	id, keys, rev := grantAndAttach(ctx, t, c.httpAddrs())
	k := startKeeper(ctx, c.httpAddrs(), id)
	defer k.stop()

	killed := killLeaderAndRestart(ctx, t, c, election, keys, k)
	watcher := c.httpAddrs()[(killed+1)%leaseNodes] // never killed: its history reaches back
	events := watchExpiries(ctx, t, watcher, rev+1)
	stopped := k.stop()
	if k.err != nil {
		t.Fatalf("keep-alive: %v", k.err)
	}
	t.Logf("keep-alives: %d acknowledged, %d attempts failed over to another node, the slowest acknowledged after %v",
		k.acks, k.failovers, k.longest.Round(time.Millisecond))
	bound := leaseTTL + election + leaseSlack
	gone := waitKeysGone(ctx, t, c.httpAddrs(), keys, k.lastSent, stopped.Add(bound))
	t.Logf("keys gone on every node %v after the last keep-alive was sent, %v after the keep-alives stopped (bound: TTL %v + election timeout %v + slack %v = %v)",
		gone.Sub(k.lastSent).Round(time.Millisecond), gone.Sub(stopped).Round(time.Millisecond), leaseTTL, election, leaseSlack, bound)
	wantExpiredEvents(t, events, keys, time.Until(stopped.Add(bound+leaseSlack)))
}

// electionTimeout is what the nodes report: every node must agree, and run
// the tick the test gave them (tickMs).
func electionTimeout(ctx context.Context, t *testing.T, c *procCluster, tickMs int64) time.Duration {
	t.Helper()
	var first int64
	for _, addr := range c.httpAddrs() {
		var st struct {
			TickMs            int64 `json:"tick_ms"`
			ElectionTimeoutMs int64 `json:"election_timeout_ms"`
		}
		if err := getJSON(ctx, "http://"+addr+"/v1/aspen/status", &st); err != nil {
			t.Fatalf("status of %s: %v", addr, err)
		}
		if st.TickMs != tickMs || st.ElectionTimeoutMs < st.TickMs || first != 0 && st.ElectionTimeoutMs != first {
			t.Fatalf("%s: tick %d ms, election timeout %d ms; want a %d ms tick and one timeout on every node", addr, st.TickMs, st.ElectionTimeoutMs, tickMs)
		}
		first = st.ElectionTimeoutMs
	}
	return time.Duration(first) * time.Millisecond
}

// grantAndAttach grants the lease and puts its keys, through different
// nodes; it returns the lease, the keys and the revision of the last put.
func grantAndAttach(ctx context.Context, t *testing.T, addrs []string) (int64, []string, int64) {
	t.Helper()
	var l server.LeaseInfo
	if code, err := postJSON(ctx, addrs[0], "/v1/aspen/lease/grant", server.LeaseRequest{TTL: int64(leaseTTL / time.Second)}, &l); err != nil {
		t.Fatalf("grant: %d %v", code, err)
	}
	var keys []string
	var rev int64
	for i := range leaseKeys {
		key := fmt.Sprintf("leased/%d", i)
		u := fmt.Sprintf("http://%s/v1/kv/%s?lease=%d", addrs[i%len(addrs)], key, l.ID)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader([]byte("v")))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("put %s with lease %d: %s", key, l.ID, resp.Status)
		}
		fmt.Sscan(resp.Header.Get("X-Consul-Index"), &rev)
		keys = append(keys, key)
	}
	return l.ID, keys, rev
}

// killLeaderAndRestart kill -9s the leader while the keeper runs, checks
// the keys outlive the lease's TTL counted from the kill on the nodes left,
// restarts the node and checks them on all. It returns the killed index.
func killLeaderAndRestart(ctx context.Context, t *testing.T, c *procCluster, election time.Duration, keys []string, k *keeper) int {
	t.Helper()
	wait(ctx, leaseKillAfter)
	p, err := c.leader(ctx, 5*time.Second, false)
	if err != nil {
		t.Fatalf("find the leader to kill: %v", err)
	}
	killedAt := time.Now()
	p.kill()
	// Past this, a lease no keep-alive reached since the kill is gone.
	wait(ctx, time.Until(killedAt.Add(leaseTTL+election)))
	var live []string
	for _, q := range c.nodes {
		if q != p {
			live = append(live, q.httpAddr)
		}
	}
	if err := keysPresent(ctx, live, keys); err != nil {
		t.Fatalf("%v after node %d (the leader) was killed and %v had passed; keeper: %s", err, p.id, time.Since(killedAt).Round(time.Millisecond), k.report(killedAt))
	}
	if err := p.start(c.bin); err != nil {
		t.Fatal(err)
	}
	err = pollUntil(ctx, 15*time.Second, func(ctx context.Context) error { return keysPresent(ctx, c.httpAddrs(), keys) })
	if err != nil {
		t.Fatalf("after node %d restarted: %v", p.id, err)
	}
	return int(p.id - 1)
}

func keysPresent(ctx context.Context, addrs, keys []string) error {
	for _, addr := range addrs {
		for _, key := range keys {
			e, err := consistentGet(ctx, addr, key)
			switch {
			case err != nil:
				return fmt.Errorf("read %s from %s: %w", key, addr, err)
			case !e.present:
				return fmt.Errorf("%s is gone from %s while its lease is kept alive", key, addr)
			}
		}
	}
	return nil
}

// waitKeysGone polls every node until none holds a key, and returns when.
// No key may go before the TTL counted from the last keep-alive sent, nor
// stay past deadline.
func waitKeysGone(ctx context.Context, t *testing.T, addrs, keys []string, lastSent, deadline time.Time) time.Time {
	t.Helper()
	for {
		left, err := keysLeft(ctx, addrs, keys)
		now := time.Now()
		switch {
		case err != nil:
			t.Fatal(err)
		case left < len(addrs)*len(keys) && now.Before(lastSent.Add(leaseTTL-leaseEarly)):
			t.Fatalf("keys went %v after the last keep-alive was sent, before the TTL of %v", now.Sub(lastSent), leaseTTL)
		case left == 0:
			return now
		case now.After(deadline):
			t.Fatalf("%d key copies still held %v after the deadline", left, now.Sub(deadline).Round(time.Millisecond))
		}
		wait(ctx, 20*time.Millisecond)
	}
}

// keysLeft counts the keys held, summed over the nodes.
func keysLeft(ctx context.Context, addrs, keys []string) (int, error) {
	n := 0
	for _, addr := range addrs {
		for _, key := range keys {
			callCtx, cancel := context.WithTimeout(ctx, leaseCallTimeout)
			e, err := consistentGet(callCtx, addr, key)
			cancel()
			if err != nil {
				return 0, fmt.Errorf("read %s from %s: %w", key, addr, err)
			}
			if e.present {
				n++
			}
		}
	}
	return n, nil
}

// keeper keeps a lease alive from the test as a client would: every
// leaseEvery, through the first node that answers, starting with the one
// that answered last.
type keeper struct {
	quit, done chan struct{}
	once       sync.Once
	stoppedAt  time.Time
	// Written by the keeper's goroutine under mu, read under mu or once done
	// is closed.
	mu              sync.Mutex
	lastSent        time.Time // when the last acknowledged keep-alive was sent
	lastAcked       time.Time // when it was acknowledged
	acks, failovers int
	longest         time.Duration // the longest a keep-alive took to be acknowledged, failovers included
	err             error         // a refusal (the lease is gone) or the test's end
	lastFailure     error         // the last attempt that failed over, for a failure's report
}

// report says, for a failure message, where the keeper stands relative to
// at (the kill): its last acknowledged keep-alive, its failovers, its error.
func (k *keeper) report(at time.Time) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return fmt.Sprintf("%d acknowledged, the last sent %v and acknowledged %v after the kill; %d attempts failed over (the last: %v); refused: %v",
		k.acks, k.lastSent.Sub(at).Round(time.Millisecond), k.lastAcked.Sub(at).Round(time.Millisecond), k.failovers, k.lastFailure, k.err)
}

func startKeeper(ctx context.Context, addrs []string, id int64) *keeper {
	k := &keeper{quit: make(chan struct{}), done: make(chan struct{})}
	go k.run(ctx, addrs, id)
	return k
}

func (k *keeper) run(ctx context.Context, addrs []string, id int64) {
	defer close(k.done)
	next := 0
	for k.renew(ctx, addrs, id, &next) {
		select {
		case <-time.After(leaseEvery):
		case <-k.quit:
			return
		case <-ctx.Done():
			k.setErr(ctx.Err())
			return
		}
	}
}

// renew sends one keep-alive, moving on to the next node after each failed
// attempt, until one is acknowledged; false when told to stop first or when
// the lease is refused. A node with no leader holds the call until it has
// one (the server retries), so an attempt is given most of the TTL.
func (k *keeper) renew(ctx context.Context, addrs []string, id int64, next *int) bool {
	first := time.Now()
	for {
		sent := time.Now()
		callCtx, cancel := context.WithTimeout(ctx, leaseCallTimeout)
		code, err := postJSON(callCtx, addrs[*next], "/v1/aspen/lease/keepalive", server.LeaseRequest{ID: id}, &server.LeaseInfo{})
		cancel()
		if done, renewed := k.settle(addrs[*next], sent, first, code, err); done {
			return renewed
		}
		*next = (*next + 1) % len(addrs)
		select {
		case <-time.After(leaseRetryPause):
		case <-k.quit:
			return false
		case <-ctx.Done():
			k.setErr(ctx.Err())
			return false
		}
	}
}

// settle records one attempt's outcome: done when it was acknowledged
// (renewed) or refused, not when it failed over.
func (k *keeper) settle(addr string, sent, first time.Time, code int, err error) (done, renewed bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case err == nil:
		k.lastSent, k.lastAcked, k.acks = sent, time.Now(), k.acks+1
		k.longest = max(k.longest, time.Since(first))
		return true, true
	case code/100 == 4:
		k.err = fmt.Errorf("lease refused by %s: %v", addr, err)
		return true, false
	}
	k.failovers++
	k.lastFailure = fmt.Errorf("%s after %v: %v", addr, time.Since(sent).Round(time.Millisecond), err)
	return false, false
}

func (k *keeper) setErr(err error) {
	k.mu.Lock()
	k.err = err
	k.mu.Unlock()
}

// stop ends the keep-alives between two of them, so that none is in flight
// after it returns, and returns when that was.
func (k *keeper) stop() time.Time {
	k.once.Do(func() {
		close(k.quit)
		<-k.done
		k.stoppedAt = time.Now()
	})
	return k.stoppedAt
}

// postJSON POSTs body as JSON and decodes a 200 answer into v; it returns
// the status code (0 when there was no answer).
func postJSON(ctx context.Context, addr, path string, body, v any) (int, error) {
	return postJSONWith(ctx, addr, path, nil, body, v)
}

// postJSONWith is postJSON with headers.
func postJSONWith(ctx context.Context, addr, path string, header http.Header, body, v any) (int, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+path, bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return resp.StatusCode, fmt.Errorf("POST %s: %s %s", path, resp.Status, bytes.TrimSpace(msg))
	}
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(v)
}

// watchExpiries streams Aspen's watch of the leased keys from revision
// from, as a client that read the keys at from-1 would.
func watchExpiries(ctx context.Context, t *testing.T, addr string, from int64) <-chan server.WatchEvent {
	t.Helper()
	u := fmt.Sprintf("http://%s/v1/aspen/watch?prefix=leased/&from=%d", addr, from)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("watch %s: %v %v", u, err, resp)
	}
	ch := make(chan server.WatchEvent, leaseKeys)
	go func() {
		defer resp.Body.Close()
		defer close(ch)
		for sc := bufio.NewScanner(resp.Body); sc.Scan(); {
			var e server.WatchEvent
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				ch <- e
			}
		}
	}()
	return ch
}

// wantExpiredEvents wants a delete of every key, each marked as an expiry,
// and nothing else.
func wantExpiredEvents(t *testing.T, events <-chan server.WatchEvent, keys []string, within time.Duration) {
	t.Helper()
	timeout := time.After(within)
	for range keys {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatal("the watch ended before every key's delete")
			}
			if e.Type != "delete" || !e.Expired {
				t.Fatalf("watch: got %+v, want deletes marked expired", e)
			}
		case <-timeout:
			t.Fatalf("the watcher did not see every key's delete within %v", within)
		}
	}
}
