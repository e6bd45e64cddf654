package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// consul is HashiCorp's own client for node i: what Consul users run.
func (c *cluster) consul(i int) *api.Client {
	c.t.Helper()
	client, err := api.NewClient(&api.Config{Address: c.servers[i].HTTPAddr(), Scheme: "http"})
	if err != nil {
		c.t.Fatalf("consul client for node %d: %v", i+1, err)
	}
	return client
}

func mustGetPair(t *testing.T, kv *api.KV, key string) *api.KVPair {
	t.Helper()
	pair, _, err := kv.Get(key, nil)
	if err != nil || pair == nil {
		t.Fatalf("get %s: got %+v, %v; want an entry", key, pair, err)
	}
	return pair
}

// Flags are stored with the value and come back from every read: a get, a
// recursive list, a transaction and a watch, through any node. A put
// without flags stores 0 (Consul's), and a CAS that fails keeps them.
func TestConsulFlags(t *testing.T) {
	c := startCluster(t, 3)
	events := c.watch(2, "f/", 0)
	kv0, kv1 := c.consul(0).KV(), c.consul(1).KV()
	if _, err := kv0.Put(&api.KVPair{Key: "f/a", Value: []byte("v1"), Flags: 42}, nil); err != nil {
		t.Fatal(err)
	}
	first := mustGetPair(t, kv1, "f/a")
	if first.Flags != 42 {
		t.Fatalf("get via node 2: flags %d, want 42", first.Flags)
	}
	stale := &api.KVPair{Key: "f/a", Value: []byte("v2"), Flags: 7, ModifyIndex: first.ModifyIndex + 100}
	if ok, _, err := kv1.CAS(stale, nil); err != nil || ok {
		t.Fatalf("cas at a stale index: %v, %v; want false", ok, err)
	}
	stale.ModifyIndex = first.ModifyIndex
	if ok, _, err := kv1.CAS(stale, nil); err != nil || !ok {
		t.Fatalf("cas at the current index: %v, %v; want true", ok, err)
	}
	pairs, _, err := c.consul(2).KV().List("f/", nil)
	if err != nil || len(pairs) != 1 || pairs[0].Flags != 7 || string(pairs[0].Value) != "v2" {
		t.Fatalf("list f/: %+v, %v; want f/a with flags 7", pairs, err)
	}
	if _, err := kv0.Put(&api.KVPair{Key: "f/a", Value: []byte("v3")}, nil); err != nil {
		t.Fatal(err)
	}
	if got := mustGetPair(t, kv0, "f/a"); got.Flags != 0 {
		t.Fatalf("after a put without flags: flags %d, want 0", got.Flags)
	}
	ok, resp, _, err := c.consul(1).Txn().Txn(api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVSet, Key: "f/a", Value: []byte("v4"), Flags: 9}}}, nil)
	if err != nil || !ok || len(resp.Results) != 1 {
		t.Fatalf("txn set: %v, %v, %+v", ok, err, resp)
	}
	if e := resp.Results[0].KV; e.Flags != 9 || e.Value != nil || e.CreateIndex != first.CreateIndex || e.ModifyIndex <= first.ModifyIndex {
		t.Fatalf("txn set result: %+v; want flags 9, no value, create index %d", e, first.CreateIndex)
	}
	for _, want := range []uint64{42, 7, 0, 9} {
		if e := nextEvent(t, events, 10*time.Second); e.Flags != want {
			t.Fatalf("watch event %+v: flags %d, want %d", e, e.Flags, want)
		}
	}
}

// A flags value that is not an unsigned 64-bit number is refused with 400
// and changes nothing.
func TestConsulFlagsRefused(t *testing.T) {
	c := startCluster(t, 1)
	kv := c.consul(0).KV()
	if _, err := kv.Put(&api.KVPair{Key: "k", Value: []byte("v"), Flags: 5}, nil); err != nil {
		t.Fatal(err)
	}
	before := mustGetPair(t, kv, "k")
	for _, bad := range []string{"-1", "x", "18446744073709551616", ""} {
		code, _, body := do(t, "PUT", c.url(0, "/v1/kv/k?flags="+bad), "other")
		if code != http.StatusBadRequest || !strings.Contains(body, "flags") {
			t.Errorf("flags=%q: got %d %s, want 400 naming flags", bad, code, body)
		}
	}
	if after := mustGetPair(t, kv, "k"); after.ModifyIndex != before.ModifyIndex || after.Flags != 5 {
		t.Fatalf("refused puts changed the key: %+v, was %+v", after, before)
	}
}
