package kv_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/aspen-db/aspen/core/kv"
)

func put(k, v string) kv.Op {
	return kv.Op{Type: kv.OpPut, Key: []byte(k), Value: []byte(v)}
}

func get(k string) kv.Op { return kv.Op{Type: kv.OpGet, Key: []byte(k)} }

func del(k string) kv.Op { return kv.Op{Type: kv.OpDelete, Key: []byte(k)} }

func then(ops ...kv.Op) kv.Txn { return kv.Txn{Then: ops} }

func mustGet(t *testing.T, m *kv.Machine, k string) kv.Record {
	t.Helper()
	resp := m.Read(then(get(k)))
	if len(resp.Results) != 1 || len(resp.Results[0].Records) != 1 {
		t.Fatalf("get %q: got %+v, want one record", k, resp)
	}
	return resp.Results[0].Records[0].Record
}

func TestPutStampsRevisions(t *testing.T) {
	m := kv.New()
	m.Apply(then(put("a", "1")))
	m.Apply(then(put("a", "2")))
	resp, changes := m.Apply(then(put("a", "3"), put("b", "1")))
	if resp.Revision != 3 || m.Revision() != 3 {
		t.Fatalf("revision: got response %d machine %d, want 3", resp.Revision, m.Revision())
	}
	want := kv.Record{Value: []byte("3"), CreateRev: 1, ModRev: 3, Version: 3}
	if got := mustGet(t, m, "a"); !reflect.DeepEqual(got, want) {
		t.Fatalf("a: got %+v, want %+v", got, want)
	}
	if got := mustGet(t, m, "b"); got.CreateRev != 3 || got.ModRev != 3 || got.Version != 1 {
		t.Fatalf("b: got %+v, want CreateRev=ModRev=3 Version=1", got)
	}
	if len(changes) != 2 || string(changes[0].Key) != "a" || string(changes[1].Key) != "b" {
		t.Fatalf("changes: got %+v, want a then b", changes)
	}
}

func TestDeleteOfAbsentKeyKeepsRevision(t *testing.T) {
	m := kv.New()
	m.Apply(then(put("a", "1")))
	resp, changes := m.Apply(then(del("zz"), kv.Op{Type: kv.OpDeleteRange, Key: []byte("x"), Prefix: true}))
	if resp.Revision != 1 || len(changes) != 0 {
		t.Fatalf("got revision %d and changes %+v, want 1 and none", resp.Revision, changes)
	}
}

func TestTxnSeesItsOwnWrites(t *testing.T) {
	m := kv.New()
	resp, _ := m.Apply(then(put("a", "1"), get("a"), put("a", "2"), del("a"), get("a")))
	if got := resp.Results[1].Records; len(got) != 1 || string(got[0].Value) != "1" || got[0].ModRev != 1 {
		t.Fatalf("get after put: got %+v, want a=1 at revision 1", got)
	}
	if got := resp.Results[4].Records; len(got) != 0 {
		t.Fatalf("get after delete: got %+v, want nothing", got)
	}
	if resp.Revision != 1 || m.Len() != 0 {
		t.Fatalf("got revision %d and %d keys, want 1 and 0", resp.Revision, m.Len())
	}
}

func TestCompareChoosesBranch(t *testing.T) {
	m := kv.New()
	m.Apply(then(put("lock", "me")))
	absent := kv.Compare{Key: []byte("lock"), Target: kv.TargetExists, Result: kv.Equal, Exists: false}
	txn := kv.Txn{Compares: []kv.Compare{absent}, Then: []kv.Op{put("lock", "you")}, Else: []kv.Op{get("lock")}}
	resp, changes := m.Apply(txn)
	if resp.Succeeded || len(changes) != 0 || string(resp.Results[0].Records[0].Value) != "me" {
		t.Fatalf("got %+v with changes %+v, want the else branch reading lock=me", resp, changes)
	}
}

func TestRangeLimitReportsMore(t *testing.T) {
	m := kv.New()
	m.Apply(then(put("p/1", ""), put("p/2", ""), put("p/3", ""), put("q", "")))
	resp := m.Read(then(kv.Op{Type: kv.OpRange, Key: []byte("p/"), Prefix: true, Limit: 2}))
	res := resp.Results[0]
	if len(res.Records) != 2 || !res.More || string(res.Records[1].Key) != "p/2" {
		t.Fatalf("got %+v, want p/1, p/2 and more", res)
	}
}

func TestApplySkipsUnknownOp(t *testing.T) {
	m := kv.New()
	resp, changes := m.Apply(then(kv.Op{Type: 200, Key: []byte("a")}, put("a", "1")))
	if len(resp.Results) != 2 || len(changes) != 1 || resp.Revision != 1 {
		t.Fatalf("got %+v with changes %+v, want the put alone to take effect", resp, changes)
	}
}

func TestReadPanicsOnWrite(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "writes") {
			t.Fatalf("got panic %v, want one about writes", r)
		}
	}()
	kv.New().Read(then(put("a", "1")))
}

func TestHashDependsOnEveryField(t *testing.T) {
	base := kv.Record{Value: []byte("v"), CreateRev: 1, ModRev: 2, Version: 2}
	variants := map[string]func(m *kv.Machine){
		"base":       func(m *kv.Machine) { m.Load([]byte("k"), base) },
		"key":        func(m *kv.Machine) { m.Load([]byte("j"), base) },
		"value":      func(m *kv.Machine) { r := base; r.Value = []byte("w"); m.Load([]byte("k"), r) },
		"create rev": func(m *kv.Machine) { r := base; r.CreateRev = 2; m.Load([]byte("k"), r) },
		"mod rev":    func(m *kv.Machine) { r := base; r.ModRev = 3; m.Load([]byte("k"), r) },
		"version":    func(m *kv.Machine) { r := base; r.Version = 3; m.Load([]byte("k"), r) },
		"revision":   func(m *kv.Machine) { m.Load([]byte("k"), base); m.SetRevision(3) },
		"extra key":  func(m *kv.Machine) { m.Load([]byte("k"), base); m.Load([]byte("l"), base) },
		"empty":      func(m *kv.Machine) { m.SetRevision(2) },
		// Moving bytes between key and value must not collide.
		"split": func(m *kv.Machine) { r := base; r.Value = []byte("kv"); m.Load(nil, r) },
	}
	seen := map[uint64]string{}
	for name, build := range variants {
		m := kv.New()
		m.SetRevision(2)
		build(m)
		if other, ok := seen[m.Hash()]; ok {
			t.Errorf("variants %q and %q: got equal hashes %#x, want different", name, other, m.Hash())
		}
		seen[m.Hash()] = name
	}
}

func TestLoadReplacesExistingKey(t *testing.T) {
	m, want := kv.New(), kv.New()
	m.Load([]byte("k"), kv.Record{Value: []byte("old"), CreateRev: 1, ModRev: 1, Version: 1})
	m.Load([]byte("k"), kv.Record{Value: []byte("new"), CreateRev: 1, ModRev: 2, Version: 2})
	want.Load([]byte("k"), kv.Record{Value: []byte("new"), CreateRev: 1, ModRev: 2, Version: 2})
	if m.Len() != 1 || m.Hash() != want.Hash() {
		t.Fatalf("got %d keys and hash %#x, want 1 and %#x", m.Len(), m.Hash(), want.Hash())
	}
}

func TestRestoreRejectsMalformedSnapshots(t *testing.T) {
	src := kv.New()
	src.Apply(then(put("a", "1"), put("b", "2")))
	snap := src.Snapshot()
	// Swap the two entries so that keys come out of order.
	swapped := kv.New()
	swapped.Load([]byte("b"), kv.Record{Value: []byte("2"), CreateRev: 1, ModRev: 1, Version: 1})
	unordered := swapped.Snapshot()
	unordered[5] = 2 // claim two keys, then repeat the one present
	unordered = append(unordered, unordered[6:]...)

	cases := map[string][]byte{
		"empty":        nil,
		"bad magic":    append([]byte("xyz\x01"), snap[4:]...),
		"truncated":    snap[:len(snap)-1],
		"trailing":     append(append([]byte{}, snap...), 0),
		"huge count":   append(append([]byte{}, snap[:5]...), 0xff, 0xff, 0xff, 0xff, 0x0f),
		"out of order": unordered,
	}
	for name, data := range cases {
		m := kv.New()
		m.Apply(then(put("keep", "me")))
		before := m.Hash()
		err := m.Restore(data)
		if !errors.Is(err, kv.ErrMalformed) {
			t.Errorf("%s: got error %v, want ErrMalformed", name, err)
		}
		if m.Hash() != before {
			t.Errorf("%s: got state changed by a failed restore, want it untouched", name)
		}
	}
}

// A clone keeps the state it was taken at while the original moves on.
func TestCloneIsolated(t *testing.T) {
	m := kv.New()
	for i := 0; i < 200; i++ { // enough keys for a tree of several nodes
		m.Apply(kv.Txn{Then: []kv.Op{put(fmt.Sprintf("k%03d", i), "old")}})
	}
	before := m.Snapshot()
	c := m.Clone()
	m.Apply(kv.Txn{Then: []kv.Op{put("k007", "new")}})
	m.Apply(kv.Txn{Then: []kv.Op{{Type: kv.OpDeleteRange, Key: []byte("k1"), Prefix: true}}})
	if !bytes.Equal(c.Snapshot(), before) || c.Hash() == m.Hash() {
		t.Fatal("writes to the original changed the clone")
	}
}
