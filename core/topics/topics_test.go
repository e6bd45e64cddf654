package topics

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
	"github.com/aspen-db/aspen/sim/disk"
)

// rig drives a topics module alone over a simulated disk: every command's
// batch is written, so a reload from disk must give the same table.
type rig struct {
	t   *testing.T
	m   *Module
	d   *disk.Disk
	idx uint64
	now int64
}

func newRig(t *testing.T, limits Limits) *rig {
	return &rig{t: t, m: NewModule(limits), d: disk.New(), now: 1e9}
}

func (r *rig) apply(c module.Command) module.Answer {
	r.t.Helper()
	if c.Kind != CmdPrune {
		if a := r.m.Validate(c.Kind, c.Body); a.Outcome != module.OK {
			return a
		}
	}
	r.idx++
	env := &module.Env{Index: r.idx, NowNs: r.now, Batch: &storage.Batch{}}
	a := r.m.Apply(env, c.Kind, c.Body)
	if err := r.d.Apply(*env.Batch); err != nil {
		r.t.Fatal(err)
	}
	return a
}

func (r *rig) ok(c module.Command) Answer {
	r.t.Helper()
	a := r.apply(c)
	if a.Outcome != module.OK {
		r.t.Fatalf("command %d: %v %s", c.Kind, a.Outcome, a.Detail)
	}
	v, _ := a.Value.(Answer)
	return v
}

// reload checks that the table loaded from disk and the one restored from
// a snapshot both equal the live one.
func (r *rig) reload() {
	r.t.Helper()
	fromDisk := NewModule(r.m.limits)
	if err := fromDisk.Load(r.d); err != nil {
		r.t.Fatalf("load: %v", err)
	}
	restored := NewModule(r.m.limits)
	if err := restored.Restore(r.m.Freeze().Encode()); err != nil {
		r.t.Fatalf("restore: %v", err)
	}
	for _, other := range []*Module{fromDisk, restored} {
		if other.Hash() != r.m.Hash() || other.bytes != r.m.bytes || !bytes.Equal(other.Freeze().Encode(), r.m.Freeze().Encode()) {
			r.t.Fatalf("reloaded table differs: hash %x vs %x, bytes %d vs %d", other.Hash(), r.m.Hash(), other.bytes, r.m.bytes)
		}
	}
}

func def(name string, parts int) Def {
	return Def{Name: name, Partitions: parts, RetainMessages: RetainMessagesDefault, RetainBytes: RetainBytesDefault}
}

// Keys choose their partition by hash, keyless messages go round-robin,
// offsets are dense per partition in commit order, and reads return them.
func TestPublishAndRead(t *testing.T) {
	r := newRig(t, DefaultLimits())
	r.ok(Create(def("orders", 3)))
	var in []In
	for i := range 9 {
		in = append(in, In{Key: []byte(fmt.Sprintf("customer-%d", i%2)), Value: []byte(fmt.Sprint(i)), Partition: -1})
	}
	in = append(in, In{Value: []byte("a"), Partition: -1}, In{Value: []byte("b"), Partition: -1}, In{Value: []byte("c"), Partition: 2})
	a := r.ok(Publish("orders", in))
	next := map[int]uint64{}
	for i, p := range a.Placed {
		if in[i].Key != nil && p.Partition != KeyPartition(in[i].Key, 3) {
			t.Errorf("message %d went to %d, its key's partition is %d", i, p.Partition, KeyPartition(in[i].Key, 3))
		}
		if p.Offset != next[p.Partition] {
			t.Errorf("message %d: offset %d in partition %d, want %d (dense)", i, p.Offset, p.Partition, next[p.Partition])
		}
		next[p.Partition]++
	}
	if a.Placed[9].Partition == a.Placed[10].Partition || a.Placed[11].Partition != 2 {
		t.Errorf("keyless messages went to %d and %d (want round-robin), the named one to %d", a.Placed[9].Partition, a.Placed[10].Partition, a.Placed[11].Partition)
	}
	p := KeyPartition([]byte("customer-0"), 3)
	msgs := r.m.Read("orders", p, 0, 100, 1<<20)
	var values []string
	for _, msg := range msgs {
		if string(msg.Key) == "customer-0" {
			values = append(values, string(msg.Value))
		}
	}
	if fmt.Sprint(values) != "[0 2 4 6 8]" {
		t.Errorf("customer-0's messages in partition %d: %v, want [0 2 4 6 8] in order", p, values)
	}
	r.reload()
}

// Retention drops the oldest by count and bytes at publish, and by age when
// the leader's prune applies; the bounds move, offsets never reuse.
func TestRetention(t *testing.T) {
	r := newRig(t, DefaultLimits())
	d := def("logs", 1)
	d.RetainMessages, d.RetainAgeNs = 5, 10e9
	r.ok(Create(d))
	for i := range 8 {
		r.ok(Publish("logs", []In{{Value: []byte(fmt.Sprint(i)), Partition: -1}}))
	}
	if first, end := r.m.Bounds("logs", 0); first != 3 || end != 8 {
		t.Fatalf("bounds after 8 publishes, retaining 5: %d..%d, want 3..8", first, end)
	}
	r.reload()
	r.now += 11e9
	r.ok(Publish("logs", []In{{Value: []byte("fresh"), Partition: -1}}))
	r.apply(module.Command{Kind: CmdPrune})
	if first, end := r.m.Bounds("logs", 0); first != 8 || end != 9 {
		t.Fatalf("bounds after the age prune: %d..%d, want 8..9 (only the fresh one)", first, end)
	}
	if got := r.m.OffsetAt("logs", 0, r.now-1); got != 8 {
		t.Errorf("offset at a time: %d, want 8", got)
	}
	r.reload()
}

// Bad input is refused before anything changes.
func TestRefusals(t *testing.T) {
	limits := DefaultLimits()
	limits.TotalBytesMax = 100
	r := newRig(t, limits)
	r.ok(Create(def("t", 2)))
	before := r.m.Hash()
	for _, tc := range []struct {
		c    module.Command
		want module.Outcome
	}{
		{Create(def("t", 2)), module.Conflict},
		{Create(def("", 2)), module.Invalid},
		{Create(def("u", 0)), module.Invalid},
		{Create(def("u", 1000)), module.Invalid},
		{Create(def("a/b", 1)), module.Invalid},
		{Publish("nope", []In{{Value: []byte("x"), Partition: -1}}), module.NotFound},
		{Publish("t", nil), module.Invalid},
		{Publish("t", []In{{Value: []byte("x"), Partition: 5}}), module.Invalid},
		{Publish("t", []In{{Value: make([]byte, 300<<10), Partition: -1}}), module.TooLarge},
		{Publish("t", []In{{Value: make([]byte, 101), Partition: -1}}), module.TooLarge}, // past the store's bound
		{Delete("nope"), module.NotFound},
		{module.Command{Kind: CmdPublish, Body: []byte{1, 2, 3}}, module.Invalid},
		{module.Command{Kind: CmdPrune}, module.Invalid},
	} {
		a := r.m.Validate(tc.c.Kind, tc.c.Body)
		if a.Outcome == module.OK {
			r.idx++
			a = r.m.Apply(&module.Env{Index: r.idx, NowNs: r.now, Batch: &storage.Batch{}}, tc.c.Kind, tc.c.Body)
		}
		if a.Outcome != tc.want {
			t.Errorf("command %d: %v %s, want %v", tc.c.Kind, a.Outcome, a.Detail, tc.want)
		}
	}
	if r.m.Hash() != before {
		t.Fatal("a refusal changed the table")
	}
}

// Deleting a topic removes its messages from disk and the digest.
func TestDelete(t *testing.T) {
	r := newRig(t, DefaultLimits())
	empty := r.m.Hash()
	r.ok(Create(def("t", 2)))
	r.ok(Publish("t", []In{{Value: []byte("x"), Partition: -1}, {Key: []byte("k"), Value: []byte("y"), Partition: -1}}))
	r.ok(Delete("t"))
	if r.m.Hash() != empty || r.m.bytes != 0 {
		t.Fatalf("after delete: hash %x bytes %d, want the empty table's", r.m.Hash(), r.m.bytes)
	}
	r.reload()
}

// Every record a topic's life writes lies under the module's own prefix,
// and no other hosted module's prefix covers it: the tokens module owns
// "t/", where topics first put their records, and each loaded the other's
// (the simulator's first topics run: "token record m/topic0/... does not
// decode"). The host now refuses overlapping prefixes too.
func TestRecordsUnderOwnPrefix(t *testing.T) {
	r := newRig(t, DefaultLimits())
	r.ok(Create(Def{Name: "topic0", Partitions: 2, RetainMessages: 1, RetainBytes: 1 << 20}))
	var keys [][]byte
	for i := 0; i < 3; i++ {
		r.idx++
		env := &module.Env{Index: r.idx, NowNs: r.now, Batch: &storage.Batch{}}
		if a := r.m.Apply(env, CmdPublish, Publish("topic0", []In{{Value: []byte("v"), Partition: -1}}).Body); a.Outcome != module.OK {
			t.Fatalf("publish: %v %s", a.Outcome, a.Detail)
		}
		for _, op := range env.Batch.Ops {
			keys = append(keys, op.Key)
		}
	}
	tokensPrefix := []byte("t/") // core/tokens; not imported, to keep the packages apart
	for _, p := range r.m.Prefixes() {
		if bytes.HasPrefix(p, tokensPrefix) || bytes.HasPrefix(tokensPrefix, p) {
			t.Fatalf("prefix %q overlaps the tokens module's %q", p, tokensPrefix)
		}
	}
	for _, k := range keys {
		if !bytes.HasPrefix(k, r.m.Prefixes()[0]) {
			t.Errorf("record %q outside the module's prefix %q", k, r.m.Prefixes()[0])
		}
	}
}

// OffsetAt finds the first offset published at or after a time (the end
// when none), through the query as a reset to a time or a read from a
// time asks it; unknown topics and partitions are refused.
func TestQueryOffsetAt(t *testing.T) {
	r := newRig(t, DefaultLimits())
	r.ok(Create(def("t", 2)))
	for i := 0; i < 3; i++ { // offsets 0, 1, 2 of partition 0 at 1s, 2s, 3s
		r.now = int64(i+1) * 1e9
		r.ok(Publish("t", []In{{Value: []byte{byte(i)}, Partition: 0}}))
	}
	for _, tc := range []struct {
		p    int
		atNs int64
		want uint64
	}{
		{0, 0, 0}, {0, 1e9, 0}, {0, 1e9 + 1, 1}, {0, 2e9, 1}, {0, 3e9, 2}, {0, 3e9 + 1, 3}, {1, 0, 0},
	} {
		a := r.m.Query(QueryOffsetAt, OffsetAt("t", tc.p, tc.atNs).Body, 0)
		got, _ := a.Value.(Answer)
		if a.Outcome != module.OK || len(got.Placed) != 1 || got.Placed[0] != (Placed{Partition: tc.p, Offset: tc.want}) {
			t.Errorf("offset at %d in partition %d: got %v %s %+v, want offset %d", tc.atNs, tc.p, a.Outcome, a.Detail, got.Placed, tc.want)
		}
		if dec, err := DecodeAnswer(a.Data); err != nil || len(dec.Placed) != 1 || dec.Placed[0] != got.Placed[0] {
			t.Errorf("offset at %d: the encoded answer reads %+v, %v", tc.atNs, dec, err)
		}
	}
	for _, tc := range []struct {
		c    module.Command
		want module.Outcome
	}{
		{OffsetAt("nope", 0, 0), module.NotFound},
		{OffsetAt("t", 2, 0), module.Invalid},
		{module.Command{Kind: QueryOffsetAt, Body: []byte{9}}, module.Invalid},
	} {
		if a := r.m.Query(tc.c.Kind, tc.c.Body, 0); a.Outcome != tc.want {
			t.Errorf("query %x: got %v %s, want %v", tc.c.Body, a.Outcome, a.Detail, tc.want)
		}
	}
}

// Infos lists every topic by name with its partitions' bounds.
func TestInfos(t *testing.T) {
	r := newRig(t, DefaultLimits())
	r.ok(Create(def("b", 1)))
	r.ok(Create(def("a", 2)))
	r.ok(Publish("a", []In{{Value: []byte("xy"), Partition: 1}}))
	got := r.m.Infos()
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" || got[0].Published != 1 ||
		got[0].Partitions[1] != (PartitionInfo{First: 0, End: 1, Bytes: 2}) || got[1].Partitions[0] != (PartitionInfo{}) {
		t.Fatalf("infos: got %+v, want a (one message in partition 1) then b (empty)", got)
	}
}

// A published message owns its bytes: the command's body may be reused
// (a transport buffer) once applied, and validation keeps nothing.
func TestPublishOwnsBytes(t *testing.T) {
	r := newRig(t, DefaultLimits())
	r.ok(Create(def("t", 1)))
	c := Publish("t", []In{{Key: []byte("k"), Value: []byte("value"), Headers: []Header{{Key: "h", Value: []byte("hv")}}, Partition: -1}})
	r.ok(c)
	for i := range c.Body {
		c.Body[i] = 'X'
	}
	got := r.m.Read("t", 0, 0, 1, 1<<20)
	if len(got) != 1 || string(got[0].Key) != "k" || string(got[0].Value) != "value" || string(got[0].Headers[0].Value) != "hv" {
		t.Fatalf("message after its body was overwritten: got %+v, want k=value with header hv", got)
	}
	r.reload()
}

// A publish writes one record per partition it touches; retention deletes a
// record once none of its messages is retained, and a reload skips those a
// kept record still holds. A missing record fails the load rather than
// leaving a hole in a partition.
func TestSegments(t *testing.T) {
	r := newRig(t, DefaultLimits())
	d := def("logs", 2)
	d.RetainMessages = 25
	r.ok(Create(d))
	countSegments := func() (n int) {
		r.d.Scan(prefixSegment, func(_, _ []byte) error { n++; return nil })
		return n
	}
	batch := func(n int) []In {
		in := make([]In, n)
		for i := range in {
			in[i] = In{Value: []byte(fmt.Sprint("v", i)), Partition: i % 2}
		}
		return in
	}
	r.ok(Publish("logs", batch(20)))
	if n := countSegments(); n != 2 {
		t.Fatalf("a publish of 20 messages to 2 partitions wrote %d records, want 2", n)
	}
	r.ok(Publish("logs", batch(20)))
	r.ok(Publish("logs", batch(20))) // 30 per partition: the first batch's record holds 5 retained
	if first, _ := r.m.Bounds("logs", 0); first != 5 {
		t.Fatalf("first offset %d, want 5", first)
	}
	if n := countSegments(); n != 6 {
		t.Fatalf("%d records, want 6 (the oldest still holds retained messages)", n)
	}
	r.reload()
	r.ok(Publish("logs", batch(20))) // the oldest records hold none now
	if n := countSegments(); n != 6 {
		t.Fatalf("%d records after retention passed the oldest, want 6", n)
	}
	r.reload()

	// A snapshot restored and persisted writes records a reload accepts.
	restored := NewModule(r.m.limits)
	if err := restored.Restore(r.m.Freeze().Encode()); err != nil {
		t.Fatal(err)
	}
	b := &storage.Batch{}
	restored.Persist(b)
	d2 := disk.New()
	if err := d2.Apply(*b); err != nil {
		t.Fatal(err)
	}
	again := NewModule(r.m.limits)
	if err := again.Load(d2); err != nil || again.Hash() != r.m.Hash() {
		t.Fatalf("load of persisted records: %v, hash %x want %x", err, again.Hash(), r.m.Hash())
	}

	var middle []byte
	seen := 0
	r.d.Scan(prefixSegment, func(k, _ []byte) error {
		if seen++; seen == 2 {
			middle = bytes.Clone(k)
		}
		return nil
	})
	if err := r.d.Apply(storage.Batch{Ops: []storage.Op{{Key: middle, Delete: true}}}); err != nil {
		t.Fatal(err)
	}
	if err := NewModule(r.m.limits).Load(r.d); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("load with a record missing: %v, want storage.ErrCorrupt", err)
	}
}
