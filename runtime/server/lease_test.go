package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aspen-db/aspen/core/node"
)

// leaseDo calls a lease endpoint on node i and decodes a 200 answer into v.
func (c *cluster) leaseDo(i int, op, body string, v any) (int, string) {
	c.t.Helper()
	return c.aspenDo(i, "lease/"+op, body, v)
}

// leaseOK calls a lease endpoint that must succeed.
func (c *cluster) leaseOK(i int, op, body string, v any) {
	c.t.Helper()
	if code, answer := c.leaseDo(i, op, body, v); code != http.StatusOK {
		c.t.Fatalf("lease %s %s via node %d: got %d %s, want 200", op, body, i+1, code, answer)
	}
}

func (c *cluster) leaseIDs(i int) []int64 {
	c.t.Helper()
	var list LeaseList
	c.leaseOK(i, "list", "", &list)
	var ids []int64
	for _, l := range list.Leases {
		ids = append(ids, l.ID)
	}
	return ids
}

// wantKey checks key's presence through every running node (consistent reads).
func (c *cluster) wantKey(key string, present bool) {
	c.t.Helper()
	for i, s := range c.servers {
		if s == nil {
			continue
		}
		code, _, body := do(c.t, "GET", c.url(i, "/v1/kv/"+key+"?raw"), "")
		if got := code == http.StatusOK; got != present {
			c.t.Fatalf("key %s via node %d: got %d %q, want present=%v", key, i+1, code, body, present)
		}
	}
}

// watch streams events under prefix from node i, starting at revision from.
func (c *cluster) watch(i int, prefix string, from int64) <-chan WatchEvent {
	c.t.Helper()
	resp, err := http.Get(c.url(i, fmt.Sprintf("/v1/aspen/watch?prefix=%s&from=%d", prefix, from)))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { resp.Body.Close() })
	ch := make(chan WatchEvent, 64)
	go func() {
		defer close(ch)
		for sc := bufio.NewScanner(resp.Body); sc.Scan(); {
			var e WatchEvent
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				ch <- e
			}
		}
	}()
	return ch
}

func nextEvent(t *testing.T, ch <-chan WatchEvent, within time.Duration) WatchEvent {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("watch stream ended")
		}
		return e
	case <-time.After(within):
		t.Fatalf("no watch event within %v", within)
	}
	return WatchEvent{}
}

func TestLeaseLifecycle(t *testing.T) {
	c := startCluster(t, 3)
	var granted, named LeaseInfo
	c.leaseOK(0, "grant", `{"TTL": 60}`, &granted)
	if granted.ID <= 0 || granted.TTL != 60 || granted.GrantedTTL != 60 || granted.KeyCount != 0 {
		t.Fatalf("grant: got %+v, want a new id with TTL 60 and no keys", granted)
	}
	c.leaseOK(1, "grant", `{"TTL": 30, "ID": 42}`, &named)
	if named.ID != 42 || named.GrantedTTL != 30 {
		t.Fatalf("grant with an id: got %+v, want lease 42 granted 30 s", named)
	}
	id := granted.ID
	for i, key := range []string{"l/b", "l/a"} {
		code, _, body := do(t, "PUT", c.url(i+1, fmt.Sprintf("/v1/kv/%s?lease=%d", key, id)), "v")
		if code != http.StatusOK || strings.TrimSpace(body) != "true" {
			t.Fatalf("put %s with lease %d: got %d %q, want 200 true", key, id, code, body)
		}
	}
	var ttl LeaseInfo
	c.leaseOK(2, "ttl", fmt.Sprintf(`{"ID": %d, "Keys": true}`, id), &ttl)
	if ttl.ID != id || ttl.TTL <= 0 || ttl.TTL > 60 || ttl.KeyCount != 2 || !slices.Equal(ttl.Keys, []string{"l/a", "l/b"}) {
		t.Fatalf("ttl with keys: got %+v, want lease %d with 1..60 s left and keys l/a, l/b", ttl, id)
	}
	var short LeaseInfo
	c.leaseOK(1, "ttl", fmt.Sprintf(`{"ID": %d}`, id), &short)
	if short.Keys != nil || short.KeyCount != 2 {
		t.Fatalf("ttl without keys: got %+v, want a count and no key list", short)
	}
	var renewed LeaseInfo
	c.leaseOK(2, "keepalive", fmt.Sprintf(`{"ID": %d}`, id), &renewed)
	if renewed.ID != id || renewed.TTL != 60 {
		t.Fatalf("keepalive: got %+v, want lease %d with 60 s left", renewed, id)
	}
	if got := c.leaseIDs(0); !slices.Equal(got, []int64{id, 42}) && !slices.Equal(got, []int64{42, id}) {
		t.Fatalf("list: got %v, want %d and 42", got, id)
	}
	testRevoke(t, c, id)
	if got := c.leaseIDs(2); !slices.Equal(got, []int64{42}) {
		t.Fatalf("list after revoke: got %v, want only 42", got)
	}
}

// testRevoke revokes lease id: its keys go at one revision, seen by a watch
// as plain deletes (a revoke is not an expiry), and the lease is gone.
func testRevoke(t *testing.T, c *cluster, id int64) {
	t.Helper()
	events := c.watch(0, "l/", 1)
	for range 2 {
		if e := nextEvent(t, events, 5*time.Second); e.Type != "put" {
			t.Fatalf("watch: got %+v before the revoke, want the two puts", e)
		}
	}
	var revoked LeaseRevoked
	c.leaseOK(1, "revoke", fmt.Sprintf(`{"ID": %d}`, id), &revoked)
	if revoked.ID != id || revoked.Revision <= 0 {
		t.Fatalf("revoke: got %+v, want lease %d and the revision of the deletes", revoked, id)
	}
	for _, key := range []string{"l/a", "l/b"} {
		e := nextEvent(t, events, 5*time.Second)
		if e.Type != "delete" || e.Key != key || e.Revision != revoked.Revision || e.Expired {
			t.Fatalf("watch: got %+v, want a delete of %s at revision %d, not marked expired", e, key, revoked.Revision)
		}
		c.wantKey(key, false)
	}
	for _, op := range []string{"ttl", "keepalive", "revoke"} {
		if code, body := c.leaseDo(2, op, fmt.Sprintf(`{"ID": %d}`, id), nil); code != http.StatusNotFound {
			t.Fatalf("%s of a revoked lease: got %d %s, want 404", op, code, body)
		}
	}
}

func TestLeaseRefusalsChangeNothing(t *testing.T) {
	c := startCluster(t, 3)
	var held LeaseInfo
	c.leaseOK(0, "grant", `{"TTL": 60, "ID": 7}`, &held)
	_, hdr, _ := do(t, "GET", c.url(0, "/v1/kv/?recurse"), "")
	revision := hdr.Get("X-Consul-Index")
	for _, tc := range []struct {
		method, path, body string
		code               int
		inBody             string
	}{
		{"POST", "/v1/aspen/lease/grant", `{"TTL": 60`, 400, "malformed body"},
		{"POST", "/v1/aspen/lease/grant", `{"TTL": 60} {"TTL": 60}`, 400, "more than one"},
		{"POST", "/v1/aspen/lease/grant", `{"TTL": 60, "Colour": "red"}`, 400, "unknown field"},
		{"POST", "/v1/aspen/lease/grant", `{"TTL": 1.5}`, 400, "malformed body"},
		{"POST", "/v1/aspen/lease/grant", `{}`, 400, "TTL must be a positive number of seconds"},
		{"POST", "/v1/aspen/lease/grant", `{"TTL": 0}`, 400, "TTL must be"},
		{"POST", "/v1/aspen/lease/grant", `{"TTL": -5}`, 400, "TTL must be"},
		{"POST", "/v1/aspen/lease/grant", `{"TTL": 1}`, 400, "ttl out of range"},
		{"POST", "/v1/aspen/lease/grant", `{"TTL": 2592001}`, 400, "ttl out of range"},
		{"POST", "/v1/aspen/lease/grant", `{"TTL": 9223372036854775807}`, 400, "TTL must be"},
		{"POST", "/v1/aspen/lease/grant", `{"TTL": 99999999999999999999}`, 400, "malformed body"},
		{"POST", "/v1/aspen/lease/grant", `{"TTL": 60, "ID": -3}`, 400, "negative"},
		{"POST", "/v1/aspen/lease/grant", `{"TTL": 60, "ID": 7}`, 409, "already exists"},
		{"GET", "/v1/aspen/lease/grant", ``, 405, "not allowed"},
		{"POST", "/v1/aspen/lease/keepalive", `{}`, 400, "ID must be a positive lease id"},
		{"POST", "/v1/aspen/lease/keepalive", `{"ID": 99}`, 404, "lease not found"},
		{"POST", "/v1/aspen/lease/revoke", `{"ID": 99}`, 404, "lease not found"},
		{"POST", "/v1/aspen/lease/revoke", `{"ID": 0}`, 400, "ID must be"},
		{"POST", "/v1/aspen/lease/ttl", `{"ID": 99}`, 404, "lease not found"},
		{"POST", "/v1/aspen/lease/ttl", `{"ID": -1}`, 400, "ID must be"},
		{"PUT", "/v1/kv/leased?lease=abc", "v", 400, "not an unsigned integer"},
		{"PUT", "/v1/kv/leased?lease=0", "v", 400, "not a lease id"},
		{"PUT", "/v1/kv/leased?lease=99", "v", 404, "lease not found"},
	} {
		code, _, body := do(t, tc.method, c.url(1, tc.path), tc.body)
		if code != tc.code || !strings.Contains(body, tc.inBody) {
			t.Errorf("%s %s %s: got %d %s, want %d with %q", tc.method, tc.path, tc.body, code, body, tc.code, tc.inBody)
		}
	}
	if got := c.leaseIDs(2); !slices.Equal(got, []int64{7}) {
		t.Errorf("leases after the refusals: got %v, want only 7", got)
	}
	var ttl LeaseInfo
	if c.leaseOK(2, "ttl", `{"ID": 7}`, &ttl); ttl.GrantedTTL != 60 || ttl.KeyCount != 0 {
		t.Errorf("lease 7 after the refusals: got %+v, want it as granted", ttl)
	}
	c.wantKey("leased", false)
	if _, hdr, _ := do(t, "GET", c.url(2, "/v1/kv/?recurse"), ""); hdr.Get("X-Consul-Index") != revision {
		t.Errorf("store revision after the refusals: got %s, want %s", hdr.Get("X-Consul-Index"), revision)
	}
}

// A table at its bounds refuses more: too many leases is 413, like any size
// limit; a key the lease has no room for refuses the put (400, naming why).
func TestLeaseLimits(t *testing.T) {
	c := startClusterWith(t, 1, func(cfg *Config) {
		ncfg := node.DefaultConfig(cfg.ID, nil)
		ncfg.Leases.LeasesMax, ncfg.Leases.KeysPerLeaseMax = 1, 1
		cfg.Node = &ncfg
	})
	var l LeaseInfo
	c.leaseOK(0, "grant", `{"TTL": 60}`, &l)
	if code, body := c.leaseDo(0, "grant", `{"TTL": 60}`, nil); code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "too many leases") {
		t.Fatalf("grant past the table's bound: got %d %s, want 413 too many leases", code, body)
	}
	if code, _, body := do(t, "PUT", c.url(0, fmt.Sprintf("/v1/kv/one?lease=%d", l.ID)), "v"); code != http.StatusOK {
		t.Fatalf("first key: got %d %s, want 200", code, body)
	}
	code, _, body := do(t, "PUT", c.url(0, fmt.Sprintf("/v1/kv/two?lease=%d", l.ID)), "v")
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "too many keys") {
		t.Fatalf("second key on a lease that holds one: got %d %s, want 413 too many keys", code, body)
	}
	c.wantKey("two", false)
}

// Expiry deletes a lease's keys on every node, and a watcher can tell
// those deletes from a client's.
func TestLeaseExpiryDeletesKeys(t *testing.T) {
	c := startCluster(t, 3)
	var l LeaseInfo
	c.leaseOK(0, "grant", `{"TTL": 2}`, &l)
	code, hdr, body := do(t, "PUT", c.url(1, fmt.Sprintf("/v1/kv/e/k?lease=%d", l.ID)), "v")
	if code != http.StatusOK {
		t.Fatalf("put with lease: got %d %s", code, body)
	}
	var rev int64
	fmt.Sscan(hdr.Get("X-Consul-Index"), &rev)
	events := c.watch(2, "e/", rev+1)
	c.wantKey("e/k", true)
	// The lease's 2 s, a tick for the leader to notice, a commit: well
	// inside 10 s; this test checks what happens, faultcheck how soon.
	e := nextEvent(t, events, 10*time.Second)
	if e.Type != "delete" || e.Key != "e/k" || !e.Expired {
		t.Fatalf("watch: got %+v, want the expiry's delete of e/k, marked expired", e)
	}
	c.wantKey("e/k", false)
	if code, body := c.leaseDo(0, "ttl", fmt.Sprintf(`{"ID": %d}`, l.ID), nil); code != http.StatusNotFound {
		t.Fatalf("ttl of an expired lease: got %d %s, want 404", code, body)
	}
}

// A lease's clock keeps running after every node restarts. Replicated time
// is the leaders' clocks, persisted; a node whose clock restarted from zero
// would stamp nothing past what was applied before, and a lease would stand
// still for as long as the cluster had run.
func TestLeaseClockRunsAfterRestart(t *testing.T) {
	c := startCluster(t, 1)
	time.Sleep(2 * time.Second) // uptime a restarted clock would have to make up
	if code, _, body := do(t, "PUT", c.url(0, "/v1/kv/before"), "v"); code != http.StatusOK {
		t.Fatalf("put: got %d %s", code, body)
	}
	c.servers[0].Close()
	c.cfgs[0].HTTPAddr = "127.0.0.1:0"
	c.servers[0] = c.start(0)
	var l, ttl LeaseInfo
	c.leaseOK(0, "grant", `{"TTL": 10}`, &l)
	time.Sleep(1200 * time.Millisecond)
	c.leaseOK(0, "ttl", fmt.Sprintf(`{"ID": %d}`, l.ID), &ttl)
	if ttl.TTL > 9 {
		t.Fatalf("ttl 1.2 s after a grant of 10 s: got %d s left, want at most 9", ttl.TTL)
	}
}
