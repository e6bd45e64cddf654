package diskstore

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/aspen-db/aspen/core/storage"
)

// Keys are short strings over a small alphabet, so batches collide and prefix
// scans select something.
// Keys starting "l/" live in the write-ahead log alone.
var keyGen = rapid.StringOfN(rapid.RuneFrom([]rune("abl/")), 1, 3, -1)

// drawBatch draws a batch; a big one does not fit one Badger transaction.
func drawBatch(t *rapid.T, big bool) storage.Batch {
	n := rapid.IntRange(0, 8).Draw(t, "ops")
	if big {
		n = rapid.IntRange(400, 600).Draw(t, "bigOps")
	}
	var b storage.Batch
	for i := range n {
		var key string
		if big {
			key = fmt.Sprintf("%s%04d", keyGen.Draw(t, "keyPrefix"), i)
		} else {
			key = keyGen.Draw(t, "key")
		}
		if rapid.IntRange(0, 3).Draw(t, "kind") == 0 {
			b.Ops = append(b.Ops, del(key))
			continue
		}
		// Sizes straddle the 1 KiB threshold between inline and value-log values.
		size := rapid.SampledFrom([]int{0, 10, 256, 1500}).Draw(t, "valueBytes")
		b.Ops = append(b.Ops, put(key, strings.Repeat(string(rune('a'+i%26)), size)))
	}
	return b
}

// modelMachine compares a Store with a map through batches, syncs, reopens and
// crashes: a process's (every batch applied survives) or a power loss's that
// tears the last record when it was not synced (that batch is lost).
type modelMachine struct {
	t        *testing.T
	opts     Options
	s        *Store
	model    map[string]string
	before   map[string]string // the model before the last Apply
	unsynced bool              // the last Apply's record is not synced
}

func (m *modelMachine) applyTo(model map[string]string, b storage.Batch) {
	for _, op := range b.Ops {
		if op.Delete {
			delete(model, string(op.Key))
		} else {
			model[string(op.Key)] = string(op.Value)
		}
	}
}

func (m *modelMachine) Apply(t *rapid.T) {
	b := drawBatch(t, rapid.IntRange(0, 9).Draw(t, "big") == 0)
	if err := m.s.Apply(b); err != nil {
		t.Fatalf("Apply(%d ops): %v", len(b.Ops), err)
	}
	if !b.Empty() {
		m.before, m.unsynced = maps.Clone(m.model), true
	}
	m.applyTo(m.model, b)
}

func (m *modelMachine) Sync(t *rapid.T) {
	if err := m.s.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	m.unsynced = false
}

func (m *modelMachine) Reopen(t *rapid.T) {
	m.s = reopen(m.t, m.s, m.opts)
	m.unsynced = false
}

// Crash stops the store as a crash would: a process's keeps every record
// written; a power loss's may tear the last one if it was not synced.
func (m *modelMachine) Crash(t *rapid.T) {
	if m.unsynced && rapid.Bool().Draw(t, "tear") {
		tearLast(m.t, m.s)
		m.model = m.before
	}
	m.s = reopenAfter(m.t, m.s, m.opts)
	m.unsynced = false
}

func (m *modelMachine) Get(t *rapid.T) {
	key := keyGen.Draw(t, "key")
	got, ok, err := m.s.Get([]byte(key))
	m.unsynced = false // a read syncs what it reads
	want, wantOK := m.model[key]
	if err != nil || ok != wantOK || string(got) != want {
		t.Fatalf("Get(%q) = %q, %v, %v; want %q, %v, nil", key, trim(string(got)), ok, err, trim(want), wantOK)
	}
}

func (m *modelMachine) ScanPrefix(t *rapid.T) {
	prefix := rapid.StringOfN(rapid.RuneFrom([]rune("abc/")), 0, 2, -1).Draw(t, "prefix")
	want := maps.Clone(m.model)
	maps.DeleteFunc(want, func(k, _ string) bool { return !strings.HasPrefix(k, prefix) })
	m.unsynced = false // a read syncs what it reads
	if got := contents(m.t, m.s, prefix); !maps.Equal(got, want) {
		t.Fatalf("Scan(%q): %s", prefix, diff(got, want))
	}
}

func (m *modelMachine) Check(t *rapid.T) {
	if n := badgerLogKeys(m.t, m.s); n != 0 {
		t.Fatalf("Badger holds %d log keys, want 0", n)
	}
}

// modelChecks is this test's budget when -rapid.checks is not given: each
// check opens a real Badger and syncs to disk, about 150 ms, so rapid's default
// of 100 checks would take most of the package's time budget.
const modelChecks = 25

func TestStoreMatchesModel(t *testing.T) {
	limitChecks(t, modelChecks)
	root := t.TempDir()
	checks := 0
	rapid.Check(t, func(rt *rapid.T) {
		checks++
		dir := fmt.Sprintf("%s/%d", root, checks)
		defer os.RemoveAll(dir)
		opts := testOptions()
		m := &modelMachine{t: t, opts: opts, s: openStore(t, dir, opts), model: map[string]string{}}
		defer func() { m.s.Close() }() // m.s changes as the machine reopens it.
		actions := rapid.StateMachineActions(m)
		// Reopening costs tens of milliseconds; keep it a rarer step.
		reopen, crash := actions["Reopen"], actions["Crash"]
		actions["Reopen"] = func(t *rapid.T) {
			if rapid.IntRange(0, 3).Draw(t, "reopenNow") == 0 {
				reopen(t)
			}
		}
		actions["Crash"] = func(t *rapid.T) {
			if rapid.IntRange(0, 3).Draw(t, "crashNow") == 0 {
				crash(t)
			}
		}
		rt.Repeat(actions)
	})
}

// limitChecks sets -rapid.checks to n for the rest of t, unless it was given.
func limitChecks(t *testing.T, n int) {
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "rapid.checks" })
	if given {
		return
	}
	old := flag.Lookup("rapid.checks").Value.String()
	if err := flag.Set("rapid.checks", strconv.Itoa(n)); err != nil {
		t.Fatalf("set rapid.checks: %v", err)
	}
	t.Cleanup(func() { flag.Set("rapid.checks", old) })
}
