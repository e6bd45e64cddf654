package disk

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/aspen-db/aspen/core/storage"
)

// model is the reference the disk is checked against: the durable state as of
// the last Sync (or crash), the batches applied since, and the bit flips not yet
// repaired or overwritten (key -> value before the flip).
type model struct {
	durable map[string][]byte
	pending [][]storage.Op
	corrupt map[string][]byte
}

func newModel() *model {
	return &model{durable: map[string][]byte{}, corrupt: map[string][]byte{}}
}

func applyOps(state map[string][]byte, ops []storage.Op) {
	for _, op := range ops {
		if op.Delete {
			delete(state, string(op.Key))
		} else {
			state[string(op.Key)] = op.Value
		}
	}
}

// withBatches returns durable plus the first n pending batches.
func (m *model) withBatches(n int) map[string][]byte {
	out := make(map[string][]byte, len(m.durable))
	for k, v := range m.durable {
		out[k] = v
	}
	for _, ops := range m.pending[:n] {
		applyOps(out, ops)
	}
	return out
}

func (m *model) view() map[string][]byte { return m.withBatches(len(m.pending)) }

// forgetCorrupt drops flips in keys the batches overwrote durably.
func (m *model) forgetCorrupt(batches [][]storage.Op) {
	for _, ops := range batches {
		for _, op := range ops {
			delete(m.corrupt, string(op.Key))
		}
	}
}

type kv struct{ k, v string }

func sortedKVs(state map[string][]byte, prefix string) []kv {
	var out []kv
	for k, v := range state {
		if strings.HasPrefix(k, prefix) {
			out = append(out, kv{k, string(v)})
		}
	}
	slices.SortFunc(out, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	return out
}

// modelHash is Hash's documented encoding, computed independently.
func modelHash(state map[string][]byte) [32]byte {
	var buf []byte
	for _, e := range sortedKVs(state, "") {
		buf = binary.AppendUvarint(buf, uint64(len(e.k)))
		buf = append(buf, e.k...)
		buf = binary.AppendUvarint(buf, uint64(len(e.v)))
		buf = append(buf, e.v...)
	}
	return sha256.Sum256(buf)
}

// takenView is a View or DurableView and what it held when taken.
type takenView struct {
	name string
	r    storage.Reader
	want []kv
}

func scanAll(t interface{ Fatalf(string, ...any) }, d storage.Reader, prefix string) []kv {
	var out []kv
	if err := d.Scan([]byte(prefix), func(k, v []byte) error {
		out = append(out, kv{string(k), string(v)})
		return nil
	}); err != nil {
		t.Fatalf("Scan(%q): %v", prefix, err)
	}
	return out
}

var (
	testKeys     = []string{"", "a", "aa", "ab", "b", "ba", "bb", "c"}
	testPrefixes = []string{"", "a", "ab", "b", "c", "z", "aab"}
	keyGen       = rapid.SampledFrom(testKeys)
	probGen      = rapid.OneOf(rapid.SampledFrom([]float64{0, 1, 0.5}), rapid.Float64Range(0, 1))
)

// drawBatch draws a batch whose put values are sealed records, so any bit flip
// is detectable by storage.Open.
func drawBatch(t *rapid.T) storage.Batch {
	var b storage.Batch
	n := rapid.IntRange(0, 4).Draw(t, "nops")
	for range n {
		k := []byte(keyGen.Draw(t, "key"))
		if rapid.IntRange(0, 3).Draw(t, "kind") == 0 {
			b.Delete(k)
		} else {
			b.Put(k, rapid.SliceOfN(rapid.Byte(), 0, 8).Draw(t, "value"))
		}
	}
	return b
}

func copyOps(ops []storage.Op) []storage.Op {
	out := make([]storage.Op, len(ops))
	for i, op := range ops {
		out[i] = storage.Op{Key: slices.Clone(op.Key), Value: slices.Clone(op.Value), Delete: op.Delete}
	}
	return out
}

// scribble overwrites every byte of the batch, as a caller reusing buffers might.
func scribble(b storage.Batch) {
	for _, op := range b.Ops {
		for i := range op.Key {
			op.Key[i] = 0xEE
		}
		for i := range op.Value {
			op.Value[i] = 0xEE
		}
	}
}

func oneBitApart(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	bits := 0
	for i := range a {
		x := a[i] ^ b[i]
		for ; x != 0; x &= x - 1 {
			bits++
		}
	}
	return bits == 1
}

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

func TestDiskMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		d := New()
		m := newModel()
		var views []takenView
		t.Repeat(map[string]func(*rapid.T){
			"view": func(t *rapid.T) {
				views = append(views,
					takenView{"view", d.View(), sortedKVs(m.view(), "")},
					takenView{"durable view", d.DurableView(), sortedKVs(m.durable, "")})
			},
			"apply": func(t *rapid.T) {
				b := drawBatch(t)
				ops := copyOps(b.Ops)
				if err := d.Apply(b); err != nil {
					t.Fatalf("Apply: %v", err)
				}
				scribble(b) // Apply must have copied its input
				m.pending = append(m.pending, ops)
			},
			"sync": func(t *rapid.T) {
				if err := d.Sync(); err != nil {
					t.Fatalf("Sync: %v", err)
				}
				m.forgetCorrupt(m.pending)
				m.durable = m.view()
				m.pending = nil
			},
			"crash": func(t *rapid.T) {
				f := Faults{
					KeepUnsyncedProb: probGen.Draw(t, "keep"),
					TornProb:         probGen.Draw(t, "torn"),
					BitFlipProb:      rapid.SampledFrom([]float64{0, 0, 1, 0.3}).Draw(t, "flip"),
				}
				rep := d.Crash(newRNG(rapid.Uint64().Draw(t, "seed")), f)
				if rep.UnsyncedBatches != len(m.pending) {
					t.Fatalf("UnsyncedBatches = %d, want %d", rep.UnsyncedBatches, len(m.pending))
				}
				if rep.KeptBatches < 0 || rep.KeptBatches > rep.UnsyncedBatches {
					t.Fatalf("KeptBatches = %d of %d", rep.KeptBatches, rep.UnsyncedBatches)
				}
				if f.KeepUnsyncedProb == 1 && (rep.KeptBatches != rep.UnsyncedBatches || rep.Torn) {
					t.Fatalf("keep=1 but report %+v", rep)
				}
				if f.KeepUnsyncedProb == 0 && rep.KeptBatches != 0 {
					t.Fatalf("keep=0 but report %+v", rep)
				}
				if rep.Torn && (f.TornProb == 0 || rep.KeptBatches == rep.UnsyncedBatches) {
					t.Fatalf("impossible tear: %+v with %+v", rep, f)
				}
				if f.TornProb == 1 && rep.KeptBatches < rep.UnsyncedBatches && !rep.Torn {
					t.Fatalf("torn=1 but report %+v", rep)
				}
				want := m.withBatches(rep.KeptBatches)
				m.forgetCorrupt(m.pending[:rep.KeptBatches])
				m.pending = nil
				if rep.FlippedKey == nil {
					if f.BitFlipProb == 1 && len(want) > len(m.corrupt) { // test values are sealed, so non-empty
						t.Fatalf("BitFlipProb=1 but nothing flipped in %d records, %d corrupt", len(want), len(m.corrupt))
					}
				} else {
					if f.BitFlipProb == 0 {
						t.Fatalf("flipped %q with BitFlipProb 0", rep.FlippedKey)
					}
					k := string(rep.FlippedKey)
					orig, ok := want[k]
					if !ok {
						t.Fatalf("flipped key %q is not in the recovered state", k)
					}
					got, ok, _ := d.Get(rep.FlippedKey)
					if !ok || !oneBitApart(orig, got) {
						t.Fatalf("key %q: %x after flip, %x before; want one bit apart", k, got, orig)
					}
					if _, err := storage.Open(rep.FlippedKey, got); !errors.Is(err, storage.ErrCorrupt) {
						t.Fatalf("storage.Open of flipped %q: %v, want ErrCorrupt", k, err)
					}
					if _, seen := m.corrupt[k]; seen {
						t.Fatalf("flipped %q again before it was repaired", k)
					}
					m.corrupt[k] = orig
					want[k] = got
				}
				m.durable = want
			},
			"repair": func(t *rapid.T) {
				d.Repair()
				for k, orig := range m.corrupt {
					m.durable[k] = orig
				}
				clear(m.corrupt)
			},
			"get": func(t *rapid.T) {
				k := keyGen.Draw(t, "key")
				got, ok, err := d.Get([]byte(k))
				want, wantOK := m.view()[k]
				if err != nil || ok != wantOK || !bytes.Equal(got, want) {
					t.Fatalf("Get(%q) = %x, %v, %v; want %x, %v", k, got, ok, err, want, wantOK)
				}
				if ok {
					scribble(storage.Batch{Ops: []storage.Op{{Value: got}}}) // must be a copy
				}
			},
			"scan": func(t *rapid.T) {
				prefix := rapid.SampledFrom(testPrefixes).Draw(t, "prefix")
				limit := rapid.IntRange(1, 10).Draw(t, "limit")
				stop := errors.New("stop")
				var got []kv
				err := d.Scan([]byte(prefix), func(k, v []byte) error {
					got = append(got, kv{string(k), string(v)})
					for i := range k { // must be copies
						k[i] = 0xEE
					}
					for i := range v {
						v[i] = 0xEE
					}
					if len(got) == limit {
						return stop
					}
					return nil
				})
				want := sortedKVs(m.view(), prefix)
				if len(want) >= limit {
					want = want[:limit]
					if err != stop {
						t.Fatalf("Scan(%q) returned %v, want the callback's error", prefix, err)
					}
				} else if err != nil {
					t.Fatalf("Scan(%q): %v", prefix, err)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("Scan(%q) = %q, want %q", prefix, got, want)
				}
			},
			"": func(t *rapid.T) {
				if got, want := scanAll(t, d, ""), sortedKVs(m.view(), ""); !slices.Equal(got, want) {
					t.Fatalf("disk holds %q, want %q", got, want)
				}
				for i, v := range views { // later writes, syncs and crashes never show through
					if got := scanAll(t, v.r, ""); !slices.Equal(got, v.want) {
						t.Fatalf("%s %d holds %q, want %q", v.name, i, got, v.want)
					}
				}
				if d.Hash() != modelHash(m.durable) {
					t.Fatalf("Hash differs from the model's durable state %q", sortedKVs(m.durable, ""))
				}
				// The log must hold exactly the pending batches.
				frames, valid, stop := decodeLog(d.log())
				if stop != nil || valid != len(d.wal) || len(frames) != len(m.pending) || d.UnsyncedBatches() != len(m.pending) {
					t.Fatalf("log: %d frames, %d of %d bytes valid (%v), %d pending", len(frames), valid, len(d.wal), stop, len(m.pending))
				}
				for i, ops := range frames {
					if !sameOps(ops, m.pending[i]) {
						t.Fatalf("frame %d decodes to %v, want %v", i, ops, m.pending[i])
					}
				}
				size := 0
				for k, v := range m.durable {
					size += len(k) + len(v)
				}
				if d.Bytes() != size+len(d.wal) {
					t.Fatalf("Bytes() = %d, want %d", d.Bytes(), size+len(d.wal))
				}
			},
		})
	})
}

func sameOps(rs []record, ops []storage.Op) bool {
	if len(rs) != len(ops) {
		return false
	}
	for i, r := range rs {
		op := ops[i]
		if r.del != op.Delete || !bytes.Equal(r.key, op.Key) || (!r.del && !bytes.Equal(r.value, op.Value)) {
			return false
		}
	}
	return true
}

func sealedBatch(kvs ...string) storage.Batch {
	var b storage.Batch
	for i := 0; i < len(kvs); i += 2 {
		b.Put([]byte(kvs[i]), []byte(kvs[i+1]))
	}
	return b
}

func mustGet(t *testing.T, d *Disk, key string) []byte {
	t.Helper()
	v, ok, err := d.Get([]byte(key))
	if err != nil || !ok {
		t.Fatalf("Get(%q) = %v, %v", key, ok, err)
	}
	return v
}

func mustApplySync(t *testing.T, d *Disk, b storage.Batch) {
	t.Helper()
	if err := d.Apply(b); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

func TestBitFlipDetectedAndRepaired(t *testing.T) {
	d := New()
	mustApplySync(t, d, sealedBatch("a", "apple", "b", "banana", "c", "cherry"))
	before := map[string][]byte{"a": mustGet(t, d, "a"), "b": mustGet(t, d, "b"), "c": mustGet(t, d, "c")}
	hash := d.Hash()

	rep := d.Crash(newRNG(1), Faults{BitFlipProb: 1})
	if rep.FlippedKey == nil {
		t.Fatal("BitFlipProb=1 flipped nothing")
	}
	k := string(rep.FlippedKey)
	got := mustGet(t, d, k)
	if bytes.Equal(got, before[k]) || !oneBitApart(got, before[k]) {
		t.Fatalf("%q: %x, was %x; want one bit flipped", k, got, before[k])
	}
	if _, err := storage.Open(rep.FlippedKey, got); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("Open of flipped record: %v, want ErrCorrupt", err)
	}
	if d.Hash() == hash {
		t.Fatal("Hash unchanged by a bit flip")
	}
	for other, v := range before {
		if other != k && !bytes.Equal(mustGet(t, d, other), v) {
			t.Fatalf("%q changed too", other)
		}
	}

	d.Repair()
	got = mustGet(t, d, k)
	if !bytes.Equal(got, before[k]) {
		t.Fatalf("after Repair %q = %x, want %x", k, got, before[k])
	}
	if _, err := storage.Open(rep.FlippedKey, got); err != nil {
		t.Fatalf("Open after Repair: %v", err)
	}
	if d.Hash() != hash {
		t.Fatal("Hash not restored by Repair")
	}
	// Repaired for good: it survives another crash.
	d.Crash(newRNG(2), Faults{})
	if !bytes.Equal(mustGet(t, d, k), before[k]) {
		t.Fatal("repair lost at the next crash")
	}
}

func TestRepairRespectsLaterWrites(t *testing.T) {
	d := New()
	mustApplySync(t, d, sealedBatch("k", "original"))
	orig := mustGet(t, d, "k")
	if rep := d.Crash(newRNG(3), Faults{BitFlipProb: 1}); string(rep.FlippedKey) != "k" {
		t.Fatalf("flipped %q", rep.FlippedKey)
	}

	// An unsynced overwrite: Repair leaves the view alone but fixes the platter.
	if err := d.Apply(sealedBatch("k", "newer")); err != nil {
		t.Fatal(err)
	}
	newer := mustGet(t, d, "k")
	d.Repair()
	if !bytes.Equal(mustGet(t, d, "k"), newer) {
		t.Fatal("Repair clobbered an unsynced overwrite")
	}
	d.Crash(newRNG(4), Faults{}) // the overwrite is lost
	if !bytes.Equal(mustGet(t, d, "k"), orig) {
		t.Fatal("the durable copy was not repaired")
	}

	// A synced overwrite ends the flip: Repair must not resurrect the original.
	d.Crash(newRNG(5), Faults{BitFlipProb: 1})
	mustApplySync(t, d, sealedBatch("k", "synced"))
	synced := mustGet(t, d, "k")
	d.Repair()
	if !bytes.Equal(mustGet(t, d, "k"), synced) {
		t.Fatal("Repair resurrected a value overwritten durably")
	}
}

func TestSyncIsNoopLosesData(t *testing.T) {
	d := New()
	mustApplySync(t, d, sealedBatch("durable", "1"))
	d.SyncIsNoop = true
	mustApplySync(t, d, sealedBatch("lied", "2"))
	mustApplySync(t, d, sealedBatch("durable", "3"))
	if got := mustGet(t, d, "lied"); len(got) == 0 {
		t.Fatal("applied data not readable before the crash")
	}
	rep := d.Crash(newRNG(6), Faults{KeepUnsyncedProb: 0})
	if rep.UnsyncedBatches != 2 || rep.KeptBatches != 0 {
		t.Fatalf("report %+v, want 2 unsynced, 0 kept", rep)
	}
	if _, ok, _ := d.Get([]byte("lied")); ok {
		t.Fatal("data synced on a lying disk survived the crash")
	}
	if v, _ := storage.Open([]byte("durable"), mustGet(t, d, "durable")); string(v) != "1" {
		t.Fatalf("durable = %q, want the value synced before the disk started lying", v)
	}
}

func TestSyncIsNoopModel(t *testing.T) {
	// With a lying disk, a crash keeping nothing returns the disk to its state
	// when it started lying, whatever was synced since.
	rapid.Check(t, func(t *rapid.T) {
		d := New()
		for range rapid.IntRange(0, 3).Draw(t, "honest") {
			if err := d.Apply(drawBatch(t)); err != nil {
				t.Fatal(err)
			}
			if err := d.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		hash := d.Hash()
		var before []kv
		_ = d.Scan(nil, func(k, v []byte) error { before = append(before, kv{string(k), string(v)}); return nil })
		d.SyncIsNoop = true
		n := rapid.IntRange(1, 5).Draw(t, "lies")
		for range n {
			if err := d.Apply(drawBatch(t)); err != nil {
				t.Fatal(err)
			}
			if err := d.Sync(); err != nil {
				t.Fatalf("lying Sync returned %v", err)
			}
		}
		rep := d.Crash(newRNG(rapid.Uint64().Draw(t, "seed")), Faults{TornProb: probGen.Draw(t, "torn")})
		if rep.UnsyncedBatches != n || rep.KeptBatches != 0 {
			t.Fatalf("report %+v, want %d unsynced, 0 kept", rep, n)
		}
		var after []kv
		_ = d.Scan(nil, func(k, v []byte) error { after = append(after, kv{string(k), string(v)}); return nil })
		if d.Hash() != hash || !slices.Equal(before, after) {
			t.Fatalf("after crash %q, want %q", after, before)
		}
	})
}

func TestCrashDeterministic(t *testing.T) {
	run := func() ([]CrashReport, [32]byte) {
		d := New()
		rng := newRNG(42)
		var reps []CrashReport
		for i := range 200 {
			b := sealedBatch(fmt.Sprintf("k%03d", i%17), fmt.Sprint(i), fmt.Sprintf("j%d", i%5), "x")
			if err := d.Apply(b); err != nil {
				t.Fatal(err)
			}
			switch i % 7 {
			case 3:
				if err := d.Sync(); err != nil {
					t.Fatal(err)
				}
			case 6:
				reps = append(reps, d.Crash(rng, Faults{KeepUnsyncedProb: 0.5, TornProb: 0.5, BitFlipProb: 0.3}))
			}
		}
		return reps, d.Hash()
	}
	r1, h1 := run()
	r2, h2 := run()
	if h1 != h2 || fmt.Sprint(r1) != fmt.Sprint(r2) {
		t.Fatal("same seed, same schedule, different outcome")
	}
}

func TestEmptyValuesAndKeys(t *testing.T) {
	d := New()
	mustApplySync(t, d, storage.Batch{Ops: []storage.Op{{Key: nil, Value: nil}, {Key: []byte("e"), Value: []byte{}}}})
	for _, k := range []string{"", "e"} {
		v, ok, err := d.Get([]byte(k))
		if !ok || err != nil || v == nil || len(v) != 0 {
			t.Fatalf("Get(%q) = %v, %v, %v; want empty non-nil value", k, v, ok, err)
		}
	}
	// Nothing to flip: every value is empty.
	if rep := d.Crash(newRNG(7), Faults{BitFlipProb: 1}); rep.FlippedKey != nil {
		t.Fatalf("flipped %q, whose value is empty", rep.FlippedKey)
	}
	if got := scanAll(t, d, ""); !slices.Equal(got, []kv{{"", ""}, {"e", ""}}) {
		t.Fatalf("Scan = %q", got)
	}
}

func TestScanLargeAndWhileWriting(t *testing.T) {
	d := New()
	var b storage.Batch
	for i := range 500 {
		b.Put([]byte(fmt.Sprintf("p%04d", i)), []byte{byte(i)})
		b.Put([]byte(fmt.Sprintf("q%04d", i)), []byte{byte(i)})
	}
	mustApplySync(t, d, b)
	var seen []string
	err := d.Scan([]byte("p"), func(k, v []byte) error {
		seen = append(seen, string(k))
		// Writing during a scan must neither panic nor break the order.
		var w storage.Batch
		w.Delete(k)
		w.Put(append(k, 'x'), v)
		return d.Apply(w)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(seen) || len(seen) < 500 {
		t.Fatalf("visited %d keys, sorted=%v", len(seen), slices.IsSorted(seen))
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] == seen[i-1] {
			t.Fatalf("visited %q twice", seen[i])
		}
	}
}

// frameBytes builds a frame around an arbitrary payload with a valid checksum.
func frameBytes(payload []byte) []byte {
	out := make([]byte, headerSize, headerSize+len(payload))
	binary.BigEndian.PutUint32(out, uint32(len(payload)))
	binary.BigEndian.PutUint32(out[4:], crc32Castagnoli(payload))
	return append(out, payload...)
}

func crc32Castagnoli(p []byte) uint32 {
	// Reuse storage.Seal's checksum so the test does not share code with wal.go.
	return binary.BigEndian.Uint32(storage.Seal(p))
}

func mustFrame(t *testing.T, ops ...storage.Op) []byte {
	t.Helper()
	f, err := appendFrame(nil, ops)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestDecodeLogTable(t *testing.T) {
	put := func(k, v string) storage.Op { return storage.Op{Key: []byte(k), Value: []byte(v)} }
	del := func(k string) storage.Op { return storage.Op{Key: []byte(k), Delete: true} }
	f1 := mustFrame(t, put("a", "1"), del("b"))
	f2 := mustFrame(t)
	f3 := mustFrame(t, put("ccc", "three"))
	good := slices.Concat(f1, f2, f3)
	badCRC := slices.Clone(f1)
	badCRC[5] ^= 0x01
	badBody := slices.Clone(f1)
	badBody[len(badBody)-1] ^= 0x80
	huge := slices.Clone(f1)
	binary.BigEndian.PutUint32(huge, 0xFFFFFFFF)
	shorter := slices.Clone(f1)
	binary.BigEndian.PutUint32(shorter, binary.BigEndian.Uint32(shorter)-1)

	tests := []struct {
		name      string
		buf       []byte
		frames    int
		valid     int
		stop      error
		anyReason bool // garbage: any rejection will do
	}{
		{name: "empty", buf: nil},
		{name: "whole log", buf: good, frames: 3, valid: len(good)},
		{name: "one header byte", buf: good[:1], stop: errShortHeader},
		{name: "header only", buf: good[:headerSize], stop: errShortFrame},
		{name: "first frame minus one", buf: good[:len(f1)-1], stop: errShortFrame},
		{name: "second header cut", buf: good[:len(f1)+3], frames: 1, valid: len(f1), stop: errShortHeader},
		{name: "last frame cut", buf: good[:len(good)-2], frames: 2, valid: len(f1) + len(f2), stop: errShortFrame},
		{name: "zero length", buf: make([]byte, 16), stop: errEmptyFrame},
		{name: "huge length", buf: huge, stop: errShortFrame},
		{name: "length one short", buf: shorter, stop: errChecksum},
		{name: "bad crc", buf: badCRC, stop: errChecksum},
		{name: "bad body", buf: slices.Concat(f2, badBody, f3), frames: 1, valid: len(f2), stop: errChecksum},
		{name: "trailing garbage", buf: slices.Concat(good, []byte{0xde, 0xad, 0xbe, 0xef}), frames: 3, valid: len(good), stop: errShortHeader},
		{name: "trailing zeros", buf: slices.Concat(f1, make([]byte, 64)), frames: 1, valid: len(f1), stop: errEmptyFrame},
		{name: "garbage", buf: []byte("this is not a write-ahead log at all"), anyReason: true},
		{name: "all ones", buf: bytes.Repeat([]byte{0xFF}, 40), stop: errShortFrame},
		// Checksums valid, payloads malformed.
		{name: "too many ops", buf: frameBytes([]byte{0x05, opPut, 0}), stop: errPayload},
		{name: "bad kind", buf: frameBytes([]byte{0x01, 7, 0}), stop: errPayload},
		{name: "key past end", buf: frameBytes([]byte{0x01, opDelete, 5, 'a'}), stop: errPayload},
		{name: "value past end", buf: frameBytes([]byte{0x01, opPut, 1, 'a', 9, 'b'}), stop: errPayload},
		{name: "ops run out", buf: frameBytes([]byte{0x02, opDelete, 3, 'a', 'b', 'c'}), stop: errPayload},
		{name: "extra op", buf: frameBytes([]byte{0x01, opPut, 1, 'a', 0, opPut}), stop: errPayload},
		{name: "trailing payload", buf: frameBytes([]byte{0x00, 0x00}), stop: errPayload},
		{name: "op count missing", buf: frameBytes([]byte{0x80}), stop: errPayload},
		{name: "overlong varint", buf: frameBytes([]byte{0x80, 0x00}), stop: errPayload},
		{name: "varint overflow", buf: frameBytes(bytes.Repeat([]byte{0xFF}, 11)), stop: errPayload},
		{name: "malformed after good", buf: slices.Concat(f3, frameBytes([]byte{0x02})), frames: 1, valid: len(f3), stop: errPayload},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			frames, valid, stop := decodeLog(tc.buf)
			if len(frames) != tc.frames || valid != tc.valid {
				t.Fatalf("decoded %d frames, %d bytes; want %d, %d", len(frames), valid, tc.frames, tc.valid)
			}
			if tc.anyReason {
				if stop == nil {
					t.Fatal("garbage accepted")
				}
			} else if stop != tc.stop {
				t.Fatalf("stop = %v, want %v", stop, tc.stop)
			}
		})
	}
}

func TestDecodeEveryTruncationAndBitFlip(t *testing.T) {
	var log []byte
	var ends []int
	for i := range 4 {
		var err error
		log, err = appendFrame(log, sealedBatch(fmt.Sprint("key", i), strings.Repeat("v", i*3), "z", "").Ops)
		if err != nil {
			t.Fatal(err)
		}
		ends = append(ends, len(log))
	}
	whole := func(n int) int { // frames wholly inside log[:n]
		c := 0
		for c < len(ends) && ends[c] <= n {
			c++
		}
		return c
	}
	for n := 0; n <= len(log); n++ {
		frames, valid, stop := decodeLog(log[:n])
		w := whole(n)
		if len(frames) != w || (w > 0 && valid != ends[w-1]) || (w == 0 && valid != 0) {
			t.Fatalf("prefix %d: %d frames, %d bytes", n, len(frames), valid)
		}
		if (stop == nil) != (n == valid) {
			t.Fatalf("prefix %d: stop %v with %d of %d bytes", n, stop, valid, n)
		}
	}
	for bit := range 8 * len(log) {
		bad := slices.Clone(log)
		bad[bit/8] ^= 1 << (bit % 8)
		frames, valid, stop := decodeLog(bad)
		hit := whole(bit / 8) // index of the frame holding the bit
		if len(frames) != hit || stop == nil {
			t.Fatalf("bit %d (frame %d): recovered %d frames (%d bytes), stop %v", bit, hit, len(frames), valid, stop)
		}
	}
}

func TestDecodeNeverPanics(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var buf []byte
		for range rapid.IntRange(0, 3).Draw(t, "frames") {
			var err error
			if buf, err = appendFrame(buf, drawBatch(t).Ops); err != nil {
				t.Fatal(err)
			}
		}
		switch rapid.IntRange(0, 2).Draw(t, "damage") {
		case 0:
			buf = append(buf, rapid.SliceOf(rapid.Byte()).Draw(t, "garbage")...)
		case 1:
			if len(buf) > 0 {
				buf = buf[:rapid.IntRange(0, len(buf)-1).Draw(t, "cut")]
			}
		case 2:
			buf = rapid.SliceOf(rapid.Byte()).Draw(t, "random")
		}
		checkDecode(t, buf)
	})
}

// checkDecode checks decodeLog's contract on arbitrary bytes: it stops at a
// frame boundary, and what it accepts re-encodes to exactly the bytes accepted.
func checkDecode(t interface{ Fatalf(string, ...any) }, buf []byte) {
	frames, valid, stop := decodeLog(buf)
	if valid < 0 || valid > len(buf) || (stop == nil) != (valid == len(buf)) {
		t.Fatalf("valid %d of %d bytes, stop %v", valid, len(buf), stop)
	}
	var re []byte
	for _, rs := range frames {
		ops := make([]storage.Op, len(rs))
		for i, r := range rs {
			ops[i] = storage.Op{Key: r.key, Value: r.value, Delete: r.del}
		}
		var err error
		if re, err = appendFrame(re, ops); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
	}
	if !bytes.Equal(re, buf[:valid]) {
		t.Fatalf("accepted bytes do not round-trip")
	}
}

func FuzzDecodeLog(f *testing.F) {
	f1, _ := appendFrame(nil, sealedBatch("a", "1", "b", "2").Ops)
	f.Add(f1)
	f.Add(f1[:len(f1)-3])
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 2, 0, 0, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, buf []byte) { checkDecode(t, buf) })
}

func BenchmarkApplySync5(b *testing.B) {
	d := New()
	keys := make([][]byte, 1000)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("log/%08d", i))
	}
	value := storage.Seal(bytes.Repeat([]byte("v"), 100))
	batch := storage.Batch{Ops: make([]storage.Op, 5)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		for j := range batch.Ops {
			batch.Ops[j] = storage.Op{Key: keys[(i*5+j)%len(keys)], Value: value}
		}
		if err := d.Apply(batch); err != nil {
			b.Fatal(err)
		}
		if err := d.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	d := New()
	var batch storage.Batch
	for i := range 1000 {
		batch.Put([]byte(fmt.Sprintf("log/%08d", i)), bytes.Repeat([]byte("v"), 100))
	}
	if err := d.Apply(batch); err != nil {
		b.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		b.Fatal(err)
	}
	key := []byte("log/00000500")
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, ok, _ := d.Get(key); !ok {
			b.Fatal("missing")
		}
	}
}
