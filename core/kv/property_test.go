package kv_test

import (
	"bytes"
	"testing"

	"github.com/aspen-db/aspen/core/kv"
	"pgregory.net/rapid"
)

// A tiny key space, with keys that are prefixes of one another, makes compares
// hit, ranges overlap and prefixes matter.
var (
	testKeys   = []string{"a", "ab", "abc", "b", "ba", "c", "d", "e"}
	testValues = []string{"", "x", "y", "xy"}
)

// fresh draws one of strs as a newly allocated slice, so that the test can
// scribble over it after use to catch aliasing.
func fresh(strs ...string) *rapid.Generator[[]byte] {
	return rapid.Map(rapid.SampledFrom(strs), func(s string) []byte { return []byte(s) })
}

var (
	genKey   = fresh(append([]string{""}, testKeys...)...)
	genValue = fresh(testValues...)
	genEnd   = fresh(append([]string{"", "", ""}, testKeys...)...)
	// Unknown targets, results and op types (0 and 9) appear now and then:
	// Apply must cope with anything that reaches the log.
	genTarget = rapid.SampledFrom([]kv.CompareTarget{
		kv.TargetValue, kv.TargetModRev, kv.TargetCreateRev, kv.TargetVersion, kv.TargetExists,
		kv.TargetValue, kv.TargetModRev, kv.TargetCreateRev, kv.TargetVersion, kv.TargetExists, 0, 9,
	})
	genResult = rapid.SampledFrom([]kv.CompareResult{
		kv.Equal, kv.NotEqual, kv.Less, kv.Greater, kv.Equal, kv.NotEqual, kv.Less, kv.Greater, 0, 9,
	})
	readTypes  = []kv.OpType{kv.OpGet, kv.OpRange, kv.OpGet, kv.OpRange, 0, 9}
	writeTypes = []kv.OpType{kv.OpPut, kv.OpDelete, kv.OpDeleteRange, kv.OpPut, kv.OpDelete, kv.OpDeleteRange}
)

// genCompare draws a compare whose operand is often the key's actual state, so
// that Equal compares hold often enough to exercise both branches.
func genCompare(md *model) *rapid.Generator[kv.Compare] {
	return rapid.Custom(func(t *rapid.T) kv.Compare {
		c := kv.Compare{
			Key:    genKey.Draw(t, "key"),
			Target: genTarget.Draw(t, "target"),
			Result: genResult.Draw(t, "result"),
			Exists: rapid.Bool().Draw(t, "exists"),
		}
		r := md.recs[string(c.Key)]
		c.Value = rapid.OneOf(genValue, rapid.Just(r.Value)).Draw(t, "value")
		c.Value = bytes.Clone(c.Value)
		c.Rev = rapid.OneOf(
			rapid.Int64Range(-1, md.rev+1),
			rapid.SampledFrom([]int64{r.CreateRev, r.ModRev, r.Version}),
		).Draw(t, "rev")
		return c
	})
}

func genOp(types []kv.OpType) *rapid.Generator[kv.Op] {
	return rapid.Custom(func(t *rapid.T) kv.Op {
		return kv.Op{
			Type:   rapid.SampledFrom(types).Draw(t, "type"),
			Key:    genKey.Draw(t, "key"),
			Value:  genValue.Draw(t, "value"),
			End:    genEnd.Draw(t, "end"),
			Prefix: rapid.Bool().Draw(t, "prefix"),
			Limit:  rapid.IntRange(-1, 3).Draw(t, "limit"),
		}
	})
}

func genTxn(md *model, readOnly bool) *rapid.Generator[kv.Txn] {
	types := readTypes
	if !readOnly {
		types = append(append([]kv.OpType{}, readTypes...), writeTypes...)
	}
	return rapid.Custom(func(t *rapid.T) kv.Txn {
		return kv.Txn{
			Compares: rapid.SliceOfN(genCompare(md), 0, 3).Draw(t, "compares"),
			Then:     rapid.SliceOfN(genOp(types), 0, 4).Draw(t, "then"),
			Else:     rapid.SliceOfN(genOp(types), 0, 4).Draw(t, "else"),
		}
	})
}

// harness drives a Machine and the model through the same steps.
type harness struct {
	m    *kv.Machine
	md   *model
	seen map[uint64]string // hash -> snapshot of the state that produced it
}

func TestMachineMatchesModel(t *testing.T) {
	seen := map[uint64]string{}
	rapid.Check(t, func(t *rapid.T) {
		h := &harness{m: kv.New(), md: newModel(), seen: seen}
		t.Repeat(map[string]func(*rapid.T){
			"apply":    h.apply,
			"read":     h.read,
			"snapshot": h.snapshotRestore,
			"rebuild":  h.rebuild,
			"":         h.check,
		})
	})
}

func (h *harness) apply(t *rapid.T) {
	txn := genTxn(h.md, false).Draw(t, "txn")
	got, gotChanges := h.m.Apply(txn)
	want, wantChanges := h.md.apply(txn)
	if !equalResponses(got, want) {
		t.Fatalf("Apply response: got %+v, want %+v", got, want)
	}
	if !equalChanges(gotChanges, wantChanges) {
		t.Fatalf("Apply changes: got %+v, want %+v", gotChanges, wantChanges)
	}
	// Neither the request nor the response may share memory with the state;
	// check() would then see the damage.
	scribbleTxn(txn)
	scribbleResponse(got)
}

func (h *harness) read(t *rapid.T) {
	txn := genTxn(h.md, true).Draw(t, "txn")
	got := h.m.Read(txn)
	want, changes := h.md.apply(txn)
	if len(changes) != 0 {
		t.Fatalf("model changed on a read-only txn: %+v", changes)
	}
	if !equalResponses(got, want) {
		t.Fatalf("Read response: got %+v, want %+v", got, want)
	}
	scribbleTxn(txn)
	scribbleResponse(got)
}

// snapshotRestore carries on with a machine restored from a snapshot, after
// checking that a truncated snapshot is refused without harm.
func (h *harness) snapshotRestore(t *rapid.T) {
	snap := h.m.Snapshot()
	r := kv.New()
	r.Apply(kv.Txn{Then: []kv.Op{{Type: kv.OpPut, Key: []byte("junk"), Value: []byte("v")}}})
	if err := r.Restore(snap); err != nil {
		t.Fatalf("Restore(Snapshot()): got error %v, want nil", err)
	}
	if got, want := r.Hash(), h.m.Hash(); got != want {
		t.Fatalf("hash after restore: got %#x, want %#x", got, want)
	}
	if got := r.Snapshot(); !bytes.Equal(got, snap) {
		t.Fatalf("snapshot after restore: got %x, want %x", got, snap)
	}
	cut := rapid.IntRange(0, len(snap)-1).Draw(t, "cut")
	if err := r.Restore(snap[:cut]); err == nil {
		t.Fatalf("Restore of %d of %d snapshot bytes: got nil error, want one", cut, len(snap))
	}
	if got, want := r.Hash(), h.m.Hash(); got != want {
		t.Fatalf("hash after failed restore: got %#x, want %#x", got, want)
	}
	h.m = r
}

// rebuild carries on with a machine rebuilt through Load, in a random order,
// from what Ascend reports: the order must not show in the hash.
func (h *harness) rebuild(t *rapid.T) {
	var kvs []kv.KeyValue
	h.m.Ascend(func(key []byte, r kv.Record) bool {
		kvs = append(kvs, kv.KeyValue{Key: key, Record: r})
		return true
	})
	r := kv.New()
	for _, x := range rapid.Permutation(kvs).Draw(t, "order") {
		// Load must copy: scribbling over its arguments must not reach r.
		key, rec := bytes.Clone(x.Key), x.Record
		rec.Value = bytes.Clone(rec.Value)
		r.Load(key, rec)
		scribble(key, rec.Value)
	}
	r.SetRevision(h.m.Revision())
	if got, want := r.Hash(), h.m.Hash(); got != want {
		t.Fatalf("hash after rebuild: got %#x, want %#x", got, want)
	}
	if got, want := r.Snapshot(), h.m.Snapshot(); !bytes.Equal(got, want) {
		t.Fatalf("snapshot after rebuild: got %x, want %x", got, want)
	}
	h.m = r
}

func (h *harness) check(t *rapid.T) {
	if got, want := h.m.Len(), len(h.md.recs); got != want {
		t.Fatalf("Len: got %d, want %d", got, want)
	}
	if got, want := h.m.Revision(), h.md.rev; got != want {
		t.Fatalf("Revision: got %d, want %d", got, want)
	}
	var got []kv.Change
	h.m.Ascend(func(key []byte, r kv.Record) bool {
		got = append(got, kv.Change{Key: key, Record: r})
		return true
	})
	var want []kv.Change
	for _, k := range h.md.sortedKeys() {
		want = append(want, kv.Change{Key: []byte(k), Record: h.md.recs[k]})
	}
	if !equalChanges(got, want) {
		t.Fatalf("Ascend: got %+v, want %+v", got, want)
	}
	h.checkHash(t)
}

// checkHash checks that Hash depends on the state alone: a machine loaded
// straight from the model agrees with it, and no two different states seen so
// far share a hash.
func (h *harness) checkHash(t *rapid.T) {
	fromModel := kv.New()
	for _, k := range h.md.sortedKeys() {
		fromModel.Load([]byte(k), h.md.recs[k])
	}
	fromModel.SetRevision(h.md.rev)
	hash := h.m.Hash()
	if got := fromModel.Hash(); got != hash {
		t.Fatalf("hash of the model's state: got %#x, want %#x", got, hash)
	}
	snap := string(h.m.Snapshot())
	if prev, ok := h.seen[hash]; ok && prev != snap {
		t.Fatalf("hash %#x shared by different states %x and %x", hash, prev, snap)
	}
	h.seen[hash] = snap
}

func scribbleTxn(t kv.Txn) {
	for _, c := range t.Compares {
		scribble(c.Key, c.Value)
	}
	for _, ops := range [][]kv.Op{t.Then, t.Else} {
		for _, op := range ops {
			scribble(op.Key, op.Value, op.End)
		}
	}
}

func scribbleResponse(r kv.Response) {
	for _, res := range r.Results {
		for _, rec := range res.Records {
			scribble(rec.Key, rec.Value)
		}
	}
}

func scribble(bufs ...[]byte) {
	for _, b := range bufs {
		for i := range b {
			b[i] = '#'
		}
	}
}
