package audit

import (
	"slices"
	"strings"
	"testing"

	"github.com/aspen-db/aspen/core/module"
	"github.com/aspen-db/aspen/core/storage"
)

// appendN appends n exec records to m at times 1..n and returns the batch.
func appendN(t *testing.T, m *Module, n int) *storage.Batch {
	t.Helper()
	b := &storage.Batch{}
	for i := 0; i < n; i++ {
		cmd := Append(Exec{TokenID: "t1", Subject: "ops", Worker: "w1", Argv: []string{"/bin/echo", "hi"}, Dir: "/tmp", Exit: int64(i)})
		if a := m.Validate(cmd.Kind, cmd.Body); a.Outcome != module.OK {
			t.Fatalf("validate: %v", a.Detail)
		}
		m.Apply(&module.Env{Index: uint64(i + 1), NowNs: int64(i + 1), Batch: b}, cmd.Kind, cmd.Body)
	}
	return b
}

func chain(t *testing.T, n int) ([]Record, Head) {
	t.Helper()
	m := NewModule(DefaultLimits())
	appendN(t, m, n)
	return m.records, m.head
}

func TestVerifyDetectsTampering(t *testing.T) {
	recs, head := chain(t, 5)
	if err := Verify(recs, head); err != nil {
		t.Fatalf("untouched chain: got %v, want it to verify", err)
	}
	cases := []struct {
		name string
		edit func([]Record) ([]Record, Head)
		want string
	}{
		{"modified argv", func(r []Record) ([]Record, Head) { r[2].Exec.Argv[1] = "bye"; return r, head }, "record 3 was modified"},
		{"modified exit", func(r []Record) ([]Record, Head) { r[1].Exec.Exit = 99; return r, head }, "record 2 was modified"},
		{"modified and rehashed", func(r []Record) ([]Record, Head) {
			r[1].Exec.Exit = 99
			r[1].Hash = r[1].ComputeHash()
			return r, head
		}, "record 3 does not chain"},
		{"removed middle", func(r []Record) ([]Record, Head) { return append(r[:2:2], r[3:]...), head }, "record 4 follows record 2"},
		{"removed first", func(r []Record) ([]Record, Head) { return r[1:], head }, "records before 2 are gone"},
		{"removed last", func(r []Record) ([]Record, Head) { return r[:4], head }, "the chain ends at record 4"},
		{"swapped", func(r []Record) ([]Record, Head) { r[1], r[2] = r[2], r[1]; return r, head }, "follows"},
		{"swapped and renumbered", func(r []Record) ([]Record, Head) {
			r[1], r[2] = r[2], r[1]
			r[1].Seq, r[2].Seq = 2, 3
			return r, head
		}, "was modified"},
	}
	for _, tc := range cases {
		recs, _ := chain(t, 5)
		got, h := tc.edit(recs)
		err := Verify(got, h)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

// A full log prunes its oldest records behind a checkpoint record, and what
// is left still verifies; without the checkpoint it does not.
func TestPruneKeepsChainVerifiable(t *testing.T) {
	m := NewModule(Limits{RecordsMax: 10, PruneBatch: 4})
	appendN(t, m, 30)
	if len(m.records) > 10 {
		t.Fatalf("got %d records, want at most 10", len(m.records))
	}
	if err := Verify(m.records, m.head); err != nil {
		t.Fatalf("pruned chain: got %v, want it to verify", err)
	}
	var kept []Record
	for _, r := range m.records {
		if r.Kind != KindCheckpoint {
			kept = append(kept, r)
		}
	}
	if err := Verify(kept, Head{}); err == nil {
		t.Fatal("pruned chain without its checkpoints: verified, want refused")
	}
}

// The log survives its own encodings: records on disk, and a snapshot.
func TestLoadAndRestore(t *testing.T) {
	m := NewModule(Limits{RecordsMax: 10, PruneBatch: 4})
	appendN(t, m, 13)
	disk := memDisk{}
	p := &storage.Batch{}
	m.Persist(p)
	disk.apply(p)
	loaded := NewModule(DefaultLimits())
	if err := loaded.Load(disk); err != nil {
		t.Fatalf("load: %v", err)
	}
	restored := NewModule(DefaultLimits())
	if err := restored.Restore(m.Freeze().Encode()); err != nil {
		t.Fatalf("restore: %v", err)
	}
	for _, got := range []*Module{loaded, restored} {
		if got.Hash() != m.Hash() || len(got.records) != len(m.records) || Verify(got.records, got.head) != nil {
			t.Fatalf("got %d records, hash %x; want %d, %x, verifying", len(got.records), got.Hash(), len(m.records), m.Hash())
		}
	}
}

type memDisk map[string][]byte

func (d memDisk) apply(b *storage.Batch) {
	for _, op := range b.Ops {
		if op.Delete {
			delete(d, string(op.Key))
		} else {
			d[string(op.Key)] = op.Value
		}
	}
}

func (d memDisk) Get(key []byte) ([]byte, bool, error) { v, ok := d[string(key)]; return v, ok, nil }

func (d memDisk) Scan(prefix []byte, fn func(key, value []byte) error) error {
	var keys []string
	for k := range d {
		if strings.HasPrefix(k, string(prefix)) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := fn([]byte(k), d[k]); err != nil {
			return err
		}
	}
	return nil
}

func TestValidateRefuses(t *testing.T) {
	m := NewModule(DefaultLimits())
	for _, e := range []Exec{{}, {Argv: []string{"x"}, OutputSHA: []byte{1, 2}}, {Argv: make([]string, argvMax+1)}} {
		cmd := Append(e)
		if a := m.Validate(cmd.Kind, cmd.Body); a.Outcome == module.OK {
			t.Errorf("validate %+v: got ok, want refused", e)
		}
	}
}
