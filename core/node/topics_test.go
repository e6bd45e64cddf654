package node_test

import (
	"testing"

	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/node"
	"github.com/aspen-db/aspen/core/topics"
	"github.com/aspen-db/aspen/sim/disk"
)

// A txn that publishes commits its write and its message together: when
// its compare fails neither happens, when the topic is unknown the whole
// txn is refused with nothing written, and a restart keeps both.
func TestTxnPublishCommitsWithTheWrite(t *testing.T) {
	d := disk.New()
	s := startAt(t, d, hookConfig(100), 0)
	s.seq++
	create := topics.Create(topics.Def{Name: "orders", Partitions: 1, RetainMessages: 100, RetainBytes: 1 << 20})
	if r := s.call(node.Request{Client: 11, Seq: s.seq, Call: &create}); r.Outcome != node.OK {
		t.Fatalf("create topic: %v", r.Err())
	}
	txn := func(compareVersion int64, topic string) node.Response {
		s.seq++
		return s.call(node.Request{Client: 12, Seq: s.seq, Txn: kv.Txn{
			Compares: []kv.Compare{{Key: []byte("order/1"), Target: kv.TargetVersion, Result: kv.Equal, Rev: compareVersion}},
			Then:     []kv.Op{{Type: kv.OpPut, Key: []byte("order/1"), Value: []byte("placed")}},
			Publish:  []kv.Pub{{Topic: topic, Key: []byte("order/1"), Value: []byte(`{"placed":1}`)}},
		}})
	}
	tm := func() *topics.Module { return s.n.Hosted("topics").(*topics.Module) }
	if r := txn(0, "nope"); r.Outcome != node.NotFound {
		t.Fatalf("publish to an unknown topic: %v, want not found", r.Outcome)
	}
	if s.has("order/1") {
		t.Fatal("a refused txn wrote its key")
	}
	if r := txn(5, "orders"); r.Outcome != node.OK || r.Result.Succeeded {
		t.Fatalf("txn with a failing compare: %v succeeded=%v, want ok and not succeeded", r.Outcome, r.Result.Succeeded)
	}
	if _, end := tm().Bounds("orders", 0); end != 0 {
		t.Fatalf("a txn whose compare failed published %d messages", end)
	}
	r := txn(0, "orders")
	if r.Outcome != node.OK || !r.Result.Succeeded {
		t.Fatalf("txn: %v succeeded=%v", r.Outcome, r.Result.Succeeded)
	}
	msgs := tm().Read("orders", 0, 0, 10, 1<<20)
	if len(msgs) != 1 || string(msgs[0].Key) != "order/1" || !s.has("order/1") {
		t.Fatalf("after the txn: messages %+v, key present %v; want both", msgs, s.has("order/1"))
	}
	before := s.n.StateHash()
	s = startAt(t, d, hookConfig(100), s.now)
	if s.n.StateHash() != before || len(tm().Read("orders", 0, 0, 10, 1<<20)) != 1 {
		t.Fatal("a restart lost the txn's message or changed the state")
	}
}
