package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
)

func (c *cluster) newSession(i int, entry *api.SessionEntry) string {
	c.t.Helper()
	id, _, err := c.consul(i).Session().Create(entry, nil)
	if err != nil {
		c.t.Fatalf("create a session via node %d: %v", i+1, err)
	}
	return id
}

// Consul's acquire and release on the KV API, through different nodes:
// LockIndex counts acquisitions, the holder shows in reads (and is absent
// from the JSON when free), another session gets false, and so does a
// release by anyone but the holder.
func TestConsulAcquireRelease(t *testing.T) {
	c := startCluster(t, 3)
	a, b := c.newSession(0, nil), c.newSession(1, nil)
	kv0, kv1, kv2 := c.consul(0).KV(), c.consul(1).KV(), c.consul(2).KV()
	acquire := func(kv *api.KV, session, value string) bool {
		t.Helper()
		ok, _, err := kv.Acquire(&api.KVPair{Key: "leader", Value: []byte(value), Session: session, Flags: 3}, nil)
		if err != nil {
			t.Fatalf("acquire by %s: %v", session, err)
		}
		return ok
	}
	release := func(kv *api.KV, session string) bool {
		t.Helper()
		ok, _, err := kv.Release(&api.KVPair{Key: "leader", Value: []byte("released"), Session: session}, nil)
		if err != nil {
			t.Fatalf("release by %s: %v", session, err)
		}
		return ok
	}
	if !acquire(kv0, a, "a1") || !acquire(kv1, a, "a2") {
		t.Fatal("a could not take the free key, or take it again")
	}
	if acquire(kv2, b, "b1") || release(kv2, b) {
		t.Fatal("b took or released a's lock")
	}
	if got := mustGetPair(t, kv2, "leader"); got.Session != a || got.LockIndex != 1 || string(got.Value) != "a2" || got.Flags != 3 {
		t.Fatalf("held key: %+v; want session a, lock index 1, value a2, flags 3", got)
	}
	if !release(kv1, a) || !acquire(kv2, b, "b2") {
		t.Fatal("a could not release, or b could not take the released key")
	}
	if got := mustGetPair(t, kv0, "leader"); got.Session != b || got.LockIndex != 2 {
		t.Fatalf("after b took it: %+v; want session b, lock index 2", got)
	}
	release(kv0, b)
	if _, _, body := do(t, "GET", c.url(1, "/v1/kv/leader"), ""); strings.Contains(body, `"Session"`) {
		t.Fatalf("a free key's JSON %s names a session; Consul omits it", body)
	}
}

// An acquire naming a session that does not exist, or none, or mixed with
// cas, is refused with 400 and a message, and writes nothing.
func TestConsulAcquireRefusals(t *testing.T) {
	c := startCluster(t, 1)
	s := c.newSession(0, nil)
	for _, tc := range []struct{ query, want string }{
		{"acquire=4f2c9a1e-0000-4000-8000-000000000000", "invalid session"},
		{"acquire=", "missing session"},
		{"release=", "missing session"},
		{"acquire=" + s + "&cas=0", "conflicting flags"},
		{"acquire=" + s + "&release=" + s, "conflicting flags"},
	} {
		code, _, body := do(t, "PUT", c.url(0, "/v1/kv/guarded?"+tc.query), "x")
		if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("PUT ?%s: %d %s; want 400 saying %q", tc.query, code, body, tc.want)
		}
	}
	if code, _, _ := do(t, "GET", c.url(0, "/v1/kv/guarded"), ""); code != http.StatusNotFound {
		t.Fatalf("a refused acquire wrote the key (GET answers %d)", code)
	}
	// Consul's client reports the refusal as an error, not as false.
	ok, _, err := c.consul(0).KV().Acquire(&api.KVPair{Key: "guarded", Session: "no-such-session"}, nil)
	if err == nil || ok || !strings.Contains(err.Error(), "invalid session") {
		t.Fatalf("client acquire with an unknown session: %v, %v; want an error naming the invalid session", ok, err)
	}
}

// The transaction verbs of locks answer as Consul's do: lock and unlock
// return the entry without its value, check-session holds only for the
// holder, get-or-empty answers a missing key with the request's own entry,
// and a failed lock rolls the transaction back naming the holder.
func TestConsulTxnLockVerbs(t *testing.T) {
	c := startCluster(t, 3)
	a, b := c.newSession(0, nil), c.newSession(1, nil)
	txn := func(i int, ops ...*api.TxnOp) (bool, *api.TxnResponse) {
		t.Helper()
		ok, resp, _, err := c.consul(i).Txn().Txn(ops, nil)
		if err != nil {
			t.Fatalf("txn via node %d: %v", i+1, err)
		}
		return ok, resp
	}
	kvop := func(verb api.KVOp, key, session string) *api.TxnOp {
		return &api.TxnOp{KV: &api.KVTxnOp{Verb: verb, Key: key, Session: session, Value: []byte("v-" + key), Flags: 8}}
	}
	ok, resp := txn(0, kvop(api.KVLock, "t/lock", a), kvop(api.KVGetOrEmpty, "t/none", ""))
	if !ok || len(resp.Results) != 2 {
		t.Fatalf("lock txn: %v %+v", ok, resp)
	}
	locked, empty := resp.Results[0].KV, resp.Results[1].KV
	if locked.Session != a || locked.LockIndex != 1 || locked.Value != nil || locked.Flags != 8 {
		t.Fatalf("lock result: %+v; want the held entry without value", locked)
	}
	if empty.Key != "t/none" || empty.Value != nil || empty.CreateIndex != 0 {
		t.Fatalf("get-or-empty of a missing key: %+v; want the request's own entry", empty)
	}
	ok, resp = txn(1, kvop(api.KVCheckSession, "t/lock", a))
	if checked := resp.Results[0].KV; !ok || checked.Session != a || checked.Value != nil || checked.ModifyIndex != locked.ModifyIndex {
		t.Fatalf("check-session by the holder: %v %+v; want the entry without value", ok, resp)
	}
	if ok, resp = txn(1, kvop(api.KVCheckSession, "t/lock", b)); ok || !strings.Contains(resp.Errors[0].What, "not "+`"`+b) {
		t.Fatalf("check-session by another session: %v %+v; want a rollback naming both", ok, resp.Errors)
	}
	ok, resp = txn(1, kvop(api.KVSet, "t/other", ""), kvop(api.KVLock, "t/lock", b))
	if ok || len(resp.Errors) != 1 || resp.Errors[0].OpIndex != 1 || !strings.Contains(resp.Errors[0].What, a) {
		t.Fatalf("lock of a held key: %v %+v; want a rollback naming operation 1 and holder %s", ok, resp.Errors, a)
	}
	if ok, resp = txn(2, kvop(api.KVUnlock, "t/lock", b)); ok {
		t.Fatalf("unlock by a non-holder succeeded: %+v", resp)
	}
	ok, resp = txn(2, kvop(api.KVUnlock, "t/lock", a), kvop(api.KVGetOrEmpty, "t/lock", ""))
	if !ok || resp.Results[0].KV.Session != "" || resp.Results[0].KV.LockIndex != 1 || string(resp.Results[1].KV.Value) != "v-t/lock" {
		t.Fatalf("unlock by the holder: %v %+v; want the released entry, then the value", ok, resp)
	}
	if pair, _, err := c.consul(0).KV().Get("t/other", nil); err != nil || pair != nil {
		t.Fatalf("the rolled-back set: %+v, %v; want no key", pair, err)
	}
}
