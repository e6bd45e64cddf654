// Package consultest checks Aspen's Consul KV API with HashiCorp's own Go
// client, against a real node: the claim that Consul KV clients work
// unchanged is tested with the client those users run.
package consultest

import (
	"context"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aspen-db/aspen/runtime/server/servertest"
	"github.com/hashicorp/consul/api"
)

// startNode runs a one-node cluster in this process and returns a Consul
// client for it, once the node leads.
func startNode(t *testing.T) *api.Client {
	t.Helper()
	s := servertest.StartOne(t)
	client, err := api.NewClient(&api.Config{Address: s.HTTPAddr(), Scheme: "http"})
	if err != nil {
		t.Fatalf("consul client: %v", err)
	}
	waitForLeader(t, client)
	return client
}

func waitForLeader(t *testing.T, client *api.Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if leader, err := client.Status().Leader(); err == nil && leader != "" {
			return
		}
		time.Sleep(10 * time.Millisecond) // polling, bounded by the deadline
	}
	t.Fatal("no leader within 10s")
}

func put(t *testing.T, kv *api.KV, key, value string) {
	t.Helper()
	if _, err := kv.Put(&api.KVPair{Key: key, Value: []byte(value)}, nil); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func mustGet(t *testing.T, kv *api.KV, key string) *api.KVPair {
	t.Helper()
	pair, _, err := kv.Get(key, nil)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if pair == nil {
		t.Fatalf("get %s: got nothing, want a value", key)
	}
	return pair
}

func TestPutGet(t *testing.T) {
	kv := startNode(t).KV()
	put(t, kv, "greeting", "hello")
	pair, meta, err := kv.Get("greeting", nil)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if pair == nil || string(pair.Value) != "hello" {
		t.Fatalf("get greeting: got %+v, want value hello", pair)
	}
	if pair.ModifyIndex == 0 || pair.CreateIndex != pair.ModifyIndex || meta.LastIndex < pair.ModifyIndex {
		t.Fatalf("indexes: got create %d, modify %d, last %d; want create = modify > 0 and last >= modify",
			pair.CreateIndex, pair.ModifyIndex, meta.LastIndex)
	}
	missing, _, err := kv.Get("nope", nil)
	if err != nil || missing != nil {
		t.Fatalf("get missing key: got %+v, %v; want nil, nil", missing, err)
	}
}

func TestListAndKeys(t *testing.T) {
	kv := startNode(t).KV()
	for _, k := range []string{"app/b", "app/a", "app/sub/c", "app/sub/d", "apple", "other"} {
		put(t, kv, k, "v-"+k)
	}
	pairs, _, err := kv.List("app/", nil)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	var got []string
	for _, p := range pairs {
		if string(p.Value) != "v-"+p.Key {
			t.Fatalf("list: %s holds %q, want %q", p.Key, p.Value, "v-"+p.Key)
		}
		got = append(got, p.Key)
	}
	if want := []string{"app/a", "app/b", "app/sub/c", "app/sub/d"}; !slices.Equal(got, want) {
		t.Fatalf("list app/: got %q, want %q", got, want)
	}
	tests := []struct {
		prefix, sep string
		want        []string
	}{
		{"app/", "/", []string{"app/a", "app/b", "app/sub/"}},
		{"app/", "", []string{"app/a", "app/b", "app/sub/c", "app/sub/d"}},
		{"app", "/", []string{"app/", "apple"}},
	}
	for _, tt := range tests {
		keys, _, err := kv.Keys(tt.prefix, tt.sep, nil)
		if err != nil {
			t.Fatalf("keys %q %q: %v", tt.prefix, tt.sep, err)
		}
		if !slices.Equal(keys, tt.want) {
			t.Fatalf("keys %q separator %q: got %q, want %q", tt.prefix, tt.sep, keys, tt.want)
		}
	}
}

func TestCAS(t *testing.T) {
	kv := startNode(t).KV()
	created, _, err := kv.CAS(&api.KVPair{Key: "lock", Value: []byte("one"), ModifyIndex: 0}, nil)
	if err != nil || !created {
		t.Fatalf("create-only cas on a new key: got %v, %v; want true", created, err)
	}
	again, _, err := kv.CAS(&api.KVPair{Key: "lock", Value: []byte("two"), ModifyIndex: 0}, nil)
	if err != nil || again {
		t.Fatalf("create-only cas on an existing key: got %v, %v; want false", again, err)
	}
	pair := mustGet(t, kv, "lock")
	pair.Value = []byte("three")
	ok, _, err := kv.CAS(pair, nil)
	if err != nil || !ok {
		t.Fatalf("cas at the current index %d: got %v, %v; want true", pair.ModifyIndex, ok, err)
	}
	pair.Value = []byte("four") // pair.ModifyIndex is now stale
	ok, _, err = kv.CAS(pair, nil)
	if err != nil || ok {
		t.Fatalf("cas at the stale index %d: got %v, %v; want false", pair.ModifyIndex, ok, err)
	}
	if got := mustGet(t, kv, "lock"); string(got.Value) != "three" {
		t.Fatalf("after a failed cas: got %q, want three", got.Value)
	}
}

func TestDeleteTree(t *testing.T) {
	kv := startNode(t).KV()
	for _, k := range []string{"tree/a", "tree/b/c", "treehouse", "keep"} {
		put(t, kv, k, "x")
	}
	if _, err := kv.DeleteTree("tree/", nil); err != nil {
		t.Fatalf("delete tree: %v", err)
	}
	pairs, _, err := kv.List("tree/", nil)
	if err != nil || len(pairs) != 0 {
		t.Fatalf("list tree/ after delete: got %d pairs, %v; want none", len(pairs), err)
	}
	keys, _, err := kv.Keys("", "", nil)
	if err != nil {
		t.Fatalf("keys: %v", err)
	}
	if want := []string{"keep", "treehouse"}; !slices.Equal(keys, want) {
		t.Fatalf("keys after delete tree/: got %q, want %q", keys, want)
	}
}

// The blocking Get is sent first; the Put follows once the Get's request is on
// the wire. Either order must end with the Get returning the new value.
func TestBlockingQueryWakesOnPut(t *testing.T) {
	kv := startNode(t).KV()
	put(t, kv, "watched", "old")
	_, meta, err := kv.Get("watched", nil)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	sent := make(chan struct{})
	var once sync.Once
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(func() { close(sent) }) },
	})
	type result struct {
		pair *api.KVPair
		meta *api.QueryMeta
		err  error
	}
	done := make(chan result, 1)
	go func() {
		q := (&api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 30 * time.Second}).WithContext(ctx)
		pair, m, err := kv.Get("watched", q)
		done <- result{pair, m, err}
	}()
	select {
	case <-sent:
	case <-time.After(10 * time.Second):
		t.Fatal("blocking get was not sent within 10s")
	}
	put(t, kv, "watched", "new")
	select {
	case r := <-done:
		if r.err != nil || r.pair == nil || string(r.pair.Value) != "new" {
			t.Fatalf("blocking get: got %+v, %v; want value new", r.pair, r.err)
		}
		if r.meta.LastIndex <= meta.LastIndex {
			t.Fatalf("blocking get: got index %d, want above %d", r.meta.LastIndex, meta.LastIndex)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking get did not return within 10s of the put (its wait was 30s)")
	}
}

func TestBlockingQueryReturnsAtWaitTime(t *testing.T) {
	kv := startNode(t).KV()
	put(t, kv, "quiet", "same")
	_, meta, err := kv.Get("quiet", nil)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	const waitTime = 300 * time.Millisecond
	start := time.Now()
	pair, after, err := kv.Get("quiet", &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: waitTime})
	elapsed := time.Since(start)
	if err != nil || pair == nil || string(pair.Value) != "same" {
		t.Fatalf("blocking get: got %+v, %v; want value same", pair, err)
	}
	if elapsed < waitTime || elapsed > waitTime+5*time.Second {
		t.Fatalf("blocking get with nothing changing returned after %v, want about %v", elapsed, waitTime)
	}
	if after.LastIndex != meta.LastIndex {
		t.Fatalf("index after an idle wait: got %d, want %d", after.LastIndex, meta.LastIndex)
	}
}

func TestTxnSetWithCheckIndex(t *testing.T) {
	client := startNode(t)
	kv, txn := client.KV(), client.Txn()
	put(t, kv, "guard", "g1")
	guard := mustGet(t, kv, "guard")
	ops := func(value string, index uint64) api.TxnOps {
		return api.TxnOps{
			{KV: &api.KVTxnOp{Verb: api.KVSet, Key: "guarded", Value: []byte(value)}},
			{KV: &api.KVTxnOp{Verb: api.KVCheckIndex, Key: "guard", Index: index}},
		}
	}
	ok, resp, _, err := txn.Txn(ops("first", guard.ModifyIndex), nil)
	if err != nil || !ok {
		t.Fatalf("txn with a current index: got %v, %v (%+v); want true", ok, err, resp)
	}
	if len(resp.Results) == 0 || resp.Results[0].KV == nil || resp.Results[0].KV.Key != "guarded" {
		t.Fatalf("txn results: got %+v, want the set's entry first", resp.Results)
	}
	put(t, kv, "guard", "g2") // moves guard's index past the one we hold
	stale := append(ops("second", guard.ModifyIndex),
		&api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCheckNotExists, Key: "absent"}}, // holds
		&api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCheckNotExists, Key: "guard"}})  // fails
	ok, resp, _, err = txn.Txn(stale, nil)
	if err != nil || ok {
		t.Fatalf("txn with a stale index: got %v, %v; want false", ok, err)
	}
	var failed []int
	for _, e := range resp.Errors {
		failed = append(failed, e.OpIndex)
	}
	if !slices.Equal(failed, []int{1, 3}) || !strings.Contains(resp.Errors[0].What, "does not match") {
		t.Fatalf("rolled-back txn: got errors %+v, want operations 1 (stale index) and 3 (key exists) named", resp.Errors)
	}
	if got := mustGet(t, kv, "guarded"); string(got.Value) != "first" {
		t.Fatalf("after a rolled-back txn: got %q, want first", got.Value)
	}
}
